"""Exploration: run many schedules of a scenario, keep the first failure, replay tokens.

``explore`` and ``replay`` are synchronous: each makes one ``ControlledLoop``
that runs every schedule of the call, so engines and pools made by the
scenario's resource live across schedules. ``explore_async`` and
``replay_async`` do the same on a ``ControlledLoop`` that is already running.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

from interlace._core import Strategy
from interlace._core.director import Director, Limits
from interlace._core.errors import Nondeterminism, SchedulerFailure, TokenError, UsageError
from interlace._core.loop import ControlledLoop
from interlace._core.trace import Token, Trace
from interlace._core.waits import outside_waits_of
from interlace.db import sqlalchemy as sqlalchemy_points
from interlace.report.table import interleaving_table
from interlace.scenario import Scenario, as_scenario
from interlace.shrink import shrink as shrink_schedule
from interlace.strategies import GuidedStrategy, ReplayStrategy, by_name

_T = TypeVar("_T")
ScenarioLike = Scenario | Callable[..., Awaitable[object]]


@dataclass(frozen=True)
class Failure:
    """A failing schedule: what failed, its trace, and the token that replays it."""

    exception: BaseException
    token: str
    trace: Trace
    schedule: int
    seed: int
    #: (preemptions, decisions) of the schedule as found, before shrinking
    found_size: tuple[int, int] | None = None
    shrink_runs: int = 0
    #: shrinking ran every schedule with fewer preemptions and none failed this way
    minimal: bool = False

    @property
    def kind(self) -> str:
        """``invariant`` (an AssertionError), ``scheduler`` (deadlock, ...), or ``error``."""
        if isinstance(self.exception, AssertionError):
            return "invariant"
        if isinstance(self.exception, SchedulerFailure):
            return "scheduler"
        return "error"

    def headline(self) -> str:
        message = str(self.exception).strip() or "(no message)"
        return f"{type(self.exception).__name__}: {message}"

    def shrink_note(self) -> str:
        """``shrunk from 5 preemptions / 31 decisions to 1 / 18 in 12 runs``, or ""."""
        notes = []
        if self.found_size is not None:
            found_p, found_d = self.found_size
            notes.append(
                f"shrunk from {found_p} preemptions / {found_d} decisions to "
                f"{self.trace.preemptions} / {len(self.trace.decisions)} "
                f"in {self.shrink_runs} runs"
            )
        if self.minimal and self.trace.preemptions > 0:
            notes.append(
                f"minimal: every schedule with fewer than {self.trace.preemptions} "
                "preemptions was run and none fails this way"
            )
        return "; ".join(notes)

    def describe(self) -> str:
        """The violation, the interleaving table, the token and the command that replays it."""
        lines = [self.headline(), "", interleaving_table(self.trace)]
        if self.shrink_note():
            lines.append(self.shrink_note())
        lines += ["", f"token: {self.token}", f"replay: interlace replay '{self.token}'"]
        return "\n".join(lines)


@dataclass(frozen=True)
class ScheduleRecord:
    """One finished schedule, as ``explore(on_schedule=...)`` reports it."""

    index: int
    seed: int
    trace: Trace
    error: BaseException | None


@dataclass(frozen=True)
class ExploreReport:
    """The result of ``explore``."""

    scenario: str
    strategy: str
    seed: int
    schedules_run: int
    distinct_interleavings: int
    failure: Failure | None
    exhausted: bool
    elapsed: float
    #: what the strategy can say it covered (DFS: "exhausted: N schedules within ..."), or ""
    coverage: str = ""
    determinism_checked: bool = False
    #: why this run's schedules may not replay exactly (lock waits that could not be
    #: frozen, ``interlace.db.postgres``); None when a schedule is its choices alone
    best_effort: str | None = None

    @property
    def passed(self) -> bool:
        """No failure in the schedules run; see ``coverage`` for what that covers."""
        return self.failure is None

    def summary(self) -> str:
        if self.failure is not None:
            verdict = "FAILED"
        elif self.exhausted:
            verdict = "no failure, search space exhausted"
        else:
            verdict = "no failure within the budget"
        notes = [self.strategy, f"seed {self.seed}", f"{self.elapsed:.2f} s"]
        if self.determinism_checked:
            notes.append("every schedule run twice")
        summary = (
            f"{self.scenario}: {verdict} after {self.schedules_run} schedules "
            f"({self.distinct_interleavings} distinct interleavings, {', '.join(notes)})"
        )
        if self.coverage:
            summary += f"; {self.coverage}"
        if self.best_effort:
            summary += f"; determinism is best effort: {self.best_effort}"
        return summary


def explore(
    scenario: ScenarioLike,
    *,
    strategy: str | Strategy = "random",
    schedules: int = 200,
    seed: int = 0,
    max_steps: int = 10_000,
    stuck_after: float = 10.0,
    on_schedule: Callable[[ScheduleRecord], None] | None = None,
    shrink: bool = True,
    check_determinism: bool = False,
) -> ExploreReport:
    """Run up to ``schedules`` schedules of ``scenario``; stop at the first failure.

    ``strategy`` is "random", "pct" (depth 3), "pct<d>", or a ``Strategy``.
    Schedule ``i`` gets the ``i``-th seed drawn from ``random.Random(seed)``,
    so a run is reproducible from ``seed`` alone. ``on_schedule`` hears about
    every finished schedule (progress). A failure is shrunk (fewer
    preemptions, then fewer decisions, same invariant) unless ``shrink`` is
    False; its token replays the shrunk schedule. ``check_determinism`` runs
    every schedule twice and fails with ``Nondeterminism`` at the first
    decision where the runs differ.

    >>> report = interlace.explore(lost_update, strategy="pct", schedules=100, seed=1)
    >>> report.failure.token if report.failure else "passed"
    """
    target = as_scenario(scenario)
    limits = Limits(max_steps=max_steps, stuck_after=stuck_after)
    chosen = _strategy(strategy)
    return _run_sync(
        explore_async(
            target,
            strategy=chosen,
            schedules=schedules,
            seed=seed,
            limits=limits,
            on_schedule=on_schedule,
            shrink=shrink,
            check_determinism=check_determinism,
        )
    )


async def explore_async(
    scenario: ScenarioLike,
    *,
    strategy: str | Strategy = "random",
    schedules: int = 200,
    seed: int = 0,
    limits: Limits | None = None,
    on_schedule: Callable[[ScheduleRecord], None] | None = None,
    shrink: bool = True,
    check_determinism: bool = False,
) -> ExploreReport:
    """``explore`` on the running ``ControlledLoop``."""
    if schedules < 1:
        raise UsageError(f"schedules must be at least 1, got {schedules}")
    if seed < 0:
        raise UsageError(f"seed must be a non-negative integer, got {seed}")
    target = as_scenario(scenario)
    chosen = _strategy(strategy)
    loop = _controlled_loop()
    _install_instrumentation()
    bounds = limits or Limits()
    seeds = random.Random(seed)
    interleavings: set[tuple[tuple[str, str], ...]] = set()
    failure: Failure | None = None
    exhausted = False
    run = 0
    started = time.monotonic()
    async with target.resources() as value:
        # the resource may have attached an explainer (a PostgreSQL lock monitor)
        explainer = outside_waits_of(loop)
        best_effort = explainer.best_effort if explainer is not None else None

        async def run_once(strategy: Strategy) -> tuple[Trace, BaseException | None]:
            await target.reset_within(value, bounds.stuck_after)
            outcome = await Director(loop, strategy, bounds).run(target.bind(value))
            if isinstance(outcome.error, TokenError):
                raise outcome.error
            return outcome.trace, outcome.error

        while run < schedules:
            schedule_seed = seeds.getrandbits(63)
            if not chosen.begin(schedule_seed):
                exhausted = True
                break
            trace, error = await run_once(chosen)
            run += 1
            interleavings.add(trace.interleaving())
            if error is None and check_determinism:
                error = _divergence(trace, (await run_once(GuidedStrategy(_choices(trace))))[0])
            if on_schedule is not None:
                on_schedule(ScheduleRecord(run - 1, schedule_seed, trace, error))
            if error is not None:
                failure = await _failure(
                    scenario=target.name,
                    strategy=chosen.name,
                    seed=schedule_seed,
                    index=run - 1,
                    trace=trace,
                    error=error,
                    run_once=run_once if shrink and not isinstance(error, Nondeterminism) else None,
                )
                break
    describe = getattr(chosen, "describe", None)
    return ExploreReport(
        scenario=target.name,
        strategy=chosen.name,
        seed=seed,
        schedules_run=run,
        distinct_interleavings=len(interleavings),
        failure=failure,
        exhausted=exhausted,
        elapsed=time.monotonic() - started,
        coverage=describe() if callable(describe) else "",
        determinism_checked=check_determinism,
        best_effort=best_effort,
    )


async def _failure(
    *,
    scenario: str,
    strategy: str,
    seed: int,
    index: int,
    trace: Trace,
    error: BaseException,
    run_once: Callable[[Strategy], Awaitable[tuple[Trace, BaseException | None]]] | None,
) -> Failure:
    """The failure as reported: shrunk when ``run_once`` is given, with its token."""
    found_size: tuple[int, int] | None = None
    runs = 0
    minimal = False
    if run_once is not None:
        shrunk = await shrink_schedule(trace, error, run_once)
        if shrunk.trace != trace:
            found_size = (trace.preemptions, len(trace.decisions))
            trace, error = shrunk.trace, shrunk.error
        runs, minimal = shrunk.runs, shrunk.minimal
    token = Token.from_trace(scenario, strategy, seed, trace).encode()
    return Failure(error, token, trace, index, seed, found_size, runs, minimal)


def _choices(trace: Trace) -> list[int]:
    return [decision.task_index for decision in trace.decisions]


def _divergence(first: Trace, second: Trace) -> Nondeterminism | None:
    """The first decision where two runs of the same choices differ, as a failure."""
    for step, (one, two) in enumerate(zip(first.decisions, second.decisions, strict=False)):
        if (one.task, one.label, one.runnable) != (two.task, two.label, two.runnable):
            return Nondeterminism(
                f"nondeterminism at step {step}: the first run chose {one.task} at "
                f"{one.label!r} (runnable: {', '.join(one.runnable)}), the second run of the "
                f"same choices chose {two.task} at {two.label!r} (runnable: "
                f"{', '.join(two.runnable)}); something outside the scheduler's control "
                "decides (wall clock, randomness, state kept between schedules, a database "
                "whose lock waits cannot be frozen)"
            )
    if len(first.decisions) != len(second.decisions):
        return Nondeterminism(
            f"nondeterminism: the first run made {len(first.decisions)} decisions, the "
            f"second run of the same choices {len(second.decisions)}"
        )
    return None


def replay(
    scenario: ScenarioLike, token: str, *, max_steps: int = 10_000, stuck_after: float = 10.0
) -> Trace:
    """Run the schedule of ``token`` once.

    Returns the trace when the schedule passes (the bug is fixed). Otherwise
    raises what the schedule raised, the same exception as when the token was
    made, with notes holding the interleaving table and the token; its
    ``interlace_failure`` attribute is the ``Failure`` (with the same trace).
    Raises ``TokenError`` when the token is malformed, names another
    scenario, or no longer fits the code.
    """
    target = as_scenario(scenario)
    limits = Limits(max_steps=max_steps, stuck_after=stuck_after)
    return _run_sync(replay_async(target, token, limits=limits))


async def replay_async(
    scenario: ScenarioLike, token: str, *, limits: Limits | None = None
) -> Trace:
    """``replay`` on the running ``ControlledLoop``."""
    target = as_scenario(scenario)
    decoded = Token.decode(token)
    if decoded.scenario != target.name:
        raise TokenError(
            f"token is for scenario {decoded.scenario!r}, not {target.name!r}: "
            "replay it against the scenario that made it"
        )
    loop = _controlled_loop()
    _install_instrumentation()
    strategy = ReplayStrategy(decoded)
    strategy.begin(decoded.seed)
    bounds = limits or Limits()
    async with target.resources() as value:
        await target.reset_within(value, bounds.stuck_after)
        outcome = await Director(loop, strategy, bounds).run(target.bind(value))
    if isinstance(outcome.error, TokenError):
        raise outcome.error
    if outcome.error is None:
        return outcome.trace
    failure = Failure(outcome.error, token.strip(), outcome.trace, 0, decoded.seed)
    error = outcome.error
    error.interlace_failure = failure  # type: ignore[attr-defined]
    error.add_note(interleaving_table(outcome.trace))
    error.add_note(f"token: {failure.token}")
    raise error


def _strategy(strategy: str | Strategy) -> Strategy:
    if isinstance(strategy, str):
        try:
            return by_name(strategy)
        except ValueError as error:
            raise UsageError(str(error)) from None
    return strategy


def _controlled_loop() -> ControlledLoop:
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


def _run_sync(coroutine: Coroutine[Any, Any, _T]) -> _T:
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


def _install_instrumentation() -> None:
    sqlalchemy_points.install()
