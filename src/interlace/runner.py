"""Run a simulation to a verdict: replay its regressions, explore it, judge the outcome.

This is what ``interlace run`` and the pytest plugin share. One run of one
simulation on one database kind:

1. replay the regression tokens saved for it (``interlace.corpus``), oldest
   file name first. A token that still fails ends a normal simulation's run
   at once (``REGRESSION``); for a canary it shows the expected violation.
2. explore it with the ``Config`` (``schedules``, ``strategy``, ``seed``, ...);
   the exploration stops at the first failure.
3. judge:

   ==============  ========================================================
   verdict         when
   ==============  ========================================================
   PASSED          no failure in the budget, every sometimes invariant held
   VIOLATION       a finding (an invariant, an error, a scheduler finding);
                   for a canary: a finding other than the expected violation
   REGRESSION      a saved token still fails
   VACUOUS         no failure, but a sometimes invariant never held
   CAUGHT          a canary's expected violation was found (it passes)
   MISSED          a canary ran its whole budget without its violation
   USAGE ERROR     a usage or setup error (the message says what to do)
   INTERNAL ERROR  interlace itself failed (a bug: report it)
   ==============  ========================================================

Sometimes invariants are judged only when the exploration used its whole
budget without a failure: a run stopped early at a failure (expected or not)
says nothing about what the remaining schedules would have exercised. The
canary's expectation is judged by ``Expectation.judge``, the one judge.
"""

from __future__ import annotations

from collections.abc import Callable

from interlace.config import Config
from interlace.corpus import Corpus, Regression
from interlace.db.supply import DatabaseSupply
from interlace.explore import explore, replay_report
from interlace.outcome import (
    ExploreReport,
    Failure,
    Outcome,
    Problem,
    RegressionReplay,
    ScheduleRecord,
    SimulationRun,
    Verdict,
)
from interlace.simulations import Simulation


def run_simulation(
    simulation: Simulation,
    supply: DatabaseSupply | None,
    config: Config,
    *,
    corpus: Corpus | None = None,
    on_schedule: Callable[[ScheduleRecord], None] | None = None,
) -> SimulationRun:
    """Replay the simulation's regressions, explore it with ``config``, and judge it."""
    database = None if supply is None else supply.kind
    name = simulation.scenario_name(database)

    def verdict(
        kind: Verdict,
        message: str,
        failure: Failure | None = None,
        report: ExploreReport | None = None,
        problem: Problem | None = None,
    ) -> SimulationRun:
        return SimulationRun(
            name, database, simulation.canary, kind, message, failure, report, replayed, problem
        )

    regressions = corpus.for_scenario(name) if corpus is not None else []
    replayed = tuple(replay_regression(simulation, supply, r, config) for r in regressions)
    for outcome in replayed:
        if outcome.problem is not None:
            return _problem_verdict(verdict, outcome.problem, f"regression {outcome.path.name}")
    still_failing = [r for r in replayed if r.failure is not None]
    if still_failing and not simulation.canary:
        first = still_failing[0]
        assert first.failure is not None
        return verdict(
            Verdict.REGRESSION,
            f"saved regression {first.path.name} still fails: "
            f"{first.failure.headline().splitlines()[0]}",
            first.failure,
        )
    report = explore(simulation.scenario(supply), config, on_schedule=on_schedule)
    if report.problem is not None:
        return _problem_verdict(verdict, report.problem, None, report)
    return _judge(simulation, report, replayed, verdict)


def replay_regression(
    simulation: Simulation, supply: DatabaseSupply | None, regression: Regression, config: Config
) -> RegressionReplay:
    """Replay one saved token; a token that no longer fits the code is reported as stale."""
    report = replay_report(simulation.scenario(supply), regression.token, config)
    return RegressionReplay(regression.path, regression.token, report)


def _problem_verdict(
    verdict: Callable[..., SimulationRun],
    problem: Problem,
    where: str | None,
    report: ExploreReport | None = None,
) -> SimulationRun:
    kind = (
        Verdict.INTERNAL_ERROR if problem.outcome is Outcome.INTERNAL_ERROR else Verdict.USAGE_ERROR
    )
    prefix = f"{where}: " if where else ""
    return verdict(kind, prefix + problem.headline(), None, report, problem)


def _judge(
    simulation: Simulation,
    report: ExploreReport,
    replayed: tuple[RegressionReplay, ...],
    verdict: Callable[..., SimulationRun],
) -> SimulationRun:
    """The verdict of an exploration (see the module docstring's table)."""
    searched = f"{report.schedules_run} schedules"
    judgement = simulation.expectation.judge(report.failure, searched)
    failure = report.failure
    if simulation.canary and failure is None:
        for outcome in replayed:
            if outcome.failure is not None and simulation.expectation.met_by(outcome.failure):
                return verdict(
                    Verdict.CAUGHT,
                    f"expected violation reproduced by saved regression {outcome.path.name} "
                    f"(exploration missed it in {searched})",
                    outcome.failure,
                    report,
                )
    if judgement.caught:
        return verdict(Verdict.CAUGHT, judgement.message, failure, report)
    if not judgement.ok:
        kind = Verdict.MISSED if failure is None else Verdict.VIOLATION
        return verdict(kind, judgement.message, failure, report)
    never = report.never_held()
    if never:
        names = ", ".join(repr(name) for name in never)
        return verdict(
            Verdict.VACUOUS,
            f"vacuous: sometimes invariant {names} never held in {searched}; the run never "
            "exercised it, so its other checks prove less than they seem to",
            None,
            report,
        )
    return verdict(Verdict.PASSED, judgement.message, None, report)


__all__ = ["SimulationRun", "Verdict", "replay_regression", "run_simulation"]
