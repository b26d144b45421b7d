"""PostgreSQL lock waits under the scheduler: the lock monitor.

A simulated task whose statement waits for a row or table lock looks, to the
director, like a task waiting on outside I/O: its reply will come, some time.
If the lock holder is itself parked by the scheduler, that time never comes,
and a naive simulation stalls, times out, or reports a false deadlock. The
lock monitor closes that gap. Attach it in the scenario's resource::

    @asynccontextmanager
    async def database() -> AsyncIterator[AsyncEngine]:
        engine = create_async_engine(url, pool_size=4)
        await interlace.warm_pool(engine, 4)
        async with interlace.db.postgres.monitor(engine):
            yield engine
        await engine.dispose()

What it does, for every schedule run on that loop:

- maps each simulated task to the backend pids of the connections it checked
  out of any SQLAlchemy pool (``checkout``/``checkin`` events on the ``Pool``
  class, so every engine is covered);
- while tasks wait on outside I/O, asks the server (``pg_blocking_pids``, on
  its own autocommit connection opened outside any schedule) who blocks their
  backends; a task whose blockers all belong to settled tasks (parked, waiting
  inside the simulation, or themselves proven blocked) is proven blocked, and
  the director goes on without waiting for it;
- when the server is on this host and its processes may be signalled, stops
  each proven-blocked backend (``interlace.db.freezing``) and, when nothing
  else runs, continues one whose lock the server has granted, so that waiters
  released by one COMMIT cannot race; otherwise determinism is best effort
  (``LockMonitor.best_effort`` says why, and a ``DeterminismWarning`` is issued);
- when no task can run and proven-blocked tasks wait on each other (a lock
  cycle), continues exactly one of them, the first in creation order, so the
  server's deadlock detector runs in that backend only: the same victim gets
  40P01 on every run of a token. Databases from ``interlace.db.provider`` set
  ``deadlock_timeout`` to 20 ms, so this costs milliseconds.

Limits: one monitored server per exploration; a connection a task did not
check out itself (a child task using its parent's connection) is not mapped,
nor is a raw asyncpg connection (map it with ``lock_monitor.track(task,
connection.get_server_pid())``); ``lock_timeout`` and ``statement_timeout``
run on the server's wall clock, not on the virtual one; a backend whose lock
wait took more than half of ``deadlock_timeout`` to prove is not stopped (it
could be inside the server's deadlock check), so that wait is best effort.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import time
import warnings
from collections.abc import AsyncIterator, Callable, Collection, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import asyncpg  # type: ignore[import-untyped,unused-ignore]
from sqlalchemy import event
from sqlalchemy.dialects.postgresql.asyncpg import PGDialect_asyncpg
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import ConnectionPoolEntry, Pool, PoolProxiedConnection

from interlace._core import (
    ControlledLoop,
    StuckOutsideIO,
    UsageError,
    Wait,
    attach_outside_waits,
    detach_outside_waits,
    outside_waits_of,
)
from interlace.db.freezing import Freezer, freezer_for
from interlace.db.provider import url_is_local

# Each backend's wait, with the lock it waits for when it waits for one.
_BLOCKERS_QUERY = """
SELECT w.pid, pg_blocking_pids(w.pid) AS blockers,
       l.locktype, l.mode, l.relation::regclass::text AS relation
FROM unnest($1::int[]) AS w(pid)
LEFT JOIN pg_locks AS l ON l.pid = w.pid AND NOT l.granted
"""
_PROBE_QUERY = """
SELECT pg_backend_pid() AS pid,
       (SELECT client_port FROM pg_stat_activity WHERE pid = pg_backend_pid()) AS port,
       EXTRACT(epoch FROM current_setting('deadlock_timeout')::interval)::float8
           AS deadlock_timeout
"""
# After the deadlock timeout, the server needs a moment to run its check and answer.
_DEADLOCK_CHECK_MARGIN = 0.05
# The monitor's query takes a fraction of a millisecond; far longer means trouble.
_QUERY_TIMEOUT = 5.0
_RECORD_KEY = "interlace.backend_pid"
_installed: list[bool] = []  # non-empty once the pool listeners are attached


class DeterminismWarning(UserWarning):
    """Replays of this exploration may diverge; the message says why."""


@dataclass(frozen=True)
class LockWait:
    """What the server says about one waiting backend."""

    pid: int
    blockers: tuple[int, ...]
    lock: str
    """What it waits for, in words: ``a row lock``, ``ShareLock on table accounts``."""


@dataclass
class MonitorStats:
    """Counters of one monitor, for benchmarks and reports."""

    queries: int = 0
    query_seconds: float = 0.0
    # seconds from releasing the step (or resuming the backend) to proving the block
    detections: list[float] = field(default_factory=list)
    freezes: int = 0
    resumes: int = 0
    cycles_broken: int = 0


@dataclass(frozen=True)
class _Block:
    """A proven block: ``task``'s backend ``pid`` waits for locks of settled tasks."""

    pid: int
    holders: tuple[asyncio.Task[Any], ...]
    wait_text: str  # "a row lock held by T1", for Wait.what


class LockMonitor:
    """Proves which simulated tasks are blocked on PostgreSQL locks (an ``OutsideWaits``).

    Made by ``monitor(...)``; the director calls its methods (see
    ``interlace.lowlevel.OutsideWaits``), and the pool listeners feed it the
    backend pid of every connection a simulated task checks out.
    """

    def __init__(
        self,
        connection: asyncpg.Connection,
        freezer: Freezer | None,
        best_effort: str | None,
        deadlock_timeout: float,
    ) -> None:
        self._connection = connection
        self.freezer = freezer
        self._best_effort = best_effort
        self.deadlock_timeout = deadlock_timeout
        self.stats = MonitorStats()
        self._name_of: Callable[[asyncio.Task[Any]], str] = asyncio.Task.get_name
        self._order_of: Callable[[asyncio.Task[Any]], int] = lambda _task: 0
        # invariant: _owner and _pids describe the same pid <-> task mapping
        self._owner: dict[int, asyncio.Task[Any]] = {}
        self._pids: dict[asyncio.Task[Any], list[int]] = {}
        # proven blocks: frozen ones stay valid until resumed; the others until a decision
        self._frozen: dict[asyncio.Task[Any], _Block] = {}
        self._proven: dict[asyncio.Task[Any], _Block] = {}
        self._seen: dict[asyncio.Task[Any], LockWait] = {}  # unproven waits, for reports
        # tasks resumed so the server checks for a deadlock: not re-proven before the deadline
        self._checking: dict[asyncio.Task[Any], float] = {}
        self._tried: set[asyncio.Task[Any]] = set()  # resumed for a check since the last decision
        self._maybe_granted = False  # a lock may have been granted since the last look
        self._released_at = time.perf_counter()

    # ---- OutsideWaits ------------------------------------------------------------

    @property
    def best_effort(self) -> str | None:
        return self._best_effort

    def begin(
        self,
        name_of: Callable[[asyncio.Task[Any]], str],
        order_of: Callable[[asyncio.Task[Any]], int],
    ) -> None:
        self.end()
        self._name_of, self._order_of = name_of, order_of
        self._owner.clear()
        self._pids.clear()
        self._released_at = time.perf_counter()

    def explain(self, task: asyncio.Task[Any], wait: Wait) -> Wait:
        block = self._frozen.get(task) or self._proven.get(task)
        # replace(): the location stays unworked until a report asks for it
        if block is not None:
            return replace(wait, kind="dblock", what=block.wait_text)
        seen = self._seen.get(task)
        if seen is not None:
            holders = self._describe_holders(task, seen.blockers)
            return replace(wait, what=f"PostgreSQL: {seen.lock} held by {holders}")
        return wait

    async def examine(
        self,
        waiting: Sequence[asyncio.Task[Any]],
        settled: Collection[asyncio.Task[Any]],
        still_waiting: Callable[[asyncio.Task[Any]], bool],
    ) -> None:
        now = time.monotonic()
        candidates = [
            (task, pid)
            for task in waiting
            if self._checking.get(task, 0.0) <= now
            for pid in self._pids.get(task, ())
        ]
        if not candidates:
            return
        waits = await self._lock_waits([pid for _task, pid in candidates])
        proofs = self._prove(candidates, waits, settled)
        for task, _pid in candidates:
            self._seen.pop(task, None)  # what the server says now replaces what it said
        for task, pid in candidates:
            if pid in waits and task not in proofs:
                self._seen[task] = waits[pid]
        for task, block in proofs.items():
            if still_waiting(task):
                self._record(task, block, after_check=self._checking.pop(task, None) is not None)

    def after_decision(self, task: asyncio.Task[Any]) -> None:
        # what the released task does may end any wait: non-frozen proofs are stale
        self._proven.clear()
        self._tried.clear()
        self._seen.pop(task, None)
        self._checking.pop(task, None)  # its next wait is a new one
        self._maybe_granted = True
        self._released_at = time.perf_counter()
        block = self._frozen.pop(task, None)
        if block is not None:
            # woken inside the simulation (a timeout, a cancellation): it will talk
            # to its backend, which must be able to answer
            self._resume(block.pid)

    async def release_granted(self) -> bool:
        if not self._frozen or not self._maybe_granted:
            return False
        frozen = sorted(self._frozen, key=self._order_of)
        waits = await self._lock_waits([self._frozen[task].pid for task in frozen])
        granted = [task for task in frozen if self._frozen[task].pid not in waits]
        if not granted:
            self._maybe_granted = False
            return False
        # one at a time: once it has settled, the director asks again
        self._resume(self._frozen.pop(granted[0]).pid)
        self._released_at = time.perf_counter()
        return True

    async def break_cycle(self) -> bool:
        blocks = {**self._proven, **self._frozen}
        members = [t for t in sorted(blocks, key=self._order_of) if _on_cycle(t, blocks)]
        untried = [t for t in members if t not in self._tried]
        if not untried:
            return False
        # The first member runs the server's deadlock check (its deadlock_timeout
        # expired while it was stopped, or expires soon), alone: it is the victim.
        task = untried[0]
        self._tried.add(task)
        self._checking[task] = time.monotonic() + self.deadlock_timeout + _DEADLOCK_CHECK_MARGIN
        self._proven.pop(task, None)
        block = self._frozen.pop(task, None)
        if block is not None:
            self._resume(block.pid)
        self._maybe_granted = True
        self._released_at = time.perf_counter()
        self.stats.cycles_broken += 1
        return True

    def end(self) -> None:
        if self.freezer is not None:
            self.freezer.resume_all()
        self._frozen.clear()
        self._proven.clear()
        self._seen.clear()
        self._checking.clear()
        self._tried.clear()
        self._maybe_granted = False

    # ---- the pid <-> task mapping (fed by the pool listeners) --------------------

    def track(self, task: asyncio.Task[Any], pid: int) -> None:
        """``task`` checked out a connection whose backend is ``pid``."""
        self.untrack(pid)
        self._owner[pid] = task
        self._pids.setdefault(task, []).append(pid)

    def untrack(self, pid: int) -> None:
        """The connection of backend ``pid`` went back to its pool."""
        task = self._owner.pop(pid, None)
        if task is not None:
            self._pids[task].remove(pid)

    def backend_pids(self, task: asyncio.Task[Any]) -> list[int]:
        """The backends of the connections ``task`` holds now."""
        return list(self._pids.get(task, ()))

    # ---- internals -------------------------------------------------------------------

    async def _lock_waits(self, pids: list[int]) -> dict[int, LockWait]:
        """The backends of ``pids`` that wait for a lock, with who blocks them."""
        started = time.perf_counter()
        try:
            rows = await self._connection.fetch(_BLOCKERS_QUERY, pids, timeout=_QUERY_TIMEOUT)
        except TimeoutError:
            self.end()  # whatever holds the server up, frozen backends must not
            raise StuckOutsideIO(
                f"the PostgreSQL lock monitor's query did not answer within {_QUERY_TIMEOUT:g} s; "
                "every frozen backend was resumed. Is the server overloaded or its lock "
                "manager held up by a stopped process?"
            ) from None
        self.stats.queries += 1
        self.stats.query_seconds += time.perf_counter() - started
        return {
            row["pid"]: LockWait(row["pid"], tuple(row["blockers"]), _lock_text(row))
            for row in rows
            if row["blockers"]
        }

    def _prove(
        self,
        candidates: list[tuple[asyncio.Task[Any], int]],
        waits: dict[int, LockWait],
        settled: Collection[asyncio.Task[Any]],
    ) -> dict[asyncio.Task[Any], _Block]:
        """The candidates whose blockers all belong to settled or proven-blocked tasks.

        Repeated until nothing changes, so a chain (T3 waits for T2, which waits
        for parked T1) is proven from one answer of the server.
        """
        proofs: dict[asyncio.Task[Any], _Block] = {}
        changed = True
        while changed:
            changed = False
            for task, pid in candidates:
                wait = waits.get(pid)
                if task in proofs or wait is None:
                    continue
                holders = [self._owner.get(blocker) for blocker in wait.blockers]
                if all(
                    holder is not None
                    and holder is not task
                    and (holder in settled or holder in proofs or self._is_blocked(holder))
                    for holder in holders
                ):
                    known = tuple(h for h in holders if h is not None)
                    text = f"PostgreSQL: {wait.lock} held by {self._names(known)}"
                    proofs[task] = _Block(pid, known, text)
                    changed = True
        return proofs

    def _record(self, task: asyncio.Task[Any], block: _Block, *, after_check: bool) -> None:
        self._seen.pop(task, None)
        waited = time.perf_counter() - self._released_at
        self.stats.detections.append(waited)
        # The server runs its deadlock check in the waiting backend deadlock_timeout
        # after the wait began, holding the lock manager's internal locks: a backend
        # stopped then would stall every lock query, ours included. The wait began
        # after the last release, so a backend is stopped only well before its check
        # (or after the check it was resumed for, which the server does not repeat).
        safe_to_stop = after_check or waited < self.deadlock_timeout / 2
        if self.freezer is not None and safe_to_stop and self.freezer.owns(block.pid):
            self._frozen[task] = block
            self.freezer.stop(block.pid)
            self.stats.freezes += 1
        else:
            self._proven[task] = block

    def _resume(self, pid: int) -> None:
        if self.freezer is not None:
            self.freezer.resume(pid)
            self.stats.resumes += 1

    def _is_blocked(self, task: asyncio.Task[Any]) -> bool:
        return task in self._frozen or task in self._proven

    def _names(self, tasks: Sequence[asyncio.Task[Any]]) -> str:
        names = sorted({self._name_of(t) for t in tasks}, key=str)
        return " and ".join(names) if names else "nobody"

    def _describe_holders(self, task: asyncio.Task[Any], blockers: tuple[int, ...]) -> str:
        parts = []
        for pid in blockers:
            holder = self._owner.get(pid)
            if holder is None:
                parts.append(
                    f"backend {pid}, which is not a simulated task's connection (another "
                    "process, or a transaction the scenario's resource or reset left open)"
                )
            elif holder is task:
                parts.append(f"{self._name_of(task)} itself, on another connection")
            else:
                parts.append(self._name_of(holder))
        return " and ".join(parts)


def _on_cycle(start: asyncio.Task[Any], blocks: dict[asyncio.Task[Any], _Block]) -> bool:
    """Does following 'blocked by' edges from ``start`` lead back to it?"""
    seen: set[asyncio.Task[Any]] = set()
    frontier = list(blocks[start].holders)
    while frontier:
        task = frontier.pop()
        if task is start:
            return True
        if task in seen or task not in blocks:
            continue
        seen.add(task)
        frontier.extend(blocks[task].holders)
    return False


def _lock_text(row: Any) -> str:
    locktype, mode, relation = row["locktype"], row["mode"], row["relation"]
    if locktype == "transactionid":
        return "a row lock"  # it waits for the transaction that changed the row to end
    if locktype == "tuple":
        return f"a row lock on {relation}"
    if locktype == "relation":
        return f"{mode} on table {relation}"
    if locktype == "advisory":
        return "an advisory lock"
    if locktype is None:
        return "a lock"
    return f"a {locktype} lock ({mode})"


# ---- making a monitor -----------------------------------------------------------------


@contextlib.asynccontextmanager
async def monitor(
    target: AsyncEngine | str, *, freeze: bool | None = None
) -> AsyncIterator[LockMonitor]:
    """Watch PostgreSQL lock waits of every schedule run on this ``ControlledLoop``.

    ``target`` is the scenario's engine (``postgresql+asyncpg://``) or a URL of
    the same server. Enter it in the scenario's resource, after warming the pool.
    ``freeze``: None stops blocked backends when possible (and says why not, with
    a ``DeterminismWarning``), True requires it (``UsageError`` with the reason
    otherwise), False never stops them (replays are then best effort).
    """
    loop = asyncio.get_running_loop()
    if not isinstance(loop, ControlledLoop):
        raise UsageError(
            "interlace.db.postgres.monitor() watches schedules of interlace's ControlledLoop, "
            f"but this code runs on {type(loop).__name__}: enter it in a scenario's resource"
        )
    connect_args = _connect_args(target)
    connection = await asyncpg.connect(**connect_args)
    try:
        lock_monitor = await _start(connection, connect_args, freeze)
        _install()
        attach_outside_waits(loop, lock_monitor)
        try:
            yield lock_monitor
        finally:
            detach_outside_waits(loop, lock_monitor)
            lock_monitor.end()
    finally:
        await connection.close()


async def _start(
    connection: asyncpg.Connection, connect_args: dict[str, Any], freeze: bool | None
) -> LockMonitor:
    probe = await connection.fetchrow(_PROBE_QUERY)
    await connection.fetch(_BLOCKERS_QUERY, [probe["pid"]])  # warm: parse, plan, codecs
    freezer: Freezer | None = None
    reason: str | None = "monitor(..., freeze=False) was asked for"
    if freeze is not False:
        found = _freezer(connect_args, probe["pid"], probe["port"])
        freezer, reason = (found, None) if isinstance(found, Freezer) else (None, found)
    if freeze and freezer is None:
        raise UsageError(f"cannot freeze blocked PostgreSQL backends: {reason}")
    best_effort = None
    if reason is not None:
        best_effort = (
            f"blocked PostgreSQL backends are not frozen ({reason}): when one COMMIT "
            "releases several waiters, the server orders them itself, so replays may "
            "diverge; determinism is best effort"
        )
        warnings.warn(best_effort, DeterminismWarning, stacklevel=4)
    return LockMonitor(connection, freezer, best_effort, float(probe["deadlock_timeout"]))


def _freezer(connect_args: dict[str, Any], backend_pid: int, port: int | None) -> Freezer | str:
    host = connect_args.get("host")
    hosts = [str(h) for h in (host if isinstance(host, list) else [host] if host else [])]
    if hosts and not url_is_local("postgresql:///?host=" + ",".join(hosts)):
        return f"the server ({', '.join(hosts)}) is not on this host"
    return freezer_for(backend_pid, None if port is None or port < 0 else port)


def _connect_args(target: AsyncEngine | str) -> dict[str, Any]:
    """``asyncpg.connect`` keyword arguments for the server of ``target``."""
    url = target.url if isinstance(target, AsyncEngine) else make_url(target)
    engine_driver = url.get_driver_name() if isinstance(target, AsyncEngine) else "asyncpg"
    if url.get_backend_name() != "postgresql" or engine_driver != "asyncpg":
        raise UsageError(
            f"the lock monitor needs PostgreSQL through asyncpg, not {url.drivername}: "
            "monitor a postgresql+asyncpg:// engine, or give the server's URL"
        )
    dialect: Any = PGDialect_asyncpg  # untyped in SQLAlchemy
    _args, options = dialect().create_connect_args(url)
    # keep what asyncpg.connect takes, not SQLAlchemy's own (prepared_statement_cache_size)
    accepted = inspect.signature(asyncpg.connect).parameters
    return {key: value for key, value in options.items() if key in accepted}


# ---- the pool listeners -----------------------------------------------------------------


def _install() -> None:
    """Attach the pool listeners once per process (idempotent)."""
    if _installed:
        return
    event.listen(Pool, "checkout", _on_checkout)
    event.listen(Pool, "checkin", _on_checkin)
    _installed.append(True)


def _running_monitor() -> LockMonitor | None:
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return None
    explainer = outside_waits_of(loop)
    return explainer if isinstance(explainer, LockMonitor) else None


def _on_checkout(
    dbapi_connection: Any, record: ConnectionPoolEntry, proxy: PoolProxiedConnection
) -> None:
    lock_monitor = _running_monitor()
    loop = asyncio.get_running_loop() if lock_monitor is not None else None
    if lock_monitor is None or not isinstance(loop, ControlledLoop) or loop.director is None:
        return
    task = asyncio.current_task(loop)
    get_pid = getattr(getattr(dbapi_connection, "driver_connection", None), "get_server_pid", None)
    if task is None or get_pid is None or not loop.director.in_simulated_task():
        return
    pid = int(get_pid())
    record.info[_RECORD_KEY] = pid
    lock_monitor.track(task, pid)


def _on_checkin(dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
    pid = record.info.pop(_RECORD_KEY, None)
    lock_monitor = _running_monitor()
    if pid is not None and lock_monitor is not None:
        lock_monitor.untrack(pid)
