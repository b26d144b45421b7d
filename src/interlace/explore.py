"""Exploration and replay: many schedules of a scenario, or the one schedule of a token.

``explore`` and ``replay`` are synchronous: each makes one ``ControlledLoop``
that runs every schedule of the call, so engines and pools made by the
scenario's resource live across schedules. ``explore_async`` and
``replay_async`` do the same on a ``ControlledLoop`` that is already running.

Both run their schedules through the one ``ScheduleRunner``
(``interlace.engine``), which classifies every outcome; this module only
decides which schedules to run (the strategy, the seeds, the determinism
check, the shrinking of a finding) and gathers the report.
"""

from __future__ import annotations

import hashlib
import random
import time
from collections.abc import Callable
from typing import Unpack

from interlace._core.errors import Nondeterminism, TokenError, UsageError
from interlace._core.trace import Token, Trace
from interlace.config import Config, ConfigChanges, configured
from interlace.engine import (
    ScheduleResult,
    ScheduleRunner,
    problem_of,
    run_sync,
    shrinkable,
)
from interlace.outcome import (
    ExploreReport,
    Failure,
    Outcome,
    Problem,
    ReplayReport,
    ScheduleRecord,
    Shrinking,
)
from interlace.report.table import interleaving_table
from interlace.scenario import Scenario, ScenarioLike, as_scenario
from interlace.shrink import ShrinkBudget
from interlace.shrink import shrink as shrink_schedule
from interlace.strategies import GuidedStrategy, ReplayStrategy, Strategy


class InternalError(Exception):
    """interlace itself failed (a bug in interlace); the message says how to report it."""


def explore(
    scenario: ScenarioLike,
    config: Config | None = None,
    *,
    on_schedule: Callable[[ScheduleRecord], None] | None = None,
    **changes: Unpack[ConfigChanges],
) -> ExploreReport:
    """Run up to ``config.schedules`` schedules of ``scenario``; stop at the first failure.

    ``config`` (an ``interlace.Config``) describes the run; keywords change
    single fields (``schedules=100, strategy="pct"``). Schedule ``i`` gets the
    ``i``-th seed drawn from ``random.Random(seed)``, so a run is reproducible
    from its seed alone. ``on_schedule`` hears about every explored schedule
    (progress). A finding is shrunk (fewer preemptions, then fewer decisions,
    same failure) unless ``shrink=False``; its token replays the shrunk
    schedule.

    The report carries the run's one outcome (``report.outcome``): passed, a
    ``failure`` (a violation or a scheduler finding, with its token), or a
    ``problem`` (a usage, setup or internal error, with what to do).

    >>> report = interlace.explore(lost_update, strategy="pct", schedules=100, seed=1)
    >>> report.failure.token if report.failure else "passed"
    """
    return run_sync(explore_async(scenario, config, on_schedule=on_schedule, **changes))


async def explore_async(
    scenario: ScenarioLike,
    config: Config | None = None,
    *,
    on_schedule: Callable[[ScheduleRecord], None] | None = None,
    **changes: Unpack[ConfigChanges],
) -> ExploreReport:
    """``explore`` on the running ``ControlledLoop``."""
    target = as_scenario(scenario)
    settings = configured(config, changes)
    exploration = _Exploration(target, settings, on_schedule)
    async with ScheduleRunner(target, settings) as runner:
        if runner.setup_problem is not None:
            exploration.problem = runner.setup_problem
        else:
            await exploration.run(runner)
    if exploration.problem is None and exploration.failure is None:
        exploration.problem = runner.close_problem
    return exploration.report(runner.best_effort)


class _Exploration:
    """The state of one exploration while it runs (see ``explore``)."""

    def __init__(
        self,
        scenario: Scenario,
        config: Config,
        on_schedule: Callable[[ScheduleRecord], None] | None,
    ) -> None:
        self.scenario = scenario
        self.config = config
        self.strategy = config.make_strategy()
        self.on_schedule = on_schedule
        self.started = time.monotonic()
        self.runs = 0
        # Digests, not traces: an exploration of 10,000 schedules keeps 10,000 x 16 bytes.
        self.interleavings: set[bytes] = set()
        self.curve = CoverageCurve()
        # invariant: a key for every sometimes invariant of the scenario's database
        self.sometimes = dict.fromkeys(scenario.sometimes_names(), 0)
        self.exhausted = False
        self.failure: Failure | None = None
        self.problem: Problem | None = None

    async def run(self, runner: ScheduleRunner) -> None:
        seeds = random.Random(self.config.seed)
        while self.runs < self.config.schedules:
            seed = seeds.getrandbits(63)
            if not self.strategy.begin(seed):
                self.exhausted = True
                return
            result = await runner.run(self.strategy, seed=seed)
            self.runs += 1
            self.interleavings.add(interleaving_digest(result.trace))
            self.curve.add(self.runs, len(self.interleavings))
            if result.passed and self.config.check_determinism:
                result = await _rerun_for_divergence(runner, result, seed)
            for name in result.held:
                self.sometimes[name] = self.sometimes.get(name, 0) + 1
            if self.on_schedule is not None:
                record = ScheduleRecord(
                    self.runs - 1,
                    seed,
                    result.trace,
                    result.outcome,
                    result.error,
                    len(self.interleavings),
                )
                self.on_schedule(record)
            if result.problem is not None:
                self.problem = result.problem
                return
            if result.outcome.is_finding:
                await self._report_finding(runner, result, seed)
                return

    async def _report_finding(
        self, runner: ScheduleRunner, result: ScheduleResult, seed: int
    ) -> None:
        assert result.error is not None
        found_in = time.monotonic() - self.started
        trace, error, shrinking = result.trace, result.error, None
        if self.config.shrink and shrinkable(error):
            shrunk = await _shrink(runner, self.config, result, found_in)
            if isinstance(shrunk, Problem):
                self.problem = shrunk
                return
            trace, error, shrinking = shrunk
        token = runner.token(self.strategy.name, seed, trace)
        self.failure = Failure(result.outcome, error, token, trace, self.runs - 1, seed, shrinking)

    def report(self, best_effort: str | None) -> ExploreReport:
        describe = getattr(self.strategy, "describe", None)
        return ExploreReport(
            scenario=self.scenario.name,
            strategy=self.strategy.name,
            seed=self.config.seed,
            schedules_run=self.runs,
            distinct_interleavings=len(self.interleavings),
            failure=self.failure,
            exhausted=self.exhausted,
            elapsed=time.monotonic() - self.started,
            coverage=describe() if callable(describe) and self.runs else "",
            determinism_checked=self.config.check_determinism,
            best_effort=best_effort,
            problem=self.problem,
            sometimes=dict(self.sometimes),
            coverage_curve=self.curve.points(self.runs, len(self.interleavings)),
        )


class CoverageCurve:
    """Distinct interleavings after each schedule, thinned to at most about ``limit`` points.

    Reports plot it (coverage growth); an exploration of a million schedules
    keeps at most ``2 * limit`` pairs. Thinning keeps every ``stride``-th
    schedule, doubling the stride whenever the points outgrow the limit, so
    the points stay evenly spaced and the curve is the same on every run.

    >>> curve = CoverageCurve(limit=2)
    >>> for runs in range(1, 6):
    ...     curve.add(runs, runs)
    >>> curve.points(5, 5)
    ((2, 2), (4, 4), (5, 5))
    """

    def __init__(self, limit: int = 200) -> None:
        self.limit = limit
        # invariant: every point's schedule count is a multiple of stride
        self.stride = 1
        self._points: list[tuple[int, int]] = []

    def add(self, runs: int, distinct: int) -> None:
        if runs % self.stride:
            return
        self._points.append((runs, distinct))
        if len(self._points) > self.limit:
            self.stride *= 2
            self._points = [p for p in self._points if p[0] % self.stride == 0]

    def points(self, runs: int, distinct: int) -> tuple[tuple[int, int], ...]:
        """The curve, ending with the whole run (``runs`` schedules, ``distinct`` of them)."""
        if runs == 0:
            return ()
        if self._points and self._points[-1][0] == runs:
            return tuple(self._points)
        return (*self._points, (runs, distinct))


def interleaving_digest(trace: Trace) -> bytes:
    """16 bytes that identify the interleaving: the (task, label) of each decision."""
    hasher = hashlib.blake2b(digest_size=16)
    for decision in trace.decisions:
        hasher.update(decision.task.encode())
        hasher.update(b"\x1f")
        hasher.update(decision.label.encode())
        hasher.update(b"\x1e")
    return hasher.digest()


async def _shrink(
    runner: ScheduleRunner, config: Config, result: ScheduleResult, found_in: float
) -> tuple[Trace, BaseException, Shrinking] | Problem:
    """Shrink a finding; a usage or internal error met on the way ends the run instead."""
    assert result.error is not None
    problems: list[Problem] = []
    # the shrink runs that passed: reports show where the nearest one parts from the
    # shrunk schedule (at most shrink_runs traces, dropped when shrinking ends)
    passing: list[Trace] = []

    async def run_once(strategy: Strategy) -> tuple[Trace, BaseException | None]:
        if problems:
            return result.trace, None  # stop trying: the run is over
        rerun = await runner.run(strategy, seed=0)
        if rerun.problem is not None:
            problems.append(rerun.problem)
            return rerun.trace, None
        if rerun.passed:
            passing.append(rerun.trace)
        return rerun.trace, rerun.error if rerun.outcome.is_finding else None

    budget = (
        ShrinkBudget.after_finding(found_in, max_runs=config.shrink_runs)
        if config.shrink_seconds is None
        else ShrinkBudget(max_runs=config.shrink_runs, seconds=config.shrink_seconds)
    )
    shrunk = await shrink_schedule(result.trace, result.error, run_once, budget)
    if problems:
        return problems[0]
    shrinking = Shrinking(
        found_size=(result.trace.preemptions, len(result.trace.decisions)),
        runs=shrunk.runs,
        seconds=shrunk.elapsed,
        minimal=shrunk.minimal,
        stopped=shrunk.stopped,
        nearest_passing=nearest(shrunk.trace, passing),
    )
    return shrunk.trace, shrunk.error, shrinking


def nearest(failing: Trace, passing: list[Trace]) -> Trace | None:
    """The passing trace that parts from ``failing`` latest, then with the fewest other changes.

    Parting latest is what a person reads first ("the same 17 decisions, then
    T1 instead of T2"); among those, the one whose remaining choices differ
    least. The earliest such trace wins a tie, so the choice is deterministic.
    """
    target = _choices(failing)

    def distance(trace: Trace) -> tuple[int, int]:
        choices = _choices(trace)
        parted = next(
            (i for i, (a, b) in enumerate(zip(choices, target, strict=False)) if a != b),
            min(len(choices), len(target)),
        )
        differing = sum(1 for a, b in zip(choices, target, strict=False) if a != b)
        return (-parted, differing + abs(len(choices) - len(target)))

    return min(passing, key=distance, default=None)


async def _rerun_for_divergence(
    runner: ScheduleRunner, first: ScheduleResult, seed: int
) -> ScheduleResult:
    """Run the same choices again; a divergence is a scheduler finding on the first trace."""
    second = await runner.run(GuidedStrategy(_choices(first.trace)), seed=seed)
    if second.problem is not None:
        return second
    divergence = _divergence(first.trace, second.trace)
    if divergence is None:
        return first
    return ScheduleResult(first.trace, Outcome.SCHEDULER_FINDING, divergence)


def _choices(trace: Trace) -> list[int]:
    return [decision.task_index for decision in trace.decisions]


def _divergence(first: Trace, second: Trace) -> Nondeterminism | None:
    """The first decision where two runs of the same choices differ, as a finding."""
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


# ---- replay ---------------------------------------------------------------------------


def replay(
    scenario: ScenarioLike,
    token: str,
    config: Config | None = None,
    **changes: Unpack[ConfigChanges],
) -> Trace:
    """Run the schedule of ``token`` once; raise what it raised, as when the token was made.

    Returns the trace when the schedule passes (the bug is fixed). A failing
    schedule raises its own exception (an ``AssertionError``, a ``Deadlock``,
    the application's error), with notes holding the interleaving table and
    the token, so a debugger stops where it failed. ``TokenError`` when the
    token is malformed, names another scenario or no longer fits the code;
    ``UsageError`` for a setup error; ``InternalError`` for a bug in interlace.
    ``replay_report`` returns the same outcome as a value instead.
    """
    return run_sync(replay_async(scenario, token, config, **changes))


async def replay_async(
    scenario: ScenarioLike,
    token: str,
    config: Config | None = None,
    **changes: Unpack[ConfigChanges],
) -> Trace:
    """``replay`` on the running ``ControlledLoop``."""
    return raise_for(await replay_report_async(scenario, token, config, **changes))


def replay_report(
    scenario: ScenarioLike,
    token: str,
    config: Config | None = None,
    **changes: Unpack[ConfigChanges],
) -> ReplayReport:
    """Replay ``token`` once and return its outcome (passed, a failure, or a problem)."""
    return run_sync(replay_report_async(scenario, token, config, **changes))


async def replay_report_async(
    scenario: ScenarioLike,
    token: str,
    config: Config | None = None,
    **changes: Unpack[ConfigChanges],
) -> ReplayReport:
    """``replay_report`` on the running ``ControlledLoop``."""
    target = as_scenario(scenario)
    settings = configured(config, changes)
    text = token.strip()
    try:
        decoded = Token.decode(text)
        if decoded.scenario != target.name:
            raise TokenError(
                f"token is for scenario {decoded.scenario!r}, not {target.name!r}: "
                "replay it against the scenario that made it"
            )
    except TokenError as error:
        return ReplayReport(target.name, text, None, problem=problem_of(error, "replay"))
    async with ScheduleRunner(target, settings) as runner:
        if runner.setup_problem is not None:
            return ReplayReport(target.name, text, None, problem=runner.setup_problem)
        strategy = ReplayStrategy(decoded)
        strategy.begin(decoded.seed)
        # the token's schedule ran before: a stuck wait in it is a finding, not the setup
        result = await runner.run(strategy, seed=decoded.seed, first=False)
    if result.problem is not None:
        return ReplayReport(target.name, text, result.trace, problem=result.problem)
    if runner.close_problem is not None and result.passed:
        return ReplayReport(target.name, text, result.trace, problem=runner.close_problem)
    if result.error is None:
        return ReplayReport(target.name, text, result.trace)
    failure = Failure(result.outcome, result.error, text, result.trace, 0, decoded.seed)
    return ReplayReport(target.name, text, result.trace, failure=failure)


def raise_for(report: ReplayReport) -> Trace:
    """The trace of a passing replay; otherwise raise what ``replay`` documents."""
    if report.problem is not None:
        error = report.problem.exception
        if report.problem.outcome is Outcome.INTERNAL_ERROR:
            raise InternalError(report.problem.describe()) from error
        if isinstance(error, TokenError | UsageError):
            raise error
        raise UsageError(report.problem.message) from error
    if report.failure is not None:
        error = report.failure.exception
        error.add_note(
            interleaving_table(report.failure.trace, full_hint="interlace replay TOKEN --full")
        )
        error.add_note(f"token: {report.failure.token}")
        raise error
    assert report.trace is not None
    return report.trace


__all__ = [
    "CoverageCurve",
    "ExploreReport",
    "Failure",
    "InternalError",
    "ScheduleRecord",
    "explore",
    "explore_async",
    "interleaving_digest",
    "nearest",
    "raise_for",
    "replay",
    "replay_async",
    "replay_report",
    "replay_report_async",
]
