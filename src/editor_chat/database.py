"""Engines, sessions and schema for the editor chat.

Nothing here is global: callers create an engine, build a session factory
from it and hand that to the service, so a test or a simulation can run many
services against one engine it controls.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from editor_chat.models import Base

SUPPORTED_DIALECTS = ("sqlite", "postgresql")


def make_engine(
    url: str, *, sqlite_busy_timeout: float | None = None, **engine_kwargs: Any
) -> AsyncEngine:
    """Create an async engine for SQLite (aiosqlite) or PostgreSQL (asyncpg).

    `sqlite_busy_timeout` is SQLite's busy timeout in seconds (the driver's
    default is 5). Simulations pass 0 so a locked database fails at once
    instead of busy-waiting in the driver's thread. Other keyword arguments go
    to `create_async_engine` unchanged (pool size, echo, ...).

    >>> engine = make_engine("sqlite+aiosqlite:///chat.db", sqlite_busy_timeout=0)
    """
    dialect = make_url(url).get_dialect().name
    if dialect not in SUPPORTED_DIALECTS:
        raise ValueError(
            f"editor_chat supports {' and '.join(SUPPORTED_DIALECTS)} databases, "
            f"not {dialect!r}; use a sqlite+aiosqlite:// or postgresql+asyncpg:// URL"
        )
    if sqlite_busy_timeout is not None:
        if dialect != "sqlite":
            raise ValueError("sqlite_busy_timeout only applies to SQLite URLs")
        connect_args = dict(engine_kwargs.pop("connect_args", {}))
        connect_args["timeout"] = sqlite_busy_timeout
        engine_kwargs["connect_args"] = connect_args
    return create_async_engine(url, **engine_kwargs)


def make_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """A session factory for the service's units of work.

    `expire_on_commit=False`: the repository returns plain snapshots, and
    nothing should trigger a lazy reload after a unit of work has committed.
    """
    return async_sessionmaker(engine, expire_on_commit=False)


async def create_schema(engine: AsyncEngine) -> None:
    """Create the editor chat's tables if they do not exist (idempotent)."""
    async with engine.begin() as connection:
        await connection.run_sync(Base.metadata.create_all)


async def drop_schema(engine: AsyncEngine) -> None:
    """Drop the editor chat's tables if they exist (for tests and simulations)."""
    async with engine.begin() as connection:
        await connection.run_sync(Base.metadata.drop_all)
