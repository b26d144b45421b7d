"""The director's outside-wait explainer hook, without a database.

A ``threading.Lock`` taken in an executor stands in for a database lock: to
the director, a task waiting for it waits on outside I/O. A small explainer
that knows who holds the lock proves the wait blocked when the holder is
settled, as the PostgreSQL lock monitor does with ``pg_blocking_pids``.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Collection, Sequence
from typing import Any

import pytest
from postgres_scenarios import Scripted

import interlace
from interlace import Deadlock, StuckOutsideIO, UsageError
from interlace.lowlevel import Wait, attach_outside_waits, detach_outside_waits


class ThreadLockExplainer:
    """Proves tasks blocked on ``lock`` while its holder is settled."""

    def __init__(self, best_effort: str | None = None) -> None:
        self._best_effort = best_effort
        self.lock = threading.Lock()
        self.holder: asyncio.Task[Any] | None = None
        self.waiting: set[asyncio.Task[Any]] = set()
        self.proven: set[asyncio.Task[Any]] = set()
        self.calls: list[str] = []
        self._name_of: Callable[[asyncio.Task[Any]], str] = asyncio.Task.get_name

    @property
    def best_effort(self) -> str | None:
        return self._best_effort

    def begin(
        self,
        name_of: Callable[[asyncio.Task[Any]], str],
        order_of: Callable[[asyncio.Task[Any]], int],
    ) -> None:
        self.calls.append("begin")
        self._name_of = name_of
        self.lock = threading.Lock()  # a thread of a failed schedule may still hold the old
        self.holder = None
        self.waiting.clear()

    def acquire_for(self, lock: threading.Lock, task: asyncio.Task[Any]) -> None:
        """In the executor's thread: take the lock, and say who holds it (as a server would)."""
        lock.acquire()
        if lock is self.lock:  # not a thread left over from an earlier schedule
            self.holder = task

    def explain(self, task: asyncio.Task[Any], wait: Wait) -> Wait:
        if task in self.proven and self.holder is not None:
            return Wait("dblock", f"the thread lock held by {self._name_of(self.holder)}", "")
        return wait

    async def examine(
        self,
        waiting: Sequence[asyncio.Task[Any]],
        settled: Collection[asyncio.Task[Any]],
        still_waiting: Callable[[asyncio.Task[Any]], bool],
    ) -> None:
        self.calls.append("examine")
        await asyncio.sleep(0)  # an explainer may await (the monitor asks the server)
        for task in waiting:
            if task in self.waiting and self.holder in settled and still_waiting(task):
                self.proven.add(task)

    def after_decision(self, task: asyncio.Task[Any]) -> None:
        self.proven.clear()  # the released task may release the lock

    async def release_granted(self) -> bool:
        return False

    async def break_cycle(self) -> bool:
        self.calls.append("break_cycle")
        return False

    def end(self) -> None:
        self.calls.append("end")
        self.proven.clear()
        if self.lock.locked():
            self.lock.release()  # like resuming frozen backends: the waiting thread ends


async def _take(explainer: ThreadLockExplainer) -> None:
    """Take the lock in an executor's thread: to the director, outside I/O."""
    task = asyncio.current_task()
    assert task is not None
    explainer.waiting.add(task)
    await asyncio.get_running_loop().run_in_executor(
        None, explainer.acquire_for, explainer.lock, task
    )
    explainer.waiting.discard(task)


def _give_back(explainer: ThreadLockExplainer) -> None:
    explainer.holder = None
    explainer.lock.release()


async def _hold(explainer: ThreadLockExplainer, until: asyncio.Event | None) -> None:
    await _take(explainer)
    await interlace.point("holding the lock")
    if until is not None:
        await until.wait()
    _give_back(explainer)


async def _wait_for_lock(explainer: ThreadLockExplainer, then: asyncio.Event | None) -> None:
    await interlace.point("about to take the lock")
    await _take(explainer)
    _give_back(explainer)
    if then is not None:
        then.set()


def _explore(
    explainer: ThreadLockExplainer | None, body: Callable[[], Any], **options: Any
) -> interlace.ExploreReport:
    async def run() -> interlace.ExploreReport:
        loop = asyncio.get_running_loop()
        if explainer is not None:
            attach_outside_waits(loop, explainer)
        try:
            return await interlace.explore_async(interlace.scenario(body), **options)
        finally:
            if explainer is not None:
                detach_outside_waits(loop, explainer)

    return asyncio.Runner(loop_factory=interlace.ControlledLoop).run(run())


def test_a_proven_wait_lets_the_holder_run_and_release() -> None:
    explainer = ThreadLockExplainer()

    async def two_tasks() -> None:
        await asyncio.gather(_hold(explainer, None), _wait_for_lock(explainer, None))

    report = _explore(explainer, two_tasks, schedules=30, seed=1)
    assert report.passed, report.failure.describe() if report.failure else ""
    assert "examine" in explainer.calls
    assert explainer.calls.count("begin") == explainer.calls.count("end") == 30


def test_the_report_says_when_determinism_is_best_effort() -> None:
    async def two_tasks() -> None:
        await asyncio.gather(_hold(explainer, None), _wait_for_lock(explainer, None))

    explainer = ThreadLockExplainer()
    exact = _explore(explainer, two_tasks, schedules=3, seed=1)
    assert exact.best_effort is None
    assert "best effort" not in exact.summary()

    explainer = ThreadLockExplainer(best_effort="lock waits cannot be frozen here")
    report = _explore(explainer, two_tasks, schedules=3, seed=1)
    assert report.best_effort == "lock waits cannot be frozen here"
    assert report.summary().endswith(
        "; determinism is best effort: lock waits cannot be frozen here"
    )


def test_without_an_explainer_the_same_wait_is_stuck() -> None:
    explainer = ThreadLockExplainer()

    async def two_tasks() -> None:
        explainer.lock = threading.Lock()  # a fresh one: no explainer begins schedules here
        try:
            await asyncio.gather(_hold(explainer, None), _wait_for_lock(explainer, None))
        finally:
            if explainer.lock.locked():
                explainer.lock.release()  # the executor's thread must end

    # T1 takes the lock and parks, T2 waits for it in the executor
    report = _explore(
        None,
        two_tasks,
        strategy=Scripted(["main", "T1", "T2", "T2"]),
        schedules=1,
        stuck_after=0.3,
    )
    # stuck in the first schedule: a setup error, never a finding, never shrunk
    assert report.failure is None and report.problem is not None
    assert report.outcome is interlace.Outcome.USAGE_ERROR
    assert isinstance(report.problem.exception, StuckOutsideIO)
    assert "waits on outside I/O (Future) at _take" in report.problem.message


def test_a_proven_wait_appears_in_the_deadlock_report_and_end_comes_last() -> None:
    explainer = ThreadLockExplainer()

    async def mixed_deadlock() -> None:
        took_it = asyncio.Event()
        await asyncio.gather(_hold(explainer, took_it), _wait_for_lock(explainer, took_it))

    report = _explore(explainer, mixed_deadlock, schedules=30, seed=2)
    assert report.failure is not None
    assert isinstance(report.failure.exception, Deadlock)
    message = str(report.failure.exception)
    assert "T1 waits in Event.wait" in message
    assert "T2 waits for the thread lock held by T1" in message
    assert "break_cycle" in explainer.calls
    # end() released the lock, so the waiting thread could finish: without that, the
    # runner's executor shutdown would have waited for it forever
    assert explainer.calls[-1] == "end"


def test_one_explainer_per_loop() -> None:
    async def attach_two() -> None:
        loop = asyncio.get_running_loop()
        attach_outside_waits(loop, ThreadLockExplainer())
        attach_outside_waits(loop, ThreadLockExplainer())

    with pytest.raises(UsageError, match="already attached to this loop"):
        asyncio.Runner(loop_factory=interlace.ControlledLoop).run(attach_two())
