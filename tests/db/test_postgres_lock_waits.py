"""PostgreSQL lock waits under the scheduler: isolation anomalies, deadlocks, no false alarms.

Scripted schedules put two transactions in the interleaving that produces each
anomaly; every one is run several times and must end the same way each time.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
from collections.abc import AsyncIterator, Sequence

import asyncpg
import pytest
from postgres_scenarios import (
    Database,
    Recorder,
    Scripted,
    for_update,
    go_off_call,
    optimistic,
    read_then_write,
    reset,
    scenario,
    transfer,
)
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import create_async_engine

import interlace
from interlace import Deadlock, StuckOutsideIO, UsageError
from interlace.db import freezing, postgres
from interlace.db.provider import PostgresDatabase

pytestmark = pytest.mark.postgres

REPEATS = 4
# Two handlers, each after its start: T1 reads, T2 reads, T1 writes, T2 writes (and
# waits for T1's row lock), T1 commits; the rest runs in task order.
READ_READ_WRITE_WRITE = ["main", "T1", "T1", "T2", "T2", "T1", "T2", "T1"]


def _explore_scripted(target: interlace.Scenario, order: Sequence[str]) -> list[interlace.Trace]:
    traces: list[interlace.Trace] = []
    for _ in range(REPEATS):
        report = interlace.explore(
            target,
            strategy=Scripted(order),
            schedules=1,
            on_schedule=lambda record: traces.append(record.trace),
        )
        assert report.passed, report.failure.describe() if report.failure else ""
    for trace in traces[1:]:
        assert trace == traces[0], "the same script ran differently:\n" + "\n".join(
            f"{a} | {b}" for a, b in zip(traces[0].decisions, trace.decisions, strict=False)
        )
    return traces


def _labels(trace: interlace.Trace, task: str) -> list[str]:
    return [d.label for d in trace.decisions if d.task == task]


def test_read_committed_second_update_of_an_optimistic_pair_matches_no_row(
    interlace_postgres_database: PostgresDatabase,
) -> None:
    recorder = Recorder()
    target = scenario(
        "anomaly:read-committed",
        interlace_postgres_database.sqlalchemy_url(),
        recorder,
        lambda db: [optimistic(db.engine), optimistic(db.engine)],
    )
    [trace, *_] = _explore_scripted(target, READ_READ_WRITE_WRITE)
    assert _labels(trace, "T2")[:3] == ["start optimistic", "SELECT counters", "UPDATE counters"]
    # T2's UPDATE waited for T1's COMMIT, then found the version changed
    assert recorder.outcomes == [((1, 0), ((1, 101, 1), (2, 100, 0), (1, "")))] * REPEATS


def test_repeatable_read_concurrent_update_fails_with_40001_in_the_second_writer(
    interlace_postgres_database: PostgresDatabase,
) -> None:
    recorder = Recorder()
    errors: list[str] = []

    async def optimistic_repeatable(db: Database) -> int:
        try:
            return await optimistic(db.engine, "REPEATABLE READ")
        except DBAPIError as error:
            errors.append(str(error.orig))
            raise

    target = scenario(
        "anomaly:repeatable-read",
        interlace_postgres_database.sqlalchemy_url(),
        recorder,
        lambda db: [optimistic_repeatable(db), optimistic_repeatable(db)],
    )
    _explore_scripted(target, READ_READ_WRITE_WRITE)
    assert (
        recorder.outcomes
        == [((1, ("DBAPIError", "40001")), ((1, 101, 1), (2, 100, 0), (1, "")))] * REPEATS
    )
    assert len(errors) == REPEATS
    assert all("could not serialize access due to concurrent update" in e for e in errors)


def test_serializable_write_skew_fails_with_40001_at_commit(
    interlace_postgres_database: PostgresDatabase,
) -> None:
    recorder = Recorder()
    target = scenario(
        "anomaly:write-skew",
        interlace_postgres_database.sqlalchemy_url(),
        recorder,
        lambda db: [go_off_call(db.engine, "alice"), go_off_call(db.engine, "bob")],
    )
    # both read two doctors on call, both update their own row, T1 commits, T2 commits
    order = ["main", "T1", "T1", "T2", "T2", "T1", "T2", "T1", "T2"]
    [trace, *_] = _explore_scripted(target, order)
    assert [(d.task, d.label) for d in trace.decisions[7:9]] == [
        ("T1", "COMMIT"),
        ("T2", "COMMIT"),
    ]
    assert {outcome[0] for outcome in recorder.outcomes} == {(None, ("DBAPIError", "40001"))}


def test_opposite_order_row_locks_deadlock_with_the_same_victim_every_run(
    interlace_postgres_database: PostgresDatabase,
) -> None:
    recorder = Recorder()
    target = scenario(
        "anomaly:deadlock",
        interlace_postgres_database.sqlalchemy_url(),
        recorder,
        lambda db: [transfer(db.engine, 1, 2), transfer(db.engine, 2, 1)],
    )
    # T1 locks row 1, T2 locks row 2, T1 waits for row 2, T2 waits for row 1
    [trace, *_] = _explore_scripted(target, ["main", "T1", "T1", "T2", "T2", "T1", "T2"])
    assert trace.decisions[6].runnable == ("T2",)  # T1 was proven blocked
    # exactly one victim, T1 (the first task of the cycle), and T2's transfer commits
    assert (
        recorder.outcomes
        == [((("DBAPIError", "40P01"), None), ((1, 101, 0), (2, 99, 0), (1, "")))] * REPEATS
    )
    assert sum(m.stats.cycles_broken for m in recorder.monitors) == REPEATS


def test_deadlocks_found_by_exploration_replay_with_the_same_victim(
    interlace_postgres_database: PostgresDatabase,
) -> None:
    recorder = Recorder()

    def check(rows: object) -> None:
        deadlocked = [o for o in recorder.outcomes[-1][0] if o == ("DBAPIError", "40P01")]
        assert not deadlocked, f"deadlock: {recorder.outcomes[-1][0]}"

    target = scenario(
        "anomaly:deadlock-explored",
        interlace_postgres_database.sqlalchemy_url(),
        recorder,
        lambda db: [transfer(db.engine, 1, 2), transfer(db.engine, 2, 1)],
        check=check,
    )
    report = interlace.explore(target, schedules=100, seed=2)
    assert report.failure is not None, "no schedule deadlocked"
    replayed = []
    for _ in range(REPEATS):
        with pytest.raises(AssertionError, match="deadlock"):
            interlace.replay(target, report.failure.token)
        replayed.append(recorder.outcomes[-1])
    assert replayed == [replayed[0]] * REPEATS
    assert sorted(map(str, replayed[0][0])) == ["('DBAPIError', '40P01')", "None"]


@pytest.mark.parametrize("strategy", ["random", "pct"])
def test_select_for_update_waits_pass_three_hundred_schedules_without_false_alarm(
    strategy: str, interlace_postgres_database: PostgresDatabase
) -> None:
    recorder = Recorder()

    def no_lost_update(rows: object) -> None:
        assert rows == ((1, 40, 0), (2, 100, 0), (1, "")), f"lost update: {rows}"

    target = scenario(
        "locks:for-update",
        interlace_postgres_database.sqlalchemy_url(),
        recorder,
        lambda db: [for_update(db.engine, amount) for amount in (10, 20, 30)],
        check=no_lost_update,
    )
    report = interlace.explore(target, strategy=strategy, schedules=300, seed=5)
    assert report.passed, report.failure.describe() if report.failure else ""
    assert report.schedules_run == 300
    [lock_monitor] = recorder.monitors
    assert len(lock_monitor.stats.detections) > 100, "the handlers should wait for row locks"


def test_the_same_handlers_without_for_update_lose_an_update(
    interlace_postgres_database: PostgresDatabase,
) -> None:
    recorder = Recorder()

    def no_lost_update(rows: object) -> None:
        assert rows == ((1, 40, 0), (2, 100, 0), (1, "")), f"lost update: {rows}"

    target = scenario(
        "locks:read-then-write",
        interlace_postgres_database.sqlalchemy_url(),
        recorder,
        lambda db: [read_then_write(db.engine, amount) for amount in (10, 20, 30)],
        check=no_lost_update,
    )
    report = interlace.explore(target, schedules=300, seed=5)
    assert report.failure is not None
    assert report.failure.kind == "invariant"
    assert "lost update" in str(report.failure.exception)
    with pytest.raises(AssertionError, match="lost update"):
        interlace.replay(target, report.failure.token)


# ---- reports ----------------------------------------------------------------------------


def test_a_deadlock_through_a_database_lock_names_the_holder_in_the_report(
    interlace_postgres_database: PostgresDatabase,
) -> None:
    recorder = Recorder()

    async def hold_row_then_wait(db: Database, event: asyncio.Event) -> None:
        async with db.engine.begin() as connection:
            await connection.execute(text("UPDATE counters SET value = 0 WHERE id = 1"))
            await event.wait()

    async def update_row_then_signal(db: Database, event: asyncio.Event) -> None:
        async with db.engine.begin() as connection:
            await connection.execute(text("UPDATE counters SET value = 1 WHERE id = 1"))
        event.set()

    def handlers(db: Database) -> list[object]:
        event = asyncio.Event()
        return [hold_row_then_wait(db, event), update_row_then_signal(db, event)]

    target = scenario(
        "report:mixed-deadlock", interlace_postgres_database.sqlalchemy_url(), recorder, handlers
    )
    report = interlace.explore(
        target, strategy=Scripted(["main", "T1", "T1", "T2", "T2"]), schedules=1
    )
    assert report.failure is not None
    assert isinstance(report.failure.exception, Deadlock)
    message = str(report.failure.exception)
    assert "a database lock another task holds" in message
    assert "T1 waits in Event.wait at" in message
    # What this checks is the holder. The lock's kind comes from pg_locks, a snapshot
    # of its own beside pg_blocking_pids', which may not show the ungranted lock yet:
    # the text is then "a lock". (This line failed once in CI under load with a text
    # that was not kept; the message is printed if it fails again.)
    assert re.search(
        r"T2 waits for PostgreSQL: (a row lock( on \w+)?|a lock) held by T1 at", message
    ), message
    _assert_nothing_stopped()


def test_a_lock_held_outside_the_simulation_is_reported_as_stuck_with_its_backend(
    interlace_postgres_database: PostgresDatabase,
) -> None:
    url = interlace_postgres_database.sqlalchemy_url()
    outsider: list[asyncpg.Connection] = []

    @contextlib.asynccontextmanager
    async def database() -> AsyncIterator[Database]:
        engine = create_async_engine(url, pool_size=3)
        connection = await asyncpg.connect(interlace_postgres_database.dsn)
        outsider.append(connection)
        try:
            await interlace.warm_pool(engine, 2)
            async with postgres.monitor(engine) as lock_monitor:
                yield Database(engine, lock_monitor)
        finally:
            await connection.close()
            await engine.dispose()

    async def lock_row_outside(db: Database) -> None:
        await outsider[0].execute("ROLLBACK")  # the transaction of the previous reset, if any
        await reset(db)
        # a transaction of a connection no simulated task checked out
        await outsider[0].execute("BEGIN; SELECT * FROM counters WHERE id = 1 FOR UPDATE")

    @interlace.scenario(resource=database, reset=lock_row_outside, name="report:outsider")
    async def blocked_by_outsider(db: Database) -> None:
        async with db.engine.begin() as connection:
            await connection.execute(text("UPDATE counters SET value = 0 WHERE id = 1"))

    report = interlace.explore(blocked_by_outsider, schedules=1, stuck_after=0.5)
    # stuck in the first schedule: a setup error (a lock held outside the simulation), no token
    assert report.failure is None and report.problem is not None
    assert report.outcome is interlace.Outcome.USAGE_ERROR
    assert isinstance(report.problem.exception, StuckOutsideIO)
    message = report.problem.message
    backend = outsider[0].get_server_pid()
    assert (
        f"main waits on outside I/O (PostgreSQL: a row lock held by backend {backend}, "
        "which is not a simulated task's connection" in message
    )


# ---- freezing: always undone ---------------------------------------------------------------


def test_frozen_backends_are_resumed_when_the_schedule_fails(
    interlace_postgres_database: PostgresDatabase,
) -> None:
    recorder = Recorder()

    async def lock_then_fail(db: Database) -> None:
        async with db.engine.begin() as connection:
            await connection.execute(text("UPDATE counters SET value = 0 WHERE id = 1"))
            await interlace.point("before failing")
            raise ValueError("the handler fails while another waits for its row")

    target = scenario(
        "freeze:failure",
        interlace_postgres_database.sqlalchemy_url(),
        recorder,
        lambda db: [lock_then_fail(db), for_update(db.engine, 5)],
    )
    # T1 locks the row, T2 blocks on it (frozen), T1 fails
    report = interlace.explore(
        target, strategy=Scripted(["main", "T1", "T1", "T2", "T2", "T1"]), schedules=1
    )
    assert report.passed  # the handler errors are gathered as outcomes
    assert recorder.outcomes[0][0] == (("ValueError", None), None)
    assert recorder.monitors[0].stats.detections
    _assert_froze_if_possible(interlace_postgres_database, recorder)
    _assert_nothing_stopped()


def test_frozen_backends_are_resumed_on_keyboard_interrupt(
    interlace_postgres_database: PostgresDatabase,
) -> None:
    recorder = Recorder()

    async def lock_then_interrupt(db: Database) -> None:
        async with db.engine.begin() as connection:
            await connection.execute(text("UPDATE counters SET value = 0 WHERE id = 1"))
            await interlace.point("before the interrupt")
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C while T2's backend is frozen
            await asyncio.sleep(3600)

    target = scenario(
        "freeze:interrupt",
        interlace_postgres_database.sqlalchemy_url(),
        recorder,
        lambda db: [lock_then_interrupt(db), for_update(db.engine, 5)],
    )
    with pytest.raises(KeyboardInterrupt):
        interlace.explore(
            target, strategy=Scripted(["main", "T1", "T1", "T2", "T2", "T1"]), schedules=1
        )
    assert recorder.monitors[0].stats.detections
    _assert_froze_if_possible(interlace_postgres_database, recorder)
    _assert_nothing_stopped()


def _assert_froze_if_possible(database: PostgresDatabase, recorder: Recorder) -> None:
    if database.server.local and os.geteuid() == 0:
        assert recorder.monitors[0].stats.freezes >= 1


def _assert_nothing_stopped() -> None:
    assert not freezing._STOPPED, f"backends left stopped: {sorted(freezing._STOPPED)}"


# ---- best effort, and what the monitor refuses ---------------------------------------------


def test_without_freezing_the_monitor_says_determinism_is_best_effort(
    interlace_postgres_database: PostgresDatabase,
) -> None:
    recorder = Recorder()
    target = scenario(
        "freeze:off",
        interlace_postgres_database.sqlalchemy_url(),
        recorder,
        lambda db: [for_update(db.engine, amount) for amount in (10, 20, 30)],
        freeze=False,
    )
    with pytest.warns(postgres.DeterminismWarning, match="determinism is best effort"):
        report = interlace.explore(target, schedules=20, seed=1)
    assert report.passed, report.failure.describe() if report.failure else ""
    [lock_monitor] = recorder.monitors
    assert lock_monitor.freezer is None
    assert lock_monitor.best_effort is not None
    assert "freeze=False" in lock_monitor.best_effort
    assert lock_monitor.stats.detections and lock_monitor.stats.freezes == 0


def test_freezing_works_on_a_server_of_this_host(
    interlace_postgres_database: PostgresDatabase,
) -> None:
    if not (interlace_postgres_database.server.local and os.geteuid() == 0):
        pytest.skip("freezing needs the server on this host and the right to signal it")

    async def start() -> postgres.LockMonitor:
        async with postgres.monitor(interlace_postgres_database.url, freeze=True) as lock_monitor:
            return lock_monitor

    lock_monitor = asyncio.Runner(loop_factory=interlace.ControlledLoop).run(start())
    assert lock_monitor.freezer is not None
    assert lock_monitor.best_effort is None


def test_a_process_that_is_not_the_connections_backend_is_never_signalled() -> None:
    reason = freezing.freezer_for(os.getpid(), 5432)
    assert isinstance(reason, str)
    assert "does not look like the backend of the monitor connection" in reason
    missing = freezing.freezer_for(2**22 + 12345, 5432)
    assert isinstance(missing, str)
    assert "not a process of this host" in missing


def test_the_monitor_needs_the_controlled_loop_and_an_asyncpg_engine() -> None:
    async def on_a_plain_loop() -> None:
        async with postgres.monitor("postgresql://nobody@127.0.0.1:1/x"):
            pass

    with pytest.raises(UsageError, match="ControlledLoop"):
        asyncio.run(on_a_plain_loop())

    async def on_sqlite() -> None:
        engine = create_async_engine("sqlite+aiosqlite://")
        async with postgres.monitor(engine):
            pass

    with pytest.raises(UsageError, match="PostgreSQL through asyncpg, not sqlite"):
        asyncio.Runner(loop_factory=interlace.ControlledLoop).run(on_sqlite())


def test_monitor_gives_the_one_monitor_of_a_server(
    interlace_postgres_database: PostgresDatabase,
) -> None:
    async def two() -> bool:
        async with (
            postgres.monitor(interlace_postgres_database.url) as first,
            postgres.monitor(interlace_postgres_database.dsn) as second,
        ):
            return first is second and first.started

    assert asyncio.Runner(loop_factory=interlace.ControlledLoop).run(two())
