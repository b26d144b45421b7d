"""A trace as a timeline: lanes, transactions and lock waits, for the pictures reports draw.

The swimlanes of the HTML report (``interlace.report.swimlanes``) draw what
this module derives from a ``Trace``, without rerunning anything:

- one lane per task, named and ordered as in the text table;
- each decision in order, its preemption marked;
- each transaction as a span of its task, from its first statement to its
  COMMIT or ROLLBACK (statement labels are ``SELECT tool_sessions``,
  ``UPDATE accounts``, ``BEGIN``, ...; ``interlace.db.sqlalchemy``), or to the
  end of the trace when it never ended;
- lock waits, from waiter to holder with the lock's kind, inferred three ways:
  a task chosen for a statement that is then missing from the runnable sets
  (the PostgreSQL lock monitor parks a blocked statement as blocked) until
  right after another task's COMMIT or ROLLBACK waited for that task's lock;
  a label the waiter resumed at may name it (``after PostgreSQL: a row lock
  held by T1 in ...``, with a raw driver); and a SQLite busy wait: a task
  whose write (or ``BEGIN``) is followed by a timer while another task's
  transaction has written waits for that task's write lock (SQLite allows one
  writer, so the write cannot have gone through).

Decisions may one day carry what the labels cannot say: the virtual time
(``time``), the full SQL of a statement (``sql``) and the lock waits in
force (``waits``, each with ``waiter``, ``holder`` and ``kind``). Those
optional attributes are used when present, and the label-derived ones
otherwise.

    >>> timeline = Timeline.of(trace)
    >>> [(s.task, s.first, s.last, s.end) for s in timeline.spans]
    [('T1', 2, 5, 'COMMIT'), ('T2', 7, 10, 'COMMIT')]
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from interlace._core import Decision, Trace
from interlace.report.table import hidden_rows

SQL_VERBS = frozenset(
    {
        "SELECT",
        "INSERT",
        "UPDATE",
        "DELETE",
        "WITH",
        "MERGE",
        "REPLACE",
        "UPSERT",
        "CREATE",
        "DROP",
        "ALTER",
        "TRUNCATE",
        "PRAGMA",
        "BEGIN",
        "SAVEPOINT",
        "RELEASE",
        "LOCK",
        "SET",
        "SHOW",
        "VALUES",
        "EXPLAIN",
        "COPY",
        "CALL",
        "SQL",
    }
)
TRANSACTION_ENDS = frozenset({"COMMIT", "ROLLBACK"})
_WRITES = frozenset({"INSERT", "UPDATE", "DELETE", "REPLACE", "UPSERT", "MERGE", "BEGIN"})
_HELD_BY = re.compile(r"^after (?:PostgreSQL: )?(?P<kind>.+?) held by (?P<holders>.+?) in \S+$")
_SQLITE_LOCK = "SQLite write lock"


@dataclass(frozen=True)
class Step:
    """One decision as the timeline draws it."""

    step: int
    lane: int
    task: str
    label: str
    preemption: bool
    #: "statement" (SQL), "end" (COMMIT/ROLLBACK), or "other" (start, yield, wake-up)
    kind: str
    #: the virtual time of the decision, when the trace records it
    time: float | None = None
    #: the full SQL of a statement step, when the trace records it
    sql: str | None = None
    #: why the text table folds this row by default (``setup``, ...), or None
    folded: str | None = None


@dataclass(frozen=True)
class Span:
    """A transaction of one task: its first statement to its COMMIT or ROLLBACK."""

    task: str
    lane: int
    first: int
    #: the step of the COMMIT or ROLLBACK; the last step of the trace when ``end`` is "open"
    last: int
    end: str  # "COMMIT", "ROLLBACK" or "open"
    #: the step of its first write (INSERT, UPDATE, DELETE, an explicit BEGIN), if any
    first_write: int | None


@dataclass(frozen=True)
class LockWait:
    """``waiter`` waited from step ``since`` to step ``until`` for a lock ``holder`` held."""

    waiter: str
    holder: str
    kind: str
    since: int
    until: int
    #: True when read off the labels by inference rather than recorded
    inferred: bool = True


@dataclass(frozen=True)
class Parting:
    """Where a failing trace and the nearest passing one part: their first different decision."""

    step: int
    failing: Decision | None  # None: the failing trace ended first
    passing: Decision | None  # None: the passing trace ended first

    def describe(self) -> str:
        """``at step 12 the failing schedule ran T2 ('UPDATE x'), the passing one T1 (...)``."""

        def said(decision: Decision | None) -> str:
            if decision is None:
                return "had ended"
            return f"ran {decision.task} ({decision.label!r})"

        return (
            f"the first {self.step} decisions are the same; at step {self.step} the failing "
            f"schedule {said(self.failing)}, the passing one {said(self.passing)}"
        )


@dataclass(frozen=True)
class Timeline:
    """Lanes, steps, transaction spans and lock waits of one trace (see the module docstring)."""

    #: structural task names (``T1``), in the text table's order
    lanes: tuple[str, ...]
    steps: tuple[Step, ...]
    spans: tuple[Span, ...]
    waits: tuple[LockWait, ...]
    #: each lane's head, as the text table heads its column: the display name
    #: (``web-1 POST /chat``), else the structural name
    titles: tuple[str, ...] = ()
    #: lanes of framework-internal and invariant-check tasks (folded in the text table)
    quiet: frozenset[str] = frozenset()

    @property
    def timed(self) -> bool:
        """Whether the trace records virtual time."""
        return any(step.time is not None for step in self.steps)

    @staticmethod
    def of(trace: Trace, database: str | None = None) -> Timeline:
        """The timeline of ``trace``; ``database`` ("sqlite", "postgres") guides inference."""
        lanes = tuple(trace.tasks())
        index = {name: i for i, name in enumerate(lanes)}
        folded = hidden_rows(trace)
        steps = tuple(_step(d, index, folded.get(d.step)) for d in trace.decisions)
        spans = _spans(steps)
        waits = _recorded_waits(trace.decisions) or tuple(
            sorted(
                _blocked_waits(trace.decisions, database) + _label_waits(steps, spans, database),
                key=lambda wait: (wait.since, wait.until),
            )
        )
        titles = tuple(trace.display_name(name) for name in lanes)
        quiet = frozenset(trace.internal_tasks | trace.invariant_tasks)
        return Timeline(lanes, steps, spans, waits, titles, quiet)


def kind_of(label: str) -> str:
    """``statement``, ``end`` (COMMIT or ROLLBACK) or ``other``.

    >>> kind_of("SELECT FOR UPDATE accounts"), kind_of("COMMIT"), kind_of("yield in f")
    ('statement', 'end', 'other')
    """
    if label in TRANSACTION_ENDS:
        return "end"
    verb = label.split(" ", 1)[0]
    return "statement" if verb in SQL_VERBS else "other"


def parting(failing: Trace, passing: Trace) -> Parting | None:
    """The first decision where the two traces differ (task or label), or None if none does."""
    for number, (one, two) in enumerate(zip(failing.decisions, passing.decisions, strict=False)):
        if (one.task, one.label) != (two.task, two.label):
            return Parting(number, one, two)
    shorter = min(len(failing.decisions), len(passing.decisions))
    if len(failing.decisions) == len(passing.decisions):
        return None
    at = shorter
    return Parting(
        at,
        failing.decisions[at] if at < len(failing.decisions) else None,
        passing.decisions[at] if at < len(passing.decisions) else None,
    )


def _step(decision: Decision, lanes: dict[str, int], folded: str | None) -> Step:
    time = getattr(decision, "time", None)
    sql = getattr(decision, "sql", None)
    return Step(
        step=decision.step,
        lane=lanes.get(decision.task, 0),
        task=decision.task,
        label=decision.label,
        preemption=decision.preemption,
        kind=kind_of(decision.label),
        time=float(time) if isinstance(time, int | float) else None,
        sql=sql if isinstance(sql, str) else None,
        folded=folded,
    )


def _spans(steps: Sequence[Step]) -> tuple[Span, ...]:
    # task -> (first step, first write step) of its open transaction
    open_spans: dict[str, tuple[int, int | None]] = {}
    spans: list[Span] = []
    lane_of = {step.task: step.lane for step in steps}
    for step in steps:
        if step.kind == "statement":
            first, wrote = open_spans.get(step.task, (step.step, None))
            if wrote is None and step.label.split(" ", 1)[0] in _WRITES:
                wrote = step.step
            open_spans[step.task] = (first, wrote)
        elif step.kind == "end":
            first, wrote = open_spans.pop(step.task, (step.step, None))
            spans.append(Span(step.task, step.lane, first, step.step, step.label, wrote))
    last = steps[-1].step if steps else 0
    for task, (first, wrote) in open_spans.items():
        spans.append(Span(task, lane_of[task], first, last, "open", wrote))
    return tuple(sorted(spans, key=lambda span: (span.first, span.lane)))


def _recorded_waits(decisions: Sequence[Decision]) -> tuple[LockWait, ...]:
    """Lock waits the trace records (``Decision.waits``, when the core provides it)."""
    waits: list[LockWait] = []
    previous: dict[str, int] = {}
    for decision in decisions:
        for wait in getattr(decision, "waits", ()) or ():
            waiter = getattr(wait, "waiter", None)
            holder = getattr(wait, "holder", None)
            kind = getattr(wait, "kind", None)
            if isinstance(waiter, str) and isinstance(holder, str) and isinstance(kind, str):
                since = previous.get(waiter, decision.step)
                waits.append(LockWait(waiter, holder, kind, since, decision.step, inferred=False))
        previous[decision.task] = decision.step
    return tuple(waits)


def _blocked_waits(decisions: Sequence[Decision], database: str | None) -> tuple[LockWait, ...]:
    """Statements that blocked until another task's transaction ended (see the docstring)."""
    # the kind of lock is not in the trace: only that it blocked until that transaction ended
    kind = {"postgres": "PostgreSQL lock", "sqlite": "SQLite lock"}.get(
        database or "", "database lock"
    )
    waits: list[LockWait] = []
    for number, decision in enumerate(decisions):
        if kind_of(decision.label) != "statement":
            continue
        back = next(
            (
                j
                for j in range(number + 1, len(decisions))
                if decision.task in decisions[j].runnable
            ),
            None,
        )
        if back is None or back == number + 1:
            continue  # never back (a deadlock says so itself), or not blocked at all
        release = decisions[back - 1]
        resumed_at = next((d.label for d in decisions[back:] if d.task == decision.task), "")
        if release.task == decision.task or release.label not in TRANSACTION_ENDS:
            continue
        if resumed_at.startswith(("timer in ", "after ", "joined ")):
            continue  # it slept, or waited on an asyncio primitive or a task, not on a lock
        if not _in_transaction(decisions[:number], release.task):
            continue  # the holder's transaction began after the statement blocked
        waits.append(LockWait(decision.task, release.task, kind, decision.step, release.step))
    return tuple(waits)


def _in_transaction(before: Sequence[Decision], task: str) -> bool:
    """Whether ``task`` has an open transaction after ``before``: its last SQL was no end."""
    for decision in reversed(before):
        if decision.task == task:
            kind = kind_of(decision.label)
            if kind != "other":
                return kind == "statement"
    return False


def _label_waits(
    steps: Sequence[Step], spans: Sequence[Span], database: str | None
) -> tuple[LockWait, ...]:
    waits: list[LockWait] = []
    last_of: dict[str, Step] = {}  # task -> its previous step
    waiting: dict[str, LockWait] = {}  # task -> the SQLite wait it is in
    for step in steps:
        before = last_of.get(step.task)
        matched = _HELD_BY.match(step.label)
        if matched is not None:
            for holder in re.split(r",\s*|\s+and\s+", matched.group("holders")):
                since = before.step if before is not None else step.step
                waits.append(
                    LockWait(step.task, holder.strip(), matched.group("kind"), since, step.step)
                )
        elif database != "postgres" and step.label.startswith("timer in ") and before is not None:
            sqlite_wait = _sqlite_wait(step, before, spans, waiting.get(step.task))
            if sqlite_wait is not None:
                waiting[step.task] = sqlite_wait
            else:
                waiting.pop(step.task, None)
        else:
            ended = waiting.pop(step.task, None)
            if ended is not None:
                waits.append(ended)
        last_of[step.task] = step
    waits.extend(waiting.values())
    return tuple(waits)


def _sqlite_wait(
    step: Step, before: Step, spans: Sequence[Span], ongoing: LockWait | None
) -> LockWait | None:
    """The SQLite busy wait ``step`` (a timer) goes on with or starts, if it is one."""
    if ongoing is not None:
        return LockWait(ongoing.waiter, ongoing.holder, ongoing.kind, ongoing.since, step.step)
    if before.kind != "statement" or before.label.split(" ", 1)[0] not in _WRITES:
        return None
    for span in spans:
        wrote_before = span.first_write is not None and span.first_write < before.step
        still_open = span.end == "open" or span.last > before.step
        if span.task != step.task and wrote_before and still_open:
            return LockWait(step.task, span.task, _SQLITE_LOCK, before.step, step.step)
    return None


__all__ = [
    "SQL_VERBS",
    "TRANSACTION_ENDS",
    "LockWait",
    "Parting",
    "Span",
    "Step",
    "Timeline",
    "kind_of",
    "parting",
]
