"""The director: runs one schedule, making every scheduling decision.

The loop hands the director every step of a simulated task. The director
parks steps that are decision points and lets through the atomic
continuations of an operation already chosen. Then it repeats:

1. settle: wait until no simulated I/O is in flight, i.e. every live task is
   parked, done, or waits on something only the simulation can end (another
   task, an asyncio primitive, the virtual clock);
2. fire virtual timers that are due;
3. if some tasks are parked, ask the strategy which one runs and release it;
   if none is, let the outside-wait explainer break a database lock cycle,
   or jump the virtual clock to the next timer, or report a deadlock.

Because decisions are only made when nothing is in flight, the outcome is a
function of the choices alone, even with real threads (aiosqlite) and real
sockets (asyncpg) underneath.

The director's other jobs live beside it: ``tasks.py`` (the task registry and
structural names), ``labels.py`` (which steps are decision points, and their
labels), ``settle.py`` (in-flight I/O, the outside-wait explainer, polling and
wake-up) and ``errors.py`` (the messages of its verdicts). This module parks
and releases steps and runs the decision loop. The loop reaches the director
through ``loop.Controller`` only.
"""

from __future__ import annotations

import asyncio
import inspect
import time
import types
from collections.abc import Awaitable, Callable, Coroutine, Generator
from contextlib import AbstractContextManager
from contextvars import Context
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from interlace._core.clock import VirtualClock
from interlace._core.errors import Deadlock, StepBoundExceeded, StuckOutsideIO, TokenError
from interlace._core.labels import decision_label, start_label
from interlace._core.settle import Settler
from interlace._core.strategy import Candidate
from interlace._core.tasks import ROOT_NAME, TaskRegistry
from interlace._core.trace import Decision, Trace
from interlace._core.waits import outside_waits_of

if TYPE_CHECKING:
    from interlace._core.loop import ControlledLoop
    from interlace._core.strategy import Strategy

# the done-callback asyncio.shield adds to the task it protects (3.11 to 3.13)
_SHIELD_CALLBACK = "shield.<locals>._inner_done_callback"
# While the schedule unwinds, how long the director sleeps between looks (seconds).
_UNWIND_POLL = 0.01


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
        self.registry = TaskRegistry(loop)
        self.parked: dict[asyncio.Task[Any], _Parked] = {}
        self._pending_point: dict[asyncio.Task[Any], str] = {}
        self.decisions: list[Decision] = []
        # phase name -> step it began at (display metadata, see Trace.marks)
        self.marks: dict[str, int] = {}
        self._previous: asyncio.Task[Any] | None = None
        self._waking: str | None = None  # why the director itself is waking tasks
        self._passthrough = False  # after the schedule: let every step run
        # invariant: checks registered by the running schedule, run before every decision
        self._checks: list[Callable[[], object]] = []
        # proves outside waits blocked on database locks (e.g. the PostgreSQL lock monitor)
        self.explainer = outside_waits_of(loop)
        self.settler = Settler(
            loop,
            self.registry,
            self.parked,
            clock=self.clock,
            stuck_after=limits.stuck_after,
            explainer=self.explainer,
        )

    # ---- called by the loop (loop.Controller) -----------------------------------

    def in_simulated_task(self) -> bool:
        return asyncio.current_task(self.loop) in self.registry

    def creating(self, name: str | None) -> AbstractContextManager[None]:
        """Around ``loop.create_task``: the first step seen inside belongs to the new task."""
        return self.registry.creating(name)

    def intercept(
        self,
        task: asyncio.Task[Any],
        callback: Callable[..., object],
        args: tuple[Any, ...],
        context: Context | None,
    ) -> asyncio.Handle | None:
        """Park the step and return a handle, or return None to let the loop queue it."""
        self.settler.stepped(task)
        if task not in self.registry:
            if not self.registry.should_adopt(task):
                return None
            self._adopt(task)
            if self._passthrough:
                # created while the schedule unwinds (e.g. SQLAlchemy closing a connection
                # in a shielded task): nobody would release a parked first step
                return self._run_through(task, callback, args, context)
            return self._park(task, callback, args, context, start_label(task))
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
                self.explainer.begin(
                    self.registry.names.__getitem__, self.registry.index.__getitem__
                )
            with self.registry.adopting_root():
                root_task = self.loop.create_task(_coroutine(root), name=ROOT_NAME)
            error = await self._decide_until_done(root_task)
            if error is None:
                result, error = _result_of(root_task, self.registry)
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
        registry = self.registry
        return Trace(
            tuple(self.decisions),
            display_names=registry.display_names(),
            internal_tasks=frozenset(registry.names[t] for t in registry.internal),
            invariant_tasks=frozenset(registry.names[t] for t in registry.checking),
            marks=dict(self.marks),
        )

    def label_task(self, name: str) -> None:
        """Record ``name`` as the display name of the current simulated task (reports only)."""
        task = asyncio.current_task(self.loop)
        if task is not None and task in self.registry:
            self.registry.label(task, name)

    def mark(self, phase: str) -> None:
        """Record that ``phase`` begins at the next decision (reports only; the first mark wins).

        ``"invariants"``, marked by the engine in the root task once the body has
        returned: the root's decisions from here on, and the tasks it creates, are
        the final invariant checks' own.
        """
        self.marks.setdefault(phase, len(self.decisions))
        if phase == "invariants":
            self.registry.invariants_begun = True

    async def point(self, label: str) -> None:
        """Make the current simulated task stop at a decision point called ``label``."""
        task = asyncio.current_task(self.loop)
        if task is None or task not in self.registry:
            return
        self._pending_point[task] = label
        await _yield_once()

    def add_check(self, check: Callable[[], object]) -> None:
        """Run ``check()`` before every decision of this schedule; what it raises fails it."""
        self._checks.append(check)

    async def _decide_until_done(self, root: asyncio.Task[Any]) -> BaseException | None:
        cancelled_leftovers = False
        while True:
            await self.settler.settle()
            if self.clock.has_due():
                self._wake("timer", self.clock.pop_due())
                continue
            runnable = [t for t in self.registry.tasks if t in self.parked]
            if not runnable:
                live = self.registry.live()
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
                return self._deadlock(live)
            if root.done() and not cancelled_leftovers:
                cancelled_leftovers = True
                self._cancel_leftovers(self.registry.live())
                continue
            if len(self.decisions) >= self.limits.max_steps:
                return self._step_bound_exceeded(runnable)
            for check in self._checks:
                check()  # an exception here is the schedule's failure, at this step
            self._decide(runnable)
            if self.explainer is not None and self._previous is not None:
                self.explainer.after_decision(self._previous)

    def _decide(self, runnable: list[asyncio.Task[Any]]) -> None:
        names, index = self.registry.names, self.registry.index
        candidates = [Candidate(names[t], index[t], self.parked[t].label) for t in runnable]
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

    def _decision_label(self, task: asyncio.Task[Any], args: tuple[Any, ...]) -> str | None:
        """The label if this step is a decision point, None if it is an atomic continuation."""
        point = self._pending_point.pop(task, None)
        if point is not None:
            return point
        return decision_label(
            task,
            args,
            current=asyncio.current_task(self.loop),
            registry=self.registry,
            last_wait=self.settler.take_last_wait(task),
            waking=self._waking,
        )

    # ---- parking and releasing ----------------------------------------------

    def _adopt(self, task: asyncio.Task[Any]) -> None:
        self.registry.adopt(task)
        # A closure, not the bound method: wait classification scans every live task's
        # done-callbacks for the future a waiter awaits, and a bound method's owner (the
        # settler, with its many attributes) would be searched attribute by attribute.
        poke = self.settler.poke
        task.add_done_callback(lambda _task: poke())

    def _park(
        self,
        task: asyncio.Task[Any],
        callback: Callable[..., object],
        args: tuple[Any, ...],
        context: Context | None,
        label: str,
    ) -> asyncio.Handle:
        if task in self.parked:
            raise RuntimeError(f"interlace: task {self.registry.names[task]} has two pending steps")
        self.parked[task] = _Parked(callback, args, context, label)
        self.settler.poke()
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
        self.settler.poke()
        return asyncio.Handle(callback, args, self.loop, context)

    def _release(
        self,
        task: asyncio.Task[Any],
        callback: Callable[..., object],
        args: tuple[Any, ...],
        context: Context | None,
    ) -> None:
        poke = self.settler.poke

        def step() -> None:
            # The task's own context is entered by its step; this wrapper only adds
            # the poke, so the director re-checks as soon as the step has run.
            try:
                callback(*args)
            finally:
                poke()

        self.loop.release(step, (), context)

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
        tasks = self.registry.tasks
        for task in [t for t in tasks if t in self.parked]:
            parked = self.parked.pop(task)
            self._release(task, parked.callback, parked.args, parked.context)
        # shielded work (a connection being closed) runs through, as above
        live = [t for t in tasks if not t.done() and not _shielded(t)]
        for task in live:
            task.cancel()
        deadline = time.monotonic() + self.limits.stuck_after
        while any(not t.done() for t in tasks) and time.monotonic() < deadline:
            await self.settler.drain()
            if not self.settler.in_flight() and self.clock.advance_to_next():
                self._wake("timer", self.clock.pop_due())
                continue
            if any(not t.done() for t in tasks):
                await self.settler.wait_for_change(_UNWIND_POLL)
        self.clock.clear()
        stuck = [self.registry.names[t] for t in tasks if not t.done()]
        if stuck:
            return StuckOutsideIO.after_cancellation(stuck)
        return None

    # ---- verdicts ---------------------------------------------------------------

    def _deadlock(self, live: list[asyncio.Task[Any]]) -> Deadlock:
        names = self.registry.names
        waits = [(names[t], self.settler.wait_of(t).describe()) for t in live]
        return Deadlock.of(waits, self._best_effort())

    def _step_bound_exceeded(self, runnable: list[asyncio.Task[Any]]) -> StepBoundExceeded:
        names = self.registry.names
        parked = [(names[t], self.parked[t].label) for t in runnable]
        return StepBoundExceeded.of(self.limits.max_steps, parked)

    def _best_effort(self) -> str | None:
        return self.explainer.best_effort if self.explainer is not None else None


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


def _result_of(
    root: asyncio.Task[Any], registry: TaskRegistry
) -> tuple[object, BaseException | None]:
    if root.cancelled():
        return None, asyncio.CancelledError("the scenario's root task was cancelled")
    error = root.exception()
    if error is not None:
        return None, error
    for task in registry.tasks[1:]:
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
