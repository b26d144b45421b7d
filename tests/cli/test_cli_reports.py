"""``interlace run``'s reports: --html, --sarif, --junitxml and --json at once, and --github.

A failing and a passing run each write every report in one go, and each file
is checked by its own validator: the JSON against interlace's own schema of
the format, the SARIF log against the official SARIF 2.1.0 schema, the JUnit
XML with junitparser, the HTML with a strict tag-balance check (and its SVG
as XML). The browser test of the HTML is ``tests/report/test_html_browser.py``.
"""

from __future__ import annotations

import io
import json
import re
import xml.etree.ElementTree as ElementTree
from html.parser import HTMLParser
from pathlib import Path

import jsonschema
import pytest
from junitparser import Failure as JUnitFailure
from junitparser import JUnitXml
from test_cli import RACY, SIMULATIONS

from interlace import Outcome, Trace
from interlace.cli import Progress, main
from interlace.explore import ScheduleRecord
from interlace.report.document import schema

SARIF_SCHEMA = Path(__file__).resolve().parents[1] / "report" / "sarif-schema-2.1.0.json"


@pytest.fixture
def project(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> Path:
    """A project of simulations as the current directory, its package named after the test."""
    package = "reports_" + re.sub(r"\W", "_", request.node.name)
    sims = tmp_path / package
    sims.mkdir()
    (sims / "__init__.py").write_text("")
    (sims / "counters.py").write_text(SIMULATIONS)
    (sims / "racy.py").write_text(RACY.format(package=package))
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    return sims


def _run_with_every_report(project: Path, *extra: str) -> tuple[int, Path]:
    out = project.parent / "out"
    status = main(
        [
            "run",
            str(project),
            "--schedules",
            "30",
            "--no-save",
            "--html",
            str(out / "html"),
            "--sarif",
            str(out / "run.sarif"),
            "--junitxml",
            str(out / "junit.xml"),
            "--json",
            str(out / "run.json"),
            *extra,
        ]
    )
    return status, out


class _StrictHTML(HTMLParser):
    """Every element closed in order, no resource from outside the page."""

    VOID = frozenset({"meta", "br", "img", "input", "link", "hr", "col", "source", "wbr"})

    def __init__(self) -> None:
        super().__init__()
        self.open: list[str] = []
        self.problems: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("src", "href") and value and not value.startswith("#"):
                self.problems.append(f"<{tag} {name}={value!r}>: an outside resource")
        if tag not in self.VOID:
            self.open.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        pass  # <path .../> inside SVG

    def handle_endtag(self, tag: str) -> None:
        if not self.open or self.open[-1] != tag:
            self.problems.append(f"</{tag}> closes {self.open[-1:] or 'nothing'}")
            return
        self.open.pop()


def _check_html(path: Path) -> str:
    text = path.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>")
    parser = _StrictHTML()
    parser.feed(text)
    parser.close()
    assert parser.problems == [] and parser.open == []
    for svg in re.findall(r"<svg\b.*?</svg>", text, re.S):
        ElementTree.fromstring(svg)  # each inline SVG is well-formed XML
    return text


def _check_sarif(path: Path) -> dict[str, object]:
    document = json.loads(path.read_text(encoding="utf-8"))
    official = json.loads(SARIF_SCHEMA.read_text(encoding="utf-8"))
    jsonschema.Draft4Validator(official).validate(document)
    return document


def _check_json(path: Path) -> dict[str, object]:
    document = json.loads(path.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator(schema()).validate(document)
    return document


def test_a_failing_run_writes_every_report_and_each_is_valid(project: Path) -> None:
    status, out = _run_with_every_report(project)
    assert status == 1
    name = project.name
    racy = f"{name}.racy:racy"

    document = _check_json(out / "run.json")
    assert document["version"] == 3 and re.match(r"^\d{4}-\d\d-\d\dT", str(document["started"]))
    by_name = {s["scenario"]: s for s in document["simulations"]}  # type: ignore[attr-defined]
    assert by_name[racy]["outcome"] == "violation"
    assert by_name[f"{name}.counters:racy_canary"]["outcome"] == "passed"
    failure = by_name[racy]["failure"]
    [location] = failure["locations"]
    assert location["path"] == f"{name}/counters.py" and location["function"] == "counted"
    source = (project / "counters.py").read_text().splitlines()
    assert source[location["line"] - 1].strip().startswith("assert world")
    assert failure["shrinking"]["found_decisions"] >= failure["shrinking"]["decisions"]
    assert failure["shrinking"]["nearest_passing"]["parts_at"] is not None
    assert by_name[f"{name}.counters:locked"]["coverage"][-1] == [30, 4]

    sarif = _check_sarif(out / "run.sarif")
    [result] = sarif["runs"][0]["results"]  # type: ignore[index]
    assert result["properties"]["token"] == failure["token"]
    region = result["locations"][0]["physicalLocation"]
    assert region["artifactLocation"]["uri"] == f"{name}/counters.py"
    assert region["region"]["startLine"] == location["line"]

    junit = JUnitXml.fromfile(str(out / "junit.xml"))
    cases = {case.name: case for suite in junit for case in suite}
    assert set(cases) == {"locked", "racy_canary", "racy"}
    assert cases["locked"].is_passed and cases["racy_canary"].is_passed
    [problem] = cases["racy"].result
    assert isinstance(problem, JUnitFailure)
    assert problem.message.startswith("InvariantViolation: final invariant violated")
    assert failure["token"] in (problem.text or "")
    assert f"interlace replay '{failure['token']}'" in (problem.text or "")

    page = _check_html(out / "html" / "interlace-report.html")
    assert failure["token"] in page and 'class="swimlanes"' in page
    assert page.count('class="lane"') >= 3


def test_a_passing_run_writes_every_report_and_each_is_valid(project: Path) -> None:
    status, out = _run_with_every_report(project, "-k", "locked")
    assert status == 0
    document = _check_json(out / "run.json")
    assert document["ok"] is True and document["exit_status"] == 0
    [simulation] = document["simulations"]  # type: ignore[misc]
    assert simulation["outcome"] == "passed" and simulation["failure"] is None
    sarif = _check_sarif(out / "run.sarif")
    assert sarif["runs"][0]["results"] == []  # type: ignore[index]
    junit = JUnitXml.fromfile(str(out / "junit.xml"))
    [case] = [case for suite in junit for case in suite]
    assert case.name == "locked" and case.is_passed
    page = _check_html(out / "html" / "interlace-report.html")
    assert "passed" in page and 'class="coverage"' in page and 'class="swimlanes"' not in page


def test_the_sarif_fingerprint_is_the_same_across_runs_with_other_seeds(project: Path) -> None:
    fingerprints = []
    for seed in ("0", "7"):
        _run_with_every_report(project, "-k", "racy", "--seed", seed)
        sarif = _check_sarif(project.parent / "out" / "run.sarif")
        results = [r for r in sarif["runs"][0]["results"] if "racy:racy" in r["message"]["text"]]  # type: ignore[index]
        fingerprints.append(results[0]["fingerprints"])
    assert fingerprints[0] == fingerprints[1]


def test_github_annotations_and_job_summary(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    summary = project.parent / "summary.md"
    monkeypatch.setenv("GITHUB_ACTIONS", "true")  # --github is on by itself in Actions
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    status = main(["run", str(project), "--schedules", "30", "--no-save"])
    assert status == 1
    out = capsys.readouterr().out
    [annotation] = [line for line in out.splitlines() if line.startswith("::error ")]
    assert re.match(
        rf"^::error file={project.name}/counters\.py,line=\d+,title=interlace%3A "
        rf"{project.name}\.racy%3Aracy%3A VIOLATION::final invariant violated: ",
        annotation,
    )
    assert "%0Atoken: interlace:v1:" in annotation and "\n" not in annotation
    text = summary.read_text(encoding="utf-8")
    assert "| simulation | database | verdict |" in text
    assert f"### ❌ `{project.name}.racy:racy`: VIOLATION" in text
    assert "- token: `interlace:v1:" in text and "- replay: `interlace replay '" in text

    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(project.parent / "other.md"))
    main(["run", str(project), "--schedules", "30", "--no-save", "--no-github"])
    assert "::error" not in capsys.readouterr().out
    assert not (project.parent / "other.md").exists()


def _record(index: int, interleavings: int) -> ScheduleRecord:
    return ScheduleRecord(index, 1, Trace(()), Outcome.PASSED, None, interleavings)


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_is_live_on_a_terminal_and_plain_lines_elsewhere_never_both(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setenv("COLUMNS", "200")  # rich's width of a terminal it cannot measure
    terminal = _Terminal()
    live = Progress("sims.chat:race[sqlite]", 200, terminal, every=0.0)
    assert live.live
    for index in range(3):
        live.update(_record(index, index + 1))
    live.clear()
    drawn = terminal.getvalue()
    assert "\x1b[" in drawn  # redrawn in place by rich
    assert "sims.chat:race[sqlite]" in drawn and "3 distinct interleavings" in drawn
    assert "  sims.chat:race[sqlite]: " not in drawn  # no plain line beside it

    monkeypatch.setenv("CI", "true")
    assert not Progress("x", 10, _Terminal()).live  # in CI a terminal gets plain lines

    piped = io.StringIO()
    plain = Progress("sims.chat:race[sqlite]", 200, piped, every=0.0)
    assert not plain.live
    plain.update(_record(41, 37))
    plain.clear()
    line = piped.getvalue()
    assert "\x1b" not in line
    assert re.fullmatch(
        r"  sims\.chat:race\[sqlite\]: 42/200 schedules, 37 distinct interleavings, "
        r"[\d.]+/s, ~\d+ s left \(\d+ s\)\n",
        line,
    ), line
