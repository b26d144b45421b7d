"""Failures the scheduler reports itself: they name the tasks and where each waits."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

import interlace
from interlace import Deadlock, StepBoundExceeded, StuckOutsideIO


@interlace.scenario
async def forgotten_event() -> None:
    ready = asyncio.Event()

    async def waiter() -> None:
        await ready.wait()

    await asyncio.gather(waiter(), waiter())


def test_waiting_forever_on_an_event_is_a_deadlock_naming_each_task() -> None:
    report = interlace.explore(forgotten_event, schedules=5)
    assert report.failure is not None
    assert report.failure.kind == "scheduler"
    message = str(report.failure.exception)
    assert isinstance(report.failure.exception, Deadlock)
    assert "T1 waits in Event.wait at forgotten_event.<locals>.waiter (test_scheduler" in message
    assert "T2 waits in Event.wait at forgotten_event.<locals>.waiter" in message


@interlace.scenario
async def spinner() -> None:
    flag = {"done": False}

    async def spin() -> None:
        while not flag["done"]:
            await asyncio.sleep(0)

    await spin()


def test_a_spin_loop_exceeds_the_step_bound() -> None:
    report = interlace.explore(spinner, schedules=1, max_steps=50)
    assert report.failure is not None
    assert isinstance(report.failure.exception, StepBoundExceeded)
    message = str(report.failure.exception)
    assert message.startswith(
        "step bound exceeded: 50 decisions and the schedule has not ended "
        "(possible livelock or unfair schedule); runnable: main at 'yield in "
    )
    assert len(report.failure.trace.decisions) == 50


release = threading.Event()


@interlace.scenario
async def stuck_in_a_thread() -> None:
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, release.wait, 5)


def test_waiting_on_outside_io_longer_than_the_bound_is_stuck() -> None:
    release.clear()
    # free the worker thread soon after the bound, so closing the loop does not wait on it
    unblock = threading.Timer(0.6, release.set)
    unblock.start()
    try:
        report = interlace.explore(stuck_in_a_thread, schedules=1, stuck_after=0.3)
    finally:
        unblock.cancel()
        release.set()
    # in the first schedule, before anything worked: a setup error, not a finding
    assert report.failure is None and report.problem is not None
    assert report.outcome is interlace.Outcome.USAGE_ERROR
    assert isinstance(report.problem.exception, StuckOutsideIO)
    message = str(report.problem.exception)
    assert message.startswith("stuck outside I/O: waited 0.3 s (bound: stuck_after=0.3 s)")
    assert "main waits on outside I/O" in message
    assert "stuck_in_a_thread (test_scheduler_failures.py:" in message


@interlace.scenario
async def unretrieved_child_error() -> None:
    async def explode() -> None:
        raise ValueError("boom in a task nobody awaited")

    asyncio.get_running_loop().create_task(explode())
    await asyncio.sleep(1)


def test_an_exception_nobody_retrieved_fails_the_schedule() -> None:
    report = interlace.explore(unretrieved_child_error, schedules=1)
    assert report.failure is not None
    assert isinstance(report.failure.exception, ValueError)
    assert report.failure.kind == "error"


@interlace.scenario
async def leaves_a_task_behind() -> None:
    async def forever() -> None:
        await asyncio.Event().wait()

    asyncio.get_running_loop().create_task(forever())
    await asyncio.sleep(0)


def test_tasks_left_behind_are_cancelled_like_asyncio_run_does() -> None:
    records: list[interlace.ScheduleRecord] = []
    report = interlace.explore(leaves_a_task_behind, schedules=10, on_schedule=records.append)
    assert report.failure is None, report.failure.describe()
    # the leftover is cancelled where it waits, or before its first step ran
    last = {(r.trace.decisions[-1].task, r.trace.decisions[-1].label) for r in records}
    assert last <= {
        ("T1", "cancelled in leaves_a_task_behind.<locals>.forever"),
        ("T1", "start leaves_a_task_behind.<locals>.forever"),
    }
    assert ("T1", "cancelled in leaves_a_task_behind.<locals>.forever") in last


CLEANED_UP: list[bool] = []


@interlace.scenario
async def leaves_shielded_cleanup_behind() -> None:
    async def clean_up() -> None:
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        CLEANED_UP.append(True)

    async def request() -> None:
        # the way SQLAlchemy closes a connection: the close must not be interrupted
        await asyncio.shield(asyncio.get_running_loop().create_task(clean_up()))

    asyncio.get_running_loop().create_task(request())
    await asyncio.sleep(0)


def test_shielded_work_left_behind_runs_to_its_end() -> None:
    # Resources outlive a schedule: cancelling a shielded close would leak a pooled
    # connection into the next schedule. The unshielded request is cancelled as before.
    CLEANED_UP.clear()
    records: list[interlace.ScheduleRecord] = []
    report = interlace.explore(
        leaves_shielded_cleanup_behind, schedules=30, on_schedule=records.append
    )
    assert report.failure is None, report.failure.describe()
    started_cleanup = [
        r
        for r in records
        if any(d.label.startswith("start ") and "clean_up" in d.label for d in r.trace.decisions)
    ]
    assert started_cleanup, "no schedule got as far as starting the cleanup"
    assert len(CLEANED_UP) == len(started_cleanup)


def test_scheduler_failures_replay_from_their_token() -> None:
    report = interlace.explore(forgotten_event, schedules=5)
    assert report.failure is not None
    with pytest.raises(Deadlock) as replayed:
        interlace.replay(forgotten_event, report.failure.token)
    assert str(replayed.value) == str(report.failure.exception)


@asynccontextmanager
async def a_resource() -> AsyncIterator[asyncio.Event]:
    yield asyncio.Event()


async def reset_that_never_ends(never_set: asyncio.Event) -> None:
    await never_set.wait()  # e.g. a lock held since the previous schedule


@interlace.scenario(resource=a_resource, reset=reset_that_never_ends)
async def stuck_reset(_event: asyncio.Event) -> None:
    await asyncio.sleep(0)


def test_a_reset_that_does_not_finish_fails_with_that_said() -> None:
    report = interlace.explore(stuck_reset, schedules=3, stuck_after=0.2)
    # a setup error: never a finding, no token, not shrunk
    assert report.failure is None and report.problem is not None
    assert report.outcome is interlace.Outcome.USAGE_ERROR
    assert isinstance(report.problem.exception, StuckOutsideIO)
    assert report.problem.token is None
    assert report.problem.message.startswith(
        f"the reset of {stuck_reset.name} did not finish within 0.2 s; it runs between "
        "schedules, outside the scheduler"
    )
