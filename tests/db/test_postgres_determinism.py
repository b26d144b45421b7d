"""PostgreSQL determinism: 50 schedule seeds x 3 runs give one trace and one outcome each.

Three handler styles whose schedules block on row locks: optimistic
SELECT/UPDATE-with-version, blind appends to one row (where the server would
otherwise race the waiters one COMMIT releases), and SELECT ... FOR UPDATE.
Each run explores the same 50 schedule seeds in a fresh resource (new engine,
pool and monitor); every schedule must repeat its trace, its handlers'
outcomes and the final rows, and its token must replay the same.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Sequence

import pytest
from postgres_scenarios import (
    Database,
    Recorder,
    append,
    for_update,
    optimistic,
    scenario,
)

import interlace
from interlace import ScheduleRecord
from interlace._core.trace import Token
from interlace.db.provider import PostgresDatabase

pytestmark = pytest.mark.postgres

SCHEDULES = 50  # schedule seeds per run
RUNS = 3
REPLAYED = 8  # tokens replayed per scenario

HANDLERS: dict[str, Callable[[Database], Sequence[Awaitable[object]]]] = {
    "optimistic": lambda db: [optimistic(db.engine) for _ in range(3)],
    "append": lambda db: [append(db.engine, piece) for piece in "abc"],
    "for_update": lambda db: [for_update(db.engine, amount) for amount in (10, 20, 30)],
}


def _run(target: interlace.Scenario, recorder: Recorder) -> list[tuple[ScheduleRecord, object]]:
    """One exploration of SCHEDULES seeds: each schedule's record and recorded outcome."""
    records: list[ScheduleRecord] = []
    recorder.outcomes.clear()
    report = interlace.explore(target, schedules=SCHEDULES, seed=11, on_schedule=records.append)
    assert report.passed, report.failure.describe() if report.failure else ""
    assert len(recorder.outcomes) == len(records) == SCHEDULES
    return list(zip(records, recorder.outcomes, strict=True))


@pytest.mark.parametrize("style", list(HANDLERS))
def test_fifty_seeds_three_runs_give_one_trace_and_one_outcome(
    style: str, interlace_postgres_database: PostgresDatabase
) -> None:
    recorder = Recorder()
    target = scenario(
        f"determinism:{style}",
        interlace_postgres_database.sqlalchemy_url(),
        recorder,
        HANDLERS[style],
    )
    runs = [_run(target, recorder) for _ in range(RUNS)]
    for index in range(SCHEDULES):
        (first, first_outcome), *others = (run[index] for run in runs)
        for record, outcome in others:
            assert record.seed == first.seed
            assert record.trace == first.trace, f"schedule {index}: traces differ"
            assert outcome == first_outcome, f"schedule {index}: outcomes differ"
    distinct = {record.trace.interleaving() for record, _outcome in runs[0]}
    assert len(distinct) > 10, "the seeds should explore different interleavings"
    if style != "for_update":  # correct code: every interleaving ends the same
        finals = {outcome for _record, outcome in runs[0]}
        assert len(finals) > 1, "the interleavings should end differently"
    # the lock waits were real, and (on a server of this host) frozen
    monitors = recorder.monitors
    assert all(m.stats.detections for m in monitors), "no schedule waited for a row lock"
    if _can_freeze(interlace_postgres_database):
        assert all(m.freezer is not None and m.stats.freezes > 0 for m in monitors)

    replayed = runs[0][:: SCHEDULES // REPLAYED][:REPLAYED]
    for record, outcome in replayed:
        token = Token.from_trace(target.name, "random", record.seed, record.trace).encode()
        recorder.outcomes.clear()
        assert interlace.replay(target, token) == record.trace
        assert recorder.outcomes == [outcome]


def _can_freeze(database: PostgresDatabase) -> bool:
    # CI runs as root against servers of this host: freezing must work there
    return database.server.local and os.geteuid() == 0


def test_the_scenarios_see_the_database_they_were_given(
    interlace_postgres_database: PostgresDatabase,
) -> None:
    """Guards the test above: the handlers really run against this session's database."""
    recorder = Recorder()

    async def handlers_and_name(db: Database) -> None:
        async with db.engine.connect() as connection:
            name = (await connection.exec_driver_sql("SELECT current_database()")).scalar_one()
        assert name == interlace_postgres_database.name

    target = scenario(
        "determinism:database",
        interlace_postgres_database.sqlalchemy_url(),
        recorder,
        lambda db: [handlers_and_name(db)],
    )
    report = interlace.explore(target, schedules=1)
    assert report.passed, report.failure.describe() if report.failure else ""
    assert recorder.outcomes == [((None,), ((1, 100, 0), (2, 100, 0), (1, "")))]
