"""``Schedule``: what each drawn choice means, driven by the real scheduler."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import find
from known_bugs import lost_update

import interlace
from interlace.hypothesis import Schedule, schedules, session


async def three_requests() -> None:
    """Three tasks that each stop twice, so every decision has a choice."""

    async def request() -> None:
        await interlace.point("read")
        await interlace.point("write")

    await asyncio.gather(request(), request(), request())


def run(schedule: Schedule) -> list[str]:
    """The task that ran at each decision where more than one could."""
    with session() as sim:
        trace = sim.run(three_requests, schedule)
    return [d.task for d in trace.decisions if len(d.runnable) > 1]


def test_the_empty_schedule_never_preempts() -> None:
    # once T3 is the only task left, its decisions have no choice
    assert run(Schedule([])) == ["T1", "T1", "T1", "T2", "T2", "T2"]


def test_a_choice_k_runs_the_kth_other_runnable_task() -> None:
    # second choice: T1 could continue; 1 and 2 name T2 and T3, 3 wraps around to T2
    assert run(Schedule([0, 1]))[:3] == ["T1", "T2", "T2"]
    assert run(Schedule([0, 2]))[:3] == ["T1", "T3", "T3"]
    assert run(Schedule([0, 3]))[:3] == ["T1", "T2", "T2"]


def test_choices_count_only_decisions_with_a_choice() -> None:
    # decision 0 (main starts alone) consumes nothing: the first choice is among T1..T3
    assert run(Schedule([2]))[:2] == ["T3", "T3"]


def test_the_trace_and_token_of_the_last_run_are_kept() -> None:
    schedule = Schedule([0, 2, 1])
    with session() as sim:
        first = sim.run(three_requests, schedule)
        token = schedule.token
        second = sim.run(three_requests, schedule)
    assert schedule.trace == first == second, "a schedule is a function of its choices"
    assert schedule.token == token
    assert token is not None and token.startswith(
        "interlace:v1:test_schedule_strategy:three_requests:hypothesis:0:"
    )
    assert first.preemptions == 2


def test_the_token_of_a_failing_scenario_replays_with_interlace_replay() -> None:
    schedule = Schedule([0, 1])
    with session() as sim, pytest.raises(AssertionError, match="lost update") as failure:
        sim.run(lost_update, schedule)
    assert schedule.token is not None
    assert f"interlace token: {schedule.token}" in (failure.value.__notes__ or [])
    with pytest.raises(AssertionError, match="lost update"):
        interlace.replay(lost_update, schedule.token)
    assert interlace.replay_report(lost_update, schedule.token).trace == schedule.trace


def test_repr_is_compact_and_evaluates_back() -> None:
    schedule = Schedule([0, 1, 0, 2, 0, 0])
    assert repr(schedule) == "Schedule([0, 1, 0, 2])"
    assert eval(repr(schedule), {"Schedule": Schedule}).choices == schedule.choices


def test_negative_choices_are_refused() -> None:
    with pytest.raises(interlace.UsageError, match="non-negative"):
        Schedule([0, -1])


def test_the_simplest_schedule_is_the_non_preemptive_one() -> None:
    assert find(schedules(), lambda schedule: True).choices == ()
    # the smallest schedule with a choice at the second decision
    assert find(schedules(), lambda s: len(s.choices) > 1 and s.choices[1] > 0).choices == (0, 1)
