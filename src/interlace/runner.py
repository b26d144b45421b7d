"""Run a simulation to a verdict: replay its regressions, explore it, judge the outcome.

This is what ``interlace run`` and the pytest plugin share. One run of one
simulation on one database kind:

1. replay the regression tokens saved for it (``interlace.corpus``), oldest
   file name first. A token that still fails ends a normal simulation's run
   at once (``REGRESSION``); for a canary it shows the expected violation.
2. explore it with the budget (``schedules``, ``strategy``, ``seed``); the
   exploration stops at the first failure.
3. judge:

   ============  ==========================================================
   verdict       when
   ============  ==========================================================
   PASSED        no failure in the budget, every sometimes invariant held
   VIOLATION     a failure (an invariant, an error, a scheduler failure);
                 for a canary: a failure other than the expected violation
   REGRESSION    a saved token still fails
   VACUOUS       no failure, but a sometimes invariant never held
   CAUGHT        a canary's expected violation was found (it passes)
   MISSED        a canary ran its whole budget without its violation
   ============  ==========================================================

Sometimes invariants are judged only when the exploration used its whole
budget without a failure: a run stopped early at a failure (expected or not)
says nothing about what the remaining schedules would have exercised.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field

from interlace._core.errors import TokenError
from interlace.corpus import Corpus, Regression
from interlace.db.supply import DatabaseKind, DatabaseSupply
from interlace.explore import ExploreReport, Failure, ScheduleRecord, explore, replay
from interlace.invariants import Observations
from interlace.simulations import Simulation


class Verdict(enum.Enum):
    """How a simulation's run ended; ``ok`` says whether the run passes."""

    PASSED = "passed"
    CAUGHT = "caught (expected)"
    VIOLATION = "VIOLATION"
    REGRESSION = "REGRESSION"
    VACUOUS = "VACUOUS"
    MISSED = "MISSED"

    @property
    def ok(self) -> bool:
        return self in (Verdict.PASSED, Verdict.CAUGHT)


@dataclass(frozen=True)
class Budget:
    """How much to explore: schedules, strategy and the seed of the run."""

    schedules: int = 200
    strategy: str = "random"
    seed: int = 0

    def describe(self) -> str:
        return f"--schedules {self.schedules} --strategy {self.strategy} --seed {self.seed}"


@dataclass(frozen=True)
class ReplayedRegression:
    """A corpus token replayed before exploring: its failure, or why it could not run."""

    regression: Regression
    failure: Failure | None
    stale: str | None = None
    """The ``TokenError`` message when the token no longer fits the code."""


@dataclass(frozen=True)
class SimulationRun:
    """The verdict of one simulation on one database kind, and what it rests on."""

    simulation: Simulation
    database: DatabaseKind | None
    verdict: Verdict
    message: str
    """One line saying why (what was found, what was missing)."""
    failure: Failure | None
    """The failure behind the verdict: unexpected, a regression's, or a canary's catch."""
    report: ExploreReport | None
    """None when a failing regression ended the run before exploring."""
    regressions: tuple[ReplayedRegression, ...] = ()
    sometimes: dict[str, int] = field(default_factory=dict)
    """Schedules in which each sometimes invariant held (of ``report.schedules_run``)."""

    @property
    def scenario(self) -> str:
        return self.simulation.scenario_name(self.database)

    @property
    def ok(self) -> bool:
        return self.verdict.ok

    @property
    def elapsed(self) -> float:
        return 0.0 if self.report is None else self.report.elapsed


def run_simulation(
    simulation: Simulation,
    supply: DatabaseSupply | None,
    budget: Budget,
    *,
    corpus: Corpus | None = None,
    on_schedule: Callable[[ScheduleRecord], None] | None = None,
) -> SimulationRun:
    """Replay the simulation's regressions, explore it with ``budget``, and judge it."""
    database = None if supply is None else supply.kind
    scenario_name = simulation.scenario_name(database)
    replayed = tuple(
        replay_regression(simulation, supply, regression)
        for regression in (corpus.for_scenario(scenario_name) if corpus is not None else [])
    )
    still_failing = [r for r in replayed if r.failure is not None]
    if still_failing and not simulation.canary:
        first = still_failing[0]
        assert first.failure is not None
        return SimulationRun(
            simulation,
            database,
            Verdict.REGRESSION,
            f"saved regression {first.regression.path.name} still fails: "
            f"{first.failure.headline()}",
            first.failure,
            None,
            replayed,
        )
    observations = Observations()
    report = explore(
        simulation.scenario(supply, observations),
        strategy=budget.strategy,
        schedules=budget.schedules,
        seed=budget.seed,
        on_schedule=on_schedule,
    )
    verdict, message, failure = judge(simulation, report, observations, replayed)
    return SimulationRun(
        simulation, database, verdict, message, failure, report, replayed, dict(observations.held)
    )


def replay_regression(
    simulation: Simulation, supply: DatabaseSupply | None, regression: Regression
) -> ReplayedRegression:
    """Replay one saved token; a token that no longer fits the code is reported as stale."""
    failure, stale = replay_token(simulation, supply, regression.token)
    return ReplayedRegression(regression, failure, stale)


def replay_token(
    simulation: Simulation, supply: DatabaseSupply | None, token: str
) -> tuple[Failure | None, str | None]:
    """``(failure, None)`` after replaying ``token`` (no failure: it passes now), or
    ``(None, why)`` when the token does not fit the simulation (a ``TokenError``)."""
    try:
        replay(simulation.scenario(supply), token)
    except TokenError as error:
        return None, str(error)
    except BaseException as error:
        failure = getattr(error, "interlace_failure", None)
        if not isinstance(failure, Failure):
            raise  # not the schedule's failure: setting the world up failed
        return failure, None
    return None, None


def judge(
    simulation: Simulation,
    report: ExploreReport,
    observations: Observations,
    replayed: tuple[ReplayedRegression, ...] = (),
) -> tuple[Verdict, str, Failure | None]:
    """The verdict of an exploration (see the module docstring's table)."""
    failure = report.failure
    if simulation.canary:
        return _judge_canary(simulation, report, replayed)
    if failure is not None:
        return Verdict.VIOLATION, failure.headline().splitlines()[0], failure
    never = observations.never_held()
    if never:
        names = ", ".join(repr(name) for name in never)
        return (
            Verdict.VACUOUS,
            f"vacuous: sometimes invariant {names} never held in {report.schedules_run} "
            "schedules; the run never exercised it, so its other checks prove less than "
            "they seem to",
            None,
        )
    return Verdict.PASSED, f"no violation in {report.schedules_run} schedules", None


def _judge_canary(
    simulation: Simulation, report: ExploreReport, replayed: tuple[ReplayedRegression, ...]
) -> tuple[Verdict, str, Failure | None]:
    expected = simulation.describe_expectation()
    failure = report.failure
    if failure is not None:
        if simulation.expects(failure):
            return (
                Verdict.CAUGHT,
                f"expected violation found at schedule {failure.schedule + 1}: "
                f"{failure.headline().splitlines()[0]}",
                failure,
            )
        return (
            Verdict.VIOLATION,
            f"canary expected {expected} but failed otherwise: "
            f"{failure.headline().splitlines()[0]}",
            failure,
        )
    for outcome in replayed:
        if outcome.failure is not None and simulation.expects(outcome.failure):
            return (
                Verdict.CAUGHT,
                f"expected violation reproduced by saved regression {outcome.regression.path.name} "
                f"(exploration missed it in {report.schedules_run} schedules)",
                outcome.failure,
            )
    return (
        Verdict.MISSED,
        f"canary not caught: expected {expected} within {report.schedules_run} schedules and "
        "found none; the invariants may have gone blind, or the budget is too small",
        None,
    )
