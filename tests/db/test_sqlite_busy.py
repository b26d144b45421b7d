"""SQLite's lock waits under the scheduler (``interlace.db.sqlite``): parity with PostgreSQL.

A statement that would wait for SQLite's write lock under the application's
busy timeout is modelled as waiting until the holder's transaction ends, on the
virtual clock: correct code that waits passes and never stalls; an application
with no busy timeout gets "database is locked", as in production.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

import interlace
from interlace.db import sqlalchemy as sqlalchemy_points

ACTORS = 3


def _engine(path: str, *, immediate: bool, busy_timeout: float | None) -> AsyncEngine:
    connect_args = {} if busy_timeout is None else {"timeout": busy_timeout}
    engine = create_async_engine(
        f"sqlite+aiosqlite:///{path}", pool_size=ACTORS + 1, connect_args=connect_args
    )
    if immediate:
        # SQLAlchemy's recipe: the driver emits no BEGIN, every transaction starts
        # with BEGIN IMMEDIATE, which takes the write lock (or waits for it)
        @event.listens_for(engine.sync_engine, "connect")
        def _no_driver_begin(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None

        @event.listens_for(engine.sync_engine, "begin")
        def _begin_immediate(connection: Any) -> None:
            connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def _database(
    *, immediate: bool, busy_timeout: float | None
) -> Callable[[], AbstractAsyncContextManager[AsyncEngine]]:
    @asynccontextmanager
    async def database() -> AsyncIterator[AsyncEngine]:
        with tempfile.TemporaryDirectory(prefix="interlace-busy-") as directory:
            path = os.path.join(directory, "accounts.db")
            engine = _engine(path, immediate=immediate, busy_timeout=busy_timeout)
            try:
                async with engine.begin() as connection:
                    await connection.execute(
                        text("CREATE TABLE accounts (id INTEGER PRIMARY KEY, balance INTEGER)")
                    )
                await interlace.warm_pool(engine, ACTORS + 1)
                yield engine
            finally:
                await engine.dispose()

    return database


async def _reset(engine: AsyncEngine) -> None:
    async with engine.begin() as connection:
        await connection.execute(text("DELETE FROM accounts"))
        await connection.execute(text("INSERT INTO accounts VALUES (1, 100)"))


async def _withdraw(engine: AsyncEngine, amount: int, pause: float = 0.0) -> None:
    """Read the balance and write it back reduced, in one transaction, no version check."""
    async with engine.begin() as connection:
        read = text("SELECT balance FROM accounts WHERE id = 1")
        balance = (await connection.execute(read)).scalar_one()
        await asyncio.sleep(pause)
        await connection.execute(
            text("UPDATE accounts SET balance = :balance WHERE id = 1"),
            {"balance": balance - amount},
        )


async def _three_withdrawals(engine: AsyncEngine) -> None:
    results = await asyncio.gather(
        *(_withdraw(engine, amount) for amount in (10, 20, 30)), return_exceptions=True
    )
    for result in results:
        if isinstance(result, BaseException):
            raise result
    async with engine.connect() as connection:
        read = text("SELECT balance FROM accounts WHERE id = 1")
        balance = (await connection.execute(read)).scalar_one()
    assert balance == 40, f"lost update: balance is {balance}, expected 40"


write_lock_with_busy_timeout = interlace.scenario(
    _three_withdrawals,
    resource=_database(immediate=True, busy_timeout=None),  # sqlite3's default: 5 s
    reset=_reset,
    name="sqlite:begin-immediate",
)
no_write_lock = interlace.scenario(
    _three_withdrawals,
    resource=_database(immediate=False, busy_timeout=None),
    reset=_reset,
    name="sqlite:deferred",
)
write_lock_without_busy_timeout = interlace.scenario(
    _three_withdrawals,
    resource=_database(immediate=True, busy_timeout=0),
    reset=_reset,
    name="sqlite:no-busy-timeout",
)


@pytest.mark.parametrize("strategy", ["random", "pct"])
def test_write_lock_with_a_busy_timeout_passes_three_hundred_schedules(strategy: str) -> None:
    waits: list[str] = []

    def note_busy_waits(record: interlace.ScheduleRecord) -> None:
        waits.extend(d.label for d in record.trace.decisions if d.label.startswith("timer in"))

    report = interlace.explore(
        write_lock_with_busy_timeout,
        strategy=strategy,
        schedules=300,
        seed=3,
        on_schedule=note_busy_waits,
    )
    assert report.passed, report.failure.describe() if report.failure else ""
    assert report.schedules_run == 300
    # the waits ran on the virtual clock: they are decisions woken by a (virtual) timer;
    # how fast that is on the wall clock is bench/'s business, not a test's
    assert waits, "some statements should have waited for the write lock"
    # SQLite's own busy timeout is 0 under interlace: test_raw_aiosqlite_busy.py pins it


def test_without_the_write_lock_and_a_version_check_an_update_is_lost() -> None:
    report = interlace.explore(no_write_lock, schedules=300, seed=3)
    assert report.failure is not None
    assert report.failure.kind == "invariant"
    assert "lost update" in str(report.failure.exception)
    with pytest.raises(AssertionError, match="lost update"):
        interlace.replay(no_write_lock, report.failure.token)


def test_without_a_busy_timeout_the_second_writer_gets_database_is_locked() -> None:
    report = interlace.explore(write_lock_without_busy_timeout, schedules=300, seed=3)
    assert report.failure is not None
    assert isinstance(report.failure.exception, OperationalError)
    assert "database is locked" in str(report.failure.exception)
    with pytest.raises(OperationalError, match="database is locked"):
        interlace.replay(write_lock_without_busy_timeout, report.failure.token)


def _slow_holder_database() -> Callable[[], AbstractAsyncContextManager[AsyncEngine]]:
    return _database(immediate=True, busy_timeout=1.0)


@interlace.scenario(resource=_slow_holder_database(), reset=_reset, name="sqlite:slow-holder")
async def slow_holder(engine: AsyncEngine) -> None:
    """The first writer keeps the lock 2 (virtual) seconds; the busy timeout is 1 s."""

    async def hold() -> None:
        async with engine.begin() as connection:
            await connection.execute(text("UPDATE accounts SET balance = 0 WHERE id = 1"))
            await asyncio.sleep(2.0)

    async def write_later() -> None:
        await asyncio.sleep(0.5)  # the holder has the lock by then
        await _withdraw(engine, 10)

    await asyncio.gather(hold(), write_later())


def test_a_busy_timeout_runs_out_in_virtual_time_when_the_holder_keeps_the_lock() -> None:
    report = interlace.explore(slow_holder, schedules=20, seed=1)
    assert report.failure is not None
    assert isinstance(report.failure.exception, OperationalError)
    assert "database is locked" in str(report.failure.exception)
    # the busy wait ran on the virtual clock: the writer was woken by a timer decision
    assert any(d.label.startswith("timer in") for d in report.failure.trace.decisions)


def test_outside_a_schedule_the_busy_timeout_waits_in_real_time(tmp_path: Any) -> None:
    """A resource or reset that waits for the lock behaves as in production."""

    async def main() -> float:
        sqlalchemy_points.install()
        engine = _engine(str(tmp_path / "a.db"), immediate=True, busy_timeout=5.0)
        try:
            async with engine.begin() as connection:
                await connection.execute(text("CREATE TABLE t (x INTEGER)"))
            holder = await engine.connect()
            await holder.begin()  # BEGIN IMMEDIATE: the write lock
            await holder.execute(text("INSERT INTO t VALUES (1)"))

            async def release_soon() -> None:
                await asyncio.sleep(0.05)
                await holder.commit()

            started = time.monotonic()
            release = asyncio.get_running_loop().create_task(release_soon())
            async with engine.begin() as connection:  # waits for the holder's COMMIT
                await connection.execute(text("INSERT INTO t VALUES (2)"))
            waited = time.monotonic() - started
            await release
            await holder.close()
            return waited
        finally:
            await engine.dispose()

    waited = asyncio.Runner(loop_factory=interlace.ControlledLoop).run(main())
    assert 0.04 < waited < 2.0
