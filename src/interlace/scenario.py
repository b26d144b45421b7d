"""Scenarios: the async code a simulation runs, and the resources it keeps across schedules.

A scenario is an async callable that starts its concurrent tasks (``gather``,
``create_task``, ``TaskGroup``) and asserts its invariants at the end. Many
schedules of one exploration run on one event loop, so resources that are
expensive to make (an engine, a warmed connection pool, a schema) are made
once, outside any schedule, and reset between schedules::

    @asynccontextmanager
    async def database() -> AsyncIterator[AsyncEngine]:
        engine = create_async_engine("sqlite+aiosqlite:///sim.db", connect_args={"timeout": 0})
        await create_schema(engine)
        await interlace.warm_pool(engine, connections=3)
        yield engine
        await engine.dispose()

    async def clear(engine: AsyncEngine) -> None:
        async with engine.begin() as conn:
            await conn.execute(delete(accounts))

    @interlace.scenario(resource=database, reset=clear)
    async def two_withdrawals(engine: AsyncEngine) -> None:
        await asyncio.gather(withdraw(engine, 50), withdraw(engine, 70))
        assert await balance(engine) >= 0

``resource`` and ``reset`` run on the controlled loop but outside the
schedule: they make no decisions and their statements are not traced. A reset
is bounded in wall time (the schedule's ``stuck_after``): one that waits for a
lock still held since the last schedule fails with that said, instead of
hanging the exploration.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, overload

from interlace._core.errors import StuckOutsideIO, UsageError
from interlace.invariants import Invariant

ResourceFactory = Callable[[], AbstractAsyncContextManager[Any]]
Reset = Callable[[Any], Awaitable[None]]


@dataclass(frozen=True)
class Scenario:
    """A scenario body, its name, the optional resource it runs with, and its invariants.

    ``invariants`` (``interlace.invariants``) are checked by the engine around
    every schedule's body, those that apply to ``database``: ``always`` before
    every decision, ``final`` after the body, ``sometimes`` recorded.
    """

    body: Callable[..., Awaitable[object]]
    name: str
    resource: ResourceFactory | None = None
    reset: Reset | None = None
    invariants: tuple[Invariant, ...] = ()
    database: str | None = None

    def sometimes_names(self) -> list[str]:
        """The sometimes invariants checked on this scenario's database, in declaration order."""
        return [
            i.name for i in self.invariants if i.kind == "sometimes" and i.applies_to(self.database)
        ]

    def resources(self) -> AbstractAsyncContextManager[Any]:
        """Enter once per exploration; yields what ``body`` and ``reset`` receive."""
        if self.resource is None:
            return _no_resource()
        return self.resource()

    async def reset_within(self, value: Any, seconds: float) -> None:
        """Run ``reset(value)`` before a schedule; ``StuckOutsideIO`` after ``seconds``."""
        if self.reset is not None:
            await reset_within(self.reset, value, seconds, self.name)

    def bind(self, value: Any) -> Callable[[], Awaitable[object]]:
        """The root of one schedule: ``body()`` or ``body(value)``."""
        if self.resource is None:
            return self.body
        return lambda: self.body(value)

    async def __call__(self, *args: Any) -> object:
        """Call the body directly, outside any simulation (e.g. as a plain test)."""
        return await self.body(*args)


async def reset_within(reset: Reset, value: Any, seconds: float, name: str) -> None:
    """Run ``reset(value)`` between schedules, giving up after ``seconds`` of wall time."""
    try:
        await asyncio.wait_for(reset(value), seconds)
    except TimeoutError:
        raise StuckOutsideIO(
            f"the reset of {name} did not finish within {seconds:g} s; it runs between "
            "schedules, outside the scheduler: does something left from the previous "
            "schedule (a transaction, a connection, a task) still hold what it waits for?"
        ) from None


@contextlib.asynccontextmanager
async def _no_resource() -> AsyncIterator[None]:
    yield None


def qualified_name(function: Callable[..., Any]) -> str:
    """``package.module:qualname``: what tokens name and ``interlace replay`` imports."""
    module = getattr(function, "__module__", None) or "__main__"
    qualname = getattr(function, "__qualname__", None) or getattr(function, "__name__", "?")
    return f"{module}:{qualname}"


@overload
def scenario(
    body: Callable[..., Awaitable[object]],
    *,
    resource: ResourceFactory | None = None,
    reset: Reset | None = None,
    name: str | None = None,
) -> Scenario: ...


@overload
def scenario(
    body: None = None,
    *,
    resource: ResourceFactory | None = None,
    reset: Reset | None = None,
    name: str | None = None,
) -> Callable[[Callable[..., Awaitable[object]]], Scenario]: ...


def scenario(
    body: Callable[..., Awaitable[object]] | None = None,
    *,
    resource: ResourceFactory | None = None,
    reset: Reset | None = None,
    name: str | None = None,
) -> Scenario | Callable[[Callable[..., Awaitable[object]]], Scenario]:
    """Declare a scenario, with ``@interlace.scenario`` or ``@interlace.scenario(resource=...)``.

    ``resource`` is a factory of an async context manager (for example an
    ``@asynccontextmanager`` function) entered once per exploration; its value
    is passed to the body and to ``reset``, which runs before every schedule.
    """

    def wrap(function: Callable[..., Awaitable[object]]) -> Scenario:
        if not inspect.iscoroutinefunction(function):
            raise UsageError(
                f"scenario {qualified_name(function)} must be an async function "
                "(async def ...): interlace runs it as the root task of each schedule"
            )
        if reset is not None and resource is None:
            raise UsageError(
                f"scenario {qualified_name(function)} has reset= but no resource=: "
                "reset receives the resource's value, so give both"
            )
        return Scenario(function, name or qualified_name(function), resource, reset)

    return wrap(body) if body is not None else wrap


ScenarioLike = Scenario | Callable[..., Awaitable[object]]


def as_scenario(target: ScenarioLike) -> Scenario:
    """Accept a ``Scenario`` or a bare ``async def`` taking no arguments."""
    if isinstance(target, Scenario):
        return target
    if callable(target):
        return scenario(target)
    raise UsageError(
        f"not a scenario: {target!r}; pass an async function or an @interlace.scenario"
    )
