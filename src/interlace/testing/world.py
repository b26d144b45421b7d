"""The world of a simulation: the database it owns, its processes, its request records.

``World.factory(...)`` is the ``world=`` of ``@interlace.simulation``. The
engine calls it with the exploration's fresh ``Database`` (``kind``,
``"sqlite"`` or ``"postgres"``, and ``url``, an async SQLAlchemy URL) and
enters it once, outside any schedule: it makes the engine, creates the
schema, warms the pool (no simulated task opens a connection) and yields
the world; PostgreSQL's row-lock waits between requests are seen by the
engine's lock watch (``interlace.db.lock_watch``), with nothing to attach.
``reset_world`` (the simulation's ``reset=``; it calls ``world.reset()``,
yours when you subclass) empties the tables and forgets the previous
schedule's processes, requests and ids::

    from interlace import invariants
    from interlace.testing import World, reset_world

    shop = World.factory(schema=Base.metadata, app=lambda process: create_app(process.world.engine))

    @invariants.final("an item is reserved by at most one buyer")
    async def reserved_once(world: World) -> None:
        told = [r for r in world.requests if r.outcome == "ok"]
        assert len(told) <= 1, f"{len(told)} buyers were told they got it"

    @interlace.simulation(world=shop, reset=reset_world, invariants=(reserved_once,),
                          databases=("sqlite", "postgres"))
    async def two_buyers(world: World) -> None:
        first, second = world.process("web-1"), world.process("web-2")
        await world.run(first.post("/items/1/reserve"), second.post("/items/1/reserve"))

Subclass ``World`` for state of your own (counters, a variant); keyword
arguments of ``factory`` that it does not know go to the constructor.

Reading the database back. ``await world.rows(select(...))`` runs the
statement on the world's engine and keeps its rows for the rest of the
schedule: every final invariant that reads the same statement shares one
read (one decision in the trace), and the reads run in the root task after
every request has ended, so they make no scheduling choice.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

from sqlalchemy import MetaData, delete
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine
from sqlalchemy.sql import Executable

import interlace
from interlace.db.supply import Database
from interlace.testing.ids import RequestIds
from interlace.testing.processes import Process
from interlace.testing.requests import Request

W = TypeVar("W", bound="World")
#: ``(process) -> ASGI app``: each process's own app, made on first use
AppFactory = Callable[[Process], Any]
Schema = MetaData | Callable[[AsyncEngine], Awaitable[None]]

#: SQLite's busy timeout for the world's engine (seconds): interlace waits it out in
#: virtual time, so code that waits for the write lock passes, as in production
SQLITE_BUSY_TIMEOUT = 5.0
#: connections of the world's pool, all opened before the first schedule
POOL_SIZE = 6


class World:
    """One simulated deployment: a database, processes of the app, and the records of requests.

    - ``app``: ``(process) -> ASGI app``, each process's own app (``Process.app``);
    - ``refusals``: exceptions a handler raises to turn a request away on
      purpose, with the HTTP status the web layer answers them with
      (``{ChatBusy: 409}``); such a request's outcome is ``refused``;
    - ``failures``: exception types that end a request as ``failed``
      (expected errors, not bugs); any other exception fails the schedule;
    - ``http_refusal``: ``(request) -> bool``, whether an HTTP error answer
      is a refusal (default: its status is one of ``refusals``' statuses);
    - ``tables``: what ``reset`` empties, in order (default: the ``schema``
      metadata's tables, children first);
    - ``replace_uuid4``: ``"module.attribute"`` names of ``uuid4`` functions
      to replace with ``world.ids.uuid4`` while the world is open
      (``interlace.testing.ids``).
    """

    def __init__(
        self,
        database: Database,
        engine: AsyncEngine,
        *,
        app: AppFactory | None = None,
        refusals: Mapping[type[BaseException], int] | None = None,
        failures: Iterable[type[BaseException]] = (),
        http_refusal: Callable[[Request], bool] | None = None,
        tables: Sequence[Any] = (),
    ) -> None:
        self.database = database
        self.engine = engine
        self.app = app
        self.refusals: dict[type[BaseException], int] = dict(refusals or {})
        self.refusals_types: tuple[type[BaseException], ...] = tuple(self.refusals)
        self.failures: tuple[type[BaseException], ...] = tuple(failures)
        self._http_refusal = http_refusal
        self.tables = tuple(tables)
        self.ids = RequestIds()
        self.requests: list[Request] = []
        self.processes: dict[str, Process] = {}
        self._read: dict[str, list[Row[Any]]] = {}

    # ---- the schedule ----------------------------------------------------------------

    def process(self, name: str) -> Process:
        """The process called ``name``, made on first use in this schedule."""
        if name not in self.processes:
            self.processes[name] = Process(self, name)
        return self.processes[name]

    async def run(self, *requests: Awaitable[Request]) -> list[Request]:
        """Run the requests at once, each in its own task; return the records of those that ended.

        A cancelled request is an outcome (recorded on its ``Request``); any
        other exception escaping a request fails the schedule.
        """
        results = await asyncio.gather(*requests, return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException) and not isinstance(result, asyncio.CancelledError):
                raise result
        return [r for r in results if isinstance(r, Request)]

    def in_flight(self, *, process: str | None = None) -> list[Request]:
        """Requests not ended yet (of ``process``, if given)."""
        return [r for r in self.requests if r.ended is None and process in (None, r.process)]

    # ---- reading back ------------------------------------------------------------------

    async def rows(self, statement: Executable) -> list[Row[Any]]:
        """The rows of ``statement``, read once per schedule (see the module docstring)."""
        key = _cache_key(statement, self.engine)
        if key not in self._read:
            async with AsyncSession(self.engine) as session:
                self._read[key] = list((await session.execute(statement)).all())
        return self._read[key]

    async def scalars(self, statement: Executable) -> list[Any]:
        """The first column of ``rows(statement)``."""
        return [row[0] for row in await self.rows(statement)]

    # ---- between schedules -------------------------------------------------------------

    async def reset(self) -> None:
        """Empty ``tables`` and forget the previous schedule (``reset=reset_world`` calls it)."""
        if self.tables:
            async with self.engine.begin() as connection:
                for table in self.tables:
                    await connection.execute(delete(table))
        await self._close_processes()
        self.ids.reset()
        self.requests.clear()
        self._read.clear()

    async def _close_processes(self) -> None:
        for process in self.processes.values():
            await process.close()
        self.processes.clear()

    # ---- how requests end --------------------------------------------------------------

    def refusal_status(self, refusal: BaseException) -> int:
        for kind in type(refusal).__mro__:
            if kind in self.refusals:
                return self.refusals[kind]
        raise LookupError(f"{type(refusal).__name__} is not one of the world's refusals")

    def http_refusal(self, request: Request) -> bool:
        """Whether an HTTP error answer is a refusal (see the class docstring)."""
        if self._http_refusal is not None:
            return self._http_refusal(request)
        return request.status in self.refusals.values()

    # ---- making worlds -----------------------------------------------------------------

    @classmethod
    def factory(
        cls: type[W],
        *,
        schema: Schema | None = None,
        engine: Callable[[Database], AsyncEngine] | None = None,
        pool_size: int = POOL_SIZE,
        replace_uuid4: Iterable[str] = (),
        **options: Any,
    ) -> Callable[[Database], contextlib.AbstractAsyncContextManager[W]]:
        """The ``world=`` of a simulation: ``(database) -> async context manager of a world``.

        ``schema``: a ``MetaData`` to ``create_all``, or ``async (engine) ->
        None``, run once on the fresh database (migrations that call
        ``asyncio.run`` belong in the simulation's ``setup=`` instead).
        ``engine``: ``(database) -> AsyncEngine`` (default: an engine for
        ``database.url`` with ``pool_size`` connections and SQLite's busy
        timeout of 5 s). ``options`` go to the constructor.
        """
        targets = tuple(replace_uuid4)
        if schema is not None and isinstance(schema, MetaData):
            options.setdefault("tables", tuple(reversed(schema.sorted_tables)))

        def open_world(database: Database) -> contextlib.AbstractAsyncContextManager[W]:
            return cls.open(
                database,
                schema=schema,
                engine=engine,
                pool_size=pool_size,
                replace_uuid4=targets,
                **options,
            )

        return open_world

    @classmethod
    @contextlib.asynccontextmanager
    async def open(
        cls: type[W],
        database: Database | str,
        *,
        schema: Schema | None = None,
        engine: Callable[[Database], AsyncEngine] | None = None,
        pool_size: int = POOL_SIZE,
        replace_uuid4: Iterable[str] = (),
        **options: Any,
    ) -> AsyncIterator[W]:
        """A world on ``database`` (a ``Database`` or a URL) for the block; see ``factory``."""
        if isinstance(database, str):
            database = Database(_kind_of(database), database)
        if schema is not None and isinstance(schema, MetaData):
            options.setdefault("tables", tuple(reversed(schema.sorted_tables)))
        made = engine(database) if engine is not None else default_engine(database, pool_size)
        try:
            if schema is not None:
                await create_schema(made, schema)
            await interlace.warm_pool(made, pool_size)
            async with contextlib.AsyncExitStack() as stack:
                world = cls(database, made, **options)
                stack.enter_context(world.ids.replacing(*replace_uuid4))
                stack.push_async_callback(world._close_processes)
                yield world
        finally:
            await made.dispose()


async def reset_world(world: World) -> None:
    """``reset=reset_world``: the same as ``reset=reset_world``, for any world with ``reset()``."""
    await world.reset()


def default_engine(database: Database, pool_size: int = POOL_SIZE) -> AsyncEngine:
    """An engine for ``database.url``: ``pool_size`` connections; SQLite waits 5 s for its lock."""
    options: dict[str, Any] = {"pool_size": pool_size}
    if database.kind == "sqlite":
        options["connect_args"] = {"timeout": SQLITE_BUSY_TIMEOUT}
    return create_async_engine(database.url, **options)


async def create_schema(engine: AsyncEngine, schema: Schema) -> None:
    """``schema.create_all`` for a ``MetaData``, else ``await schema(engine)``."""
    if isinstance(schema, MetaData):
        async with engine.begin() as connection:
            await connection.run_sync(schema.create_all)
        return
    await schema(engine)


def _kind_of(url: str) -> Any:
    if url.startswith("sqlite"):
        return "sqlite"
    if url.startswith("postgresql"):
        return "postgres"
    raise ValueError(f"{url!r} is neither a sqlite+aiosqlite:// nor a postgresql+asyncpg:// URL")


def _cache_key(statement: Executable, engine: AsyncEngine) -> str:
    compiled = statement.compile(engine.sync_engine)  # type: ignore[attr-defined]
    return f"{compiled}\x1f{sorted(compiled.params.items())!r}"
