"""The summary of a run: one row per simulation and database, and what to do about failures.

simulation                                        schedules  interleavings  verdict            time
simulations.editor_chat.identical:two_processes[sqlite]  200            200  passed           6.9 s
simulations.editor_chat.identical:two_processes_pre_fix[sqlite]  1        1  caught (expected) 0.7 s
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence

from interlace.outcome import SimulationRun, Verdict
from interlace.report.failure import failure_report, interlace_replay_command
from interlace.report.table import DEFAULT_WIDTH

_INDENT = "  "

_HEADERS = ("simulation", "schedules", "interleavings", "verdict", "time")


def summary_table(runs: Sequence[SimulationRun]) -> str:
    """The table of a run's verdicts, one row per simulation and database."""
    rows = [_row(run) for run in runs]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(_HEADERS)]
    lines = [_line(_HEADERS, widths), _line(tuple("-" * w for w in widths), widths)]
    lines.extend(_line(row, widths) for row in rows)
    return "\n".join(lines)


def _row(run: SimulationRun) -> tuple[str, str, str, str, str]:
    report = run.report
    schedules = "-" if report is None else str(report.schedules_run)
    interleavings = "-" if report is None else str(report.distinct_interleavings)
    return (run.scenario, schedules, interleavings, run.verdict.value, f"{run.elapsed:.1f} s")


def _line(cells: tuple[str, ...], widths: list[int]) -> str:
    name, schedules, interleavings, verdict, elapsed = cells
    return "  ".join(
        (
            name.ljust(widths[0]),
            schedules.rjust(widths[1]),
            interleavings.rjust(widths[2]),
            verdict.ljust(widths[3]),
            elapsed.rjust(widths[4]),
        )
    ).rstrip()


def totals(runs: Sequence[SimulationRun]) -> str:
    """``8 simulation runs: 5 passed, 2 caught as expected, 1 failed``."""
    passed = sum(1 for r in runs if r.verdict is Verdict.PASSED)
    caught = sum(1 for r in runs if r.verdict is Verdict.CAUGHT)
    failed = sum(1 for r in runs if not r.ok and r.problem is None)
    errors = sum(1 for r in runs if r.problem is not None)
    noun = "run" if len(runs) == 1 else "runs"
    text = (
        f"{len(runs)} simulation {noun}: {passed} passed, {caught} caught as expected, "
        f"{failed} failed"
    )
    return text + (f", {errors} could not run" if errors else "")


def explain(run: SimulationRun, *, full: bool = False, width: int | None = None) -> str:
    """What a run found, as a failure report (a caught canary's too), or the problem.

    The verdict line, the run's one-line message, then the finding's report:
    the headline's further lines (its first is in the message already), where
    an application error was raised, the interleaving table (``full``: with
    the folded rows; fitted to ``width``, default the terminal's), the token
    and the command that replays it.
    """
    lines = [f"{run.scenario}: {run.verdict.value}", f"{_INDENT}{run.message}"]
    if run.problem is not None:
        details = run.problem.describe().splitlines()[1:]
        lines.extend(f"{_INDENT}{line}" if line else "" for line in details)
        return "\n".join(lines)
    failure = run.failure
    if failure is None:
        return "\n".join(lines)
    headline = failure.headline().splitlines()[0]
    shown = headline in run.message
    if width is None:
        width = shutil.get_terminal_size((DEFAULT_WIDTH, 24)).columns
    report = failure_report(
        failure,
        [("replay", interlace_replay_command(failure.token))],
        headline_shown=shown,
        full=full,
        width=width - len(_INDENT),
    )
    if not shown:
        lines.append("")  # the report starts with the headline itself
    lines.extend(f"{_INDENT}{line}" if line else "" for line in report.splitlines())
    return "\n".join(lines)
