"""``@interlace.simulation(setup=...)``: once per exploration, in a thread that may asyncio.run."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from sqlalchemy import Column, Integer, MetaData, Table, insert, select
from sqlalchemy.ext.asyncio import create_async_engine

import interlace
from interlace import Config, invariants
from interlace.db.supply import SqliteSupply
from interlace.outcome import Verdict
from interlace.runner import run_simulation
from interlace.testing import Database, World, reset_world

SQLITE = SqliteSupply()
METADATA = MetaData()
VERSION = Table("schema_version", METADATA, Column("version", Integer, primary_key=True))
CALLS: list[dict[str, Any]] = []


def migrate(database: Database) -> None:
    """What alembic's env.py does: asyncio.run(...) around an async engine."""

    async def upgrade() -> None:
        engine = create_async_engine(database.url)
        async with engine.begin() as connection:
            await connection.run_sync(METADATA.create_all)
            await connection.execute(insert(VERSION).values(version=7))
        await engine.dispose()

    CALLS.append(
        {
            "kind": database.kind,
            "thread": threading.current_thread().name,
            "loop running": _loop_running(),
        }
    )
    asyncio.run(upgrade())


def _loop_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


@invariants.final("the migration ran before the world was made")
async def migrated(world: World) -> None:
    assert await world.scalars(select(VERSION.c.version)) == [7]


@interlace.simulation(
    world=World.factory(), reset=reset_world, setup=migrate, invariants=(migrated,)
)
async def after_migrations(world: World) -> None:
    async def noop(request: object) -> None:
        await asyncio.sleep(0)

    web = world.process("web-1")
    await world.run(web.call(noop), web.call(noop))


def test_setup_runs_once_per_exploration_in_a_thread_where_asyncio_run_works() -> None:
    CALLS.clear()
    run = run_simulation(after_migrations, SQLITE, Config(schedules=5))
    assert run.verdict is Verdict.PASSED, run.message
    assert CALLS == [{"kind": "sqlite", "thread": "interlace-setup", "loop running": False}]
    report = interlace.explore(after_migrations.scenario(SQLITE), schedules=2)
    assert report.failure is None and report.problem is None
    assert len(CALLS) == 2  # each exploration (and each replay) gets a fresh database


def broken_migration(database: Database) -> None:
    raise RuntimeError(f"alembic: cannot upgrade {database.kind}")


@interlace.simulation(setup=broken_migration)
async def never_runs(database: Database) -> None:
    raise AssertionError("no schedule runs after a failed setup")


def test_a_failing_setup_is_a_setup_error_not_a_finding() -> None:
    run = run_simulation(never_runs, SQLITE, Config(schedules=5))
    assert run.verdict is Verdict.USAGE_ERROR
    assert run.problem is not None and run.failure is None
    assert "RuntimeError: alembic: cannot upgrade sqlite" in run.message


def test_setup_must_be_a_plain_function_and_needs_a_database() -> None:
    async def async_setup(database: Database) -> None: ...

    async def body(world: object) -> None: ...

    with pytest.raises(interlace.UsageError, match="plain function"):
        interlace.simulation(setup=async_setup)(body)  # type: ignore[arg-type]
    with pytest.raises(interlace.UsageError, match=r"databases=\(\)"):
        interlace.simulation(setup=migrate, databases=())(body)
