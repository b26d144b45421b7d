"""The summary of a run: one row per simulation and database, and what to do about failures.

simulation                                        schedules  interleavings  verdict            time
simulations.editor_chat.identical:two_processes[sqlite]  200            200  passed           6.9 s
simulations.editor_chat.identical:two_processes_pre_fix[sqlite]  1        1  caught (expected) 0.7 s
"""

from __future__ import annotations

from collections.abc import Sequence

from interlace.outcome import SimulationRun, Verdict
from interlace.report.failure import failure_report, interlace_replay_command

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


def explain(run: SimulationRun) -> str:
    """What a failing run found, what a caught canary found (with its token), or the problem."""
    lines = [f"{run.scenario}: {run.verdict.value}", f"  {run.message}"]
    if run.problem is not None:
        details = run.problem.describe().splitlines()[1:]
        lines.extend(f"  {line}" if line else "" for line in details)
        return "\n".join(lines)
    failure = run.failure
    if failure is None:
        return "\n".join(lines)
    if run.ok:
        lines.extend(f"    {line}" for line in failure.headline().splitlines()[1:])
        lines.append(f"  token: {failure.token}")
        return "\n".join(lines)
    report = failure_report(failure, [("replay", interlace_replay_command(failure.token))])
    lines.append("")
    lines.extend(f"  {line}" if line else "" for line in report.splitlines())
    return "\n".join(lines)
