"""Determinism: a seed fixes the schedule, its outcome, and the token's replay.

50 seeds x 3 runs must give one trace and one outcome per seed, for pure
asyncio and for SQLAlchemy on aiosqlite (real threads underneath).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import known_bugs
import pytest
from known_bugs import reset_accounts, sqlite_accounts
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

import interlace
from interlace import ScheduleRecord, Trace

SEEDS = range(50)
RUNS = 3

outcomes: list[object] = []


@interlace.scenario
async def counters() -> None:
    """Three tasks, each incrementing twice with a yield in between, plus a child task."""
    state = {"value": 0, "log": []}

    async def bump(name: str) -> None:
        for _ in range(2):
            seen = state["value"]
            await asyncio.sleep(0)
            state["value"] = seen + 1  # type: ignore[operator]
            state["log"].append(name)  # type: ignore[attr-defined]
        child = asyncio.create_task(asyncio.sleep(0.5))
        await child

    await asyncio.gather(bump("a"), bump("b"), bump("c"))
    outcomes.append((state["value"], tuple(state["log"])))  # type: ignore[arg-type]


@asynccontextmanager
async def accounts() -> AsyncIterator[AsyncEngine]:
    async with sqlite_accounts() as engine:
        yield engine


async def _deposit(engine: AsyncEngine, amount: int) -> None:
    async with engine.connect() as connection:
        result = await connection.execute(text("SELECT balance FROM accounts WHERE id = 1"))
        balance = int(result.scalar_one())
        await connection.execute(
            text("UPDATE accounts SET balance = :b WHERE id = 1"), {"b": balance + amount}
        )
        await connection.commit()


@interlace.scenario(resource=accounts, reset=reset_accounts)
async def sql_deposits(engine: AsyncEngine) -> None:
    results = await asyncio.gather(
        _deposit(engine, 1), _deposit(engine, 10), return_exceptions=True
    )
    async with engine.connect() as connection:
        final = (await connection.execute(text("SELECT balance FROM accounts"))).scalar_one()
    # with the example's busy timeout of 0, some schedules end in "database is locked"
    outcomes.append((final, [repr(result) for result in results]))


def _traces(scenario: interlace.Scenario, seed: int) -> tuple[list[Trace], list[object]]:
    traces: list[Trace] = []
    outcomes.clear()
    for _ in range(RUNS):
        interlace.explore(
            scenario, schedules=1, seed=seed, on_schedule=lambda r: traces.append(r.trace)
        )
    return traces, list(outcomes)


@pytest.mark.parametrize("scenario", [counters, sql_deposits], ids=["asyncio", "sqlalchemy"])
def test_fifty_seeds_three_runs_give_one_trace_and_one_outcome(
    scenario: interlace.Scenario,
) -> None:
    distinct = set()
    for seed in SEEDS:
        traces, results = _traces(scenario, seed)
        assert traces[0] == traces[1] == traces[2], f"seed {seed}: traces differ"
        assert results[0] == results[1] == results[2], f"seed {seed}: outcomes differ"
        distinct.add(traces[0].interleaving())
    assert len(distinct) > 5, "the seeds should explore different interleavings"


@pytest.mark.parametrize("scenario", [counters, sql_deposits], ids=["asyncio", "sqlalchemy"])
def test_every_schedule_replays_its_own_trace(scenario: interlace.Scenario) -> None:
    records: list[ScheduleRecord] = []
    interlace.explore(scenario, schedules=20, seed=7, on_schedule=records.append)
    for record in records:
        token = interlace._core.trace.Token.from_trace(
            scenario.name, "random", record.seed, record.trace
        ).encode()
        assert interlace.replay(scenario, token) == record.trace


def test_hash_seed_does_not_change_the_schedule() -> None:
    program = (
        "import interlace; from known_bugs import lost_update; "
        "print(interlace.explore(lost_update, schedules=30, seed=3).failure.token)"
    )
    # the child finds known_bugs where this process does (tests/support, see pyproject.toml)
    search_path = os.pathsep.join(
        [os.path.dirname(known_bugs.__file__), *filter(None, [os.environ.get("PYTHONPATH")])]
    )
    tokens = set()
    for hash_seed in ("0", "1", "12345"):
        environment = {**os.environ, "PYTHONHASHSEED": hash_seed, "PYTHONPATH": search_path}
        completed = subprocess.run(
            [sys.executable, "-c", program],
            env=environment,
            capture_output=True,
            text=True,
            check=True,
        )
        tokens.add(completed.stdout.strip())
    assert len(tokens) == 1, tokens
