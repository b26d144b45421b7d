"""``interlace.lowlevel``: the documented extension points are the core's own objects."""

from __future__ import annotations

import asyncio

import interlace._core
import interlace.lowlevel
from interlace.lowlevel import ControlledLoop, Director, Limits, ScheduleOutcome, Token
from interlace.strategies import RandomStrategy


def test_every_extension_point_is_the_core_object() -> None:
    for name in interlace.lowlevel.__all__:
        assert getattr(interlace.lowlevel, name) is getattr(interlace._core, name), name


def test_the_docstring_runs_one_schedule_by_hand() -> None:
    balance = {"alice": 100}

    async def withdraw(amount: int) -> None:
        current = balance["alice"]
        await asyncio.sleep(0)
        balance["alice"] = current - amount

    async def two_withdrawals() -> None:
        balance["alice"] = 100
        await asyncio.gather(withdraw(30), withdraw(50))

    async def one_schedule(seed: int) -> ScheduleOutcome:
        strategy = RandomStrategy()
        strategy.begin(seed)
        loop = asyncio.get_running_loop()
        assert isinstance(loop, ControlledLoop)
        return await Director(loop, strategy, Limits(max_steps=1_000)).run(two_withdrawals)

    with asyncio.Runner(loop_factory=ControlledLoop) as runner:
        outcome = runner.run(one_schedule(7))
    assert outcome.error is None
    assert outcome.trace.decisions[0].label.startswith("start ")
    assert {d.task for d in outcome.trace.decisions} == {"main", "T1", "T2"}
    expected = Token.from_trace("tests:two_withdrawals", "random", 7, outcome.trace)
    assert Token.decode(expected.encode()) == expected
