"""Where a simulated task waits, and why that matters for the settle rule.

The director may only decide when no simulated I/O is in flight. A task that
is not parked is therefore classified by what it awaits:

- ``primitive``: an asyncio Lock, Event, Condition, Semaphore or Queue; only
  another simulated task can release it;
- ``timer``: a sleep or timeout on the virtual clock; only the director fires it;
- ``join``: another simulated task (await, gather, shield, TaskGroup, wait,
  wait_for); that task's progress releases it;
- ``dblock``: outside I/O that an explainer proved blocked on a database lock
  held by settled tasks (see ``OutsideWaits``); only their progress ends it;
- ``outside``: anything else (a database driver's socket, aiosqlite's thread,
  an executor): the director must wait for it in real time.

A task that was just woken (its step is queued) is ``running``. Classification
reads asyncio internals that are stable across 3.11-3.13 (``Task._fut_waiter``,
``Future._callbacks``, coroutine ``cr_await`` chains, ``co_qualname``);
``tests/core/test_waits.py`` pins them on every supported version.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import os
import types
import weakref
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from types import FrameType
from typing import Any, Literal, Protocol

from interlace._core.errors import UsageError

WaitKind = Literal["running", "primitive", "timer", "join", "dblock", "outside"]

# Frames of these modules are machinery; labels name the app frame below them.
_MACHINERY_MODULES = (
    "asyncio",
    "interlace._core",
    "interlace.db",
    "interlace.point",
    "sqlalchemy",
    "aiosqlite",
    "asyncpg",
    "contextlib",
    "greenlet",
)
_PRIMITIVE_MODULES = ("asyncio.locks", "asyncio.queues")
_JOIN_FRAMES = {
    ("asyncio.taskgroups", "TaskGroup.__aexit__"),
    ("asyncio.taskgroups", "TaskGroup._aexit"),
    ("asyncio.tasks", "wait_for"),
    ("asyncio.tasks", "_wait"),
}


@dataclass(frozen=True)
class Wait:
    """What a task waits on (``what``) and where in the app (``where``).

    ``where`` is wanted only by reports, while a wait is classified at every
    driver round-trip: given the task's await frames instead of a location, it
    is worked out on first use.
    """

    kind: WaitKind
    what: str
    location: str = ""
    frames: tuple[FrameType, ...] = field(default=(), repr=False, compare=False)

    @functools.cached_property
    def where(self) -> str:
        return self.location or app_location(self.frames)

    @property
    def settled(self) -> bool:
        """True when only the simulation itself can end this wait."""
        return self.kind in ("primitive", "timer", "join", "dblock")

    def describe(self) -> str:
        at = f" at {self.where}" if self.where else ""
        if self.kind in ("join", "dblock"):
            return f"waits for {self.what}{at}"
        if self.kind == "outside":
            return f"waits on outside I/O ({self.what}){at}"
        return f"waits in {self.what}{at}"


def await_frames(task: asyncio.Task[Any]) -> list[FrameType]:
    """The frames of the task's await chain, outermost first.

    The chain goes on through async generators: ``await anext(agen)`` and
    ``async for`` await an ``async_generator_asend`` (or ``athrow``) object,
    which shows no frame of its own; the generator it drives is among its
    referents, and the chain continues in the generator's frame. Without
    this, a SQLAlchemy statement run from inside an async generator (a
    streaming handler) would look like outside I/O at every driver round-trip.
    """
    frames: list[FrameType] = []
    link: Any = task.get_coro()
    while link is not None:
        if type(link).__name__ in _ASYNC_GENERATOR_STEPS:
            link = _driven_generator(link)
            continue
        frame = (
            getattr(link, "cr_frame", None)
            or getattr(link, "gi_frame", None)
            or getattr(link, "ag_frame", None)
        )
        if frame is None:
            break
        frames.append(frame)
        link = (
            getattr(link, "cr_await", None)
            or getattr(link, "gi_yieldfrom", None)
            or getattr(link, "ag_await", None)
        )
    return frames


_ASYNC_GENERATOR_STEPS = frozenset({"async_generator_asend", "async_generator_athrow"})


def _driven_generator(step: object) -> types.AsyncGeneratorType[Any, Any] | None:
    # CPython exposes the generator of an asend/athrow object only to the garbage
    # collector (tp_traverse); there is no attribute for it.
    for referent in gc.get_referents(step):
        if isinstance(referent, types.AsyncGeneratorType):
            return referent
    return None


def module_of(frame: FrameType) -> str:
    name = frame.f_globals.get("__name__", "")
    return name if isinstance(name, str) else ""


def _is_machinery(frame: FrameType) -> bool:
    return _is_machinery_module(module_of(frame))


@functools.cache
def _is_machinery_module(module: str) -> bool:
    return any(module == m or module.startswith(m + ".") for m in _MACHINERY_MODULES)


def app_location(frames: Sequence[FrameType]) -> str:
    """``transfer (bank.py:14)``: the innermost frame that belongs to the app."""
    for frame in reversed(frames):
        if not _is_machinery(frame):
            code = frame.f_code
            return f"{code.co_qualname} ({os.path.basename(code.co_filename)}:{frame.f_lineno})"
    return ""


def innermost_asyncio(frames: list[FrameType]) -> tuple[str, str] | None:
    """(module, qualname) of the innermost asyncio frame, if the task waits inside asyncio."""
    for frame in reversed(frames):
        module = module_of(frame)
        if module.startswith("asyncio."):
            return module, frame.f_code.co_qualname
        if not _is_machinery(frame):
            return None
    return None


def classify(
    task: asyncio.Task[Any],
    live_tasks: Iterable[asyncio.Task[Any]],
    names: Callable[[asyncio.Task[Any]], str],
    timer_futures: Callable[[asyncio.Future[Any]], bool],
) -> Wait:
    """Classify the wait of a live task that is not parked (see the module docstring)."""
    waiter: asyncio.Future[Any] | None = getattr(task, "_fut_waiter", None)
    if waiter is None or waiter.done():
        return Wait("running", "", "")
    frames = await_frames(task)
    stack = tuple(frames)  # the location is worked out when a report asks for it
    live = [t for t in live_tasks if t is not task and not t.done()]
    if isinstance(waiter, asyncio.Task) and waiter in live:
        return Wait("join", names(waiter), frames=stack)
    inner = innermost_asyncio(frames)
    if inner is not None and inner[0] in _PRIMITIVE_MODULES:
        return Wait("primitive", inner[1], frames=stack)
    if timer_futures(waiter) or (inner is not None and inner == ("asyncio.tasks", "sleep")):
        return Wait(
            "timer", "sleep" if inner == ("asyncio.tasks", "sleep") else "timer", frames=stack
        )
    joined = [t for t in live if _releases(t, waiter)]
    if joined or (inner is not None and inner in _JOIN_FRAMES and _frame_joins(frames, live)):
        what = ", ".join(names(t) for t in joined) if joined else "child tasks"
        return Wait("join", what, frames=stack)
    what = type(waiter).__name__ if inner is None else f"{inner[1]}"
    return Wait("outside", what, frames=stack)


def _releases(task: asyncio.Task[Any], future: asyncio.Future[Any]) -> bool:
    """Does one of the task's done-callbacks complete ``future``?

    Covers gather (closure over the outer future), shield (closure over the
    outer future), asyncio.wait and 3.11's wait_for (closure or partial over
    the waiter) and TaskGroup (bound method of the group that owns the future).
    """
    if isinstance(future, asyncio.Task):
        return False
    callbacks = getattr(task, "_callbacks", None) or ()
    return any(_refers_to(callback, future) for callback, _context in callbacks)


def _refers_to(callback: Any, target: object) -> bool:
    if isinstance(callback, functools.partial):
        return any(arg is target for arg in callback.args) or _refers_to(callback.func, target)
    for cell in getattr(callback, "__closure__", None) or ():
        try:
            if cell.cell_contents is target:
                return True
        except ValueError:  # an empty cell
            continue
    owner = getattr(callback, "__self__", None)
    if owner is not None and not isinstance(owner, asyncio.Future):
        attributes = getattr(owner, "__dict__", {})
        return any(value is target for value in attributes.values())
    return False


def _frame_joins(frames: list[FrameType], live: list[asyncio.Task[Any]]) -> bool:
    """A TaskGroup exit, asyncio.wait or wait_for frame waiting on a live simulated task."""
    for frame in reversed(frames):
        if not module_of(frame).startswith("asyncio."):
            continue
        local_values = list(frame.f_locals.values())
        owner = frame.f_locals.get("self")
        if owner is not None:
            local_values.extend(getattr(owner, "__dict__", {}).values())
        for value in local_values:
            members = value if isinstance(value, set | list | tuple | frozenset) else (value,)
            if any(isinstance(m, asyncio.Task) and m in live for m in members):
                return True
    return False


# ---- explaining outside waits ---------------------------------------------------


class OutsideWaits(Protocol):
    """Proves that some waits on outside I/O are blocked on what settled tasks hold.

    A statement waiting for a database lock looks like outside I/O forever: the
    settle rule alone would wait for it until the stuck bound. An explainer
    (``interlace.db.postgres.LockMonitor``) asks the database who blocks whom and
    tells the director which of those waits are blocked on locks held by
    settled tasks: they count as settled (kind ``dblock``). It may also freeze
    the blocked work and let it go one piece at a time, so that what the
    database does next depends on the schedule alone.

    At most one explainer is attached to a loop (``attach_outside_waits``); each
    ``Director`` on that loop calls it, in this order:

    - ``begin`` when a schedule starts;
    - ``explain`` to refine the classification of a task waiting on outside I/O;
    - ``examine`` while tasks wait on outside I/O, every few milliseconds;
    - ``after_decision`` each time the director releases a task;
    - ``release_granted`` when nothing is in flight: let one frozen piece of work
      whose wait has ended run, alone;
    - ``break_cycle`` when no task can run: let the database break a lock cycle
      among blocked tasks;
    - ``end`` when the schedule ends, also on errors and interrupts: resume
      everything frozen. It must be synchronous, idempotent and never raise.
    """

    @property
    def best_effort(self) -> str | None:
        """Why replays may diverge (e.g. lock waits cannot be frozen); None when exact."""
        ...

    def begin(
        self,
        name_of: Callable[[asyncio.Task[Any]], str],
        order_of: Callable[[asyncio.Task[Any]], int],
    ) -> None:
        """A schedule starts; tasks are named and ordered (creation order) by these."""
        ...

    def explain(self, task: asyncio.Task[Any], wait: Wait) -> Wait:
        """``wait`` (an ``outside`` wait of ``task``), or a better description of it.

        A ``dblock`` wait means proven blocked: the director treats it as settled.
        An ``outside`` wait with more detail only improves reports.
        """
        ...

    async def examine(
        self,
        waiting: Sequence[asyncio.Task[Any]],
        settled: Collection[asyncio.Task[Any]],
        still_waiting: Callable[[asyncio.Task[Any]], bool],
    ) -> None:
        """Try to prove that tasks of ``waiting`` are blocked on what ``settled`` tasks hold.

        ``waiting`` are the tasks on outside I/O, in creation order; ``settled`` are
        the tasks that cannot make progress before the director's next decision
        (taken before any await, so it stays true while this method awaits);
        ``still_waiting(task)`` says whether a task still waits where it did.
        """
        ...

    def after_decision(self, task: asyncio.Task[Any]) -> None:
        """The director released ``task``: proofs that its progress can change are stale."""
        ...

    async def release_granted(self) -> bool:
        """Nothing is in flight: resume one frozen wait that has ended; True if it did."""
        ...

    async def break_cycle(self) -> bool:
        """No task can run: let the database break one lock cycle; False if there is none."""
        ...

    def end(self) -> None:
        """The schedule ends: resume everything frozen, forget the schedule's tasks."""
        ...


# Weak keys: a loop that is closed and dropped takes its explainer with it.
_OUTSIDE_WAITS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, OutsideWaits] = (
    weakref.WeakKeyDictionary()
)


def attach_outside_waits(loop: asyncio.AbstractEventLoop, explainer: OutsideWaits) -> None:
    """Let every schedule on ``loop`` consult ``explainer`` (one per loop)."""
    current = _OUTSIDE_WAITS.get(loop)
    if current is not None and current is not explainer:
        raise UsageError(
            "another outside-wait explainer (e.g. a PostgreSQL lock monitor) is already "
            "attached to this loop: use one per exploration, on the database the scenario uses"
        )
    _OUTSIDE_WAITS[loop] = explainer


def detach_outside_waits(loop: asyncio.AbstractEventLoop, explainer: OutsideWaits) -> None:
    """Undo ``attach_outside_waits``; nothing happens if ``explainer`` is not attached."""
    if _OUTSIDE_WAITS.get(loop) is explainer:
        del _OUTSIDE_WAITS[loop]


def outside_waits_of(loop: asyncio.AbstractEventLoop) -> OutsideWaits | None:
    """The explainer attached to ``loop``, if any."""
    return _OUTSIDE_WAITS.get(loop)
