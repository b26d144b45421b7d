"""Scheduler overhead: schedules per second under interlace vs plain asyncio.gather.

Workload (issue 2): 3 concurrent handlers, each SELECT then UPDATE with a
version check then COMMIT, through SQLAlchemy on aiosqlite, on one SQLite
file; the row is reset before every run. Both modes run in this one process
on the same database file, alternating in rounds so machine noise hits both
alike; the result is the ratio of their rates (target >= 0.8).

    .venv/bin/python bench/throughput.py [--schedules 300] [--rounds 3]

With --record, writes its section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

import interlace

sys.path.insert(0, os.path.dirname(__file__))
from results import write_section

HANDLERS = 3
DATABASE = os.path.join(tempfile.mkdtemp(prefix="interlace-bench-"), "bench.db")


def make_engine() -> AsyncEngine:
    return create_async_engine(f"sqlite+aiosqlite:///{DATABASE}", pool_size=HANDLERS + 1)


async def create_schema() -> None:
    engine = make_engine()
    async with engine.begin() as connection:
        await connection.execute(text("DROP TABLE IF EXISTS counters"))
        await connection.execute(
            text("CREATE TABLE counters (id INTEGER PRIMARY KEY, value INTEGER, rev INTEGER)")
        )
    await engine.dispose()


async def reset(engine: AsyncEngine) -> None:
    async with engine.begin() as connection:
        await connection.execute(text("DELETE FROM counters"))
        await connection.execute(text("INSERT INTO counters VALUES (1, 0, 0)"))


async def handler(engine: AsyncEngine) -> bool:
    async with engine.connect() as connection:
        row = (await connection.execute(text("SELECT value, rev FROM counters WHERE id = 1"))).one()
        result = await connection.execute(
            text("UPDATE counters SET value = :v, rev = rev + 1 WHERE id = 1 AND rev = :rev"),
            {"v": row.value + 1, "rev": row.rev},
        )
        await connection.commit()
        return result.rowcount == 1


async def three_handlers(engine: AsyncEngine) -> None:
    await asyncio.gather(*(handler(engine) for _ in range(HANDLERS)))


@asynccontextmanager
async def warm_engine() -> AsyncIterator[AsyncEngine]:
    engine = make_engine()
    await interlace.warm_pool(engine, HANDLERS + 1)
    try:
        yield engine
    finally:
        await engine.dispose()


simulated = interlace.scenario(three_handlers, resource=warm_engine, reset=reset)


def rate_under_interlace(schedules: int, seed: int) -> float:
    started = time.perf_counter()
    report = interlace.explore(simulated, schedules=schedules, seed=seed)
    elapsed = time.perf_counter() - started
    assert report.schedules_run == schedules, report.summary()
    return schedules / elapsed


def rate_plain(schedules: int) -> float:
    async def run() -> float:
        async with warm_engine() as engine:
            started = time.perf_counter()
            for _ in range(schedules):
                await reset(engine)
                await three_handlers(engine)
            return schedules / (time.perf_counter() - started)

    return asyncio.run(run())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--schedules", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--record", action="store_true", help="append the result to RESULTS.md")
    arguments = parser.parse_args()
    asyncio.run(create_schema())
    scheduled: list[float] = []
    plain: list[float] = []
    for round_number in range(arguments.rounds):
        scheduled.append(rate_under_interlace(arguments.schedules, seed=round_number))
        plain.append(rate_plain(arguments.schedules))
    ratio = statistics.median(scheduled) / statistics.median(plain)
    section = "\n".join(
        [
            "## Scheduler overhead (bench/throughput.py)",
            "",
            f"{HANDLERS} concurrent handlers (SELECT, UPDATE with a version check, COMMIT) "
            "through SQLAlchemy on aiosqlite, one SQLite file, row reset before every run. "
            "Target: ratio >= 0.8.",
            "",
            "| date | interlace schedules/s (median) | plain gather runs/s (median) | ratio | "
            "runs |",
            "|---|---|---|---|---|",
            f"| {datetime.now(UTC):%Y-%m-%d} | {statistics.median(scheduled):.0f} "
            f"{[round(r) for r in scheduled]} | {statistics.median(plain):.0f} "
            f"{[round(r) for r in plain]} | {ratio:.2f} | {arguments.schedules} x "
            f"{arguments.rounds} rounds, Python {platform.python_version()}, "
            f"{os.cpu_count()} cores |",
            "",
            "Rerun: `.venv/bin/python bench/throughput.py --record`",
        ]
    )
    print(f"interlace: {[round(r) for r in scheduled]} schedules/s")
    print(f"plain gather: {[round(r) for r in plain]} runs/s")
    print(f"ratio (median/median): {ratio:.2f}  (target >= 0.8)")
    if arguments.record:
        write_section("throughput", section)
        print("recorded in bench/RESULTS.md")
    sys.exit(0)


if __name__ == "__main__":
    main()
