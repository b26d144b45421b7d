"""The interleaving table: one column per task, one row per decision, fitted to the terminal.

    step | main             | web-1 POST /chat        | web-2 POST /chat
         |                  | T1                      | T2
    -----+------------------+-------------------------+------------------------
       2 |                  | start WebProcess.post   |
       3 |                  | SELECT tool_sessions    |
       4 |                  |                         | start WebProcess.post *
       ...
    (37 decisions, 1 preemptions; * = preemption)
    (5 rows hidden: 1 setup, 2 framework-internal, 2 invariant checks; --full shows them)

A column is headed by the task's display name (``Trace.display_names``: the
request it runs) with its structural name beneath, which is what tokens,
invariant messages and scheduler errors call it. A ``*`` beside a cell marks
a preemption: the task that ran before could have continued, but this one
was chosen.

By default the rows a reader of a race rarely needs are folded away, and
counted in the last line:

- setup: the root's decisions before any request task made one;
- framework-internal: the decisions of the ORM's and drivers' own tasks
  (``Trace.internal_tasks``: SQLAlchemy closing a connection);
- invariant checks: the root's decisions once the final invariants began
  (``Trace.marks["invariants"]``) and those of the tasks they created.

A task left with no row loses its column. ``full=True`` shows everything.
Nothing is folded when that would leave no row.

The table fits ``width`` (the terminal's, 100 columns when output is not a
terminal): the widest columns are narrowed first and their cells clipped with
``...``; the step column is never clipped and nothing wraps. When even the
narrowest columns do not fit, the table is wider than ``width``.
"""

from __future__ import annotations

import re
import shutil
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from interlace._core import Decision, Trace

DEFAULT_WIDTH = 100
_MAX_CELL = 36  # the widest a column grows, however wide the terminal
_MIN_CELL = 10  # the narrowest a column is made to fit the width
_MIN_WIDTH = 40
_SEPARATOR = " | "

SETUP = "setup"
FRAMEWORK = "framework-internal"
INVARIANTS = "invariant checks"
_REASONS = (SETUP, FRAMEWORK, INVARIANTS)


def interleaving_table(
    trace: Trace,
    max_rows: int = 200,
    *,
    full: bool = False,
    width: int | None = None,
    full_hint: str = "--full",
) -> str:
    """Render ``trace`` as a text table; long traces keep their first and last rows.

    ``full``: show the folded rows too (see the module docstring). ``width``:
    the columns to fit (default: the terminal's). ``full_hint``: how the
    reader asks for everything, in the last line (``--interlace-full``).
    """
    if not trace.decisions:
        return "(no decisions)"
    hidden = {} if full else hidden_rows(trace)
    shown = [d for d in trace.decisions if d.step not in hidden]
    groups = _groups(trace, shown, merge=not full)
    columns = [_Column.of(group, members, trace, shown) for group, members in groups.items()]
    step_width = max(4, len(str(trace.decisions[-1].step)))
    _fit(columns, step_width, _terminal_width() if width is None else width)
    labelled = any(c.structural for c in columns)
    lines = [_line("step".rjust(step_width), [(c, c.title) for c in columns])]
    if labelled:
        lines.append(_line(" " * step_width, [(c, c.structural) for c in columns]))
    lines.append("-+-".join(["-" * step_width, *("-" * c.width for c in columns)]))
    column_of = {member: c for c in columns for member in c.members}
    for decision in _elide(shown, max_rows):
        if decision is None:
            lines.append("...".rjust(step_width))
            continue
        column = column_of[decision.task]
        cells = [(c, column.cell(decision) if c is column else "") for c in columns]
        lines.append(_line(str(decision.step).rjust(step_width), cells))
    lines.append(
        f"({len(trace.decisions)} decisions, {trace.preemptions} preemptions; * = preemption)"
    )
    if hidden:
        lines.append(_hidden_note(hidden, full_hint))
    return "\n".join(lines)


def hidden_rows(trace: Trace) -> dict[int, str]:
    """Step -> why the step's row is folded by default (``setup``, ...); see the docstring."""
    invariants_from = trace.marks.get("invariants")
    root = _root(trace)
    folded_tasks = trace.internal_tasks | trace.invariant_tasks
    first_request = next(
        (d.step for d in trace.decisions if d.task != root and d.task not in folded_tasks), None
    )
    hidden: dict[int, str] = {}
    for decision in trace.decisions:
        task = decision.task
        checking = task == root and invariants_from is not None and decision.step >= invariants_from
        if checking or task in trace.invariant_tasks:
            hidden[decision.step] = INVARIANTS
        elif task in trace.internal_tasks:
            hidden[decision.step] = FRAMEWORK
        elif task == root and first_request is not None and decision.step < first_request:
            hidden[decision.step] = SETUP
    if len(hidden) == len(trace.decisions):
        return {}  # folding everything would show nothing: show everything
    return hidden


def _groups(trace: Trace, shown: Sequence[Decision], *, merge: bool) -> dict[str, list[str]]:
    """Column -> the tasks it shows, in the order tasks first appear.

    Merged, a task that only inherits its display name (``T3.1`` under the
    request ``T3``) shares its ancestor's column; folded, a task without a
    shown row has no column. Full, every task has its own column.
    """
    with_rows = {d.task for d in shown}
    groups: dict[str, list[str]] = {}
    for task in trace.tasks():
        if merge and task not in with_rows:
            continue
        group = _request_of(task, trace) if merge else task
        groups.setdefault(group, []).append(task)
    return groups


def _request_of(task: str, trace: Trace) -> str:
    """The outermost ancestor of ``task`` (by structural name) with the same display name."""
    display = trace.display_names.get(task)
    while display is not None and "." in task and "#" not in task:
        parent = task.rsplit(".", 1)[0]
        if trace.display_names.get(parent) != display:
            break
        task = parent
    return task


@dataclass
class _Column:
    task: str
    #: the tasks whose rows it shows: ``task`` and the tasks merged into it
    members: list[str]
    #: the head: the display name, else the structural name
    title: str
    #: the structural names beneath a display name (``T3, T3.1``), else ""
    structural: str
    width: int

    @staticmethod
    def of(task: str, members: list[str], trace: Trace, shown: Sequence[Decision]) -> _Column:
        display = trace.display_names.get(task)
        title = display if display is not None else task
        structural = ", ".join(members) if display is not None else ""
        column = _Column(task, members, title, structural, 0)
        cells = [len(column.text(d)) for d in shown if d.task in members]
        column.width = min(_MAX_CELL, max(8, len(title), len(structural), *cells))
        return column

    def text(self, decision: Decision) -> str:
        """The cell of ``decision`` unclipped: ``.1 `` before a merged task's label."""
        prefix = f"{decision.task[len(self.task) :]} " if decision.task != self.task else ""
        return prefix + decision.label + (" *" if decision.preemption else "")

    def cell(self, decision: Decision) -> str:
        text = self.text(decision)
        if len(text) <= self.width:
            return text
        marker = " *" if decision.preemption else ""
        return _clip(_shorten(text.removesuffix(marker)), self.width - len(marker)) + marker


_QUALIFIED = re.compile(r"\b(start|in) (?:[\w<>]+\.)+([\w<>]+)")


def _shorten(label: str) -> str:
    """``timer in FakeProvider.stream_reply`` -> ``timer in stream_reply``: the function alone."""
    return _QUALIFIED.sub(r"\1 \2", label)


def _fit(columns: list[_Column], step_width: int, width: int) -> None:
    """Narrow the widest columns until the table fits ``width`` (never below _MIN_CELL)."""
    available = max(width, _MIN_WIDTH) - step_width - len(_SEPARATOR) * len(columns)
    if sum(c.width for c in columns) <= available:
        return
    cap = max((c.width for c in columns), default=0)
    while cap > _MIN_CELL and sum(min(c.width, cap) for c in columns) > available:
        cap -= 1
    for column in columns:
        column.width = min(column.width, cap)


def _line(step: str, cells: Sequence[tuple[_Column, str]]) -> str:
    parts = [step, *(_clip(text, c.width).ljust(c.width) for c, text in cells)]
    return _SEPARATOR.join(parts).rstrip()


def _clip(text: str, width: int) -> str:
    if len(text) <= width:
        return text
    if width <= 3:
        return text[:width]
    return text[: width - 3] + "..."


def _root(trace: Trace) -> str:
    for decision in trace.decisions:
        if decision.task_index == 0:
            return decision.task
    return trace.decisions[0].task


def _hidden_note(hidden: dict[int, str], full_hint: str) -> str:
    counts = Counter(hidden.values())
    parts = ", ".join(f"{counts[reason]} {reason}" for reason in _REASONS if counts[reason])
    noun = "row" if len(hidden) == 1 else "rows"
    return f"({len(hidden)} {noun} hidden: {parts}; {full_hint} shows them)"


def _terminal_width() -> int:
    return shutil.get_terminal_size((DEFAULT_WIDTH, 24)).columns


def _elide(decisions: list[Decision], max_rows: int) -> list[Decision | None]:
    if len(decisions) <= max_rows:
        return list(decisions)
    head = max_rows // 2
    return [*decisions[:head], None, *decisions[len(decisions) - (max_rows - head) :]]
