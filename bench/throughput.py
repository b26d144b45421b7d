"""Scheduler overhead: schedules per second under interlace vs plain asyncio.gather.

Workload (issue 2): 3 concurrent handlers, each SELECT then UPDATE with a
version check then COMMIT, through SQLAlchemy on aiosqlite, on one SQLite
file; the row is reset before every run. Both modes run in this one process
on the same database file, alternating in rounds so machine noise hits both
alike; the result is the ratio of their rates (target >= 0.8).

    .venv/bin/python bench/throughput.py [--schedules 300] [--rounds 5]

With --record, writes its section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
from asyncio import base_events
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Sample:
    """One round of one mode: runs per second, and per run its CPU time and loop turns."""

    rate: float
    cpu_ms: float
    turns: float


@contextmanager
def counting_loop_turns() -> Iterator[list[int]]:
    """Count turns of any asyncio loop (``_run_once`` calls) while the block runs.

    Turns are the scheduler's cost that machine noise cannot blur: each one is an
    epoll call and a pass over the ready queue, whatever else the machine does.
    """
    counter = [0]
    original = base_events.BaseEventLoop._run_once

    def counted(self: base_events.BaseEventLoop) -> None:
        counter[0] += 1
        original(self)

    base_events.BaseEventLoop._run_once = counted  # type: ignore[method-assign]
    try:
        yield counter
    finally:
        base_events.BaseEventLoop._run_once = original  # type: ignore[method-assign]


def measure(run: Callable[[], float], runs: int) -> Sample:
    """``run()`` returns the seconds its ``runs`` runs took (setup excluded)."""
    before = resource.getrusage(resource.RUSAGE_SELF)
    with counting_loop_turns() as turns:
        elapsed = run()
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Sample(runs / elapsed, cpu / runs * 1000, turns[0] / runs)


def under_interlace(schedules: int, seed: int) -> float:
    report = interlace.explore(simulated, schedules=schedules, seed=seed)
    assert report.schedules_run == schedules, report.summary()
    return report.elapsed


def plain(schedules: int) -> float:
    async def run() -> float:
        async with warm_engine() as engine:
            started = time.perf_counter()
            for _ in range(schedules):
                await reset(engine)
                await three_handlers(engine)
            return time.perf_counter() - started

    return asyncio.run(run())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--schedules", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--record", action="store_true", help="write the section of RESULTS.md")
    arguments = parser.parse_args()
    asyncio.run(create_schema())
    scheduled: list[Sample] = []
    gathered: list[Sample] = []
    for round_number in range(arguments.rounds):
        n = arguments.schedules
        scheduled.append(measure(lambda: under_interlace(n, round_number), n))  # noqa: B023
        gathered.append(measure(lambda: plain(n), n))  # noqa: B023
    ratio = median(scheduled, "rate") / median(gathered, "rate")
    row = (
        f"| {datetime.now(UTC):%Y-%m-%d} | {median(scheduled, 'rate'):.0f} "
        f"{[round(x.rate) for x in scheduled]} | {median(gathered, 'rate'):.0f} "
        f"{[round(x.rate) for x in gathered]} | {ratio:.2f} | "
        f"{median(scheduled, 'cpu_ms'):.1f} / {median(gathered, 'cpu_ms'):.1f} | "
        f"{median(scheduled, 'turns'):.0f} / {median(gathered, 'turns'):.0f} | "
        f"{arguments.schedules} x {arguments.rounds} rounds, Python "
        f"{platform.python_version()}, {os.cpu_count()} cores |"
    )
    section = "\n".join(
        [
            "## Scheduler overhead (bench/throughput.py)",
            "",
            f"{HANDLERS} concurrent handlers (SELECT, UPDATE with a version check, COMMIT) "
            "through SQLAlchemy on aiosqlite, one SQLite file, row reset before every run. "
            "Target: ratio >= 0.8. The rates are wall-clock and swing by +-0.1 in ratio "
            "between runs on this shared machine; CPU time and loop turns per run (a turn: "
            "one epoll call and one pass over the ready queue) are steadier and show where "
            "the overhead is.",
            "",
            "| date | interlace schedules/s (median, rounds) | plain gather runs/s | ratio | "
            "CPU ms per run: interlace / plain | loop turns per run: interlace / plain | "
            "runs |",
            "|---|---|---|---|---|---|---|",
            row,
            "",
            "Rerun: `.venv/bin/python bench/throughput.py --record`",
        ]
    )
    print(row)
    print(f"ratio (median/median): {ratio:.2f}  (target >= 0.8)")
    if arguments.record:
        write_section("throughput", section)
        print("recorded in bench/RESULTS.md")


def median(samples: list[Sample], field: str) -> float:
    return statistics.median(getattr(sample, field) for sample in samples)


if __name__ == "__main__":
    main()
