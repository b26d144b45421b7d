"""The engine finds known bugs, and stays silent on their fixes, with every strategy."""

from __future__ import annotations

import pytest
from known_bugs import (
    lock_order_deadlock,
    lock_order_fixed,
    lost_update,
    lost_update_fixed,
    raw_sqlite_lost_update,
    raw_sqlite_lost_update_fixed,
    sqlite_lost_update,
    sqlite_lost_update_fixed,
)

import interlace
from interlace import Deadlock

STRATEGIES = ["random", "pct"]


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize(
    "buggy",
    [lost_update, sqlite_lost_update, raw_sqlite_lost_update],
    ids=["asyncio", "sqlalchemy-aiosqlite", "raw-aiosqlite"],
)
def test_lost_update_is_found_and_its_token_replays(
    buggy: interlace.Scenario, strategy: str
) -> None:
    report = interlace.explore(buggy, strategy=strategy, schedules=300, seed=0)
    assert report.failure is not None, report.summary()
    assert isinstance(report.failure.exception, AssertionError)
    assert "lost update" in str(report.failure.exception)
    with pytest.raises(AssertionError, match="lost update"):
        interlace.replay(buggy, report.failure.token)
    assert interlace.replay_report(buggy, report.failure.token).trace == report.failure.trace


@pytest.mark.slow
@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize(
    "fixed",
    [lost_update_fixed, lock_order_fixed, sqlite_lost_update_fixed, raw_sqlite_lost_update_fixed],
    ids=["asyncio", "lock-order", "sqlalchemy-aiosqlite", "raw-aiosqlite"],
)
def test_fixed_versions_pass_300_schedules(fixed: interlace.Scenario, strategy: str) -> None:
    report = interlace.explore(fixed, strategy=strategy, schedules=300, seed=0)
    assert report.failure is None, report.failure.describe()
    assert report.schedules_run == 300
    assert report.distinct_interleavings > 1


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_opposite_lock_order_is_reported_as_a_deadlock(strategy: str) -> None:
    report = interlace.explore(lock_order_deadlock, strategy=strategy, schedules=300, seed=0)
    assert report.failure is not None
    assert isinstance(report.failure.exception, Deadlock)
    message = str(report.failure.exception)
    assert message.startswith("deadlock: every live task waits on another simulated task")
    assert "T1 waits in Lock.acquire at _transfer (known_bugs.py:" in message
    assert "T2 waits in Lock.acquire at _transfer (known_bugs.py:" in message
    assert "main waits for T1, T2 at lock_order_deadlock" in message
    with pytest.raises(Deadlock):
        interlace.replay(lock_order_deadlock, report.failure.token)


def test_sql_statements_are_labelled_decision_points() -> None:
    report = interlace.explore(sqlite_lost_update, schedules=50, seed=0)
    assert report.failure is not None
    labels = [d.label for d in report.failure.trace.decisions]
    assert "SELECT accounts" in labels
    assert "UPDATE accounts" in labels
    assert "COMMIT" in labels
    table = report.failure.describe()
    assert "UPDATE accounts" in table and "interlace replay 'interlace:v1:" in table
