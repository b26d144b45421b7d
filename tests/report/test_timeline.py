"""What the swimlanes draw, derived from traces: transactions, lock waits, the parting step.

The traces are built by hand from the core's value types (``Decision``,
``Trace``): these tests are about reading a trace, not about running one.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from interlace._core.trace import Decision, Trace
from interlace.explore import CoverageCurve, nearest
from interlace.report.swimlanes import swimlanes_svg
from interlace.report.timeline import Timeline, kind_of, parting


def trace(*steps: tuple[str, str], preempted: tuple[int, ...] = ()) -> Trace:
    """A trace of (task, label) decisions; a task's index is its creation order, as in the core."""
    order = ("main", "T1", "T2", "T3")
    seen: set[str] = set()
    decisions = []
    for step, (task, label) in enumerate(steps):
        seen.add(task)
        runnable = tuple(name for name in order if name in seen)
        decisions.append(
            Decision(step, task, order.index(task), label, runnable, step in preempted)
        )
    return Trace(tuple(decisions))


def test_statements_and_transaction_ends_are_told_from_other_labels() -> None:
    assert kind_of("SELECT tool_sessions") == "statement"
    assert kind_of("SELECT FOR UPDATE accounts") == "statement"
    assert kind_of("BEGIN") == "statement"
    assert kind_of("COMMIT") == kind_of("ROLLBACK") == "end"
    for label in ("start send", "yield in send", "joined T1", "timer in stream", "after I/O in f"):
        assert kind_of(label) == "other"


def test_a_transaction_spans_its_first_statement_to_its_commit_or_rollback() -> None:
    timeline = Timeline.of(
        trace(
            ("main", "start scenario"),
            ("T1", "start send"),
            ("T1", "SELECT sessions"),
            ("T2", "start send"),
            ("T2", "UPDATE sessions"),
            ("T1", "UPDATE sessions"),
            ("T1", "COMMIT"),
            ("T2", "ROLLBACK"),
            ("T2", "INSERT messages"),
        )
    )
    assert timeline.lanes == ("main", "T1", "T2")
    spans = [(s.task, s.first, s.last, s.end, s.first_write) for s in timeline.spans]
    assert spans == [
        ("T1", 2, 6, "COMMIT", 5),
        ("T2", 4, 7, "ROLLBACK", 4),
        ("T2", 8, 8, "open", 8),  # never ended: drawn to the end of the trace
    ]
    assert not timeline.timed


def test_a_postgres_lock_wait_is_read_from_the_label_the_waiter_resumed_at() -> None:
    timeline = Timeline.of(
        trace(
            ("T1", "SELECT FOR UPDATE accounts"),
            ("T2", "SELECT FOR UPDATE accounts"),
            ("T1", "COMMIT"),
            ("T2", "after PostgreSQL: a row lock on accounts held by T1 in transfer"),
        ),
        "postgres",
    )
    [wait] = timeline.waits
    assert (wait.waiter, wait.holder, wait.kind) == ("T2", "T1", "a row lock on accounts")
    assert (wait.since, wait.until, wait.inferred) == (1, 3, True)


def test_a_statement_parked_as_blocked_until_a_commit_waited_for_that_transaction() -> None:
    # as the PostgreSQL lock monitor makes it (seen in tests/db): T2's SELECT FOR UPDATE
    # blocks on T1's row lock, so T2 is missing from the runnable sets until T1 commits
    names = ("main", "T1", "T2")

    def decision(step: int, task: str, label: str, runnable: tuple[str, ...]) -> Decision:
        return Decision(step, task, names.index(task), label, runnable, False)

    blocked = Trace(
        (
            decision(0, "main", "start body", ("main",)),
            decision(1, "T1", "SELECT FOR UPDATE counters", ("T1", "T2")),
            decision(2, "T2", "SELECT FOR UPDATE counters", ("T1", "T2")),
            decision(3, "T1", "UPDATE counters", ("T1",)),
            decision(4, "T1", "COMMIT", ("T1",)),
            decision(5, "T2", "UPDATE counters", ("T1", "T2")),
            decision(6, "T2", "COMMIT", ("T1", "T2")),
        )
    )
    [wait] = Timeline.of(blocked, "postgres").waits
    assert (wait.waiter, wait.holder, wait.since, wait.until) == ("T2", "T1", 2, 4)
    assert wait.kind.startswith("PostgreSQL lock")
    # a task that is simply not chosen is always runnable: no wait
    assert Timeline.of(trace(("T1", "UPDATE a"), ("T2", "UPDATE a"), ("T1", "COMMIT"))).waits == ()


def test_a_sqlite_busy_wait_is_inferred_from_a_timer_after_a_blocked_write() -> None:
    steps = (
        ("T1", "BEGIN"),
        ("T1", "UPDATE accounts"),
        ("T2", "BEGIN"),
        ("T2", "timer in withdraw"),  # the busy handler's sleep: T1 holds the write lock
        ("T1", "COMMIT"),
        ("T2", "timer in withdraw"),
        ("T2", "UPDATE accounts"),
        ("T2", "COMMIT"),
    )
    [wait] = Timeline.of(trace(*steps), "sqlite").waits
    assert (wait.waiter, wait.holder, wait.since, wait.until) == ("T2", "T1", 2, 5)
    assert "SQLite write lock" in wait.kind
    # a timer after a read is the application's own sleep, not a lock wait
    reads = (("T1", "UPDATE accounts"), ("T2", "SELECT accounts"), ("T2", "timer in f"))
    assert Timeline.of(trace(*reads), "sqlite").waits == ()
    # on PostgreSQL timers are never read as lock waits (its waits are in the labels)
    assert Timeline.of(trace(*steps), "postgres").waits == ()


@dataclass(frozen=True)
class _Wait:
    waiter: str
    holder: str
    kind: str


@dataclass(frozen=True)
class _RecordedDecision(Decision):
    """A decision with the fields the report asks the core for (virtual time, SQL, waits)."""

    time: float | None = None
    sql: str | None = None
    waits: tuple[_Wait, ...] = ()


def test_recorded_time_sql_and_lock_waits_are_drawn_when_a_trace_has_them() -> None:
    decisions = (
        _RecordedDecision(0, "T1", 0, "SELECT accounts", ("T1",), False, time=0.0, sql="SELECT 1"),
        _RecordedDecision(1, "T2", 1, "UPDATE accounts", ("T1", "T2"), True, time=0.25),
        _RecordedDecision(
            2,
            "T2",
            1,
            "COMMIT",
            ("T1", "T2"),
            False,
            1.5,
            waits=(_Wait("T2", "T1", "RowExclusive"),),
        ),
    )
    timeline = Timeline.of(Trace(decisions))
    assert timeline.timed
    assert [s.time for s in timeline.steps] == [0.0, 0.25, 1.5]
    assert timeline.steps[0].sql == "SELECT 1"
    [wait] = timeline.waits
    assert (wait.waiter, wait.holder, wait.kind, wait.inferred) == (
        "T2",
        "T1",
        "RowExclusive",
        False,
    )
    svg = swimlanes_svg(timeline, failing_step=2, message="AssertionError: lost")
    assert 'class="step-time"' in svg and "1.500s" in svg
    assert 'class="lock-wait"' in svg and 'data-kind="RowExclusive"' in svg
    assert "SELECT 1" in svg  # the full SQL, in the decision's detail
    assert 'class="decision kind-statement preemption"' in svg


def test_parting_is_the_first_decision_where_two_traces_differ() -> None:
    failing = trace(("main", "start"), ("T1", "start f"), ("T2", "start f"), ("T2", "yield in f"))
    passing = trace(("main", "start"), ("T1", "start f"), ("T1", "yield in f"), ("T2", "start f"))
    parted = parting(failing, passing)
    assert parted is not None and parted.step == 2
    assert "at step 2 the failing schedule ran T2 ('start f'), the passing one ran T1" in (
        parted.describe()
    )
    assert parting(failing, failing) is None
    shorter = parting(failing, Trace(failing.decisions[:3]))
    assert shorter is not None and shorter.step == 3 and shorter.passing is None


def test_the_nearest_passing_schedule_parts_latest() -> None:
    failing = trace(("main", "a"), ("T1", "b"), ("T2", "c"), ("T1", "d"))
    early = trace(("main", "a"), ("T2", "c"), ("T1", "b"), ("T1", "d"))
    late = trace(("main", "a"), ("T1", "b"), ("T1", "d"), ("T2", "c"))
    assert nearest(failing, [early, late]) is late
    assert nearest(failing, []) is None


def test_the_coverage_curve_is_thinned_evenly_and_ends_with_the_whole_run() -> None:
    curve = CoverageCurve(limit=200)
    for runs in range(1, 10_001):
        curve.add(runs, min(runs, 700))
    points = curve.points(10_000, 700)
    assert len(points) <= 201 and points[-1] == (10_000, 700)
    gaps = {b[0] - a[0] for a, b in itertools.pairwise(points[:-1])}
    assert len(gaps) == 1  # evenly spaced
    assert CoverageCurve().points(0, 0) == ()
