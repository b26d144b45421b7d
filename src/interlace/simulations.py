"""Simulations: a scenario with its world, its invariants, its databases and its expectation.

A simulation is what ``interlace run`` discovers and what the pytest plugin
collects. It is declared on the body of one schedule::

    @interlace.simulation(
        world=chat_world(variant="fixed"),       # (Database) -> async context manager
        reset=ChatWorld.reset,                   # async (world) -> None, before each schedule
        invariants=CHAT_INVARIANTS,              # interlace.invariants.final/always/sometimes
        databases=("sqlite", "postgres"),        # one scenario per kind
    )
    async def identical_messages(world: ChatWorld) -> None:
        '''The same question twice at once, from two processes.'''
        await world.run(world.process("web-1").send(...), world.process("web-2").send(...))

Per schedule, the engine (``interlace.engine``) resets the world, registers
the always invariants, runs the body (the root task; it starts the
concurrent requests and returns when they have finished), then checks the
final invariants and records which sometimes invariants held. The world is
made once per exploration on a fresh database (``interlace.db.supply``),
outside any schedule.

``setup=migrate`` runs ``migrate(database)`` once per exploration (and per
replay), on the fresh database before the world is made and before any
schedule: a plain synchronous function, called in a worker thread where no
event loop runs, so it may call ``asyncio.run`` (alembic's ``env.py`` does)::

    def migrate(database: Database) -> None:      # database.kind, database.url
        config = alembic.config.Config("alembic.ini")
        config.set_main_option("sqlalchemy.url", database.url)
        alembic.command.upgrade(config, "head")   # env.py calls asyncio.run(...)

Nothing it does is simulated or traced. An exception it raises is a setup
error of the run (exit status 2), never a finding.

``expect_violation=True`` (or a tuple of invariants) declares a *canary*: a
known-buggy variant whose violation the run must find. A canary guards the
invariants themselves: when they go blind, its run fails. The expectation is
an ``interlace.expectation.Expectation``, judged in one place for pytest and
``interlace run`` alike.

Names: the simulation is ``module:attribute`` and each database variant is a
scenario named ``module:attribute[sqlite]``. Tokens carry that name, so
``interlace replay`` imports the module, finds the simulation and rebuilds
the same database kind.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import re
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any

from interlace._core.errors import UsageError
from interlace.db.supply import DATABASE_KINDS, Database, DatabaseKind, DatabaseSupply
from interlace.expectation import Expectation
from interlace.invariants import Invariant
from interlace.scenario import Scenario, qualified_name

# (database) -> world; called with no argument for a simulation with databases=()
WorldFactory = Callable[..., AbstractAsyncContextManager[Any]]
Reset = Callable[[Any], Awaitable[None]]
Body = Callable[..., Awaitable[object]]
# (database) -> None, synchronous, run in a worker thread before the world is made
Setup = Callable[[Database], object]

_VARIANT = re.compile(r"^(?P<attribute>[^\[\]]+)\[(?P<database>[a-z]+)\]$")


@dataclass(frozen=True)
class Simulation:
    """A declared simulation; build one scenario per database with ``scenario()``."""

    body: Body
    module: str
    attribute: str
    world: WorldFactory | None
    reset: Reset | None
    invariants: tuple[Invariant, ...]
    databases: tuple[DatabaseKind, ...]
    expectation: Expectation
    description: str
    setup: Setup | None = None

    @property
    def name(self) -> str:
        """``module:attribute``, where ``interlace replay`` finds it."""
        return f"{self.module}:{self.attribute}"

    @property
    def canary(self) -> bool:
        """Whether the simulation expects a violation (a known-buggy variant)."""
        return self.expectation.canary

    @property
    def variants(self) -> tuple[DatabaseKind | None, ...]:
        """The database kinds it runs on; ``(None,)`` for a simulation without a database."""
        return self.databases if self.databases else (None,)

    def scenario_name(self, database: DatabaseKind | None) -> str:
        """``module:attribute[database]``: the name its tokens carry."""
        return self.name if database is None else f"{self.name}[{database}]"

    def scenario(self, supply: DatabaseSupply | None) -> Scenario:
        """The scenario of this simulation on ``supply``'s databases."""
        database = None if supply is None else supply.kind
        if database not in self.variants:
            raise UsageError(
                f"simulation {self.name} does not run on {database or 'no database'}; "
                f"it declares databases={list(self.databases)}"
            )
        resource = None
        reset = None
        if self.world is not None or supply is not None:
            resource = _world_resource(self.world, supply, self.setup)
            reset = self._reset
        return Scenario(
            body=self._named_body(takes_world=resource is not None),
            name=self.scenario_name(database),
            resource=resource,
            reset=reset,
            invariants=self.invariants,
            database=database,
        )

    async def _reset(self, world: Any) -> None:
        if self.reset is not None:
            await self.reset(world)

    def _named_body(self, *, takes_world: bool) -> Body:
        body = self.body

        async def with_world(world: Any) -> object:
            return await body(world)

        async def without_world() -> object:
            return await body()

        chosen: Body = with_world if takes_world else without_world
        # the root task's first row in the interleaving table reads "start <attribute>"
        chosen.__qualname__ = chosen.__name__ = self.attribute
        return chosen


def _world_resource(
    factory: WorldFactory | None, supply: DatabaseSupply | None, setup: Setup | None = None
) -> Callable[[], AbstractAsyncContextManager[Any]]:
    @contextlib.asynccontextmanager
    async def world() -> AsyncIterator[Any]:
        if supply is None:
            assert factory is not None  # no supply and no factory: no resource at all
            async with factory() as value:
                yield value
            return
        async with supply.fresh() as database:
            if setup is not None:
                await run_setup(setup, database)
            if factory is None:
                yield database
                return
            async with factory(database) as value:
                yield value

    return world


async def run_setup(setup: Setup, database: Database) -> None:
    """Run ``setup(database)`` in a worker thread of its own, where no event loop runs.

    The controlled loop waits for it without running any schedule; the thread
    may start its own loops (``asyncio.run``), which are ordinary loops.
    """
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()

    def work() -> None:
        try:
            setup(database)
        except BaseException as error:  # delivered to the loop, raised there
            loop.call_soon_threadsafe(_settle, done, error)
        else:
            loop.call_soon_threadsafe(_settle, done, None)

    thread = threading.Thread(target=work, name="interlace-setup", daemon=True)
    thread.start()
    try:
        await done
    finally:
        thread.join()


def _settle(done: asyncio.Future[None], error: BaseException | None) -> None:
    if done.done():
        return
    if error is None:
        done.set_result(None)
    else:
        done.set_exception(error)


def simulation(
    *,
    world: WorldFactory | None = None,
    reset: Reset | None = None,
    setup: Setup | None = None,
    invariants: Iterable[Invariant] = (),
    databases: Iterable[str] = ("sqlite",),
    expect_violation: bool | Iterable[Invariant | str] = False,
    name: str | None = None,
) -> Callable[[Body], Simulation]:
    """Declare a simulation (see the module docstring for an example).

    - ``world``: ``factory(database) -> async context manager`` entered once
      per exploration on a fresh database (``factory()`` with
      ``databases=()``); what it yields is passed to the body, to ``reset``
      and to every invariant. Without it the body gets the ``Database``
      itself (or nothing, with ``databases=()``).
    - ``reset``: ``async (world) -> None``, before every schedule.
    - ``setup``: ``(database) -> None``, synchronous, once per exploration on
      the fresh database before the world is made, in a worker thread where
      ``asyncio.run`` works (migrations); see the module docstring.
    - ``invariants``: from ``interlace.invariants.final/always/sometimes``.
    - ``databases``: the kinds it runs on (``"sqlite"``, ``"postgres"``);
      ``()`` for a simulation that needs no database.
    - ``expect_violation``: ``True`` or some of its invariants: a canary.
    - ``name``: the module attribute the simulation is assigned to, when it
      is not the body's own name (so ``interlace replay`` can find it).
    """
    kinds = tuple(_database_kind(kind) for kind in databases)
    declared = tuple(invariants)
    expectation = Expectation.of(expect_violation, declared)

    def wrap(body: Body) -> Simulation:
        where = qualified_name(body)
        if not inspect.iscoroutinefunction(body):
            raise UsageError(
                f"simulation {where} must be an async function (async def ...): "
                "it runs as the root task of each schedule"
            )
        if reset is not None and world is None:
            raise UsageError(
                f"simulation {where} has reset= but no world=: reset receives the world, "
                "so give both"
            )
        if setup is not None and not kinds:
            raise UsageError(
                f"simulation {where} has setup= but databases=(): setup receives the "
                "database, so declare the databases it runs on"
            )
        if setup is not None and inspect.iscoroutinefunction(setup):
            raise UsageError(
                f"simulation {where}: setup= must be a plain function (def, not async def); "
                "it runs in a thread of its own, where it may call asyncio.run itself"
            )
        attribute = name or body.__name__
        if _VARIANT.match(attribute) or ":" in attribute or not attribute.isidentifier():
            raise UsageError(
                f"simulation name {attribute!r} must be a Python identifier: it is the "
                "module attribute that interlace replay looks up"
            )
        return Simulation(
            body=body,
            module=body.__module__,
            attribute=attribute,
            world=world,
            reset=reset,
            invariants=declared,
            databases=kinds,
            expectation=expectation,
            description=_first_line(body.__doc__),
            setup=setup,
        )

    return wrap


def _database_kind(name: str) -> DatabaseKind:
    for kind in DATABASE_KINDS:
        if kind == name:
            return kind
    raise UsageError(f"unknown database kind {name!r}: use {' or '.join(DATABASE_KINDS)}")


def split_scenario_name(scenario_name: str) -> tuple[str, str, DatabaseKind | None]:
    """``('pkg.mod', 'attribute', 'sqlite')`` from ``pkg.mod:attribute[sqlite]``.

    Raises ``ValueError`` when the name is not ``module:attribute[kind]`` with a
    known kind (or ``module:attribute``).
    """
    module, separator, rest = scenario_name.partition(":")
    if not separator or not module or not rest:
        raise ValueError(f"{scenario_name!r} is not module:attribute")
    variant = _VARIANT.match(rest)
    if variant is None:
        return module, rest, None
    database = variant.group("database")
    for kind in DATABASE_KINDS:
        if kind == database:
            return module, variant.group("attribute"), kind
    raise ValueError(
        f"{scenario_name!r} names database {database!r}; known: {', '.join(DATABASE_KINDS)}"
    )


def _first_line(doc: str | None) -> str:
    if not doc:
        return ""
    return inspect.cleandoc(doc).splitlines()[0].strip()
