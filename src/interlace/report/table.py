"""The interleaving table: one column per task, one row per decision.

    step | main               | T1                    | T2
    -----+--------------------+-----------------------+----------------------
       0 | start scenario     |                       |
       1 |                    | start transfer        |
       2 |                    |                       | start transfer
       3 |                    | SELECT accounts       |
       4 |                    |                     * | UPDATE accounts
       ...

A ``*`` beside a cell marks a preemption: the task that ran before could
have continued, but this one was chosen.
"""

from __future__ import annotations

from interlace._core.trace import Trace

_MAX_CELL = 36


def interleaving_table(trace: Trace, max_rows: int = 200) -> str:
    """Render ``trace`` as a text table; long traces keep their first and last rows."""
    tasks = trace.tasks()
    if not trace.decisions:
        return "(no decisions)"
    widths = {task: max(len(task), 8) for task in tasks}
    rows: list[tuple[str, dict[str, str]]] = []
    for decision in trace.decisions:
        cell = _clip(decision.label) + (" *" if decision.preemption else "")
        widths[decision.task] = max(widths[decision.task], len(cell))
        rows.append((str(decision.step), {decision.task: cell}))
    step_width = max(4, len(rows[-1][0]))
    header = " | ".join(["step".rjust(step_width), *(t.ljust(widths[t]) for t in tasks)])
    rule = "-+-".join(["-" * step_width, *("-" * widths[t] for t in tasks)])
    lines = [header.rstrip(), rule]
    shown = _elide(rows, max_rows)
    for row in shown:
        if row is None:
            lines.append("...".rjust(step_width))
            continue
        step, cells = row
        parts = [step.rjust(step_width), *(cells.get(t, "").ljust(widths[t]) for t in tasks)]
        lines.append(" | ".join(parts).rstrip())
    lines.append(
        f"({len(trace.decisions)} decisions, {trace.preemptions} preemptions; * = preemption)"
    )
    return "\n".join(lines)


def _clip(label: str) -> str:
    return label if len(label) <= _MAX_CELL else label[: _MAX_CELL - 3] + "..."


def _elide(
    rows: list[tuple[str, dict[str, str]]], max_rows: int
) -> list[tuple[str, dict[str, str]] | None]:
    if len(rows) <= max_rows:
        return list(rows)
    head = max_rows // 2
    return [*rows[:head], None, *rows[len(rows) - (max_rows - head) :]]
