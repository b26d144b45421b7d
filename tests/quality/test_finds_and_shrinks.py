"""Quality: every strategy finds each known bug within a stated budget, and shrinking
brings the failure to its known minimal form (hypothesis' ``quality/`` policy).

Budgets are what the strategy needs on seed 0 with room to spare, not tuned to
pass: ``bench/time_to_bug.py`` measures medians and ranges over 20 seeds.
"""

from __future__ import annotations

import pytest
from known_bugs import (
    checked_lost_update,
    four_inside,
    lock_order_deadlock,
    lost_update,
    raw_sqlite_lost_update,
    sqlite_lost_update,
)

import interlace
from interlace import Deadlock

# bug -> (strategy -> budget), and the fewest preemptions that can trigger it
KNOWN_BUGS = {
    "lost_update": (lost_update, {"random": 50, "pct": 100, "dfs": 20, "portfolio": 50}, 1),
    # plain asyncio never interleaves it (bench/time_to_bug.py: stress never fails)
    "checked_lost_update": (
        checked_lost_update,
        {"random": 50, "pct": 100, "dfs": 20, "portfolio": 50},
        1,
    ),
    "sqlite_lost_update": (
        sqlite_lost_update,
        {"random": 50, "pct": 100, "dfs": 100, "portfolio": 50},
        1,
    ),
    "raw_sqlite_lost_update": (
        raw_sqlite_lost_update,
        {"random": 50, "pct": 100, "dfs": 100, "portfolio": 50},
        1,
    ),
    "lock_order_deadlock": (
        lock_order_deadlock,
        {"random": 50, "pct": 100, "dfs": 20, "portfolio": 50},
        1,
    ),
    # depth 4: PCT needs depth 4 and DFS a bound of 3 (see the narrow bug test below)
    "four_inside": (four_inside, {"random": 100, "pct4": 1000, "portfolio": 100}, 3),
}

CASES = [
    (bug, strategy, budget)
    for bug, (_scenario, budgets, _minimal) in KNOWN_BUGS.items()
    for strategy, budget in budgets.items()
]


@pytest.mark.parametrize(("bug", "strategy", "budget"), CASES)
def test_strategy_finds_known_bug_within_budget(bug: str, strategy: str, budget: int) -> None:
    scenario, _budgets, _minimal = KNOWN_BUGS[bug]
    report = interlace.explore(scenario, strategy=strategy, schedules=budget, seed=0)
    assert report.failure is not None, (
        f"{bug} not found by {strategy} in {budget}: {report.summary()}"
    )
    if bug == "lock_order_deadlock":
        assert isinstance(report.failure.exception, Deadlock)
    else:
        assert isinstance(report.failure.exception, AssertionError)


@pytest.mark.parametrize(
    "bug",
    [
        "lost_update",
        "checked_lost_update",
        "sqlite_lost_update",
        "raw_sqlite_lost_update",
        "lock_order_deadlock",
    ],
)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_shrinking_reaches_one_preemption(bug: str, seed: int) -> None:
    scenario, _budgets, minimal = KNOWN_BUGS[bug]
    report = interlace.explore(scenario, strategy="random", schedules=200, seed=seed)
    assert report.failure is not None
    assert report.failure.trace.preemptions == minimal, report.failure.describe()
    # the token replays the shrunk schedule, not the one first found
    with pytest.raises((AssertionError, Deadlock)):
        interlace.replay(scenario, report.failure.token)
    assert interlace.replay_report(scenario, report.failure.token).trace == report.failure.trace


def test_shrinking_reports_both_sizes() -> None:
    report = interlace.explore(four_inside, strategy="random", schedules=200, seed=1)
    assert report.failure is not None
    assert report.failure.shrinking is not None
    found_preemptions, found_decisions = report.failure.shrinking.found_size
    assert found_preemptions > report.failure.trace.preemptions
    assert report.failure.shrink_note().startswith(
        f"shrunk from {found_preemptions} preemptions / {found_decisions} decisions to "
        f"{report.failure.trace.preemptions} / "
    )
    assert report.failure.shrink_note() in report.failure.describe()


@pytest.mark.parametrize("seed", [2, 3, 4])
def test_narrow_bug_shrinks_to_its_three_preemptions(seed: int) -> None:
    report = interlace.explore(four_inside, strategy="random", schedules=200, seed=seed)
    assert report.failure is not None
    assert report.failure.trace.preemptions == 3, report.failure.describe()


def test_narrow_bug_is_found_by_dfs_with_bound_three() -> None:
    report = interlace.explore(four_inside, strategy="dfs3", schedules=20_000, seed=0, shrink=False)
    assert report.failure is not None, report.summary()


def test_shrinking_searches_fewer_preemptions_when_its_edits_are_stuck() -> None:
    # Seed 2 finds the checked lost update starting the checking request first and
    # preempting twice; dropping either preemption passes. One switch moved a step later
    # (the checking request reads before it is preempted) fails with one preemption,
    # and the search below it proves that minimal.
    report = interlace.explore(checked_lost_update, strategy="random", schedules=200, seed=2)
    assert report.failure is not None
    assert report.failure.shrinking.found_size == (2, 7)
    assert report.failure.trace.preemptions == 1
    assert report.failure.shrinking.minimal
    assert report.failure.shrink_note().endswith(
        "minimal: every schedule with fewer than 1 preemptions was run and none fails this way"
    )


def test_minimal_is_claimed_only_after_the_whole_search() -> None:
    # four_inside needs 3 preemptions; below that are more schedules than the
    # shrinking budget runs, so the report must not call the result minimal
    report = interlace.explore(four_inside, strategy="random", schedules=200, seed=2)
    assert report.failure is not None
    assert report.failure.trace.preemptions == 3
    assert not report.failure.shrinking.minimal
    assert "minimal" not in report.failure.shrink_note()
