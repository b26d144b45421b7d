"""DFS coverage claims, the portfolio rotation, and the determinism self-check."""

from __future__ import annotations

import asyncio
import random

import pytest
from known_bugs import lost_update, lost_update_fixed

import interlace
from interlace import Nondeterminism
from interlace.strategies import Candidate, DFSStrategy, PortfolioStrategy, by_name
from interlace.strategies.guided import GuidedStrategy


def test_dfs_says_exhausted_with_the_count_and_bound() -> None:
    dfs = DFSStrategy(max_preemptions=2)
    report = interlace.explore(lost_update_fixed, strategy=dfs, schedules=1000)
    assert report.failure is None
    assert report.exhausted
    assert report.schedules_run < 1000
    assert (
        report.coverage == f"exhausted: {report.schedules_run} schedules within preemption bound 2"
    )
    assert "no failure, search space exhausted" in report.summary()


def test_budget_running_out_is_not_reported_as_exhausted() -> None:
    report = interlace.explore(lost_update_fixed, strategy="dfs", schedules=2)
    assert report.failure is None
    assert not report.exhausted
    assert report.coverage == (
        "not exhausted: 2 schedules run, the schedules without preemptions were in progress"
    )
    assert "no failure within the budget" in report.summary()


def test_coverage_never_claims_a_bound_below_one() -> None:
    # one schedule of a space with several non-preemptive schedules: nothing is proven yet
    report = interlace.explore(lost_update_fixed, strategy="portfolio", schedules=1)
    assert "fewer than 0" not in report.coverage
    assert report.coverage.endswith("the schedules without preemptions were in progress")


def test_dfs_deepens_one_preemption_at_a_time() -> None:
    records: list[interlace.ScheduleRecord] = []
    interlace.explore(
        lost_update_fixed, strategy="dfs2", schedules=1000, on_schedule=records.append
    )
    preemptions = [r.trace.preemptions for r in records]
    assert preemptions == sorted(preemptions), "shallow schedules come first"
    assert preemptions[0] == 0
    interleavings = [r.trace.interleaving() for r in records]
    assert len(set(interleavings)) == len(interleavings), "no schedule is run twice"


def test_dfs_bound_zero_misses_what_needs_one_preemption() -> None:
    assert interlace.explore(lost_update, strategy="dfs0", schedules=100).failure is None
    assert interlace.explore(lost_update, strategy="dfs1", schedules=100).failure is not None


def test_portfolio_rotates_its_members() -> None:
    portfolio = PortfolioStrategy()
    names = []
    for seed in range(6):
        assert portfolio.begin(seed)
        names.append(portfolio.current.name)
    assert names == ["random", "pct3", "random", "dfs", "random", "pct2"]
    assert by_name("portfolio").name == "portfolio"


def test_portfolio_retires_an_exhausted_dfs_and_goes_on() -> None:
    portfolio = PortfolioStrategy([DFSStrategy(max_preemptions=0), by_name("random")])
    report = interlace.explore(lost_update_fixed, strategy=portfolio, schedules=40)
    assert report.schedules_run == 40
    assert report.coverage.startswith("exhausted: ")


def test_guided_follows_preferences_and_otherwise_never_preempts() -> None:
    a, b, c = Candidate("T1", 1, "x"), Candidate("T2", 2, "y"), Candidate("T3", 3, "z")
    guided = GuidedStrategy([2, 9])
    guided.begin(0)
    assert guided.choose(0, [a, b, c], None) is b
    assert guided.choose(1, [a, c], a) is a  # task #9 does not exist: continue T1
    assert guided.choose(2, [b, c], None) is b  # past the list, first runnable
    assert guided.deviations == [1]


chaos = random.Random()


@interlace.scenario
async def depends_on_outside_randomness() -> None:
    async def worker() -> None:
        if chaos.random() < 0.5:
            await asyncio.sleep(0)
        await asyncio.sleep(0)

    await asyncio.gather(worker(), worker())


def test_determinism_check_reports_the_first_divergent_decision() -> None:
    report = interlace.explore(
        depends_on_outside_randomness, schedules=50, seed=0, check_determinism=True
    )
    assert report.failure is not None
    assert isinstance(report.failure.exception, Nondeterminism)
    message = str(report.failure.exception)
    assert message.startswith("nondeterminism")
    assert report.determinism_checked


@pytest.mark.parametrize("strategy", ["random", "pct", "dfs", "portfolio"])
def test_determinism_check_is_silent_on_deterministic_code(strategy: str) -> None:
    report = interlace.explore(
        lost_update_fixed, strategy=strategy, schedules=30, check_determinism=True
    )
    assert report.failure is None, report.failure.describe()
    assert "every schedule run twice" in report.summary()
