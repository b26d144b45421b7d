"""A request left running when the scenario ends must not leak its pooled connection.

SQLAlchemy closes an ``AsyncConnection`` in a task under ``asyncio.shield``. If the
director cancelled that task with the other leftovers, the connection would never be
checked in: after a few schedules the pool is exhausted and a schedule fails with
``QueuePool limit ... reached``, a failure made by the schedules before it, which its
token could not replay.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import warnings
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import text
from sqlalchemy.exc import SAWarning
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

import interlace

POOL_SIZE = 2
CHECKED_OUT_AT_THE_END: list[int] = []


@asynccontextmanager
async def small_pool() -> AsyncIterator[AsyncEngine]:
    with tempfile.TemporaryDirectory(prefix="interlace-test-") as directory:
        engine = create_async_engine(
            f"sqlite+aiosqlite:///{os.path.join(directory, 'pool.db')}",
            pool_size=POOL_SIZE,
            max_overflow=0,
            pool_timeout=5,
        )
        async with engine.begin() as connection:
            await connection.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY)"))
        await interlace.warm_pool(engine, POOL_SIZE)
        try:
            yield engine
        finally:
            CHECKED_OUT_AT_THE_END.append(engine.pool.checkedout())  # type: ignore[attr-defined]
            await engine.dispose()


async def reader(engine: AsyncEngine) -> None:
    async with engine.connect() as connection:
        for _ in range(3):
            await connection.execute(text("SELECT count(*) FROM t"))


@interlace.scenario(resource=small_pool)
async def root_ends_while_a_reader_runs(engine: AsyncEngine) -> None:
    asyncio.get_running_loop().create_task(reader(engine))
    await asyncio.sleep(0)
    async with engine.connect() as connection:
        await connection.execute(text("SELECT 1"))
    # returns with the reader still running (or closing): it is left behind


def test_a_request_left_behind_gives_its_connection_back() -> None:
    CHECKED_OUT_AT_THE_END.clear()
    with warnings.catch_warnings():
        # a leaked connection shows first as SQLAlchemy's garbage-collection warning
        warnings.simplefilter("error", SAWarning)
        report = interlace.explore(root_ends_while_a_reader_runs, schedules=200, seed=0)
    assert report.failure is None, report.failure.describe()
    assert report.schedules_run == 200
    assert CHECKED_OUT_AT_THE_END == [0]
