"""Soak: thousands of editor-chat schedules, watching for internal errors and leaks.

Explores the passing (non-canary) editor-chat simulations round robin until N schedules
have run, in explorations of a few hundred schedules (portfolio, seeds 0, 1, ...): the
world (engine, pool, lock monitor) lives across one exploration's schedules, where leaks
show. ``on_schedule`` counts every schedule by outcome. At the start, after the warm-up
(200 schedules), every 1000, at the last schedule and after everything closed it prints
RSS and threads (Python's / the kernel's, /proc/self/status), open fds, and connections:
SQLite, fds open on this run's files (``interlace-sim-*/simulation.db*``); PostgreSQL,
pg_stat_activity's backends on this process's databases (named ``interlace_sim_<pid>_*``:
no other user's backend, nor the probe's own), and how many such databases exist.

``--neighbour``: a CPU-burning process per core at normal priority (contention is the
point). ``--switch-interval 1e-6``: thread switches very often, to provoke races with
aiosqlite's threads. ``--one-exploration``: one exploration of identical.two_processes on
SQLite (is memory flat within 5 MB over 10,000 schedules?). Exit 1 on any internal or
usage error or finding, a file, connection or database left open after the end, or
(``--check-memory MB``) RSS growth after the warm-up of MB or more. ``--record``: a row
of the soak table in bench/RESULTS.md (the same command's row is replaced).

    PYTHONPATH=src:. .venv/bin/python bench/soak.py [--schedules 1000] [--db sqlite|postgres|both]
        [--neighbour] [--switch-interval 1e-6] [--one-exploration] [--check-memory MB] [--record]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import asyncpg  # type: ignore[import-untyped,unused-ignore]

import interlace
from interlace.db.supply import DatabaseSupply, PostgresSupply, open_supply
from interlace.discovery import discover
from interlace.outcome import ExploreReport, Outcome, ScheduleRecord
from interlace.simulations import Simulation

sys.path.insert(0, os.path.dirname(__file__))
from results import RESULTS, write_section

ROOT = Path(__file__).resolve().parent.parent
WARM_UP, EVERY = 200, 1000
INTRO = (
    "## Soak (bench/soak.py)\n\nThe editor-chat simulations (non-canaries) round robin, "
    "or one long exploration; `--neighbour`: a CPU-burning process per core at normal "
    f"priority. RSS (MB) at the start, after {WARM_UP} schedules and at the last one; "
    "threads (Python/kernel) and fds at the start and after everything closed; connections "
    "(SQLite files open, PostgreSQL backends on this process's databases) at the start, "
    f"the last schedule and after. Python {platform.python_version()}, {os.cpu_count()} "
    "cores shared with other work.\n\nRerun: the command, with `--record`."
)
COLUMNS = ("RSS start / warm / end", "RSS growth after warm-up", "threads", "fds")
COLUMNS += ("connections", "seconds", "schedules/s")
PG_QUERY = (
    "SELECT (SELECT count(*) FROM pg_stat_activity WHERE datname LIKE $1), "
    "(SELECT count(*) FROM pg_database WHERE datname LIKE $1)"
)


@dataclass(frozen=True)
class Snapshot:
    rss_mb: float
    threads: int  # threading.active_count()
    os_threads: int  # the kernel's count, which includes threads Python does not know of
    fds: int
    connections: int  # SQLite files open + PostgreSQL backends
    databases: int  # PostgreSQL simulation databases that exist

    def line(self, label: str) -> str:
        return (
            f"{label:>12}: RSS {self.rss_mb:7.1f} MB  threads {self.threads}/{self.os_threads}  "
            f"fds {self.fds}  connections {self.connections}  pg databases {self.databases}"
        )


def status(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def sqlite_files_open() -> int:
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # an fd closed since listdir
            target = os.readlink(f"/proc/self/fd/{fd}")
            count += "/interlace-sim-" in target and "/simulation.db" in target
    return count


def pg_counts(admin_url: str) -> tuple[int, int]:
    """(backends, databases) of this process's simulation databases, asked on a thread.

    The schedules' loop runs in this thread, so the probe gets its own loop in another.
    """
    result: list[tuple[int, int]] = []

    async def ask() -> None:
        connection = await asyncpg.connect(admin_url, timeout=10)
        try:
            row = await connection.fetchrow(PG_QUERY, f"interlace\\_sim\\_{os.getpid()}\\_%")
            result.append((row[0], row[1]))
        finally:
            await connection.close()

    thread = threading.Thread(target=asyncio.run, args=(ask(),), name="soak-pg-probe")
    thread.start()
    thread.join()
    return result[0] if result else (-1, -1)  # -1: the probe failed (it printed why)


def snapshot(supplies: list[DatabaseSupply]) -> Snapshot:
    # threads and fds first: the PostgreSQL probe adds a thread and a socket while it runs
    threads, os_threads = threading.active_count(), status("Threads")
    fds, connections, databases = len(os.listdir("/proc/self/fd")), sqlite_files_open(), 0
    for supply in supplies:
        if isinstance(supply, PostgresSupply):
            backends, made = pg_counts(supply.server.admin_url)
            connections, databases = connections + backends, databases + made
    return Snapshot(status("VmRSS") / 1024, threads, os_threads, fds, connections, databases)


class Soak:
    """Counts schedules by outcome and takes the snapshots along the way."""

    def __init__(self, total: int, supplies: list[DatabaseSupply]) -> None:
        self.total, self.supplies, self.run, self.explorations = total, supplies, 0, 0
        self.outcomes: Counter[Outcome] = Counter()
        self.snapshots = {"start": snapshot(supplies)}
        self.problems: list[str] = []
        self.started = time.monotonic()
        print(self.snapshots["start"].line("start"), flush=True)

    def on_schedule(self, record: ScheduleRecord) -> None:
        self.run += 1
        self.outcomes[record.outcome] += 1
        if self.run in (WARM_UP, self.total) or self.run % EVERY == 0:
            label = {WARM_UP: "warm", self.total: "end"}.get(self.run, str(self.run))
            self.snapshots[label] = shot = snapshot(self.supplies)
            rate = self.run / (time.monotonic() - self.started)
            print(f"{shot.line(label)}  {self.run} schedules, {rate:.1f}/s", flush=True)

    def counts(self) -> str:
        return ", ".join(f"{self.outcomes[k]} {k.value}" for k in Outcome if self.outcomes[k])

    def explored(self, report: ExploreReport, last: Outcome | None) -> None:
        """Keep what an exploration ended on; a setup or close problem has no record: count it."""
        ended = report.problem or report.failure
        if ended is None:
            return
        self.problems.append(ended.describe())
        print(f"\n{report.scenario}:\n{self.problems[-1]}\n", flush=True)
        if report.problem is not None and (last is None or not last.is_problem):
            self.outcomes[report.problem.outcome] += 1


def explore(soak: Soak, simulation: Simulation, supply: DatabaseSupply, n: int, seed: int) -> None:
    # no shrinking: a finding's token replays as found, and the soak's time stays bounded
    config = interlace.Config(schedules=n, seed=seed, strategy="portfolio", shrink=False)
    last: list[Outcome] = []

    def on_schedule(record: ScheduleRecord) -> None:
        last[:] = [record.outcome]
        soak.on_schedule(record)

    soak.explorations += 1
    report = interlace.explore(simulation.scenario(supply), config, on_schedule=on_schedule)
    soak.explored(report, last[0] if last else None)


def round_robin(soak: Soak, jobs: list[tuple[Simulation, DatabaseSupply]], size: int) -> None:
    seed = 0
    while soak.run < soak.total:
        simulation, supply = jobs[seed % len(jobs)]
        before = soak.run
        explore(soak, simulation, supply, min(size, soak.total - soak.run), seed)
        seed += 1
        if soak.run == before and seed >= len(jobs):
            soak.problems.append("no schedule ran in a whole round: giving up")
            return


@contextlib.contextmanager
def neighbour(enabled: bool) -> Iterator[None]:
    """One process per core burning CPU at normal priority, stopped at the end or on Ctrl-C."""
    if not enabled:
        yield
        return
    # it also stops by itself when this process dies (even by SIGKILL): its parent changes
    burn = f"import os\nwhile os.getppid() == {os.getpid()}:\n    sum(range(100_000))"
    burners = [
        subprocess.Popen([sys.executable, "-c", burn], start_new_session=True)
        for _ in range(os.cpu_count() or 1)
    ]
    try:
        yield
    finally:
        for burner in burners:
            burner.terminate()
        for burner in burners:
            burner.wait()


def verdict(soak: Soak, check_memory: float | None) -> list[str]:
    """What went wrong (empty: the soak passed), printed and in the exit status."""
    wrong = [
        f"{soak.outcomes[kind]} {kind.value}(s)"
        for kind in Outcome
        if kind is not Outcome.PASSED and soak.outcomes[kind]
    ]
    closed = soak.snapshots["closed"]
    if closed.connections or closed.databases:
        wrong.append(f"{closed.connections} connections, {closed.databases} databases left open")
    growth = memory_growth(soak)
    if check_memory is not None and growth is not None and growth[0] >= check_memory:
        wrong.append(f"RSS grew {growth[0]:.1f} MB after the warm-up (limit {check_memory} MB)")
    return wrong + [p for p in soak.problems if p.startswith("no schedule")]


def memory_growth(soak: Soak) -> tuple[float, float] | None:
    """RSS growth (MB) from the warm-up to the last schedule, and the same per 1000 schedules."""
    warm, end = soak.snapshots.get("warm"), soak.snapshots.get("end")
    if warm is None or end is None:
        return None
    growth = end.rss_mb - warm.rss_mb
    return growth, growth / (soak.total - WARM_UP) * 1000


def record(soak: Soak, command: str, elapsed: float, databases: str) -> None:
    """Replace this command's row of the soak table (the other rows stay)."""
    start, end = "<!-- soak:start -->", "<!-- soak:end -->"
    text = RESULTS.read_text(encoding="utf-8") if RESULTS.exists() else ""
    old = text.split(start, 1)[1].split(end, 1)[0] if start in text and end in text else ""
    rows = [row for row in old.splitlines() if row.startswith("| 20")]
    rows = [row for row in rows if row.split(" | ")[1] != f"`{command}`"]
    shots = soak.snapshots
    first, last = shots["start"], shots["closed"]
    rss = " / ".join(
        f"{shots[k].rss_mb:.1f}" if k in shots else "-" for k in ("start", "warm", "end")
    )
    growth = memory_growth(soak)
    grew = "-" if growth is None else f"{growth[0]:+.1f} ({growth[1]:+.2f} per 1000)"
    rows.append(
        f"| {datetime.now(UTC):%Y-%m-%d} | `{command}` | {databases} | {soak.run} in "
        f"{soak.explorations} | "
        f"{soak.counts()} | "
        f"{rss} | {grew} | {first.threads}/{first.os_threads} -> {last.threads}/"
        f"{last.os_threads} | {first.fds} -> {last.fds} | {first.connections} -> "
        f"{shots['end'].connections if 'end' in shots else '-'} -> {last.connections} | "
        f"{elapsed:.0f} | "
        f"{soak.run / elapsed:.1f} |"
    )
    table = "| date | command | databases | schedules in explorations | outcomes | " + " | ".join(
        COLUMNS
    )
    write_section("soak", f"{INTRO}\n\n{table} |\n|{'---|' * 12}\n" + "\n".join(rows))


def describe(supply: DatabaseSupply) -> str:
    return f"postgres ({supply.server.source})" if isinstance(supply, PostgresSupply) else "sqlite"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--schedules", type=int, default=1000)
    parser.add_argument("--db", choices=("sqlite", "postgres", "both"), default="sqlite")
    parser.add_argument("--per-exploration", type=int, default=200)
    parser.add_argument("--neighbour", action="store_true")
    parser.add_argument("--switch-interval", type=float)
    parser.add_argument("--one-exploration", action="store_true")
    parser.add_argument("--check-memory", type=float, metavar="MB")
    parser.add_argument("--record", action="store_true")
    args = parser.parse_args()
    if args.switch_interval is not None:
        sys.setswitchinterval(args.switch_interval)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so the neighbour is stopped
    os.chdir(ROOT)  # the simulations import as simulations.editor_chat.*
    simulations = [s for s in discover(ROOT / "simulations" / "editor_chat") if not s.canary]
    kinds = ["sqlite"] if args.one_exploration else ["sqlite", "postgres"]
    kinds = kinds if args.db == "both" or args.one_exploration else [args.db]
    with contextlib.ExitStack() as stack:
        supplies = [stack.enter_context(open_supply(kind)) for kind in kinds]
        databases = ", ".join(describe(supply) for supply in supplies)
        stack.enter_context(neighbour(args.neighbour))
        soak = Soak(args.schedules, supplies)
        if args.one_exploration:
            # one exploration of N; a problem or finding ends it, and the next seed goes on
            only = next(s for s in simulations if s.name.endswith("identical:two_processes"))
            round_robin(soak, [(only, supplies[0])], args.schedules)
        else:
            jobs = [
                (s, supply)
                for s in simulations
                for supply in supplies
                if supply.kind in s.databases
            ]
            # small runs still visit every simulation: at least 50 schedules an exploration
            size = min(args.per_exploration, max(50, -(-args.schedules // len(jobs))))
            round_robin(soak, jobs, size)
        elapsed = time.monotonic() - soak.started
        soak.snapshots["closed"] = snapshot(supplies)
    print(soak.snapshots["closed"].line("closed"))
    print(
        f"{soak.run} schedules in {soak.explorations} explorations, {elapsed:.0f} s "
        f"({soak.run / elapsed:.1f}/s): {soak.counts()}"
    )
    growth = memory_growth(soak)
    if growth is not None:
        print(f"RSS growth after warm-up: {growth[0]:+.1f} MB ({growth[1]:+.2f} MB per 1000)")
    if args.record:
        argv = [a for a in sys.argv[1:] if a != "--record"]
        record(soak, " ".join(["bench/soak.py", *argv]), elapsed, databases)
    wrong = verdict(soak, args.check_memory)
    for line in wrong:
        print(f"FAILED: {line}")
    return 1 if wrong else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # the neighbour is stopped already (its context exited)
        sys.exit("interrupted")
