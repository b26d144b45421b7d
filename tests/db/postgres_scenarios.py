"""Scenarios on PostgreSQL for the lock-wait tests, and a strategy that follows a script.

Every scenario runs its handlers through SQLAlchemy on asyncpg against the test
session's database, with ``interlace.db.postgres.monitor`` entered in the
resource (still accepted; it hands over the server's monitor, for its stats and
its ``freeze`` choice; ``test_lock_waits_out_of_the_box.py`` names no monitor).
The handlers are the three styles the issue names:

- ``optimistic``: SELECT value and version, UPDATE ... WHERE version = the one
  read (0 rows: a conflict), COMMIT;
- ``append``: a blind ``UPDATE ... SET body = body || piece`` on one row;
- ``for_update``: SELECT ... FOR UPDATE, UPDATE, COMMIT (correct lock-waiting
  code); ``read_then_write`` is the same without FOR UPDATE (a lost update).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

import interlace
from interlace._core.trace import Trace
from interlace.db import postgres
from interlace.strategies import Candidate

ACTORS = 3
SCHEMA = (
    "CREATE TABLE IF NOT EXISTS counters "
    "(id INTEGER PRIMARY KEY, value INTEGER NOT NULL, version INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS docs (id INTEGER PRIMARY KEY, body TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS doctors (name TEXT PRIMARY KEY, on_call BOOLEAN NOT NULL)",
)


@dataclass
class Database:
    """What a scenario gets: the engine, and the monitor watching its lock waits."""

    engine: AsyncEngine
    monitor: postgres.LockMonitor


@dataclass
class Recorder:
    """Outcomes the scenario bodies append, and the monitors of each exploration."""

    outcomes: list[object] = field(default_factory=list)
    monitors: list[postgres.LockMonitor] = field(default_factory=list)


def resource(url: str, recorder: Recorder, *, freeze: bool | None = None) -> Callable[[], Any]:
    """A resource factory: engine on ``url``, schema, warm pool, lock monitor."""

    @asynccontextmanager
    async def database() -> AsyncIterator[Database]:
        engine = create_async_engine(url, pool_size=ACTORS + 1)
        try:
            async with engine.begin() as connection:
                for statement in SCHEMA:
                    await connection.execute(text(statement))
            await interlace.warm_pool(engine, ACTORS + 1)
            async with postgres.monitor(engine, freeze=freeze) as lock_monitor:
                recorder.monitors.append(lock_monitor)
                yield Database(engine, lock_monitor)
        finally:
            await engine.dispose()

    return database


async def reset(database: Database) -> None:
    async with database.engine.begin() as connection:
        await connection.execute(text("DELETE FROM counters"))
        await connection.execute(text("INSERT INTO counters VALUES (1, 100, 0), (2, 100, 0)"))
        await connection.execute(text("DELETE FROM docs"))
        await connection.execute(text("INSERT INTO docs VALUES (1, '')"))
        await connection.execute(text("DELETE FROM doctors"))
        await connection.execute(text("INSERT INTO doctors VALUES ('alice', true), ('bob', true)"))


async def rows(database: Database) -> tuple[tuple[Any, ...], ...]:
    async with database.engine.connect() as connection:
        counters = (await connection.execute(text("SELECT * FROM counters ORDER BY id"))).all()
        docs = (await connection.execute(text("SELECT * FROM docs ORDER BY id"))).all()
    return tuple(tuple(row) for row in [*counters, *docs])


def pgcode(error: BaseException) -> str | None:
    """The SQLSTATE of a database error (40001, 40P01, ...), None for anything else."""
    if isinstance(error, DBAPIError):
        return getattr(error.orig, "pgcode", None) or getattr(error.orig, "sqlstate", None)
    return None


def outcome_of(result: object) -> object:
    """A handler's result, or its error reduced to its class and SQLSTATE."""
    if isinstance(result, BaseException):
        return (type(result).__name__, pgcode(result))
    return result


# ---- handlers ------------------------------------------------------------------------


async def optimistic(engine: AsyncEngine, isolation: str = "READ COMMITTED") -> int:
    """Read value and version, write back only if the version is unchanged; rows matched."""
    async with engine.connect() as connection:
        await connection.execution_options(isolation_level=isolation)
        read = text("SELECT value, version FROM counters WHERE id = 1")
        value, version = (await connection.execute(read)).one()
        result = await connection.execute(
            text(
                "UPDATE counters SET value = :value, version = version + 1 "
                "WHERE id = 1 AND version = :version"
            ),
            {"value": value + 1, "version": version},
        )
        await connection.commit()
        return int(result.rowcount)


async def append(engine: AsyncEngine, piece: str) -> None:
    async with engine.begin() as connection:
        await connection.execute(
            text("UPDATE docs SET body = body || :piece WHERE id = 1"), {"piece": piece}
        )


async def for_update(engine: AsyncEngine, amount: int) -> None:
    async with engine.begin() as connection:
        await _withdraw(connection, amount, " FOR UPDATE")


async def read_then_write(engine: AsyncEngine, amount: int) -> None:
    async with engine.begin() as connection:
        await _withdraw(connection, amount, "")


async def _withdraw(connection: AsyncConnection, amount: int, locking: str) -> None:
    read = text(f"SELECT value FROM counters WHERE id = 1{locking}")
    value = (await connection.execute(read)).scalar_one()
    await connection.execute(
        text("UPDATE counters SET value = :value WHERE id = 1"), {"value": value - amount}
    )


async def transfer(engine: AsyncEngine, source: int, target: int) -> None:
    """Lock two rows in the order given: opposite orders can deadlock."""
    async with engine.begin() as connection:
        move = "UPDATE counters SET value = value + :delta WHERE id = :id"
        await connection.execute(text(move), {"delta": -1, "id": source})
        await connection.execute(text(move), {"delta": 1, "id": target})


async def go_off_call(engine: AsyncEngine, name: str) -> None:
    """Write skew: leave the rota if someone else is on call (SERIALIZABLE)."""
    async with engine.connect() as connection:
        await connection.execution_options(isolation_level="SERIALIZABLE")
        on_call = text("SELECT count(*) FROM doctors WHERE on_call")
        if (await connection.execute(on_call)).scalar_one() >= 2:
            await connection.execute(
                text("UPDATE doctors SET on_call = false WHERE name = :name"), {"name": name}
            )
        await connection.commit()


# ---- scenarios -------------------------------------------------------------------------


def scenario(
    name: str,
    url: str,
    recorder: Recorder,
    handlers: Callable[[Database], Sequence[Awaitable[object]]],
    *,
    check: Callable[[tuple[tuple[Any, ...], ...]], None] | None = None,
    freeze: bool | None = None,
) -> interlace.Scenario:
    """Run ``handlers`` concurrently; record their outcomes and the final rows; ``check`` them."""

    async def body(database: Database) -> None:
        results = await asyncio.gather(*handlers(database), return_exceptions=True)
        final = await rows(database)
        recorder.outcomes.append((tuple(outcome_of(r) for r in results), final))
        if check is not None:
            check(final)

    return interlace.scenario(
        body, resource=resource(url, recorder, freeze=freeze), reset=reset, name=name
    )


# ---- a strategy that follows a script --------------------------------------------------


class Scripted:
    """Chooses the named tasks in order; after the script, the first runnable task."""

    def __init__(self, order: Sequence[str]) -> None:
        self.order = list(order)

    @property
    def name(self) -> str:
        return "scripted"

    def begin(self, seed: int) -> bool:
        return True

    def choose(
        self, step: int, runnable: Sequence[Candidate], previous: Candidate | None
    ) -> Candidate:
        if step >= len(self.order):
            return runnable[0]
        for candidate in runnable:
            if candidate.name == self.order[step]:
                return candidate
        offered = ", ".join(f"{c.name} at {c.label!r}" for c in runnable)
        raise AssertionError(f"script step {step}: {self.order[step]} is not runnable ({offered})")

    def end(self, trace: Trace) -> None:
        return None
