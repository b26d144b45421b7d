"""Raw aiosqlite (no SQLAlchemy) under the scheduler: as faithful as SQLAlchemy on aiosqlite.

The issue's case: a task parked right after ``await db.execute("SELECT ...")``
keeps its cursor open, and with it SQLite's SHARED lock; another task's
COMMIT must wait for it. Its busy wait is modelled on the virtual clock, so
the reader gets to run and release the lock: correct code with a busy timeout
passes every schedule, code without one gets "database is locked" as in
production, buggy code fails on its real race, and no schedule waits out a
real busy timeout (SQLite's own is 0 under interlace).
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import tempfile
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import aiosqlite
import pytest

import interlace
from interlace.db import sqlite as sqlite_model

ACTORS = 2
SCHEDULES = 300


def _world(
    busy_timeout: float | None,
) -> Callable[[], AbstractAsyncContextManager[list[aiosqlite.Connection]]]:
    """One raw aiosqlite connection per actor, and one for the scenario's own reads."""
    options = {} if busy_timeout is None else {"timeout": busy_timeout}

    @asynccontextmanager
    async def world() -> AsyncIterator[list[aiosqlite.Connection]]:
        with tempfile.TemporaryDirectory(prefix="interlace-raw-") as directory:
            path = os.path.join(directory, "accounts.db")
            connections = [await aiosqlite.connect(path, **options) for _ in range(ACTORS + 1)]
            try:
                await connections[0].execute(
                    "CREATE TABLE accounts (id INTEGER PRIMARY KEY, balance INTEGER)"
                )
                await connections[0].commit()
                yield connections
            finally:
                for connection in connections:
                    await connection.close()

    return world


async def _reset(connections: list[aiosqlite.Connection]) -> None:
    for connection in connections:
        await connection.rollback()  # a schedule that failed mid-transaction left one open
    db = connections[-1]
    await db.execute("DELETE FROM accounts")
    await db.execute("INSERT INTO accounts VALUES (1, 100)")
    await db.commit()


async def _withdraw_in_one_statement(db: aiosqlite.Connection, amount: int) -> None:
    """Correct: the read sits in the write. The cursor of a first look stays open."""
    cursor = await db.execute("SELECT balance FROM accounts WHERE id = 1")  # SHARED, held
    await interlace.point("looked at the balance")  # parked here: the cursor is still open
    (balance,) = await cursor.fetchone()
    await cursor.close()
    assert balance >= 0
    await db.execute("UPDATE accounts SET balance = balance - ? WHERE id = 1", (amount,))
    await db.commit()  # waits for any reader's SHARED lock, as SQLite's busy handler does


async def _withdraw_read_then_write(db: aiosqlite.Connection, amount: int) -> None:
    """Buggy: read, then write back what was read, with no transaction around both."""
    cursor = await db.execute("SELECT balance FROM accounts WHERE id = 1")
    await interlace.point("looked at the balance")
    (balance,) = await cursor.fetchone()
    await cursor.close()
    await db.execute("UPDATE accounts SET balance = ? WHERE id = 1", (balance - amount,))
    await db.commit()


def _scenario(
    withdraw: Callable[[aiosqlite.Connection, int], object], busy_timeout: float | None, name: str
) -> interlace.Scenario:
    async def body(connections: list[aiosqlite.Connection]) -> None:
        # the driver never busy-waits in its thread: interlace took the timeout over
        async with connections[-1].execute("PRAGMA busy_timeout") as cursor:
            assert (await cursor.fetchone()) == (0,)
        await asyncio.gather(*(withdraw(connections[i], 10 * (i + 1)) for i in range(ACTORS)))  # type: ignore[misc]
        async with connections[-1].execute("SELECT balance FROM accounts WHERE id = 1") as cursor:
            (balance,) = await cursor.fetchone()
        expected = 100 - sum(10 * (i + 1) for i in range(ACTORS))
        assert balance == expected, f"lost update: balance is {balance}, expected {expected}"

    return interlace.scenario(body, resource=_world(busy_timeout), reset=_reset, name=name)


correct_with_default_timeout = _scenario(_withdraw_in_one_statement, None, "raw-sqlite:correct")
correct_without_timeout = _scenario(_withdraw_in_one_statement, 0, "raw-sqlite:no-timeout")
buggy_with_default_timeout = _scenario(_withdraw_read_then_write, None, "raw-sqlite:buggy")


def _busy_waits(record: interlace.ScheduleRecord, into: list[str]) -> None:
    into.extend(d.label for d in record.trace.decisions if d.label.startswith("timer in"))


@pytest.mark.parametrize("strategy", ["random", "pct", "portfolio", "dfs"])
def test_correct_raw_aiosqlite_code_with_a_busy_timeout_passes_every_schedule(
    strategy: str,
) -> None:
    waits: list[str] = []
    report = interlace.explore(
        correct_with_default_timeout,
        strategy=strategy,
        schedules=SCHEDULES,
        seed=4,
        on_schedule=lambda record: _busy_waits(record, waits),
    )
    assert report.problem is None, report.problem.message if report.problem else ""
    assert report.passed, report.failure.describe() if report.failure else ""
    if strategy != "dfs":
        assert report.schedules_run == SCHEDULES
    # some COMMIT found the other task's cursor holding SHARED, and waited on the
    # virtual clock (a "timer in" decision) while the reader was chosen
    assert waits, "no writer waited for a parked reader's lock"


def test_without_a_busy_timeout_the_writer_gets_database_is_locked_as_in_production() -> None:
    report = interlace.explore(correct_without_timeout, strategy="portfolio", schedules=SCHEDULES)
    assert report.failure is not None
    assert isinstance(report.failure.exception, sqlite3.OperationalError)
    assert "database is locked" in str(report.failure.exception)
    with pytest.raises(sqlite3.OperationalError, match="database is locked"):
        interlace.replay(correct_without_timeout, report.failure.token)


def test_buggy_raw_aiosqlite_code_fails_on_its_race_not_on_the_lock() -> None:
    report = interlace.explore(
        buggy_with_default_timeout, strategy="portfolio", schedules=SCHEDULES
    )
    assert report.failure is not None
    assert report.failure.kind == "invariant", report.failure.describe()
    assert "lost update" in str(report.failure.exception)
    for _ in range(3):
        with pytest.raises(AssertionError, match="lost update"):
            interlace.replay(buggy_with_default_timeout, report.failure.token)


def test_a_reader_sleeping_on_the_lock_lets_the_writer_time_out_in_virtual_time() -> None:
    """A holder that keeps its cursor open past the timeout: the error, as in production."""

    async def keep_cursor_open(db: aiosqlite.Connection) -> None:
        async with db.execute("SELECT balance FROM accounts WHERE id = 1"):
            await asyncio.sleep(10)  # virtual: longer than the writer's 1 s busy timeout

    async def write_after(db: aiosqlite.Connection) -> None:
        await asyncio.sleep(0.5)
        await db.execute("UPDATE accounts SET balance = 0 WHERE id = 1")
        await db.commit()

    async def body(connections: list[aiosqlite.Connection]) -> None:
        await asyncio.gather(keep_cursor_open(connections[0]), write_after(connections[1]))

    target = interlace.scenario(body, resource=_world(1.0), reset=_reset, name="raw-sqlite:holder")
    report = interlace.explore(target, schedules=5, seed=1)
    assert report.failure is not None
    assert isinstance(report.failure.exception, sqlite3.OperationalError)
    assert "database is locked" in str(report.failure.exception)


def test_outside_a_controlled_loop_raw_aiosqlite_is_left_alone(tmp_path: object) -> None:
    sqlite_model.install()

    async def main() -> tuple[int, float | None]:
        async with aiosqlite.connect(os.path.join(str(tmp_path), "a.db"), timeout=3) as db:
            async with db.execute("PRAGMA busy_timeout") as cursor:
                (milliseconds,) = await cursor.fetchone()
            return milliseconds, sqlite_model.app_busy_timeout(db)

    assert asyncio.run(main()) == (3000, None)
