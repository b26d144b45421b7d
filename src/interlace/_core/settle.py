"""Settling: waiting in real time until no simulated I/O is in flight.

The settle rule: the director makes no decision while any simulated I/O is in
flight, i.e. until every live task is parked, done, or waits on something only
the simulation can end (another task, an asyncio primitive, the virtual clock;
see ``waits.py``). Because decisions are only made then, the outcome is a
function of the choices alone, even with real threads (aiosqlite) and real
sockets (asyncpg) underneath.

A statement waiting for a database lock would look like outside I/O forever.
An explainer attached to the loop (``OutsideWaits`` in ``waits.py``, e.g. the
PostgreSQL lock monitor) proves such waits blocked on locks of settled tasks,
so they count as settled; when nothing is in flight it may let one frozen
waiter whose lock was granted go on. The ``Settler`` asks it every few
milliseconds while tasks wait on outside I/O (``_EXAMINE_FAST`` at first,
then ``_EXAMINE_EVERY``), and reports tasks that wait longer than the stuck
bound.

Between looks the director sleeps on a wake-up future that every step,
park and end of a simulated task resolves (``poke``), so settling costs no
polling when no explainer is attached.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from interlace._core.clock import VirtualClock
from interlace._core.errors import StuckOutsideIO
from interlace._core.tasks import TaskRegistry
from interlace._core.waits import OutsideWaits, Wait, classify

if TYPE_CHECKING:
    from interlace._core.loop import ControlledLoop

_DRAIN_ROUNDS = 10_000
# Real-time polling of the outside-wait explainer while tasks wait on outside I/O.
# Most statements answer within a quarter millisecond, and a lock wait is visible to
# the server by then: ask every 0.25 ms for the first 2 ms, then every 2 ms.
_EXAMINE_FAST = 0.00025
_FAST_FOR = 0.002
_EXAMINE_EVERY = 0.002
# The selector rounds timeouts up to whole milliseconds: shorter waits poll instead.
_TIMER_RESOLUTION = 0.001

#: a task waiting on outside I/O, and that wait
OutsideWait = tuple[asyncio.Task[Any], Wait]


class Settler:
    """Waits until no simulated task of one schedule has I/O in flight."""

    def __init__(
        self,
        loop: ControlledLoop,
        registry: TaskRegistry,
        parked: Mapping[asyncio.Task[Any], object],
        *,
        clock: VirtualClock,
        stuck_after: float,
        explainer: OutsideWaits | None,
    ) -> None:
        self._loop = loop
        self._registry = registry
        self._parked = parked  # the director's parked steps, read only
        self._clock = clock
        self._stuck_after = stuck_after
        self.explainer = explainer
        # the last wait seen for each blocked task: a wake after a settled wait is a decision
        self._last_wait: dict[asyncio.Task[Any], Wait] = {}
        # invariant: a task's wait only changes when it takes a step, so a classified
        # wait stays valid until the task's next step is scheduled
        self._wait_cache: dict[asyncio.Task[Any], Wait] = {}
        self._waiter: asyncio.Future[bool] | None = None

    # ---- what tasks wait on -----------------------------------------------------

    def stepped(self, task: asyncio.Task[Any]) -> None:
        """``task``'s next step is being scheduled: its classified wait is stale."""
        self._wait_cache.pop(task, None)

    def take_last_wait(self, task: asyncio.Task[Any]) -> Wait | None:
        """The last wait seen for ``task`` (forgotten now: its wake-up is being labelled)."""
        return self._last_wait.pop(task, None)

    def wait_of(self, task: asyncio.Task[Any]) -> Wait:
        """What ``task`` waits on, with outside waits explained when an explainer can."""
        wait = self._classify(task)
        if wait.kind == "outside" and self.explainer is not None:
            return self.explainer.explain(task, wait)
        return wait

    def in_flight(self) -> list[OutsideWait]:
        """The live tasks, neither parked nor settled, that wait on outside I/O."""
        waits = []
        for task in self._registry.tasks:
            if task.done() or task in self._parked:
                continue
            wait = self.wait_of(task)
            # A lock wait ends with the statement's reply: like any outside wake, that
            # continues the statement; it is not a decision point of its own.
            self._last_wait[task] = wait if wait.kind != "dblock" else self._classify(task)
            if not wait.settled:
                waits.append((task, wait))
        return waits

    def _classify(self, task: asyncio.Task[Any]) -> Wait:
        wait = self._wait_cache.get(task)
        if wait is None:
            names = self._registry.names
            wait = classify(task, self._registry.tasks, names.__getitem__, self._clock.holds_future)
            if wait.kind != "running":
                self._wait_cache[task] = wait
        return wait

    # ---- settling -------------------------------------------------------------

    async def settle(self) -> None:
        """Return once no simulated task has I/O in flight (see the module docstring)."""
        while True:
            await self.drain()
            outside = self.in_flight()
            if outside:
                await self._wait_out(outside)
            # Quiet. A frozen lock waiter whose lock was granted may go on now, alone,
            # so waiters released by one COMMIT never race; then settle again.
            if self.explainer is None or not await self.explainer.release_granted():
                return

    async def _wait_out(self, outside: list[OutsideWait]) -> None:
        """Wait until no task waits on outside I/O; report the tasks that wait too long."""
        started = time.monotonic()
        # one real-time timer per slow settle wakes the director to report a stuck task
        alarm = self._loop.call_later(self._stuck_after, self.poke)
        # without an explainer, only a task's own progress can end the wait
        examine_at = None if self.explainer is None else started + _EXAMINE_FAST
        try:
            while outside:
                await self._wait_until_change_or(examine_at)
                await self.drain()
                outside = self.in_flight()
                now = time.monotonic()
                if outside and examine_at is not None and now >= examine_at:
                    await self._examine(outside)
                    await self.drain()
                    outside = self.in_flight()
                    fast = now - started < _FAST_FOR
                    examine_at = time.monotonic() + (_EXAMINE_FAST if fast else _EXAMINE_EVERY)
                waited = time.monotonic() - started
                if outside and waited > self._stuck_after:
                    raise self._stuck(outside, waited)
        finally:
            alarm.cancel()

    def _stuck(self, outside: list[OutsideWait], waited: float) -> StuckOutsideIO:
        names = self._registry.names
        waits = [(names[task], wait.describe()) for task, wait in outside]
        best_effort = self.explainer.best_effort if self.explainer is not None else None
        return StuckOutsideIO.of(waits, waited, self._stuck_after, best_effort)

    async def _wait_until_change_or(self, deadline: float | None) -> None:
        """Sleep until a simulated task steps, parks or ends, or until ``deadline``."""
        if deadline is None:
            await self.wait_for_change()
            return
        remaining = deadline - time.monotonic()
        if remaining < _TIMER_RESOLUTION:
            await asyncio.sleep(0)  # one turn of the loop: I/O is polled, nothing sleeps
        else:
            await self.wait_for_change(remaining)

    async def _examine(self, outside: list[OutsideWait]) -> None:
        """Ask the explainer to prove tasks waiting on outside I/O blocked by settled ones."""
        assert self.explainer is not None
        waiting = [task for task, _wait in outside]
        in_flight = set(waiting)
        # Settled tasks cannot progress before the next decision, so this stays true
        # while the explainer awaits the database's answer.
        settled = [task for task in self._registry.tasks if task not in in_flight]
        # a task that took a step since this snapshot no longer waits where it did
        before = {task: self._wait_cache.get(task) for task in waiting}

        def still_waiting(task: asyncio.Task[Any]) -> bool:
            wait = self._wait_cache.get(task)
            return wait is not None and wait is before.get(task) and task not in self._parked

        await self.explainer.examine(waiting, settled, still_waiting)

    async def drain(self) -> None:
        """Let already-queued callbacks run, so wake-ups in flight land in ``parked``.

        Some libraries queue a callback again on every turn of the loop until a task
        reacts: anyio delivers a cancellation to a task parked by the director that
        way. When a turn leaves exactly the callbacks it found, nothing more will
        settle by waiting, so the drain ends there instead of spinning.
        """
        previous: list[object] | None = None
        for _ in range(_DRAIN_ROUNDS):
            pending = self._loop.ready_callbacks()
            if not pending or pending == previous:
                return
            previous = pending
            await asyncio.sleep(0)

    # ---- waking the director ----------------------------------------------------

    async def wait_for_change(self, timeout: float | None = None) -> None:
        """Sleep until a simulated task steps, parks or ends (or ``timeout`` passes)."""
        waiter = self._loop.create_future()
        self._waiter = waiter
        timer = self._loop.call_later(timeout, _resolve, waiter) if timeout is not None else None
        try:
            await waiter
        finally:
            if timer is not None:
                timer.cancel()
            self._waiter = None

    def poke(self) -> None:
        """Something changed: wake a ``wait_for_change`` that is sleeping."""
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(True)


def _resolve(waiter: asyncio.Future[bool]) -> None:
    if not waiter.done():
        waiter.set_result(False)
