"""A run as Markdown: the summary table, then each failure's headline, token and replay command.

It is what ``--github`` appends to ``$GITHUB_STEP_SUMMARY`` (the job summary
GitHub shows on the run's page), and reads as well anywhere Markdown is shown::

    ## interlace run: 1 of 3 simulation runs failed

    | simulation | database | verdict | schedules | interleavings | time |
    |---|---|---|---:|---:|---:|
    | `sims.bank:transfer[sqlite]` | sqlite | ❌ VIOLATION | 12 | 12 | 0.4 s |

    ### ❌ `sims.bank:transfer[sqlite]`: VIOLATION
    ```text
    InvariantViolation: final invariant violated: ...
    ```
    - token: `interlace:v1:...`
    - replay: `interlace replay 'interlace:v1:...'`
"""

from __future__ import annotations

from collections.abc import Sequence

from interlace.outcome import SimulationRun
from interlace.report.context import RunInfo
from interlace.report.locations import failure_locations

_OK, _FAILED = "✅", "❌"


def render_markdown(runs: Sequence[SimulationRun], info: RunInfo) -> str:
    """The run as Markdown (see the module docstring)."""
    failed = [run for run in runs if not run.ok]
    noun = "run" if len(runs) == 1 else "runs"
    title = (
        f"all {len(runs)} simulation {noun} passed"
        if not failed
        else f"{len(failed)} of {len(runs)} simulation {noun} failed"
    )
    lines = [
        f"## {info.command}: {title}",
        "",
        f"interlace {info.version} · {info.database or 'no database'} · `{info.settings}` · "
        f"started {info.started_text} · {info.elapsed:.1f} s",
        "",
        "| simulation | database | verdict | schedules | interleavings | time |",
        "|---|---|---|---:|---:|---:|",
    ]
    for run in runs:
        report = run.report
        lines.append(
            "| "
            + " | ".join(
                (
                    f"`{_cell(run.scenario)}`",
                    run.database or "-",
                    f"{_OK if run.ok else _FAILED} {_cell(run.verdict.value)}",
                    "-" if report is None else str(report.schedules_run),
                    "-" if report is None else str(report.distinct_interleavings),
                    f"{run.elapsed:.1f} s",
                )
            )
            + " |"
        )
    for run in failed:
        lines += ["", *_failure_section(run, info)]
    return "\n".join(lines) + "\n"


def _failure_section(run: SimulationRun, info: RunInfo) -> list[str]:
    lines = [f"### {_FAILED} `{run.scenario}`: {run.verdict.value}", ""]
    failure = run.failure
    if failure is None:
        headline = run.problem.headline() if run.problem is not None else run.message
        return [*lines, "```text", headline, "```"]
    lines += ["```text", failure.headline(), "```", ""]
    for located in failure_locations(failure):
        if located.location is not None:
            where = located.location
            lines.append(f"- at `{where.relative(info.root)}:{where.line}` ({where.function})")
    lines.append(f"- token: `{failure.token}`")
    lines.append(f"- replay: `{info.replay(run, failure)}`")
    note = failure.shrink_note()
    if note:
        lines.append(f"- {note}")
    return lines


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


__all__ = ["render_markdown"]
