"""The controlled event loop: a selector loop whose simulated task steps a director releases.

Every step or wake-up of an asyncio Task reaches the loop through
``call_soon(callback, ...)`` with ``callback.__self__`` being the Task, for the
C and the Python Task alike (3.11-3.13). While a director is attached, steps of
simulated tasks are handed to it: it parks them until it decides that task
runs, or lets them through when they are the atomic continuation of an
operation already chosen. Everything else (I/O callbacks, aiosqlite's
``call_soon_threadsafe``, timers of code outside the simulation, the director
itself) runs as on any loop, so real I/O keeps flowing while simulated tasks
wait for their turn.

Timers set by simulated code go to the director's virtual clock, and
``time()`` answers virtual time to simulated code (see ``clock.py``).

Threads. Driver threads (aiosqlite's worker, executor threads such as the one
resolving asyncpg's host names) reach the loop only through
``call_soon_threadsafe``, which appends a Handle to the loop's ready deque
without going through ``call_soon``: they never meet the director, whose
state is touched by the loop's thread alone. The ready deque is therefore the
one structure of the core that another thread mutates while the loop's thread
reads it, and ``ready_callbacks`` reads it only through a snapshot.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Coroutine
from contextlib import AbstractContextManager
from contextvars import Context
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from interlace._core.errors import UsageError

if TYPE_CHECKING:
    from interlace._core.clock import VirtualClock

_T = TypeVar("_T")

_NO_TASK_FACTORY = (
    "interlace's controlled loop does not support task factories: an eager task "
    "factory runs a task's first step inside create_task, where the scheduler cannot "
    "park it, so interleavings would escape control; remove loop.set_task_factory(...) "
    "from the code under test while it runs under interlace"
)


class Controller(Protocol):
    """What the loop, and code running on it, need from the director of a schedule.

    The loop depends on this, not on ``Director``: the director drives the loop,
    the loop only hands it the steps of simulated tasks. ``interlace.point``,
    ``interlace.always``, ``interlace.lowlevel.label_task`` and the SQLAlchemy
    listeners reach the running schedule through ``loop.director`` and this
    protocol too.
    """

    @property
    def clock(self) -> VirtualClock:
        """The schedule's virtual clock: timers and ``time()`` of simulated code."""
        ...

    def intercept(
        self,
        task: asyncio.Task[Any],
        callback: Callable[..., object],
        args: tuple[Any, ...],
        context: Context | None,
    ) -> asyncio.Handle | None:
        """A step of ``task``: park it and return a handle, or None to let the loop queue it."""
        ...

    def in_simulated_task(self) -> bool:
        """Is the running task one of the schedule's simulated tasks?"""
        ...

    def creating(self, name: str | None) -> AbstractContextManager[None]:
        """Around ``create_task``: the first step seen inside belongs to the new task."""
        ...

    async def point(self, label: str) -> None:
        """Make the running simulated task stop at a decision point called ``label``."""
        ...

    def add_check(self, check: Callable[[], object]) -> None:
        """Run ``check()`` before every decision of the schedule."""
        ...

    def label_task(self, name: str) -> None:
        """Record a display name for the running simulated task (reports only)."""
        ...

    def mark(self, phase: str) -> None:
        """Record that ``phase`` (e.g. ``"invariants"``) begins at the next decision."""
        ...


class ControlledLoop(asyncio.SelectorEventLoop):
    """An event loop on which a ``Director`` (a ``Controller``) controls simulated tasks.

    Outside a schedule it behaves like ``asyncio.SelectorEventLoop``; run it
    with ``asyncio.Runner(loop_factory=ControlledLoop)``.
    """

    def __init__(self) -> None:
        super().__init__()
        # invariant: set only while a schedule runs on this loop
        self.director: Controller | None = None
        self._base_call_soon = super().call_soon

    def call_soon(  # type: ignore[override]
        self, callback: Callable[..., object], *args: Any, context: Context | None = None
    ) -> asyncio.Handle:
        director = self.director
        if director is not None:
            task = getattr(callback, "__self__", None)
            if isinstance(task, asyncio.Task):
                handle = director.intercept(task, callback, args, context)
                if handle is not None:
                    return handle
        return self._base_call_soon(callback, *args, context=context)

    def call_at(  # type: ignore[override]
        self,
        when: float,
        callback: Callable[..., object],
        *args: Any,
        context: Context | None = None,
    ) -> asyncio.TimerHandle:
        director = self.director
        if director is not None and director.in_simulated_task():
            return director.clock.schedule(when, callback, args, self, context)
        return super().call_at(when, callback, *args, context=context)

    def time(self) -> float:
        director = self.director
        if director is not None and director.in_simulated_task():
            return director.clock.now
        return super().time()

    def create_task(  # type: ignore[override]
        self,
        coro: Coroutine[Any, Any, _T],
        *,
        name: str | None = None,
        context: Context | None = None,
    ) -> asyncio.Task[_T]:
        director = self.director
        if director is None:
            return super().create_task(coro, name=name, context=context)
        with director.creating(name):
            return super().create_task(coro, name=name, context=context)

    def set_task_factory(self, factory: Any) -> None:
        if factory is not None:
            raise UsageError(_NO_TASK_FACTORY)
        super().set_task_factory(None)

    def release(
        self, callback: Callable[..., object], args: tuple[Any, ...], context: Context | None
    ) -> None:
        """Queue a step the director decided to run (bypassing interception)."""
        self._base_call_soon(callback, *args, context=context)

    def ready_callbacks(self) -> list[object]:
        """The callbacks queued to run, in order (compared, never called)."""
        ready: deque[Any] = self._ready  # type: ignore[attr-defined]  # of asyncio.Handle
        # invariant: the ready deque is read only through a copy made in one C call.
        # Driver threads append to it at any moment (aiosqlite's worker thread and
        # executor threads, through call_soon_threadsafe). A Python-level walk over the
        # live deque lets such a thread run between two items, and the walk then fails
        # with "deque mutated during iteration". deque.copy() runs no Python code and
        # allocates no garbage-collected object while it walks (so no finalizer can run
        # and switch threads), and on free-threaded builds it holds the deque's lock:
        # the copy is one consistent state of the queue, safe to walk at leisure.
        snapshot = ready.copy()
        return [handle._callback for handle in snapshot]
