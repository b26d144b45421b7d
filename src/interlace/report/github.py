"""GitHub Actions output: an annotation per violation and a Markdown job summary (``--github``).

On by itself when ``GITHUB_ACTIONS=true`` (GitHub sets it in every job).

- one workflow command per violation, printed on stdout, where the runner
  reads it and shows the message on the file and line of its first
  application frame (``interlace.report.locations``)::

      ::error file=simulations/bank/invariants.py,line=14,title=interlace%3A ...::final ...

- the Markdown of ``interlace.report.markdown`` appended to the file named by
  ``$GITHUB_STEP_SUMMARY``, which GitHub shows on the run's summary page.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from interlace.outcome import SimulationRun
from interlace.report.context import RunInfo
from interlace.report.locations import SourceLocation, definition_of, failure_locations
from interlace.report.markdown import render_markdown

SUMMARY_ENV = "GITHUB_STEP_SUMMARY"


def in_github_actions(environ: Mapping[str, str] | None = None) -> bool:
    """Whether this runs in a GitHub Actions job (``GITHUB_ACTIONS=true``)."""
    return (os.environ if environ is None else environ).get("GITHUB_ACTIONS") == "true"


def workflow_commands(runs: Sequence[SimulationRun], info: RunInfo) -> list[str]:
    """One ``::error ...::`` workflow command per violation of every failing run."""
    lines: list[str] = []
    for run in runs:
        if run.ok:
            continue
        title = f"interlace: {run.scenario}: {run.verdict.value}"
        if run.problem is not None:
            lines.append(_command(title, run.problem.headline(), None, info))
        elif run.failure is None:
            lines.append(_command(title, run.message, definition_of(run.scenario), info))
        else:
            failure = run.failure
            replay = f"token: {failure.token}\nreplay: {info.replay(run, failure)}"
            for located in failure_locations(failure):
                message = f"{located.message}\n{replay}"
                lines.append(_command(title, message, located.location, info))
    return lines


def append_summary(
    runs: Sequence[SimulationRun], info: RunInfo, environ: Mapping[str, str] | None = None
) -> Path | None:
    """Append the Markdown summary to ``$GITHUB_STEP_SUMMARY``; the file, or None when unset."""
    name = (os.environ if environ is None else environ).get(SUMMARY_ENV)
    if not name:
        return None
    path = Path(name)
    with path.open("a", encoding="utf-8") as summary:
        summary.write(render_markdown(runs, info) + "\n")
    return path


def _command(title: str, message: str, where: SourceLocation | None, info: RunInfo) -> str:
    properties = [f"title={_property(title)}"]
    if where is not None:
        properties[:0] = [f"file={_property(where.relative(info.root))}", f"line={where.line}"]
    return f"::error {','.join(properties)}::{_data(message)}"


def _data(text: str) -> str:
    """Escape a workflow command's message (GitHub's ``escapeData``)."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _property(text: str) -> str:
    """Escape a workflow command's property value (GitHub's ``escapeProperty``)."""
    return _data(text).replace(":", "%3A").replace(",", "%2C")


__all__ = ["SUMMARY_ENV", "append_summary", "in_github_actions", "workflow_commands"]
