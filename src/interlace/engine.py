"""The one schedule runner: every front end runs schedules through it, and only through it.

``ScheduleRunner`` owns what running a schedule takes, so that ``explore``,
``replay``, the shrinker, the determinism check, the hypothesis session and
the pytest plugin do it one way:

- the check that the code runs on an idle ``ControlledLoop``;
- the SQL instrumentation (``interlace.db.sqlalchemy``, with SQLite's busy
  model), installed before the resource makes an engine, and the PostgreSQL
  lock watch (``interlace.db.lock_watch``; ``Config.lock_monitor``);
- the resource stack, entered once, outside any schedule, and closed once;
- the reset before every schedule, bounded by ``stuck_after``;
- the schedule itself (a ``Director``), with the invariants of the scenario
  (``always`` before every decision, ``final`` after the body, ``sometimes``
  recorded);
- the classification of what happened into exactly one ``Outcome``.

Classification (``classify``) is the only place that decides what an
exception means. In order:

1. ``TokenError``, ``UsageError`` and every other ``InterlaceError`` that is
   not a scheduler finding: a usage error;
2. ``StuckOutsideIO`` in the first schedule of a run, or in a reset: a setup
   error (usage class): nothing has been shown to work, so the likeliest cause
   is the setup (a database not reachable, a lock monitor missing), never a race;
3. other scheduler failures (deadlock, step bound, stuck later on,
   nondeterminism): a scheduler finding;
4. an ``AssertionError``: a violation (an invariant, or the app's own assert);
5. any other exception whose innermost frame outside the standard library is
   interlace's own code: an internal error (a bug in interlace);
6. anything else: the application raised, a violation.
"""

from __future__ import annotations

import asyncio
import os
import sysconfig
import traceback
from collections.abc import Awaitable, Callable, Coroutine
from contextlib import AsyncExitStack
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TypeVar

import interlace
from interlace._core.director import Director, Limits
from interlace._core.errors import (
    InterlaceError,
    Nondeterminism,
    SchedulerFailure,
    StuckOutsideIO,
    TokenError,
    UsageError,
)
from interlace._core.loop import ControlledLoop
from interlace._core.trace import Token, Trace
from interlace._core.waits import outside_waits_of
from interlace.config import Config
from interlace.db import lock_watch
from interlace.db import sqlalchemy as sqlalchemy_points
from interlace.invariants import Checker
from interlace.outcome import Outcome, Problem, headline_of
from interlace.point import always as check_before_every_decision
from interlace.point import mark
from interlace.scenario import Scenario
from interlace.strategies import Strategy

_T = TypeVar("_T")

_INTERLACE_DIRECTORY = os.path.dirname(os.path.abspath(interlace.__file__)) + os.sep
_STDLIB_DIRECTORY = os.path.abspath(sysconfig.get_paths()["stdlib"]) + os.sep


@dataclass(frozen=True)
class ScheduleResult:
    """One schedule, classified: its trace, its outcome class, and what it raised."""

    trace: Trace
    outcome: Outcome
    error: BaseException | None
    #: names of the sometimes invariants that held (empty when the schedule failed)
    held: tuple[str, ...] = ()
    #: set when the outcome is a usage or internal error: what to tell the user
    problem: Problem | None = None

    @property
    def passed(self) -> bool:
        return self.outcome is Outcome.PASSED


class ScheduleRunner:
    """Runs schedules of one scenario on the running ``ControlledLoop``.

    Use it as an async context manager: entering checks the loop, installs
    the instrumentation and enters the scenario's resource; leaving closes
    it. A failure to enter is a ``Problem`` in ``setup_problem`` (not an
    exception), so a front end reports it like any other outcome::

        async with ScheduleRunner(scenario, config) as runner:
            if runner.setup_problem is None:
                result = await runner.run(strategy)
    """

    def __init__(self, scenario: Scenario, config: Config) -> None:
        self.scenario = scenario
        self.config = config
        self.limits = Limits(max_steps=config.max_steps, stuck_after=config.stuck_after)
        self.loop = controlled_loop()
        self.setup_problem: Problem | None = None
        self.close_problem: Problem | None = None
        #: why the schedules may not replay exactly; known once the resource is entered
        self.best_effort: str | None = None
        self._stack = AsyncExitStack()
        self._lock_watch: lock_watch.LockWatch | None = None
        self._value: Any = None
        # invariant: True until a schedule has been run to its end (passed or failed)
        self._first = True

    async def __aenter__(self) -> ScheduleRunner:
        sqlalchemy_points.install()  # before the resource makes an engine
        # every asyncpg connection used on this loop, watched for lock waits (opt-out:
        # Config.lock_monitor); entered first, so it is closed after the resource
        self._lock_watch = await self._stack.enter_async_context(
            lock_watch.watching(self.loop, enabled=self.config.lock_monitor)
        )
        try:
            self._value = await self._stack.enter_async_context(self.scenario.resources())
        except Exception as error:
            self.setup_problem = problem_of(
                error, f"setting up {self.scenario.name} failed", setup=True
            )
            return self
        if self._lock_watch is not None:
            self._lock_watch.attach()  # unless the resource attached an explainer of its own
        self._note_best_effort()
        return self

    def _note_best_effort(self) -> None:
        # an explainer (the lock watch, or the resource's own) says why replays may diverge
        explainer = outside_waits_of(self.loop)
        if explainer is not None:
            self.best_effort = explainer.best_effort

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            await self._stack.aclose()
        except Exception as failure:
            if kind is None:
                self.close_problem = problem_of(
                    failure, f"closing the resource of {self.scenario.name} failed", setup=True
                )

    @property
    def resource(self) -> Any:
        """What the scenario's resource yielded (None without a resource)."""
        return self._value

    async def run(
        self,
        strategy: Strategy,
        *,
        seed: int,
        first: bool | None = None,
        root: Callable[[], Awaitable[object]] | None = None,
    ) -> ScheduleResult:
        """Reset, run one schedule under ``strategy``, and classify what happened.

        ``seed`` is recorded in the token of an internal error. ``first`` says
        whether a stuck wait counts as a setup error; by default it does in the
        first schedule this runner runs. ``root`` runs instead of the scenario's
        body (a hypothesis session runs another root in each example).
        """
        if self.setup_problem is not None:
            raise UsageError("ScheduleRunner.run called although its setup failed")
        try:
            await self.scenario.reset_within(self._value, self.limits.stuck_after)
        except Exception as reset_error:
            problem = problem_of(
                reset_error, f"the reset of {self.scenario.name} failed", setup=True
            )
            return ScheduleResult(Trace(()), problem.outcome, reset_error, problem=problem)
        if self._lock_watch is not None:
            await self._lock_watch.ready()  # lock monitors connect outside any schedule
        held: list[str] = []
        schedule_root = root if root is not None else self._root(held)
        director = Director(self.loop, strategy, self.limits)
        try:
            outcome = await director.run(schedule_root)
        except Exception as escaped:
            # The director returns every outcome of the schedule; what escapes it is a
            # failure of interlace itself (while unwinding the schedule, for example).
            if self.loop.director is director:
                self.loop.director = None  # let the resource close on a plain loop
            # A strategy's TokenError (a replayed token that ran out) or a misuse is said
            # as such; anything else is interlace's own bug.
            kind = (
                Outcome.USAGE_ERROR
                if isinstance(escaped, TokenError | UsageError)
                else Outcome.INTERNAL_ERROR
            )
            token = self.token(strategy.name, seed, director.trace())
            problem = schedule_problem(escaped, kind, self.scenario.name, token)
            return ScheduleResult(director.trace(), kind, escaped, problem=problem)
        self._note_best_effort()
        if first is None:
            first = self._first
        self._first = False
        error = outcome.error
        if error is None:
            return ScheduleResult(outcome.trace, Outcome.PASSED, None, tuple(held))
        kind = classify(error, first=first)
        if not kind.is_problem:
            return ScheduleResult(outcome.trace, kind, error)
        token = self.token(strategy.name, seed, outcome.trace)
        problem = schedule_problem(error, kind, self.scenario.name, token)
        return ScheduleResult(outcome.trace, kind, error, problem=problem)

    def token(self, strategy: str, seed: int, trace: Trace) -> str:
        return Token.from_trace(self.scenario.name, strategy, seed, trace).encode()

    def _root(self, held: list[str]) -> Callable[[], Awaitable[object]]:
        """The root task of a schedule: the body, with the scenario's invariants around it."""
        scenario = self.scenario
        bound = scenario.bind(self._value)
        if not scenario.invariants:
            return bound
        world = self._value

        async def checked() -> object:
            checker = Checker(scenario.invariants, scenario.database, world)
            if checker.always:
                check_before_every_decision(checker.check_always)
            result = await bound()
            mark("invariants")  # reports fold the checks' own reads away
            await checker.check_final()
            held.extend(await checker.sometimes_held())
            return result

        # the root task's first row in the interleaving table reads "start <body>"
        checked.__qualname__ = checked.__name__ = scenario.body.__qualname__
        return checked


def classify(error: BaseException, *, first: bool = False) -> Outcome:
    """The one outcome class of ``error`` (see the module docstring for the rules)."""
    if isinstance(error, StuckOutsideIO):
        return Outcome.USAGE_ERROR if first else Outcome.SCHEDULER_FINDING
    if isinstance(error, SchedulerFailure):
        return Outcome.SCHEDULER_FINDING
    if isinstance(error, InterlaceError):
        return Outcome.USAGE_ERROR
    if isinstance(error, AssertionError):
        return Outcome.VIOLATION
    if raised_by_interlace(error):
        return Outcome.INTERNAL_ERROR
    return Outcome.VIOLATION


def shrinkable(error: BaseException) -> bool:
    """Whether rerunning smaller schedules can say more: never for stuck or divergent runs."""
    return not isinstance(error, StuckOutsideIO | Nondeterminism)


def raised_by_interlace(error: BaseException) -> bool:
    """Whether the innermost frame of ``error`` outside the standard library is interlace's."""
    innermost: str | None = None
    for frame, _line in traceback.walk_tb(error.__traceback__):
        name = frame.f_code.co_filename
        if name.startswith("<"):
            continue  # frozen or generated code: part of the runtime
        filename = os.path.abspath(name)
        if not filename.startswith(_STDLIB_DIRECTORY) or "site-packages" in filename:
            innermost = filename
    return innermost is not None and innermost.startswith(_INTERLACE_DIRECTORY)


def problem_of(
    error: BaseException, context: str, *, setup: bool = False, token: str | None = None
) -> Problem:
    """The ``Problem`` of a usage, setup or internal error, with a message that says what to do.

    ``setup``: the error happened outside any schedule (entering the resource,
    a reset), where a stuck wait or an exception of the application's own
    setup code is a setup error, not a finding.
    """
    outcome = classify(error, first=True)
    if setup and outcome is not Outcome.INTERNAL_ERROR:
        outcome = Outcome.USAGE_ERROR
    if outcome is Outcome.INTERNAL_ERROR:
        return internal_problem(error, context, token)
    if isinstance(error, TokenError | UsageError | StuckOutsideIO):
        message = str(error)
    else:
        message = f"{context}: {headline_of(error)}"
    return Problem(Outcome.USAGE_ERROR, message, error)


def schedule_problem(error: BaseException, kind: Outcome, scenario: str, token: str) -> Problem:
    """The ``Problem`` of a schedule whose outcome ``kind`` is a usage or internal error."""
    if kind is Outcome.INTERNAL_ERROR:
        return internal_problem(error, f"in a schedule of {scenario}", token)
    if isinstance(error, StuckOutsideIO):
        message = (
            f"setup error in {scenario}: its first schedule got stuck before any schedule "
            f"had worked, so this is the setup, not a race (nothing was shrunk or saved): {error}"
        )
    elif isinstance(error, InterlaceError):
        message = f"{scenario}: {error}"
    else:
        message = f"{scenario}: {headline_of(error)}"
    return Problem(Outcome.USAGE_ERROR, message, error)


def internal_problem(error: BaseException, context: str, token: str | None) -> Problem:
    """A bug in interlace: the message, the token and the traceback for the bug report."""
    return Problem(
        Outcome.INTERNAL_ERROR,
        f"{context}: {headline_of(error)}",
        error,
        token=token,
        details="".join(traceback.format_exception(error)),
    )


def controlled_loop() -> ControlledLoop:
    """The running loop, which must be an idle ``ControlledLoop``; UsageError otherwise."""
    loop = asyncio.get_running_loop()
    if not isinstance(loop, ControlledLoop):
        raise UsageError(
            f"interlace needs its ControlledLoop, but this code runs on {type(loop).__name__}; "
            "call interlace.explore(...) from synchronous code, or run the coroutine with "
            "asyncio.Runner(loop_factory=interlace.ControlledLoop)"
        )
    if loop.director is not None:
        raise UsageError(
            "explore/replay called from inside a simulation: run one exploration at a time"
        )
    return loop


def run_sync(coroutine: Coroutine[Any, Any, _T]) -> _T:
    """Run ``coroutine`` on a fresh ``ControlledLoop`` from synchronous code."""
    if _loop_is_running():
        coroutine.close()
        raise UsageError(
            "interlace.explore/replay are synchronous and were called inside a running event "
            "loop; await interlace.explore_async(...) / replay_async(...) on a ControlledLoop"
        )
    with asyncio.Runner(loop_factory=ControlledLoop) as runner:
        return runner.run(coroutine)


def _loop_is_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


__all__ = [
    "ScheduleResult",
    "ScheduleRunner",
    "classify",
    "controlled_loop",
    "problem_of",
    "raised_by_interlace",
    "run_sync",
    "schedule_problem",
    "shrinkable",
]
