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
        [--neighbour] [--switch-interval 1e-6] [--one-exploration] [--check-memory MB]
        [--minutes M] [--record]

``--minutes``, Ctrl-C or SIGTERM stop the soak between two schedules (the world closes):
what ran is reported and recorded, and the exit status says it stopped short.
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
from interlace.outcome import Outcome, ScheduleRecord
from interlace.simulations import Simulation

sys.path.insert(0, os.path.dirname(__file__))
from results import RESULTS, write_section

ROOT = Path(__file__).resolve().parent.parent
WARM_UP, EVERY = 200, 1000
INTRO = (
    "## Soak (bench/soak.py)\n\nSee bench/soak.py's docstring for what each column measures. "
    "RSS in MB at the start, after the warm-up and at the last schedule; threads "
    "(Python/kernel), fds: start -> closed; connections: start -> last schedule -> closed. "
    f"Python {platform.python_version()}, {os.cpu_count()} cores shared with other work. "
    "Rerun: the command, with `--record`."
)
HEADER = ("date", "command", "databases", "schedules in explorations", "outcomes")
HEADER += ("RSS start / warm / end", "RSS growth after warm-up", "threads", "fds")
HEADER += ("connections", "seconds", "schedules/s")
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
    stale: int  # SQLite files open whose exploration removed them: connections nobody closed
    databases: int  # PostgreSQL simulation databases that exist
    schedules: int  # run when it was taken

    def line(self, label: str) -> str:
        return (
            f"{label:>12}: RSS {self.rss_mb:7.1f} MB  threads {self.threads}/{self.os_threads}  "
            f"fds {self.fds}  connections {self.connections} (stale {self.stale})  "
            f"pg databases {self.databases}"
        )


def status(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def sqlite_files_open() -> tuple[int, int]:
    """(all, stale): this run's SQLite files open; stale ones were deleted with their world."""
    targets = []
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # an fd closed since listdir
            targets.append(os.readlink(f"/proc/self/fd/{fd}"))
    ours = [t for t in targets if "/interlace-sim-" in t and "/simulation.db" in t]
    return len(ours), sum(t.endswith(" (deleted)") for t in ours)


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


def snapshot(supplies: list[DatabaseSupply], schedules: int) -> Snapshot:
    # threads and fds first: the PostgreSQL probe adds a thread and a socket while it runs
    threads, os_threads = threading.active_count(), status("Threads")
    fds, databases = len(os.listdir("/proc/self/fd")), 0
    connections, stale = sqlite_files_open()
    for supply in supplies:
        if isinstance(supply, PostgresSupply):
            backends, made = pg_counts(supply.server.admin_url)
            connections, databases = connections + backends, databases + made
    rss = status("VmRSS") / 1024
    return Snapshot(rss, threads, os_threads, fds, connections, stale, databases, schedules)


class Stop(Exception):
    """Raised from on_schedule to end the exploration between schedules (its world closes)."""


STOP: list[str] = []  # why the soak should stop, once asked to


def soak_stop(signum: int, _frame: object) -> None:
    STOP.append(signal.Signals(signum).name)
    print(f"{STOP[-1]}: stopping after this schedule (Ctrl-C again aborts)", flush=True)
    signal.signal(signal.SIGINT, signal.default_int_handler)


class Soak:
    """Counts schedules by outcome and takes the snapshots along the way."""

    def __init__(self, total: int, supplies: list[DatabaseSupply], minutes: float) -> None:
        self.total, self.supplies, self.run, self.explorations = total, supplies, 0, 0
        self.minutes = minutes
        self.outcomes: Counter[Outcome] = Counter()
        self.snapshots = {"start": snapshot(supplies, 0)}
        self.started = time.monotonic()
        print(self.snapshots["start"].line("start"), flush=True)

    def on_schedule(self, record: ScheduleRecord) -> None:
        self.run += 1
        self.outcomes[record.outcome] += 1
        if self.run in (WARM_UP, self.total) or self.run % EVERY == 0:
            label = {WARM_UP: "warm", self.total: "end"}.get(self.run, str(self.run))
            self.snapshots[label] = shot = snapshot(self.supplies, self.run)
            rate = self.run / (time.monotonic() - self.started)
            print(f"{shot.line(label)}  {self.run} schedules, {rate:.1f}/s", flush=True)
        if not STOP and time.monotonic() - self.started > self.minutes * 60:
            STOP.append(f"the time budget ({self.minutes:g} min)")
        if STOP:
            self.snapshots.setdefault("end", snapshot(self.supplies, self.run))
            raise Stop(STOP[0])

    def counts(self) -> str:
        return ", ".join(f"{self.outcomes[k]} {k.value}" for k in Outcome if self.outcomes[k])


def explore(soak: Soak, simulation: Simulation, supply: DatabaseSupply, n: int, seed: int) -> None:
    # no shrinking: a finding's token replays as found, and the soak's time stays bounded
    config = interlace.Config(schedules=n, seed=seed, strategy="portfolio", shrink=False)
    last: list[Outcome] = []

    def on_schedule(record: ScheduleRecord) -> None:
        last[:] = [record.outcome]
        soak.on_schedule(record)

    soak.explorations += 1
    try:
        report = interlace.explore(simulation.scenario(supply), config, on_schedule=on_schedule)
    except Stop:
        return
    ended = report.problem or report.failure
    if ended is not None:
        print(f"\n{report.scenario}:\n{ended.describe()}\n", flush=True)
    # a setup or close problem has no schedule record: count it here
    if report.problem is not None and not (last and last[0].is_problem):
        soak.outcomes[report.problem.outcome] += 1


def round_robin(soak: Soak, jobs: list[tuple[Simulation, DatabaseSupply]], size: int) -> None:
    """Explorations of ``size`` schedules, seeds 0, 1, ..., until the total has run."""
    seed, idle = 0, 0  # idle: explorations in a row that ran no schedule (setup failed)
    while soak.run < soak.total and idle < len(jobs) and not STOP:
        simulation, supply = jobs[seed % len(jobs)]
        before = soak.run
        explore(soak, simulation, supply, min(size, soak.total - soak.run), seed)
        seed, idle = seed + 1, idle + 1 if soak.run == before else 0


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
    bad = [kind for kind in Outcome if kind is not Outcome.PASSED and soak.outcomes[kind]]
    wrong = [f"{soak.outcomes[kind]} {kind.value}(s)" for kind in bad]
    closed = soak.snapshots["closed"]
    if closed.connections or closed.databases:
        wrong.append(f"{closed.connections} connections, {closed.databases} databases left open")
    growth = memory_growth(soak)
    if check_memory is not None and growth is not None and growth[0] >= check_memory:
        wrong.append(f"RSS grew {growth[0]:.1f} MB after the warm-up (limit {check_memory} MB)")
    if soak.run < soak.total:
        wrong.append(f"only {soak.run} of {soak.total} schedules ran")
    return wrong


def last_in_run(soak: Soak) -> Snapshot | None:
    """The last snapshot taken while schedules ran: "end", or the last before an interrupt."""
    inside = [shot for label, shot in soak.snapshots.items() if label not in ("start", "closed")]
    return inside[-1] if inside else None


def memory_growth(soak: Soak) -> tuple[float, float] | None:
    """RSS growth (MB) from the warm-up to the last schedule, and the same per 1000 schedules."""
    warm, end = soak.snapshots.get("warm"), last_in_run(soak)
    if warm is None or end is None or end.schedules == warm.schedules:
        return None
    growth = end.rss_mb - warm.rss_mb
    return growth, growth / (end.schedules - warm.schedules) * 1000


def record(soak: Soak, command: str, elapsed: float, databases: str) -> None:
    """Replace this command's row of the soak table (the other rows stay)."""
    start, end = "<!-- soak:start -->", "<!-- soak:end -->"
    text = RESULTS.read_text(encoding="utf-8") if RESULTS.exists() else ""
    old = text.split(start, 1)[1].split(end, 1)[0] if start in text and end in text else ""
    rows = [row for row in old.splitlines() if row.startswith("| 20")]  # rows start with a date
    rows = [row for row in rows if row.split(" | ")[1] != f"`{command}`"]
    shots, growth = soak.snapshots, memory_growth(soak)
    warm = shots.get("warm")
    first, last, at_end = shots["start"], shots["closed"], last_in_run(soak)
    stale = max(shot.stale for shot in shots.values())
    cells = [
        f"{datetime.now(UTC):%Y-%m-%d}",
        f"`{command}`",
        databases,
        f"{soak.run} in {soak.explorations}" + (f" (stopped by {STOP[0]})" if STOP else ""),
        soak.counts(),
        " / ".join(f"{shot.rss_mb:.1f}" if shot else "-" for shot in (first, warm, at_end)),
        "-" if growth is None else f"{growth[0]:+.1f} ({growth[1]:+.2f} per 1000)",
        f"{first.threads}/{first.os_threads} -> {last.threads}/{last.os_threads}",
        f"{first.fds} -> {last.fds}",
        f"{first.connections} -> {at_end.connections if at_end else '-'} -> {last.connections}"
        + (f" (stale: up to {stale})" if stale else ""),
        f"{elapsed:.0f}",
        f"{soak.run / elapsed:.1f}",
    ]
    rows.append(f"| {' | '.join(cells)} |")
    table = f"| {' | '.join(HEADER)} |\n|{'---|' * len(HEADER)}"
    write_section("soak", f"{INTRO}\n\n{table}\n" + "\n".join(rows))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--schedules", type=int, default=1000)
    parser.add_argument("--db", choices=("sqlite", "postgres", "both"), default="sqlite")
    parser.add_argument("--per-exploration", type=int, default=200)
    parser.add_argument("--neighbour", action="store_true")
    parser.add_argument("--switch-interval", type=float)
    parser.add_argument("--one-exploration", action="store_true")
    parser.add_argument("--check-memory", type=float, metavar="MB")
    parser.add_argument("--minutes", type=float, default=float("inf"), help="time budget")
    parser.add_argument("--record", action="store_true")
    args = parser.parse_args()
    if args.switch_interval is not None:
        sys.setswitchinterval(args.switch_interval)
    # Ctrl-C or SIGTERM (also in the background, where SIGINT starts ignored) stops the soak
    # after the schedule that runs, not by cancelling the exploration (which does not end
    # it); what ran is reported and recorded. A second Ctrl-C aborts.
    signal.signal(signal.SIGINT, soak_stop)
    signal.signal(signal.SIGTERM, soak_stop)
    os.chdir(ROOT)  # the simulations import as simulations.editor_chat.*
    simulations = [s for s in discover(ROOT / "simulations" / "editor_chat") if not s.canary]
    kinds = ["sqlite"] if args.one_exploration else ["sqlite", "postgres"]
    kinds = kinds if args.db == "both" or args.one_exploration else [args.db]
    with contextlib.ExitStack() as stack:
        supplies = [stack.enter_context(open_supply(kind)) for kind in kinds]
        databases = ", ".join(
            f"postgres ({s.server.source})" if isinstance(s, PostgresSupply) else s.kind
            for s in supplies
        )
        stack.enter_context(neighbour(args.neighbour))
        soak = Soak(args.schedules, supplies, args.minutes)
        if args.one_exploration:
            # one exploration of N; a problem or finding ends it, the next seed goes on
            only = next(s for s in simulations if s.name.endswith("identical:two_processes"))
            round_robin(soak, [(only, supplies[0])], args.schedules)
        else:
            jobs = [(s, db) for s in simulations for db in supplies if db.kind in s.databases]
            # small runs still visit every simulation: at least 50 schedules an exploration
            size = min(args.per_exploration, max(50, -(-args.schedules // len(jobs))))
            round_robin(soak, jobs, size)
        if STOP:
            print(f"stopped by {STOP[0]} after {soak.run} schedules", flush=True)
        elapsed = time.monotonic() - soak.started
        soak.snapshots["closed"] = snapshot(supplies, soak.run)
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
    sys.exit(main())
