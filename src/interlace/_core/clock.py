"""The virtual clock: timers of simulated tasks, fired by the director, not by the OS.

Simulated code sees ``loop.time()`` as virtual seconds since the schedule
began. Its timers (``sleep``, ``wait_for``, ``asyncio.timeout``, a driver's
query timeout) go into this heap instead of the loop's. Time only moves when
the director says so: when no task can run and nothing is in flight, it jumps
to the earliest deadline. A task sleeping an hour therefore costs no wall
time, and timers fire in deadline order (ties in the order they were set),
whatever the machine's load.
"""

from __future__ import annotations

import asyncio
import heapq
from collections.abc import Callable
from contextvars import Context
from typing import Any


class VirtualClock:
    """Virtual time and the heap of timers set by simulated code."""

    def __init__(self) -> None:
        self.now = 0.0
        # invariant: heap of (when, sequence, handle); sequence breaks ties in set order
        self._heap: list[tuple[float, int, asyncio.TimerHandle]] = []
        self._sequence = 0

    def schedule(
        self,
        when: float,
        callback: Callable[..., object],
        args: tuple[Any, ...],
        loop: asyncio.AbstractEventLoop,
        context: Context | None,
    ) -> asyncio.TimerHandle:
        handle = asyncio.TimerHandle(when, callback, args, loop, context)
        heapq.heappush(self._heap, (when, self._sequence, handle))
        self._sequence += 1
        return handle

    def _drop_cancelled(self) -> None:
        while self._heap and self._heap[0][2].cancelled():
            heapq.heappop(self._heap)

    def next_deadline(self) -> float | None:
        """The earliest pending deadline, if any timer is pending."""
        self._drop_cancelled()
        return self._heap[0][0] if self._heap else None

    def has_due(self) -> bool:
        deadline = self.next_deadline()
        return deadline is not None and deadline <= self.now

    def pop_due(self) -> list[asyncio.TimerHandle]:
        """Remove and return the timers due now, in deadline then set order."""
        due: list[asyncio.TimerHandle] = []
        while True:
            self._drop_cancelled()
            if not self._heap or self._heap[0][0] > self.now:
                return due
            due.append(heapq.heappop(self._heap)[2])

    def advance_to_next(self) -> bool:
        """Jump to the earliest deadline; False when no timer is pending."""
        deadline = self.next_deadline()
        if deadline is None:
            return False
        self.now = max(self.now, deadline)
        return True

    def holds_future(self, future: asyncio.Future[Any]) -> bool:
        """Is ``future`` an argument of a pending timer (what a sleep or wait_for waits on)?"""
        return any(
            not handle.cancelled() and any(arg is future for arg in handle._args)
            for _when, _sequence, handle in self._heap
        )

    def pending(self) -> int:
        self._drop_cancelled()
        return sum(1 for _w, _s, handle in self._heap if not handle.cancelled())

    def clear(self) -> None:
        for _when, _sequence, handle in self._heap:
            handle.cancel()
        self._heap.clear()
