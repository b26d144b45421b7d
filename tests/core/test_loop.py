"""The controlled loop: adoption, names, task factories, the public hooks."""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager

import pytest

import interlace
from interlace import ScheduleRecord, UsageError

names: list[list[str]] = []


@interlace.scenario
async def family() -> None:
    async def grandchild() -> None:
        await asyncio.sleep(0)

    async def child() -> None:
        own = asyncio.current_task()
        assert own is not None
        names.append([own.get_name()])
        await asyncio.gather(grandchild(), grandchild())

    async with asyncio.TaskGroup() as group:
        group.create_task(child())
        group.create_task(child(), name="custom")


def test_children_get_deterministic_names_whatever_the_global_task_counter() -> None:
    records: list[ScheduleRecord] = []
    interlace.explore(family, schedules=3, seed=0, on_schedule=records.append)
    for _ in range(5):  # bump asyncio's global Task-N counter between runs
        asyncio.run(asyncio.sleep(0))
    interlace.explore(family, schedules=3, seed=0, on_schedule=records.append)
    tasks = {frozenset(r.trace.tasks()) for r in records}
    # trace names are structural, even for a task the app named "custom"
    assert tasks == {frozenset({"main", "T1", "T2", "T1.1", "T1.2", "T2.1", "T2.2"})}
    assert [r.trace for r in records[:3]] == [r.trace for r in records[3:]]
    assert ["custom"] in names, "the app keeps the name it gave its task"
    assert ["T1"] in names, "an unnamed task gets its structural name instead of Task-N"


def test_task_factories_are_refused_with_the_reason() -> None:
    async def main() -> None:
        asyncio.get_running_loop().set_task_factory(lambda loop, coro: asyncio.Task(coro))

    with (
        asyncio.Runner(loop_factory=interlace.ControlledLoop) as runner,
        pytest.raises(UsageError, match="does not support task factories: an eager task factory"),
    ):
        runner.run(main())


def test_point_is_a_no_op_outside_a_simulation() -> None:
    async def main() -> int:
        await interlace.point("anything")
        interlace.always(lambda: None)
        return 1

    assert asyncio.run(main()) == 1


order: list[str] = []


@interlace.scenario
async def explicit_points() -> None:
    shared = {"cache": 0}

    async def writer(value: int) -> None:
        seen = shared["cache"]
        await interlace.point("read cache")
        shared["cache"] = seen + value

    await asyncio.gather(writer(1), writer(2))
    assert shared["cache"] == 3, f"lost write: cache is {shared['cache']}"


def test_explicit_points_are_decisions_with_their_label() -> None:
    report = interlace.explore(explicit_points, schedules=50, seed=0)
    assert report.failure is not None
    assert "read cache" in [d.label for d in report.failure.trace.decisions]


def test_explore_refuses_to_run_inside_a_running_loop() -> None:
    async def main() -> None:
        interlace.explore(explicit_points, schedules=1)

    with pytest.raises(UsageError, match="synchronous and were called inside a running event"):
        asyncio.run(main())


def test_explore_async_needs_the_controlled_loop() -> None:
    async def main() -> None:
        await interlace.explore_async(explicit_points, schedules=1)

    with pytest.raises(UsageError, match="interlace needs its ControlledLoop, but this code"):
        asyncio.run(main())


def test_unknown_strategy_lists_the_known_ones() -> None:
    with pytest.raises(UsageError, match="unknown strategy 'dfz': choose one of random, pct"):
        interlace.explore(explicit_points, strategy="dfz")


def test_resource_is_made_once_and_reset_before_each_schedule() -> None:
    events: list[str] = []

    @asynccontextmanager
    async def resource():  # type: ignore[no-untyped-def]
        events.append("setup")
        yield "value"
        events.append("teardown")

    async def reset(value: str) -> None:
        events.append(f"reset {value}")

    async def body(value: str) -> None:
        events.append(f"run {value}")

    scenario = interlace.scenario(body, resource=resource, reset=reset)
    interlace.explore(scenario, schedules=3)
    assert events == ["setup", *["reset value", "run value"] * 3, "teardown"]
