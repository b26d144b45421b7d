"""A run as JUnit XML, which every CI system shows natively: ``interlace run --junitxml FILE``.

One ``<testcase>`` per simulation and database, in a ``<testsuite>`` named
after the run; a finding is a ``<failure>`` whose message is the headline and
whose text is the whole report (with the token and the replay command); a
usage or internal error is an ``<error>``. The token is also a property of
the test case (``interlace_token``), as pytest's plugin records it::

    <testsuites name="interlace run" tests="2" failures="1" errors="0" time="1.200">
      <testsuite name="interlace run" tests="2" failures="1" errors="0" skipped="0" ...>
        <testcase classname="sims.bank" name="transfer[sqlite]" time="0.400">
          <properties><property name="interlace_token" value="interlace:v1:..."/></properties>
          <failure message="InvariantViolation: ..." type="VIOLATION">...</failure>
        </testcase>
"""

from __future__ import annotations

from collections.abc import Sequence
from xml.etree import ElementTree

from interlace.outcome import SimulationRun
from interlace.report.context import RunInfo
from interlace.report.failure import failure_report

TABLE_WIDTH = 120


def render_junit(runs: Sequence[SimulationRun], info: RunInfo) -> str:
    """The run as a JUnit XML document (see the module docstring)."""
    failures = sum(1 for run in runs if not run.ok and run.problem is None)
    errors = sum(1 for run in runs if run.problem is not None)
    counts = {
        "tests": str(len(runs)),
        "failures": str(failures),
        "errors": str(errors),
        "time": f"{info.elapsed:.3f}",
    }
    root = ElementTree.Element("testsuites", {"name": info.command, **counts})
    suite = ElementTree.SubElement(
        root,
        "testsuite",
        {"name": info.command, **counts, "skipped": "0", "timestamp": info.started_text},
    )
    properties = ElementTree.SubElement(suite, "properties")
    for name, value in (
        ("interlace_version", info.version),
        ("interlace_settings", info.settings),
        ("interlace_database", info.database or ""),
    ):
        ElementTree.SubElement(properties, "property", {"name": name, "value": value})
    for run in runs:
        _testcase(suite, run, info)
    ElementTree.indent(root)
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        + ElementTree.tostring(root, encoding="unicode")
        + "\n"
    )


def _testcase(suite: ElementTree.Element, run: SimulationRun, info: RunInfo) -> None:
    module, _, name = run.scenario.partition(":")
    case = ElementTree.SubElement(
        suite, "testcase", {"classname": module, "name": name, "time": f"{run.elapsed:.3f}"}
    )
    report = run.report
    properties = [("interlace_verdict", run.verdict.value)]
    if report is not None:
        properties += [
            ("interlace_schedules", str(report.schedules_run)),
            ("interlace_interleavings", str(report.distinct_interleavings)),
        ]
    if run.failure is not None:
        properties.append(("interlace_token", run.failure.token))
    holder = ElementTree.SubElement(case, "properties")
    for key, value in properties:
        ElementTree.SubElement(holder, "property", {"name": key, "value": value})
    if run.ok:
        return
    if run.problem is not None:
        error = ElementTree.SubElement(
            case,
            "error",
            {"message": run.problem.headline(), "type": run.problem.outcome.value},
        )
        error.text = run.problem.describe()
        return
    failure = run.failure
    if failure is None:
        element = ElementTree.SubElement(
            case, "failure", {"message": run.message, "type": run.verdict.value}
        )
        element.text = run.message
        return
    element = ElementTree.SubElement(
        case,
        "failure",
        {"message": failure.headline().splitlines()[0], "type": run.verdict.value},
    )
    element.text = (
        f"{run.message}\n\n"
        # a file has no terminal: a fixed width, so the report is the same everywhere
        + failure_report(failure, [("replay", info.replay(run, failure))], width=TABLE_WIDTH)
        + "\n"
    )


__all__ = ["render_junit"]
