"""Quality: shrinking reaches the fewest preemptions of each known bug, seed after seed,
within its budget; it says when a cap stopped it; with an ample budget it is deterministic.

Each test finds a failure with ``explore(..., shrink=False)`` and shrinks it here,
with a ``run_once`` made the way the engine makes it, so these tests measure the
shrinker alone. ``bench/shrink.py`` measures the same over 20 seeds, beside the
shrinker before the switch plans.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from known_bugs import (
    checked_lost_update,
    four_inside,
    lock_order_deadlock,
    lost_update,
    raw_sqlite_lost_update,
    sqlite_lost_update,
)
from simulations.editor_chat import identical

import interlace
from interlace import Config, Scenario
from interlace._core import Strategy
from interlace._core.loop import ControlledLoop
from interlace._core.trace import Trace
from interlace.db.provider import PostgresServer
from interlace.db.supply import PostgresSupply, SqliteSupply
from interlace.engine import ScheduleRunner
from interlace.explore import Failure
from interlace.scenario import as_scenario
from interlace.shrink import (
    CAP_SECONDS,
    FLOOR_SECONDS,
    MIN_RUNS,
    RunSchedule,
    ShrinkBudget,
    Shrunk,
    shrink,
)
from interlace.strategies.guided import GuidedStrategy

SEEDS = range(10)
# the default budget, with fewer runs: four_inside's search below 3 preemptions (5280
# schedules) cannot finish anyway, and every minimum below is reached in < 200 runs
RUNS = 500


@dataclass(frozen=True)
class Found:
    """An unshrunk failure and how long exploring took to find it."""

    scenario: Scenario
    failure: Failure
    seconds: float


def find(scenario: Scenario, seed: int) -> Found:
    started = time.monotonic()
    report = interlace.explore(scenario, strategy="random", schedules=2000, seed=seed, shrink=False)
    assert report.failure is not None, report.summary()
    return Found(scenario, report.failure, time.monotonic() - started)


def shrink_found(
    found: Found,
    budget: ShrinkBudget,
    watch: Callable[[Strategy, Trace], None] | None = None,
) -> Shrunk:
    """Shrink ``found`` on a fresh resource, running schedules on the engine as explore does."""
    target = as_scenario(found.scenario)

    async def main() -> Shrunk:
        async with ScheduleRunner(target, Config()) as runner:
            assert runner.setup_problem is None, runner.setup_problem

            async def run_once(strategy: Strategy) -> tuple[Trace, BaseException | None]:
                result = await runner.run(strategy, seed=0)
                assert result.problem is None, result.problem.describe()
                if watch is not None:
                    watch(strategy, result.trace)
                return result.trace, result.error if result.outcome.is_finding else None

            run: RunSchedule = run_once
            return await shrink(found.failure.trace, found.failure.exception, run, budget)

    with asyncio.Runner(loop_factory=ControlledLoop) as runner:
        return runner.run(main())


def default_budget(found: Found) -> ShrinkBudget:
    return ShrinkBudget.after_finding(found.seconds, max_runs=RUNS)


def editor_chat_race() -> Scenario:
    return identical.two_processes_pre_fix.scenario(SqliteSupply())


# bug -> (scenario, the fewest preemptions that fail this way, proven by a full search
# below it; whether the shrinker's search proves it within the budget)
KNOWN_MINIMA: dict[str, tuple[Callable[[], Scenario], int, bool]] = {
    "lost_update": (lambda: lost_update, 1, True),
    "lock_order_deadlock": (lambda: lock_order_deadlock, 1, True),
    "checked_lost_update": (lambda: checked_lost_update, 1, True),
    "sqlite_lost_update": (lambda: sqlite_lost_update, 1, False),  # 20 schedules at 0: timing
    "raw_sqlite_lost_update": (lambda: raw_sqlite_lost_update, 1, True),
    # the search below 3 (5280 schedules, 11 s) is beyond the budget: reached, never proven
    "four_inside": (lambda: four_inside, 3, False),
    # the pre-fix handler fails on SQLite without any preemption: one request's reply
    # lands after the other's question even when each request runs as far as it can
    "editor_chat_pre_fix_sqlite": (editor_chat_race, 0, True),
}


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("bug", list(KNOWN_MINIMA))
def test_shrinking_reaches_the_known_minimum(bug: str, seed: int) -> None:
    make, minimum, proven = KNOWN_MINIMA[bug]
    found = find(make(), seed)
    shrunk = shrink_found(found, default_budget(found))
    assert shrunk.trace.preemptions == minimum, (
        f"seed {seed}: found with {found.failure.trace.preemptions} preemptions, shrunk to "
        f"{shrunk.trace.preemptions} in {shrunk.runs} runs ({shrunk.stopped or 'finished'})"
    )
    assert type(shrunk.error) is type(found.failure.exception)
    if proven:
        assert shrunk.minimal, f"seed {seed}: {shrunk.runs} runs, {shrunk.stopped}"
    if bug == "four_inside":
        assert not shrunk.minimal  # the search below 3 cannot have finished
        assert shrunk.stopped == f"its run budget of {RUNS} runs" or (
            shrunk.stopped is not None and shrunk.stopped.startswith("its time budget")
        )


@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.parametrize("seed", SEEDS)
def test_the_lost_message_race_on_postgres_shrinks_to_one_preemption(
    interlace_postgres: PostgresServer, seed: int
) -> None:
    # the real-service case: half the seeds stopped at 2-5 preemptions before
    simulation = identical.two_processes_pre_fix_lost_message
    found = find(simulation.scenario(PostgresSupply(interlace_postgres)), seed)
    shrunk = shrink_found(found, ShrinkBudget.after_finding(found.seconds))
    assert shrunk.trace.preemptions == 1, (
        f"seed {seed}: found with {found.failure.trace.preemptions} preemptions, shrunk to "
        f"{shrunk.trace.preemptions} in {shrunk.runs} runs ({shrunk.stopped or 'finished'})"
    )


def test_a_failure_found_fast_gets_the_floor_and_a_slow_one_the_cap() -> None:
    assert ShrinkBudget.after_finding(0.005).seconds == FLOOR_SECONDS
    assert ShrinkBudget.after_finding(FLOOR_SECONDS + 3).seconds == FLOOR_SECONDS + 3
    assert ShrinkBudget.after_finding(10 * CAP_SECONDS).seconds == CAP_SECONDS
    assert ShrinkBudget.after_finding(30.0, cap_seconds=5.0).seconds == 5.0
    assert ShrinkBudget.after_finding(0.0, cap_seconds=0.5).seconds == 0.5
    assert ShrinkBudget.after_finding(1.0, max_runs=7).max_runs == 7
    assert ShrinkBudget.after_finding(1.0).min_runs == MIN_RUNS
    assert ShrinkBudget.after_finding(1.0, cap_seconds=9.0).cap == 9.0


def test_the_first_runs_are_made_past_the_time_budget_but_never_past_the_cap() -> None:
    found = find(four_inside, 1)
    budget = ShrinkBudget(max_runs=1000, seconds=0.0, min_runs=5, cap_seconds=CAP_SECONDS)
    shrunk = shrink_found(found, budget)
    assert shrunk.runs == 5
    assert shrunk.stopped == "its time budget of 0 s"
    capped = ShrinkBudget(max_runs=1000, seconds=0.0, min_runs=100_000, cap_seconds=0.05)
    shrunk = shrink_found(found, capped)
    assert shrunk.stopped == "its time budget of 0.05 s"
    assert shrunk.elapsed < 2.0


def test_a_tiny_time_budget_says_the_shrinker_stopped_at_it() -> None:
    found = find(four_inside, 1)
    shrunk = shrink_found(found, ShrinkBudget(max_runs=100_000, seconds=0.05))
    assert shrunk.stopped == "its time budget of 0.05 s"
    assert not shrunk.minimal
    assert shrunk.elapsed < 2.0  # stopped at the cap, not long after it
    assert shrunk.trace.preemptions <= found.failure.trace.preemptions


def test_a_run_budget_says_the_shrinker_stopped_at_it() -> None:
    found = find(four_inside, 1)
    shrunk = shrink_found(found, ShrinkBudget(max_runs=5, seconds=CAP_SECONDS))
    assert shrunk.stopped == "its run budget of 5 runs"
    assert shrunk.runs == 5


def test_a_shrink_that_finishes_says_nothing_stopped_it() -> None:
    found = find(checked_lost_update, 2)
    shrunk = shrink_found(found, ShrinkBudget(max_runs=100_000, seconds=CAP_SECONDS))
    assert shrunk.stopped is None
    assert shrunk.minimal and shrunk.trace.preemptions == 1


@pytest.mark.parametrize(
    ("scenario", "seed", "budget"),
    [
        # finishes on its own: the budget does not decide the result
        (checked_lost_update, 2, ShrinkBudget(max_runs=100_000, seconds=CAP_SECONDS)),
        (lock_order_deadlock, 0, ShrinkBudget(max_runs=100_000, seconds=CAP_SECONDS)),
        (sqlite_lost_update, 1, ShrinkBudget(max_runs=100_000, seconds=CAP_SECONDS)),
        # stopped by runs, never by time: the same attempts in the same order
        (four_inside, 4, ShrinkBudget(max_runs=300, seconds=CAP_SECONDS)),
    ],
    ids=["checked_lost_update", "lock_order_deadlock", "sqlite_lost_update", "four_inside"],
)
def test_a_shrink_with_ample_budget_is_deterministic(
    scenario: Scenario, seed: int, budget: ShrinkBudget
) -> None:
    found = find(scenario, seed)
    first, second = shrink_found(found, budget), shrink_found(found, budget)
    assert first.trace == second.trace
    assert (first.runs, first.minimal, first.stopped) == (
        second.runs,
        second.minimal,
        second.stopped,
    )
    # the message's first line: pytest's assertion rewriting adds object addresses below it
    assert str(first.error).splitlines()[0] == str(second.error).splitlines()[0]


def test_no_guided_schedule_is_run_twice() -> None:
    # a list of choices whose schedule is known is answered from what was seen
    found = find(four_inside, 2)
    seen: set[tuple[int, ...]] = {tuple(d.task_index for d in found.failure.trace.decisions)}
    reruns: list[tuple[int, ...]] = []

    def watch(strategy: Strategy, trace: Trace) -> None:
        choices = tuple(d.task_index for d in trace.decisions)
        if isinstance(strategy, GuidedStrategy) and choices in seen:
            reruns.append(choices)
        seen.add(choices)

    shrunk = shrink_found(found, ShrinkBudget(max_runs=300, seconds=CAP_SECONDS), watch)
    assert shrunk.trace.preemptions == 3
    assert not reruns, f"{len(reruns)} guided schedules were run again"
