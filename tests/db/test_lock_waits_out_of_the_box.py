"""PostgreSQL lock waits with no monitor named in user code (interlace attaches its own).

Correct lock-waiting code (SELECT ... FOR UPDATE through SQLAlchemy and through
raw asyncpg, two inserts of one unique key) passes every schedule of every
strategy, never "stuck outside I/O"; the same code without its lock (a
read-modify-write without FOR UPDATE, a check-then-insert without a unique
key) is found, and its token replays. ``lock_monitor=False`` gives back the
stuck report, with the hint that names it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import pytest
from postgres_scenarios import Scripted
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

import interlace
from interlace.db import lock_watch
from interlace.db.provider import URL_ENV, PostgresDatabase, PostgresServer

pytestmark = pytest.mark.postgres
pytest_plugins = ["pytester"]

ACTORS = 2
SCHEDULES = 300
STRATEGIES = ["random", "pct", "portfolio"]
SCHEMA = (
    "CREATE TABLE IF NOT EXISTS accounts (id INTEGER PRIMARY KEY, balance INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS claims (key TEXT PRIMARY KEY, owner TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS loose_claims (key TEXT NOT NULL, owner TEXT NOT NULL)",
)
RESET = (
    "DELETE FROM accounts",
    "INSERT INTO accounts VALUES (1, 100)",
    "DELETE FROM claims",
    "DELETE FROM loose_claims",
)


@dataclass
class Waits:
    """Lock waits the monitors proved, over an exploration (read by the test, not the app)."""

    proven: int = 0
    seen_monitors: set[int] = field(default_factory=set)

    def count(self) -> None:
        watch = lock_watch.watch_of(asyncio.get_running_loop())
        assert watch is not None, "interlace attached no lock watch"
        self.proven = sum(len(m.stats.detections) for m in watch.monitors)


# ---- SQLAlchemy on asyncpg: a resource with no monitor in it --------------------------------


def _engine_world(url: str) -> Callable[[], AbstractAsyncContextManager[AsyncEngine]]:
    @asynccontextmanager
    async def world() -> AsyncIterator[AsyncEngine]:
        engine = create_async_engine(url, pool_size=ACTORS + 1)
        try:
            async with engine.begin() as connection:
                for statement in SCHEMA:
                    await connection.execute(text(statement))
            await interlace.warm_pool(engine, ACTORS + 1)
            yield engine
        finally:
            await engine.dispose()

    return world


async def _reset_engine(engine: AsyncEngine) -> None:
    async with engine.begin() as connection:
        for statement in RESET:
            await connection.execute(text(statement))


async def _withdraw(engine: AsyncEngine, amount: int, locking: str) -> None:
    async with engine.begin() as connection:
        read = text(f"SELECT balance FROM accounts WHERE id = 1{locking}")
        balance = (await connection.execute(read)).scalar_one()
        await connection.execute(
            text("UPDATE accounts SET balance = :b WHERE id = 1"), {"b": balance - amount}
        )


async def _balance(engine: AsyncEngine) -> int:
    async with engine.connect() as connection:
        read = text("SELECT balance FROM accounts WHERE id = 1")
        return int((await connection.execute(read)).scalar_one())


async def _claim_unique(engine: AsyncEngine, owner: str) -> bool:
    """Insert the one key; a second insert waits for the first's COMMIT, then does nothing."""
    async with engine.begin() as connection:
        inserted = await connection.execute(
            text(
                "INSERT INTO claims VALUES ('job', :owner) "
                "ON CONFLICT (key) DO NOTHING RETURNING owner"
            ),
            {"owner": owner},
        )
        return inserted.first() is not None


async def _claim_loose(engine: AsyncEngine, owner: str) -> bool:
    """Check, then insert: no unique key, so two may both find none."""
    async with engine.begin() as connection:
        found = text("SELECT count(*) FROM loose_claims WHERE key = 'job'")
        if (await connection.execute(found)).scalar_one():
            return False
        await connection.execute(
            text("INSERT INTO loose_claims VALUES ('job', :owner)"), {"owner": owner}
        )
        return True


def _withdrawals(url: str, locking: str, name: str, waits: Waits) -> interlace.Scenario:
    async def body(engine: AsyncEngine) -> None:
        await asyncio.gather(*(_withdraw(engine, 10 * (i + 1), locking) for i in range(ACTORS)))
        balance = await _balance(engine)
        waits.count()
        expected = 100 - sum(10 * (i + 1) for i in range(ACTORS))
        assert balance == expected, f"lost update: balance is {balance}, expected {expected}"

    return interlace.scenario(body, resource=_engine_world(url), reset=_reset_engine, name=name)


def _claims(url: str, claim: Any, name: str, waits: Waits) -> interlace.Scenario:
    async def body(engine: AsyncEngine) -> None:
        won = await asyncio.gather(*(claim(engine, f"worker-{i}") for i in range(ACTORS)))
        waits.count()
        assert sum(won) == 1, f"{sum(won)} workers claimed the one job"

    return interlace.scenario(body, resource=_engine_world(url), reset=_reset_engine, name=name)


# ---- raw asyncpg: connections made in the resource, no track() anywhere ------------------


def _raw_world(dsn: str) -> Callable[[], AbstractAsyncContextManager[list[asyncpg.Connection]]]:
    @asynccontextmanager
    async def world() -> AsyncIterator[list[asyncpg.Connection]]:
        connections = [await asyncpg.connect(dsn) for _ in range(ACTORS + 1)]
        try:
            for statement in SCHEMA:
                await connections[0].execute(statement)
            yield connections
        finally:
            for connection in connections:
                await connection.close()

    return world


async def _reset_raw(connections: list[asyncpg.Connection]) -> None:
    for statement in RESET:
        await connections[-1].execute(statement)


async def _raw_withdraw(connection: asyncpg.Connection, amount: int, locking: str) -> None:
    async with connection.transaction():
        balance = await connection.fetchval(f"SELECT balance FROM accounts WHERE id = 1{locking}")
        await connection.execute("UPDATE accounts SET balance = $1 WHERE id = 1", balance - amount)


def _raw_withdrawals(dsn: str, locking: str, name: str, waits: Waits) -> interlace.Scenario:
    async def body(connections: list[asyncpg.Connection]) -> None:
        await asyncio.gather(
            *(_raw_withdraw(connections[i], 10 * (i + 1), locking) for i in range(ACTORS))
        )
        balance = await connections[-1].fetchval("SELECT balance FROM accounts WHERE id = 1")
        waits.count()
        expected = 100 - sum(10 * (i + 1) for i in range(ACTORS))
        assert balance == expected, f"lost update: balance is {balance}, expected {expected}"

    return interlace.scenario(body, resource=_raw_world(dsn), reset=_reset_raw, name=name)


# ---- correct lock-waiting code passes every schedule ---------------------------------------


def _assert_passes(target: interlace.Scenario, waits: Waits, strategy: str) -> None:
    proven = 0

    def add_up(record: interlace.ScheduleRecord) -> None:
        nonlocal proven
        proven = max(proven, waits.proven)

    report = interlace.explore(
        target, strategy=strategy, schedules=SCHEDULES, seed=11, on_schedule=add_up
    )
    assert report.problem is None, report.problem.message if report.problem else ""
    assert report.passed, report.failure.describe() if report.failure else ""
    if strategy != "dfs":  # dfs stops once it has searched the whole space
        assert report.schedules_run == SCHEDULES
    assert proven > 0, "some statement should have waited for a lock held by a parked task"


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_for_update_through_sqlalchemy_passes_with_no_monitor(
    strategy: str, interlace_postgres_database: PostgresDatabase
) -> None:
    waits = Waits()
    target = _withdrawals(interlace_postgres_database.url, " FOR UPDATE", "auto:for-update", waits)
    _assert_passes(target, waits, strategy)


def test_for_update_through_sqlalchemy_passes_every_schedule_dfs_explores(
    interlace_postgres_database: PostgresDatabase,
) -> None:
    waits = Waits()
    target = _withdrawals(interlace_postgres_database.url, " FOR UPDATE", "auto:for-update", waits)
    _assert_passes(target, waits, "dfs")


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_a_second_insert_of_a_unique_key_waits_for_the_first_commit(
    strategy: str, interlace_postgres_database: PostgresDatabase
) -> None:
    waits = Waits()
    target = _claims(interlace_postgres_database.url, _claim_unique, "auto:unique-claim", waits)
    _assert_passes(target, waits, strategy)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_for_update_through_raw_asyncpg_passes_with_no_track_call(
    strategy: str, interlace_postgres_database: PostgresDatabase
) -> None:
    waits = Waits()
    target = _raw_withdrawals(interlace_postgres_database.dsn, " FOR UPDATE", "auto:raw", waits)
    _assert_passes(target, waits, strategy)


# ---- the same code without its lock is found, and its token replays -------------------------


@pytest.mark.parametrize(
    ("make", "error"),
    [
        (lambda db, w: _withdrawals(db.url, "", "auto:lost-update", w), "lost update"),
        (lambda db, w: _claims(db.url, _claim_loose, "auto:double-claim", w), "2 workers claimed"),
        (lambda db, w: _raw_withdrawals(db.dsn, "", "auto:raw-lost-update", w), "lost update"),
    ],
    ids=["sqlalchemy-read-then-write", "check-then-insert", "raw-asyncpg-read-then-write"],
)
def test_the_code_without_its_lock_is_found_and_its_token_replays(
    make: Callable[[PostgresDatabase, Waits], interlace.Scenario],
    error: str,
    interlace_postgres_database: PostgresDatabase,
) -> None:
    target = make(interlace_postgres_database, Waits())
    report = interlace.explore(target, strategy="portfolio", schedules=SCHEDULES, seed=11)
    assert report.failure is not None, report.problem.message if report.problem else "not found"
    assert report.failure.kind == "invariant"
    assert error in str(report.failure.exception)
    for _ in range(3):
        with pytest.raises(AssertionError, match=error):
            interlace.replay(target, report.failure.token)


# ---- the opt-out --------------------------------------------------------------------------


def test_lock_monitor_false_gives_back_the_stuck_report_with_its_hint(
    interlace_postgres_database: PostgresDatabase,
) -> None:
    target = _withdrawals(interlace_postgres_database.url, " FOR UPDATE", "auto:off", Waits())
    # T1 locks the row (SELECT ... FOR UPDATE), T2's SELECT ... FOR UPDATE waits for it
    script = Scripted(["main", "T1", "T1", "T2", "T2"])
    watched = interlace.explore(target, strategy=script, schedules=1)
    assert watched.passed, watched.problem.message if watched.problem else ""

    script = Scripted(["main", "T1", "T1", "T2", "T2"])
    off = interlace.explore(target, strategy=script, schedules=1, lock_monitor=False, stuck_after=1)
    assert off.problem is not None, "without the monitor the lock wait cannot be proven"
    assert "stuck outside I/O" in off.problem.message
    assert "lock_monitor=False" in off.problem.message


def test_lock_monitor_must_be_a_bool() -> None:
    with pytest.raises(interlace.UsageError, match="lock_monitor must be True or False"):
        interlace.Config(lock_monitor="no")  # type: ignore[arg-type]


# ---- the marker style: a marked test with the fixture's URL ---------------------------------

MARKED_TESTS = """
import asyncio

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine


async def withdraw(engine, amount, locking):
    async with engine.begin() as connection:
        read = text(f"SELECT balance FROM marked WHERE id = 1{locking}")
        balance = (await connection.execute(read)).scalar_one()
        await connection.execute(
            text("UPDATE marked SET balance = :b WHERE id = 1"), {"b": balance - amount}
        )


async def two_withdrawals(url, locking):
    engine = create_async_engine(url)  # the fixture's URL, as it is
    try:
        async with engine.begin() as connection:
            await connection.execute(text(
                "CREATE TABLE IF NOT EXISTS marked (id INTEGER PRIMARY KEY, balance INTEGER)"
            ))
            await connection.execute(text("DELETE FROM marked"))
            await connection.execute(text("INSERT INTO marked VALUES (1, 100)"))
        await asyncio.gather(withdraw(engine, 30, locking), withdraw(engine, 50, locking))
        async with engine.connect() as connection:
            read = text("SELECT balance FROM marked WHERE id = 1")
            balance = (await connection.execute(read)).scalar_one()
        assert balance == 20, f"lost update: balance is {balance}"
    finally:
        await engine.dispose()


@pytest.mark.interlace(schedules=40)
async def test_for_update(interlace_postgres_database):
    await two_withdrawals(interlace_postgres_database.url, " FOR UPDATE")


@pytest.mark.interlace(schedules=200)
async def test_read_then_write(interlace_postgres_database):
    await two_withdrawals(interlace_postgres_database.url, "")
"""


def test_a_marked_test_with_the_fixture_url_tests_contending_writes(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    interlace_postgres: PostgresServer,
) -> None:
    monkeypatch.setenv(URL_ENV, interlace_postgres.admin_dsn)  # the inner session's server
    pytester.makepyfile(test_marked=MARKED_TESTS)
    result = pytester.runpytest("-p", "no:asyncio", "-p", "no:hypothesispytest")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*test_read_then_write*", "*lost update*", "*interlace:v1:*"])
    result.stdout.no_fnmatch_line("*stuck outside I/O*")
    result.stdout.no_fnmatch_line("*No module named*")
