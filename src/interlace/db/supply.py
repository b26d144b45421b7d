"""Fresh databases for simulations: a SQLite file, or a database on a PostgreSQL server.

Each exploration (and each replay) of a simulation gets a database of its
own, empty, made before the first schedule and thrown away after the last:

- ``sqlite``: a file in a new temporary directory; nothing to start;
- ``postgres``: a new database on a server from the provider chain
  (``interlace.db.provider``): ``INTERLACE_POSTGRES_URL``, else the embedded
  server, else testcontainers.

A supply is opened once per run (``open_supply``), which is when a
PostgreSQL server is started, and hands out databases with ``fresh()``::

    with open_supply("postgres") as supply:       # raises PostgresUnavailable
        ...
        async with supply.fresh() as database:    # inside the exploration's loop
            engine = make_engine(database.url)
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Literal, Protocol

from interlace.db import provider

DatabaseKind = Literal["sqlite", "postgres"]
DATABASE_KINDS: tuple[DatabaseKind, ...] = ("sqlite", "postgres")


@dataclass(frozen=True)
class Database:
    """A fresh, empty database: its kind and its SQLAlchemy URL."""

    kind: DatabaseKind
    url: str
    """``sqlite+aiosqlite:///...`` or ``postgresql+asyncpg://...``."""


class DatabaseSupply(Protocol):
    """Hands out fresh databases of one kind."""

    @property
    def kind(self) -> DatabaseKind: ...

    def fresh(self) -> contextlib.AbstractAsyncContextManager[Database]:
        """A new empty database, removed when the block ends."""
        ...


class SqliteSupply:
    """SQLite files, each in a temporary directory of its own."""

    @property
    def kind(self) -> DatabaseKind:
        return "sqlite"

    @contextlib.asynccontextmanager
    async def fresh(self) -> AsyncIterator[Database]:
        with tempfile.TemporaryDirectory(prefix="interlace-sim-") as directory:
            path = os.path.join(directory, "simulation.db")
            yield Database("sqlite", f"sqlite+aiosqlite:///{path}")


class PostgresSupply:
    """Databases created on one PostgreSQL server, dropped after use."""

    def __init__(self, server: provider.PostgresServer) -> None:
        self.server = server

    @property
    def kind(self) -> DatabaseKind:
        return "postgres"

    @contextlib.asynccontextmanager
    async def fresh(self) -> AsyncIterator[Database]:
        database = await provider.create_database(self.server, prefix="interlace_sim")
        try:
            yield Database("postgres", database.sqlalchemy_url())
        finally:
            await provider.drop_database(database)


@contextlib.contextmanager
def open_supply(kind: DatabaseKind) -> Iterator[DatabaseSupply]:
    """A supply of ``kind`` databases for a run; starts (and stops) a PostgreSQL server.

    Raises ``PostgresUnavailable`` (the message lists what was tried) when no
    PostgreSQL server can be had. Call it from synchronous code.
    """
    if kind == "sqlite":
        yield SqliteSupply()
        return
    with provider.start_server() as server:
        yield PostgresSupply(server)


def one_line(error: provider.PostgresUnavailable) -> str:
    """The reasons of ``PostgresUnavailable`` on one line, for a command-line error."""
    reasons = "; ".join(error.reasons) or "no source was tried"
    return f"no PostgreSQL server available ({reasons})"
