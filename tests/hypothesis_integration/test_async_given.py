"""Async ``@given`` tests run on a ControlledLoop, one loop per test kept across examples."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from known_bugs import reset_accounts, sqlite_accounts
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

import interlace
from interlace.hypothesis import Schedule, on_controlled_loop, run_schedule, schedules, session

QUICK = settings(max_examples=25, deadline=None, derandomize=True, database=None)


async def visits(requests: int) -> None:
    """Each request reads the counter, does other work, and writes it back plus one."""
    counter = {"visits": 0}

    async def visit() -> None:
        seen = counter["visits"]
        await interlace.point("render page")
        counter["visits"] = seen + 1

    await asyncio.gather(*(visit() for _ in range(requests)))
    assert counter["visits"] == requests, f"lost visit: {counter['visits']} != {requests}"


async def locked_visits(requests: int) -> None:
    """The same requests under one asyncio.Lock: no schedule loses a visit."""
    counter = {"visits": 0}
    lock = asyncio.Lock()

    async def visit() -> None:
        async with lock:
            seen = counter["visits"]
            await interlace.point("render page")
            counter["visits"] = seen + 1

    await asyncio.gather(*(visit() for _ in range(requests)))
    assert counter["visits"] == requests, f"lost visit: {counter['visits']} != {requests}"


loops_seen: list[asyncio.AbstractEventLoop] = []


@QUICK
@given(requests=st.integers(1, 4), schedule=schedules())
@on_controlled_loop
async def test_async_given_body_runs_on_the_controlled_loop(
    requests: int, schedule: Schedule
) -> None:
    loop = asyncio.get_running_loop()
    assert isinstance(loop, interlace.ControlledLoop)
    assert loop.director is None, "the test body itself runs outside any schedule"
    loops_seen.append(loop)
    assert all(seen is loop for seen in loops_seen), "one loop for every example of the test"
    trace = await run_schedule(locked_visits, schedule, requests)
    assert trace.tasks()[: requests + 1] == ["main", *(f"T{i}" for i in range(1, requests + 1))]


def test_async_given_finds_and_shrinks_a_lost_visit() -> None:
    failing: list[tuple[int, Schedule]] = []

    @settings(QUICK, max_examples=200)
    @given(requests=st.integers(1, 4), schedule=schedules())
    @on_controlled_loop
    async def check(requests: int, schedule: Schedule) -> None:
        try:
            await run_schedule(visits, schedule, requests)
        except AssertionError:
            failing.append((requests, schedule))
            raise

    with pytest.raises(AssertionError, match="lost visit"):
        check()
    requests, schedule = failing[-1]
    assert requests == 2
    assert schedule.trace is not None
    assert schedule.trace.preemptions == 1


def test_a_plugin_can_route_an_async_given_test_through_on_controlled_loop() -> None:
    """What a pytest plugin does: wrap hypothesis' ``inner_test`` of an async test."""
    loops: list[asyncio.AbstractEventLoop] = []

    @QUICK
    @given(number=st.integers())
    async def check(number: int) -> None:
        loops.append(asyncio.get_running_loop())

    check.hypothesis.inner_test = on_controlled_loop(check.hypothesis.inner_test)  # type: ignore[attr-defined]
    check()
    assert len(loops) == 25
    assert isinstance(loops[0], interlace.ControlledLoop)
    assert all(loop is loops[0] for loop in loops)


def test_run_schedule_outside_a_controlled_loop_says_what_to_use() -> None:
    with pytest.raises(interlace.UsageError, match="needs a running ControlledLoop"):
        asyncio.run(run_schedule(visits, Schedule([]), 2))


#: the loop each resource was made on
resource_loops: list[asyncio.AbstractEventLoop] = []


@asynccontextmanager
async def accounts() -> AsyncIterator[AsyncEngine]:
    resource_loops.append(asyncio.get_running_loop())
    async with sqlite_accounts() as engine:
        yield engine


async def withdraw_once(engine: AsyncEngine, amount: int) -> None:
    async with engine.begin() as connection:
        await connection.execute(
            text("UPDATE accounts SET balance = balance - :amount"), {"amount": amount}
        )


def test_an_async_body_on_the_session_loop_uses_the_session_resource() -> None:
    """``sim.on_loop``: async examples share the session's loop and its engine."""
    resource_loops.clear()
    balances: list[tuple[int, int]] = []
    with session(resource=accounts, reset=reset_accounts) as sim:

        @settings(QUICK, max_examples=15)
        @given(amount=st.integers(1, 100), schedule=schedules())
        @sim.on_loop
        async def check(amount: int, schedule: Schedule) -> None:
            assert asyncio.get_running_loop() is resource_loops[0]
            await sim.run_async(withdraw_once, schedule, amount)
            async with sim.resource.connect() as connection:
                result = await connection.execute(text("SELECT balance FROM accounts"))
                balances.append((amount, int(result.scalar_one())))

        check()
    assert len(resource_loops) == 1, "one engine for every example"
    assert len(balances) == 15
    assert all(balance == 100 - amount for amount, balance in balances), "reset before each"


def test_a_synchronous_body_is_refused() -> None:
    def check(number: int) -> None:
        return None

    with pytest.raises(interlace.UsageError, match="is not an async function"):
        on_controlled_loop(check)  # type: ignore[arg-type]
