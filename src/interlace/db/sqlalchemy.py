"""SQLAlchemy instrumentation: every SQL statement, COMMIT and ROLLBACK is a decision point.

The listeners are attached to SQLAlchemy's ``Engine`` class, so they apply to
every engine, including ones created before interlace was imported, and cost
one check per statement outside a simulation. Inside a simulated task they
run in SQLAlchemy's greenlet and await the director there (``await_``), so the
task stops *before* the statement reaches the driver; the driver round-trips
of the chosen statement then run atomically (see ``interlace._core.labels``).
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import aiosqlite
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import Pool
from sqlalchemy.util import await_only
from sqlalchemy.util.concurrency import in_greenlet

from interlace._core import ControlledLoop
from interlace.db import sqlite

_TABLE_AFTER = {
    "SELECT": re.compile(r"\bFROM\s+([\w.\"`\[\]]+)", re.IGNORECASE),
    "DELETE": re.compile(r"\bFROM\s+([\w.\"`\[\]]+)", re.IGNORECASE),
    "INSERT": re.compile(r"\bINTO\s+([\w.\"`\[\]]+)", re.IGNORECASE),
    "UPDATE": re.compile(r"^\s*UPDATE\s+([\w.\"`\[\]]+)", re.IGNORECASE),
}
_LOCKING = re.compile(r"\bFOR\s+(NO\s+KEY\s+UPDATE|UPDATE|SHARE|KEY\s+SHARE)\b", re.IGNORECASE)
_installed: list[bool] = []  # non-empty once the listeners are attached


def statement_label(statement: str) -> str:
    """``SELECT tool_sessions``, ``UPDATE tool_sessions``, ``SELECT FOR UPDATE accounts``."""
    words = statement.split(None, 1)
    if not words:
        return "SQL"
    verb = words[0].upper()
    pattern = _TABLE_AFTER.get(verb)
    match = pattern.search(statement) if pattern is not None else None
    if verb == "SELECT" and _LOCKING.search(statement):
        verb = "SELECT FOR " + " ".join(_LOCKING.search(statement).group(1).upper().split())  # type: ignore[union-attr]
    if match is None:
        return verb
    return f"{verb} {match.group(1).strip(chr(34) + '`[]')}"


def install() -> None:
    """Attach the listeners once per process (idempotent)."""
    if _installed:
        return
    event.listen(Engine, "before_cursor_execute", _before_statement)
    event.listen(Engine, "commit", _before_commit)
    event.listen(Engine, "rollback", _before_rollback)
    # SQLite's lock waits on the virtual clock, at aiosqlite's layer (interlace.db.sqlite)
    sqlite.install()
    event.listen(Pool, "connect", _on_pool_connect)
    _installed.append(True)


def _on_pool_connect(dbapi_connection: Any, record: Any) -> None:
    driver = getattr(dbapi_connection, "driver_connection", None)
    if isinstance(driver, aiosqlite.Connection):
        sqlite.commit_not_retried(driver)


def _stop_here(label: str) -> None:
    """Await a decision point from inside SQLAlchemy's greenlet, when in a simulation."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return
    if not isinstance(loop, ControlledLoop) or loop.director is None:
        return
    if not loop.director.in_simulated_task() or not in_greenlet():
        return
    await_only(loop.director.point(label))


def _before_statement(  # noqa: PLR0917 (SQLAlchemy's event signature)
    conn: Connection,
    cursor: Any,
    statement: str,
    parameters: Any,
    context: Any,
    executemany: bool,
) -> None:
    _stop_here(statement_label(statement))


def _before_commit(conn: Connection) -> None:
    _stop_here("COMMIT")


def _before_rollback(conn: Connection) -> None:
    _stop_here("ROLLBACK")


async def warm_pool(engine: AsyncEngine, connections: int) -> None:
    """Open ``connections`` pooled connections at once, outside any schedule.

    A simulated task should never be the one to open a connection: connecting
    is slow, outside I/O that differs between the first schedule and the
    rest. Call this in the scenario's resource, with at least as many
    connections as the scenario has concurrent tasks (and a pool at least
    that large), so every schedule checks out warm connections.
    """
    if connections < 1:
        raise ValueError(f"connections must be at least 1, got {connections}")
    opened = [await engine.connect() for _ in range(connections)]
    try:
        for connection in opened:
            await connection.exec_driver_sql("SELECT 1")
            # end its transaction now: one that takes a write lock (SQLite's BEGIN
            # IMMEDIATE) would otherwise block the next connection's
            await connection.rollback()
    finally:
        for connection in opened:
            await connection.close()
