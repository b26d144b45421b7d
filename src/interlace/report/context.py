"""What the renderers share about a run: when it started, with what, and how to replay a finding.

Every renderer under ``interlace.report`` (HTML, Markdown, SARIF, JUnit XML,
JSON, GitHub annotations) takes the same two values: the run's
``SimulationRun`` outcomes (``interlace.outcome``) and this ``RunInfo``. None
of them reruns anything. ``interlace run`` and the pytest plugin each make one
``RunInfo`` per run::

    info = RunInfo(started=datetime.now(UTC), elapsed=12.5, database="sqlite",
                   settings=config.describe())
    html = render_html(runs, info)

The wall-clock start time is for people reading the report; nothing that
decides a schedule ever sees it.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from interlace.outcome import Failure, SimulationRun
from interlace.report.failure import interlace_replay_command

#: the command that replays ``failure`` of ``run`` (pytest's differs from ``interlace run``'s)
ReplayCommand = Callable[[SimulationRun, Failure], str]


def interlace_version() -> str:
    """The installed interlace's version, or ``unknown`` from a source tree not installed."""
    try:
        return importlib.metadata.version("interlace")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def replay_with_interlace(run: SimulationRun, failure: Failure) -> str:
    """``interlace replay '<token>'``, the default replay command."""
    return interlace_replay_command(failure.token)


@dataclass(frozen=True)
class RunInfo:
    """The run as a whole (see the module docstring)."""

    #: when the run started (timezone-aware); shown, never used to decide anything
    started: datetime
    #: wall seconds the whole run took
    elapsed: float
    #: the database kind of the run ("sqlite", "postgres"), None when it varies or is none
    database: str | None
    #: the budget as flags: ``--schedules 200 --strategy portfolio --seed 0``
    settings: str
    #: the command that ran, for the report's title
    command: str = "interlace run"
    version: str = field(default_factory=interlace_version)
    #: paths in SARIF, annotations and JSON are relative to this directory
    root: Path = field(default_factory=Path.cwd)
    replay: ReplayCommand = replay_with_interlace

    @property
    def started_text(self) -> str:
        """``2026-05-01T12:00:00Z``: ISO 8601 in UTC, to the second."""
        return self.started.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def overall_ok(runs: Sequence[SimulationRun]) -> bool:
    """Whether every simulation of the run passed (canaries caught)."""
    return all(run.ok for run in runs)


__all__ = ["ReplayCommand", "RunInfo", "interlace_version", "overall_ok", "replay_with_interlace"]
