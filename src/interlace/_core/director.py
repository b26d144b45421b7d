"""The director: runs one schedule, making every scheduling decision.

The loop hands the director every step of a simulated task. The director
parks steps that are decision points and lets through the atomic
continuations of an operation already chosen. Then it repeats:

1. settle: wait until no simulated I/O is in flight, i.e. every live task is
   parked, done, or waits on something only the simulation can end (another
   task, an asyncio primitive, the virtual clock);
2. fire virtual timers that are due;
3. if some tasks are parked, ask the strategy which one runs and release it;
   if none is, jump the virtual clock to the next timer, or report a deadlock.

Because decisions are only made when nothing is in flight, the outcome is a
function of the choices alone, even with real threads (aiosqlite) and real
sockets (asyncpg) underneath.

A statement waiting for a database lock would look like outside I/O forever.
An explainer attached to the loop (``OutsideWaits`` in ``waits.py``, e.g. the
PostgreSQL lock monitor) proves such waits blocked on locks of settled tasks,
so they count as settled; when nothing is in flight it may let one frozen
waiter whose lock was granted go on, and when no task can run it may let the
database break a lock cycle.

Which steps are decision points:
- a task's first step ("start ...");
- a bare yield to the loop (``await asyncio.sleep(0)``) or ``interlace.point``;
- a wake-up caused by another simulated task (releasing a Lock, setting an
  Event, finishing), by a virtual timer, or by cancellation;
- a wake-up after outside I/O, unless the task is inside a SQLAlchemy async
  operation (a SQLAlchemy frame is in its await chain): SQLAlchemy's statements, COMMIT and
  ROLLBACK are decision points of their own (``interlace.db.sqlalchemy``), and
  the driver round-trips within them are atomic.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import re
import time
import types
from collections.abc import Awaitable, Callable, Coroutine, Generator, Iterator
from contextvars import Context
from dataclasses import dataclass
from types import FrameType
from typing import TYPE_CHECKING, Any

from interlace._core.clock import VirtualClock
from interlace._core.errors import Deadlock, StepBoundExceeded, StuckOutsideIO, TokenError
from interlace._core.strategy import Candidate
from interlace._core.trace import Decision, Trace
from interlace._core.waits import (
    Wait,
    app_location,
    await_frames,
    classify,
    innermost_asyncio,
    module_of,
    outside_waits_of,
)

if TYPE_CHECKING:
    from interlace._core.loop import ControlledLoop
    from interlace._core.strategy import Strategy

ROOT_NAME = "main"
_DEFAULT_TASK_NAME = re.compile(r"Task-\d+")
_DRAIN_ROUNDS = 10_000
# the done-callback asyncio.shield adds to the task it protects (3.11 to 3.13)
_SHIELD_CALLBACK = "shield.<locals>._inner_done_callback"
# Real-time polling of the outside-wait explainer while tasks wait on outside I/O.
# Most statements answer within a quarter millisecond, and a lock wait is visible to
# the server by then: ask every 0.25 ms for the first 2 ms, then every 2 ms.
_EXAMINE_FAST = 0.00025
_FAST_FOR = 0.002
_EXAMINE_EVERY = 0.002
# The selector rounds timeouts up to whole milliseconds: shorter waits poll instead.
_TIMER_RESOLUTION = 0.001


@dataclass(frozen=True)
class Limits:
    """Bounds of one schedule.

    ``max_steps``: decisions before the schedule is reported as a possible
    livelock. ``stuck_after``: wall seconds a task may wait on outside I/O
    before it is reported as stuck.
    """

    max_steps: int = 10_000
    stuck_after: float = 10.0


@dataclass
class _Parked:
    callback: Callable[..., object]
    args: tuple[Any, ...]
    context: Context | None
    label: str


@dataclass(frozen=True)
class ScheduleOutcome:
    """What one schedule did: its trace, the root's result, and the failure if any."""

    trace: Trace
    result: object
    error: BaseException | None


class Director:
    """Makes the decisions of one schedule on a ``ControlledLoop``."""

    def __init__(self, loop: ControlledLoop, strategy: Strategy, limits: Limits) -> None:
        self.loop = loop
        self.strategy = strategy
        self.limits = limits
        self.clock = VirtualClock()
        # invariant: tasks in creation order; index[t] is t's position in it
        self.tasks: list[asyncio.Task[Any]] = []
        self.index: dict[asyncio.Task[Any], int] = {}
        self.names: dict[asyncio.Task[Any], str] = {}
        self._used_names: dict[str, int] = {}
        self._children: dict[asyncio.Task[Any], int] = {}
        self.parked: dict[asyncio.Task[Any], _Parked] = {}
        self._pending_point: dict[asyncio.Task[Any], str] = {}
        self.decisions: list[Decision] = []
        self._previous: asyncio.Task[Any] | None = None
        self._adopting_root = False
        self._creating_name: str | None = None
        self._waking: str | None = None  # why the director itself is waking tasks
        # the last wait seen for each blocked task: a wake after a settled wait is a decision
        self._last_wait: dict[asyncio.Task[Any], Wait] = {}
        # invariant: a task's wait only changes when it takes a step, so a classified
        # wait stays valid until the task's next step is scheduled
        self._wait_cache: dict[asyncio.Task[Any], Wait] = {}
        self._passthrough = False  # after the schedule: let every step run
        self._waiter: asyncio.Future[bool] | None = None
        # invariant: checks registered by the running schedule, run before every decision
        self._checks: list[Callable[[], object]] = []
        # proves outside waits blocked on database locks (e.g. the PostgreSQL lock monitor)
        self.explainer = outside_waits_of(loop)

    # ---- called by the loop -------------------------------------------------

    def in_simulated_task(self) -> bool:
        return asyncio.current_task(self.loop) in self.index

    @contextlib.contextmanager
    def creating(self, name: str | None) -> Iterator[None]:
        """Around ``loop.create_task``: the first step seen inside belongs to the new task."""
        outer = self._creating_name
        self._creating_name = name
        try:
            yield
        finally:
            self._creating_name = outer

    def intercept(
        self,
        task: asyncio.Task[Any],
        callback: Callable[..., object],
        args: tuple[Any, ...],
        context: Context | None,
    ) -> asyncio.Handle | None:
        """Park the step and return a handle, or return None to let the loop queue it."""
        self._wait_cache.pop(task, None)
        if task not in self.index:
            if not self._should_adopt(task):
                return None
            self._adopt(task)
            if self._passthrough:
                # created while the schedule unwinds (e.g. SQLAlchemy closing a connection
                # in a shielded task): nobody would release a parked first step
                return self._run_through(task, callback, args, context)
            return self._park(task, callback, args, context, f"start {_coroutine_name(task)}")
        if self._passthrough:
            return self._run_through(task, callback, args, context)
        label = self._decision_label(task, args)
        if label is None:
            return self._run_through(task, callback, args, context)
        return self._park(task, callback, args, context, label)

    # ---- running a schedule -------------------------------------------------

    async def run(self, root: Callable[[], Awaitable[object]]) -> ScheduleOutcome:
        """Run ``root()`` as the simulated root task under this director's control."""
        if self.loop.director is not None:
            raise RuntimeError("a schedule is already running on this loop")
        self.loop.director = self
        error: BaseException | None = None
        result: object = None
        try:
            if self.explainer is not None:
                self.explainer.begin(self.names.__getitem__, self.index.__getitem__)
            self._adopting_root = True
            try:
                root_task = self.loop.create_task(_coroutine(root), name=ROOT_NAME)
            finally:
                self._adopting_root = False
            error = await self._decide_until_done(root_task)
            if error is None:
                result, error = _result_of(root_task, self)
        except (Exception, asyncio.CancelledError) as failure:
            # a scheduler failure or a strategy's TokenError ends the schedule too
            error = failure
        finally:
            leftovers = await self._finish()
            self.loop.director = None
        if error is None and leftovers:
            error = leftovers
        director_task = asyncio.current_task()
        if (
            isinstance(error, asyncio.CancelledError)
            and director_task is not None
            and director_task.cancelling()
        ):
            raise error  # the exploration itself is being cancelled, not the scenario
        if not isinstance(error, TokenError):
            self.strategy.end(self.trace())
        return ScheduleOutcome(self.trace(), result, error)

    def trace(self) -> Trace:
        return Trace(tuple(self.decisions))

    async def point(self, label: str) -> None:
        """Make the current simulated task stop at a decision point called ``label``."""
        task = asyncio.current_task(self.loop)
        if task is None or task not in self.index:
            return
        self._pending_point[task] = label
        await _yield_once()

    def add_check(self, check: Callable[[], object]) -> None:
        """Run ``check()`` before every decision of this schedule; what it raises fails it."""
        self._checks.append(check)

    async def _decide_until_done(self, root: asyncio.Task[Any]) -> BaseException | None:
        cancelled_leftovers = False
        while True:
            await self._settle()
            if self.clock.has_due():
                self._wake("timer", self.clock.pop_due())
                continue
            runnable = [t for t in self.tasks if t in self.parked]
            if not runnable:
                live = [t for t in self.tasks if not t.done()]
                if not live:
                    return None
                if root.done() and not cancelled_leftovers:
                    # like asyncio.run: tasks the scenario left behind are cancelled
                    cancelled_leftovers = True
                    self._cancel_leftovers(live)
                    continue
                if self.explainer is not None and await self.explainer.break_cycle():
                    continue  # one task of a database lock cycle runs the server's check
                if self.clock.advance_to_next():
                    continue
                return Deadlock(self._deadlock_message(live))
            if root.done() and not cancelled_leftovers:
                cancelled_leftovers = True
                self._cancel_leftovers([t for t in self.tasks if not t.done()])
                continue
            if len(self.decisions) >= self.limits.max_steps:
                return StepBoundExceeded(self._step_bound_message(runnable))
            for check in self._checks:
                check()  # an exception here is the schedule's failure, at this step
            self._decide(runnable)
            if self.explainer is not None and self._previous is not None:
                self.explainer.after_decision(self._previous)

    def _decide(self, runnable: list[asyncio.Task[Any]]) -> None:
        candidates = [
            Candidate(self.names[t], self.index[t], self.parked[t].label) for t in runnable
        ]
        previous = self._previous if self._previous in self.parked else None
        previous_candidate = candidates[runnable.index(previous)] if previous is not None else None
        step = len(self.decisions)
        chosen = self.strategy.choose(step, candidates, previous_candidate)
        task = runnable[candidates.index(chosen)]
        self.decisions.append(
            Decision(
                step=step,
                task=chosen.name,
                task_index=chosen.index,
                label=chosen.label,
                runnable=tuple(c.name for c in candidates),
                preemption=previous is not None and previous is not task,
            )
        )
        self._previous = task
        parked = self.parked.pop(task)
        self._release(task, parked.callback, parked.args, parked.context)

    # ---- settling -------------------------------------------------------------

    async def _settle(self) -> None:
        """Return once no simulated task has I/O in flight (see the module docstring)."""
        while True:
            await self._drain()
            outside = self._in_flight()
            if outside:
                await self._wait_out(outside)
            # Quiet. A frozen lock waiter whose lock was granted may go on now, alone,
            # so waiters released by one COMMIT never race; then settle again.
            if self.explainer is None or not await self.explainer.release_granted():
                return

    async def _wait_out(self, outside: list[tuple[asyncio.Task[Any], Wait]]) -> None:
        """Wait until no task waits on outside I/O; report the tasks that wait too long."""
        started = time.monotonic()
        # one real-time timer per slow settle wakes the director to report a stuck task
        alarm = self.loop.call_later(self.limits.stuck_after, self._poke)
        # without an explainer, only a task's own progress can end the wait
        examine_at = None if self.explainer is None else started + _EXAMINE_FAST
        try:
            while outside:
                await self._wait_until_change_or(examine_at)
                await self._drain()
                outside = self._in_flight()
                now = time.monotonic()
                if outside and examine_at is not None and now >= examine_at:
                    await self._examine(outside)
                    await self._drain()
                    outside = self._in_flight()
                    fast = now - started < _FAST_FOR
                    examine_at = time.monotonic() + (_EXAMINE_FAST if fast else _EXAMINE_EVERY)
                waited = time.monotonic() - started
                if outside and waited > self.limits.stuck_after:
                    raise StuckOutsideIO(self._stuck_message(outside, waited))
        finally:
            alarm.cancel()

    async def _wait_until_change_or(self, deadline: float | None) -> None:
        """Sleep until a simulated task steps, parks or ends, or until ``deadline``."""
        if deadline is None:
            await self._wait_for_change()
            return
        remaining = deadline - time.monotonic()
        if remaining < _TIMER_RESOLUTION:
            await asyncio.sleep(0)  # one turn of the loop: I/O is polled, nothing sleeps
        else:
            await self._wait_for_change(remaining)

    async def _examine(self, outside: list[tuple[asyncio.Task[Any], Wait]]) -> None:
        """Ask the explainer to prove tasks waiting on outside I/O blocked by settled ones."""
        assert self.explainer is not None
        waiting = [task for task, _wait in outside]
        in_flight = set(waiting)
        # Settled tasks cannot progress before the next decision, so this stays true
        # while the explainer awaits the database's answer.
        settled = [task for task in self.tasks if task not in in_flight]
        # a task that took a step since this snapshot no longer waits where it did
        before = {task: self._wait_cache.get(task) for task in waiting}

        def still_waiting(task: asyncio.Task[Any]) -> bool:
            wait = self._wait_cache.get(task)
            return wait is not None and wait is before.get(task) and task not in self.parked

        await self.explainer.examine(waiting, settled, still_waiting)

    def _in_flight(self) -> list[tuple[asyncio.Task[Any], Wait]]:
        waits = []
        for task in self.tasks:
            if task.done() or task in self.parked:
                continue
            wait = self.wait_of(task)
            # A lock wait ends with the statement's reply: like any outside wake, that
            # continues the statement; it is not a decision point of its own.
            self._last_wait[task] = wait if wait.kind != "dblock" else self._classify(task)
            if not wait.settled:
                waits.append((task, wait))
        return waits

    def wait_of(self, task: asyncio.Task[Any]) -> Wait:
        """What ``task`` waits on, with outside waits explained when an explainer can."""
        wait = self._classify(task)
        if wait.kind == "outside" and self.explainer is not None:
            return self.explainer.explain(task, wait)
        return wait

    def _classify(self, task: asyncio.Task[Any]) -> Wait:
        wait = self._wait_cache.get(task)
        if wait is None:
            wait = classify(task, self.tasks, self.names.__getitem__, self.clock.holds_future)
            if wait.kind != "running":
                self._wait_cache[task] = wait
        return wait

    async def _drain(self) -> None:
        """Let already-queued callbacks run, so wake-ups in flight land in ``parked``.

        Some libraries queue a callback again on every turn of the loop until a task
        reacts: anyio delivers a cancellation to a task parked by the director that
        way. When a turn leaves exactly the callbacks it found, nothing more will
        settle by waiting, so the drain ends there instead of spinning.
        """
        previous: list[object] | None = None
        for _ in range(_DRAIN_ROUNDS):
            pending = self.loop.ready_callbacks()
            if not pending or pending == previous:
                return
            previous = pending
            await asyncio.sleep(0)

    async def _wait_for_change(self, timeout: float | None = None) -> None:
        """Sleep until a simulated task steps, parks or ends (or ``timeout`` passes)."""
        waiter = self.loop.create_future()
        self._waiter = waiter
        timer = self.loop.call_later(timeout, _resolve, waiter) if timeout is not None else None
        try:
            await waiter
        finally:
            if timer is not None:
                timer.cancel()
            self._waiter = None

    def _poke(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(True)

    # ---- parking and releasing ----------------------------------------------

    def _park(
        self,
        task: asyncio.Task[Any],
        callback: Callable[..., object],
        args: tuple[Any, ...],
        context: Context | None,
        label: str,
    ) -> asyncio.Handle:
        if task in self.parked:
            raise RuntimeError(f"interlace: task {self.names[task]} has two pending steps")
        self.parked[task] = _Parked(callback, args, context, label)
        self._poke()
        return asyncio.Handle(callback, args, self.loop, context)

    def _run_through(
        self,
        task: asyncio.Task[Any],
        callback: Callable[..., object],
        args: tuple[Any, ...],
        context: Context | None,
    ) -> asyncio.Handle:
        self._release(task, callback, args, context)
        # Wake a director that waits for a change now, not when the step has run: its
        # wake-up is queued behind the step, so it looks right after the step, in the
        # same turn of the loop, instead of one turn later (a turn per driver round-trip).
        self._poke()
        return asyncio.Handle(callback, args, self.loop, context)

    def _release(
        self,
        task: asyncio.Task[Any],
        callback: Callable[..., object],
        args: tuple[Any, ...],
        context: Context | None,
    ) -> None:
        def step() -> None:
            # The task's own context is entered by its step; this wrapper only adds
            # the poke, so the director re-checks as soon as the step has run.
            try:
                callback(*args)
            finally:
                self._poke()

        self.loop.release(step, (), context)

    def _decision_label(self, task: asyncio.Task[Any], args: tuple[Any, ...]) -> str | None:
        """The label if this step is a decision point, None if it is an atomic continuation."""
        point = self._pending_point.pop(task, None)
        if point is not None:
            return point
        current = asyncio.current_task(self.loop)
        awaited = args[0] if args else None
        last_wait = self._last_wait.pop(task, None)
        if isinstance(awaited, asyncio.Task) and awaited in self.index:
            return f"joined {self.names[awaited]}"
        if last_wait is not None and last_wait.kind == "join":
            return f"joined {last_wait.what}"
        frames = await_frames(task)
        internal = current is task or (current is not None and current in self.index)
        from_outside = not internal and self._waking is None
        after_io = from_outside and not (last_wait and last_wait.settled)
        if after_io and _in_sqlalchemy_operation(frames):
            return None  # the atomic continuation of a statement already chosen
        where = _function_of(task, frames)
        if current is task:
            return f"yield in {where}"
        if internal:
            return f"after {_asyncio_wait(frames)} in {where}"
        if self._waking is not None:
            return f"{self._waking} in {where}"
        if last_wait is not None and last_wait.settled:
            return f"after {last_wait.what} in {where}"
        return f"after I/O in {where}"

    def _should_adopt(self, task: asyncio.Task[Any]) -> bool:
        if self._adopting_root:
            return True
        current = asyncio.current_task(self.loop)
        if current is None or current not in self.index:
            return False
        coro = task.get_coro()
        return inspect.iscoroutine(coro) and inspect.getcoroutinestate(coro) == "CORO_CREATED"

    def _adopt(self, task: asyncio.Task[Any]) -> None:
        # Trace names are structural (main, T1, T1.2), never the app's own task names:
        # those may be set before or after create_task depending on the Python version
        # (TaskGroup on 3.11 renames after), and tokens must replay across versions.
        name = ROOT_NAME if self._adopting_root else self._unique(self._child_name())
        if self._creating_name is None and _DEFAULT_TASK_NAME.fullmatch(task.get_name()):
            task.set_name(name)  # replace asyncio's global Task-N counter in app logs
        self.index[task] = len(self.tasks)
        self.tasks.append(task)
        self.names[task] = name
        # A closure, not the bound method: wait classification scans every live task's
        # done-callbacks for the future a waiter awaits, and a bound method's owner (this
        # director, with its many attributes) would be searched attribute by attribute.
        poke = self._poke
        task.add_done_callback(lambda _task: poke())

    def _child_name(self) -> str:
        parent = asyncio.current_task(self.loop)
        assert parent is not None
        count = self._children.get(parent, 0) + 1
        self._children[parent] = count
        parent_name = self.names[parent]
        return f"T{count}" if parent_name == ROOT_NAME else f"{parent_name}.{count}"

    def _unique(self, name: str) -> str:
        seen = self._used_names.get(name, 0) + 1
        self._used_names[name] = seen
        return name if seen == 1 else f"{name}#{seen}"

    def _wake(self, reason: str, timers: list[asyncio.TimerHandle]) -> None:
        self._waking = reason
        try:
            for handle in timers:
                handle._run()
        finally:
            self._waking = None

    def _cancel_leftovers(self, tasks: list[asyncio.Task[Any]]) -> None:
        """Cancel the tasks the scenario left behind, except shielded ones.

        Unlike asyncio.run, whose process ends, resources outlive the schedule: the
        next schedule uses the same pool. A task under ``asyncio.shield`` is work its
        awaiter protected from cancellation, typically SQLAlchemy closing a connection
        (``AsyncConnection.close``); cancelling it would leak the connection into the
        next schedule, whose outcome would then depend on the one before. It runs to
        its end, under the scheduler's decisions, as in a server that keeps running.
        """
        self._cancel([task for task in tasks if not _shielded(task)])

    def _cancel(self, tasks: list[asyncio.Task[Any]]) -> None:
        self._waking = "cancelled"
        try:
            for task in tasks:
                task.cancel()
        finally:
            self._waking = None

    # ---- after the schedule ---------------------------------------------------

    async def _finish(self) -> BaseException | None:
        """Cancel what is left, let it unwind without decisions, and report what would not."""
        if self.explainer is not None:
            self.explainer.end()  # first, and synchronous: frozen work always resumes
        self._passthrough = True
        for task in [t for t in self.tasks if t in self.parked]:
            parked = self.parked.pop(task)
            self._release(task, parked.callback, parked.args, parked.context)
        # shielded work (a connection being closed) runs through, as above
        live = [t for t in self.tasks if not t.done() and not _shielded(t)]
        for task in live:
            task.cancel()
        deadline = time.monotonic() + self.limits.stuck_after
        while any(not t.done() for t in self.tasks) and time.monotonic() < deadline:
            await self._drain()
            if not self._in_flight() and self.clock.advance_to_next():
                self._wake("timer", self.clock.pop_due())
                continue
            if any(not t.done() for t in self.tasks):
                await self._wait_for_change(0.01)
        self.clock.clear()
        stuck = [self.names[t] for t in self.tasks if not t.done()]
        if stuck:
            return StuckOutsideIO(
                "these tasks did not finish after cancellation at the end of the schedule: "
                + ", ".join(stuck)
            )
        return None

    # ---- messages -------------------------------------------------------------

    def _describe(self, tasks: list[asyncio.Task[Any]]) -> str:
        return "\n".join(f"  {self.names[t]} {self.wait_of(t).describe()}" for t in tasks)

    def _deadlock_message(self, live: list[asyncio.Task[Any]]) -> str:
        return (
            "deadlock: every live task waits on another simulated task, an asyncio "
            "primitive or a database lock another task holds, and no timer is pending:\n"
            f"{self._describe(live)}{self._best_effort_note()}"
        )

    def _best_effort_note(self) -> str:
        reason = self.explainer.best_effort if self.explainer is not None else None
        return f"\n(determinism is best effort here: {reason})" if reason else ""

    def _step_bound_message(self, runnable: list[asyncio.Task[Any]]) -> str:
        parked = ", ".join(f"{self.names[t]} at {self.parked[t].label!r}" for t in runnable)
        return (
            f"step bound exceeded: {self.limits.max_steps} decisions and the schedule has "
            f"not ended (possible livelock or unfair schedule); runnable: {parked}; raise "
            "max_steps if the scenario is legitimately this long"
        )

    def _stuck_message(self, outside: list[tuple[asyncio.Task[Any], Wait]], waited: float) -> str:
        lines = "\n".join(f"  {self.names[t]} {w.describe()}" for t, w in outside)
        return (
            f"stuck outside I/O: waited {waited:.1f} s (bound: stuck_after="
            f"{self.limits.stuck_after:g} s) for these tasks:\n{lines}\n"
            "is the database reachable, and not locked by a connection outside the "
            "simulation? On PostgreSQL, lock waits are recognised only with the lock monitor "
            "attached (interlace.db.postgres.monitor(engine) in the scenario's resource). "
            "A task that awaits a bare future completed by another simulated task also "
            "looks like this: use an asyncio primitive (Event, Queue) instead"
            f"{self._best_effort_note()}"
        )


# ---- helpers ------------------------------------------------------------------


def _coroutine(root: Callable[[], Awaitable[object]]) -> Coroutine[Any, Any, object]:
    awaitable = root()
    if inspect.iscoroutine(awaitable):
        return awaitable

    async def await_it() -> object:
        return await awaitable

    return await_it()


@types.coroutine
def _yield_once() -> Generator[None, None, None]:
    """A bare yield: the task's next step comes back through ``call_soon``."""
    yield


def _resolve(waiter: asyncio.Future[bool]) -> None:
    if not waiter.done():
        waiter.set_result(False)


def _result_of(root: asyncio.Task[Any], director: Director) -> tuple[object, BaseException | None]:
    if root.cancelled():
        return None, asyncio.CancelledError("the scenario's root task was cancelled")
    error = root.exception()
    if error is not None:
        return None, error
    for task in director.tasks[1:]:
        # ask before exception(): reading the exception counts as retrieving it
        if task.done() and not task.cancelled() and _never_retrieved(task):
            return None, task.exception()
    return root.result(), None


def _never_retrieved(task: asyncio.Task[Any]) -> bool:
    # asyncio logs "exception was never retrieved" for these; here they are failures
    return bool(getattr(task, "_log_traceback", False))


def _shielded(task: asyncio.Task[Any]) -> bool:
    """Does ``asyncio.shield`` protect this task (its done-callbacks hold shield's)?"""
    callbacks = getattr(task, "_callbacks", None) or ()
    return any(
        getattr(callback, "__qualname__", "") == _SHIELD_CALLBACK
        for callback, _context in callbacks
    )


def _coroutine_name(task: asyncio.Task[Any]) -> str:
    coro = task.get_coro()
    qualname = getattr(coro, "__qualname__", None)
    return qualname if isinstance(qualname, str) else type(coro).__name__


def _function_of(task: asyncio.Task[Any], frames: list[FrameType]) -> str:
    location = app_location(frames)
    return location.split(" (", 1)[0] if location else _coroutine_name(task)


def _asyncio_wait(frames: list[FrameType]) -> str:
    inner = innermost_asyncio(frames)
    return inner[1] if inner is not None else "wake-up"


def _in_sqlalchemy_operation(frames: list[FrameType]) -> bool:
    # Any SQLAlchemy frame in the await chain: its async layer is doing driver I/O on
    # the app's behalf (inside greenlet_spawn, or closing a cursor after a result).
    return any(module_of(frame).startswith("sqlalchemy.") for frame in frames)
