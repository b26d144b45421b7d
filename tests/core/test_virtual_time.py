"""Virtual time: sleeps, timeouts and wait_for take no wall time and fire in deadline order."""

from __future__ import annotations

import asyncio
import time

import pytest

import interlace

fired: list[tuple[str, float]] = []


@interlace.scenario
async def hour_long_sleeps() -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()

    async def sleeper(name: str, seconds: float) -> None:
        await asyncio.sleep(seconds)
        fired.append((name, loop.time() - started))

    await asyncio.gather(sleeper("hour", 3600), sleeper("minute", 60), sleeper("second", 1))


def test_an_hour_of_sleep_takes_under_a_second_and_fires_in_deadline_order() -> None:
    fired.clear()
    started = time.monotonic()
    report = interlace.explore(hour_long_sleeps, schedules=20, seed=0)
    elapsed = time.monotonic() - started
    assert report.failure is None
    # 20 real hours would be 72,000 s; the bound is loose on purpose (a shared machine):
    # it fails only when sleeps are real, never when the machine is merely slow
    assert elapsed < 600, f"20 schedules of hour-long sleeps took {elapsed:.2f} s of wall time"
    for index in range(0, len(fired), 3):
        assert fired[index : index + 3] == [("second", 1.0), ("minute", 60.0), ("hour", 3600.0)]


timeouts: list[str] = []


@interlace.scenario
async def timeouts_fire_deterministically() -> None:
    event = asyncio.Event()

    async def waits_too_long() -> None:
        try:
            await asyncio.wait_for(event.wait(), timeout=5)
        except TimeoutError:
            timeouts.append("wait_for")

    async def times_out() -> None:
        try:
            async with asyncio.timeout(2):
                await asyncio.sleep(10)
        except TimeoutError:
            timeouts.append("timeout")

    async def sets_late() -> None:
        await asyncio.sleep(30)
        event.set()

    await asyncio.gather(waits_too_long(), times_out(), sets_late())


def test_wait_for_and_timeout_expire_in_virtual_time() -> None:
    timeouts.clear()
    report = interlace.explore(timeouts_fire_deterministically, schedules=30, seed=1)
    assert report.failure is None, report.failure.describe()
    assert timeouts == ["timeout", "wait_for"] * 30


def test_loop_time_is_real_outside_a_schedule() -> None:
    async def main() -> tuple[float, float]:
        loop = asyncio.get_running_loop()
        before = loop.time()
        await asyncio.sleep(0.01)
        return before, loop.time()

    with asyncio.Runner(loop_factory=interlace.ControlledLoop) as runner:
        before, after = runner.run(main())
    assert after - before >= 0.01


ticks: list[float] = []


@interlace.scenario
async def simultaneous_deadlines() -> None:
    order: list[str] = []

    async def wake(name: str) -> None:
        await asyncio.sleep(5)
        order.append(name)

    await asyncio.gather(wake("a"), wake("b"), wake("c"))
    ticks.append(asyncio.get_running_loop().time())
    assert order != ["b", "a", "c"], "this order is reachable: equal deadlines are all offered"


@pytest.mark.parametrize("strategy", ["random", "pct"])
def test_equal_deadlines_wake_together_so_the_strategy_orders_them(strategy: str) -> None:
    report = interlace.explore(simultaneous_deadlines, strategy=strategy, schedules=200, seed=0)
    assert report.failure is not None
    assert "this order is reachable" in str(report.failure.exception)
