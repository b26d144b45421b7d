"""The lock monitor of one PostgreSQL server: who blocks whom, proven and frozen.

A simulated task whose statement waits for a row or table lock looks, to the
director, like a task waiting on outside I/O: its reply will come, some time.
If the lock holder is itself parked by the scheduler, that time never comes,
and a naive simulation stalls, times out, or reports a false deadlock. A
``LockMonitor`` closes that gap for one server. interlace attaches one to
every server a simulated task talks to (``interlace.db.lock_watch``); what it
does, for every schedule:

- maps each simulated task to the backend pids of the asyncpg connections it
  uses (fed by ``lock_watch``: every query a task awaits on a connection, and
  SQLAlchemy's pool checkouts);
- while tasks wait on outside I/O, asks the server (``pg_blocking_pids``, on
  its own autocommit connection, opened outside any schedule and never
  mapped to a task) who blocks their backends; a task whose blockers all
  belong to settled tasks (parked, waiting inside the simulation, or
  themselves proven blocked) is proven blocked, and the director goes on
  without waiting for it;
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

Limits: ``lock_timeout`` and ``statement_timeout`` run on the server's wall
clock, not on the virtual one; a backend whose lock wait took more than half
of ``deadlock_timeout`` to prove is not stopped (it could be inside the
server's deadlock check), so that wait is best effort (the first lock wait on
a server first seen inside a schedule can be one: its monitor is connecting).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import time
import warnings
import weakref
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import asyncpg  # type: ignore[import-untyped,unused-ignore]
from sqlalchemy.dialects.postgresql.asyncpg import PGDialect_asyncpg
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from interlace._core import StuckOutsideIO, UsageError, Wait
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
_CONNECT_TIMEOUT = 10.0
#: the monitors' own connections: never mapped to a task, never a lock holder of one
MONITOR_CONNECTIONS: weakref.WeakSet[asyncpg.Connection] = weakref.WeakSet()


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
    """Proves which simulated tasks are blocked on one server's locks (an ``OutsideWaits``).

    Made unstarted, from ``asyncpg.connect`` keywords for the server; ``start``
    opens its connection (once; the lock watch starts it in a task of its own,
    outside the simulation, as soon as it sees the server). The director calls
    its ``OutsideWaits`` methods through the lock watch, which also feeds it the
    backend pid of every connection a simulated task uses.
    """

    def __init__(self, connect_args: dict[str, Any], *, where: str = "") -> None:
        self._connect_args = connect_args
        self.where = where or _describe(connect_args)
        """The server, in words, for messages."""
        self._connection: asyncpg.Connection | None = None
        # invariant: set once start() began; done once started or failed
        self._starting: asyncio.Task[None] | None = None
        self.failed: str | None = None
        """Why the monitor could not start (its lock waits then look like outside I/O)."""
        self._start_error: Exception | None = None
        self._warned = False  # about the failure, once
        self.address: object = None
        """Where its connection went (asyncpg's address of the server), once started."""
        self.freezer: Freezer | None = None
        self._best_effort: str | None = None
        self._freeze_reason: str | None = None  # why no freezer, once started
        self.deadlock_timeout = 1.0
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
        if not self.watches(waiting):
            return
        if self._connection is None:
            # Seen first inside this schedule: connecting takes a few milliseconds, in a
            # task of its own (the director waits here, nothing is decided meanwhile).
            await self.start(raise_errors=False)
            if self._connection is None:
                return
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

    # ---- starting and stopping ---------------------------------------------------

    @property
    def started(self) -> bool:
        """Whether its connection to the server is open."""
        return self._connection is not None

    def start_soon(self, loop: asyncio.AbstractEventLoop) -> None:
        """Begin connecting in a task of its own, which is never a simulated task."""
        if self._starting is None:
            # A plain callback runs outside every task, so the task it makes is not
            # adopted by a schedule running now: no decision waits for it.
            loop.call_soon(self._spawn, loop)

    def _spawn(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._starting is None:
            self._starting = loop.create_task(_start(self))

    async def start(self, *, raise_errors: bool = True) -> None:
        """Connect to the server and probe it, once; wait for a start already begun.

        Call it from outside the simulation (a resource, the director, the
        runner between schedules): the connecting task is made here.
        ``raise_errors``: raise what made it fail, else only record it (``failed``).
        """
        if self._starting is None:
            self._starting = asyncio.get_running_loop().create_task(_start(self))
        await asyncio.shield(self._starting)
        if self._start_error is None:
            return
        if raise_errors:
            raise self._start_error
        if not self._warned:
            self._warned = True
            warnings.warn(
                f"interlace cannot watch lock waits on {self.where} ({self.failed}): a "
                "statement waiting for a lock held by a parked task will be reported as stuck",
                RuntimeWarning,
                stacklevel=2,
            )

    def require_freezing(self, freeze: bool | None) -> None:
        """Apply ``monitor(..., freeze=...)`` to this started monitor (see ``monitor``)."""
        if freeze is None:
            return
        if freeze:
            if self.freezer is None:
                raise UsageError(
                    f"cannot freeze blocked PostgreSQL backends: {self._freeze_reason}"
                )
            return
        if self.freezer is not None:
            self.freezer.resume_all()
            self.freezer = None
        reason = "monitor(..., freeze=False) was asked for"
        if self._freeze_reason != reason:
            self._set_best_effort(reason)

    def _set_best_effort(self, reason: str) -> None:
        self._freeze_reason = reason
        self._best_effort = _best_effort_text(reason)
        warnings.warn(self._best_effort, DeterminismWarning, stacklevel=2)

    def _fail(self, error: Exception, reason: str) -> None:
        self.failed = reason
        self._start_error = error

    async def close(self) -> None:
        """Resume what is frozen and close the monitor's connection (idempotent)."""
        self.end()
        starting = self._starting
        if starting is not None and not starting.done():
            starting.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await starting
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(Exception):
                await connection.close(timeout=_QUERY_TIMEOUT)

    # ---- the pid <-> task mapping (fed by the lock watch) -----------------------

    def track(self, task: asyncio.Task[Any], pid: int) -> None:
        """``task`` uses (or checked out) a connection whose backend is ``pid``."""
        if self._owner.get(pid) is task:
            return
        self.untrack(pid)
        self._owner[pid] = task
        self._pids.setdefault(task, []).append(pid)

    def watches(self, tasks: Sequence[asyncio.Task[Any]]) -> bool:
        """Does one of ``tasks`` use a connection to this server?"""
        return any(task in self._pids and self._pids[task] for task in tasks)

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
        if self._connection is None:
            return {}
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


# ---- starting, stopping, configuring (methods of LockMonitor, kept together) -----------


async def _start(self: LockMonitor) -> None:
    """Connect to the server and probe it; on failure, record why (never raises)."""
    try:
        connection = await asyncpg.connect(**self._connect_args)
    except Exception as error:
        self._fail(error, f"cannot connect to {self.where}: {type(error).__name__}: {error}")
        return
    MONITOR_CONNECTIONS.add(connection)  # its own queries are never a task's
    try:
        probe = await connection.fetchrow(_PROBE_QUERY)
        await connection.fetch(_BLOCKERS_QUERY, [probe["pid"]])  # warm: parse, plan, codecs
    except Exception as error:
        with contextlib.suppress(Exception):
            await connection.close()
        self._fail(error, f"cannot query {self.where}: {type(error).__name__}: {error}")
        return
    found = _freezer(self._connect_args, probe["pid"], probe["port"])
    if isinstance(found, Freezer):
        self.freezer = found
    else:
        self._set_best_effort(found)
    self.deadlock_timeout = float(probe["deadlock_timeout"])
    self.address = getattr(connection, "_addr", None)
    self._connection = connection


def _best_effort_text(reason: str) -> str:
    return (
        f"blocked PostgreSQL backends are not frozen ({reason}): when one COMMIT "
        "releases several waiters, the server orders them itself, so replays may "
        "diverge; determinism is best effort"
    )


def _freezer(connect_args: dict[str, Any], backend_pid: int, port: int | None) -> Freezer | str:
    host = connect_args.get("host")
    hosts = [str(h) for h in (host if isinstance(host, list) else [host] if host else [])]
    if hosts and not url_is_local("postgresql:///?host=" + ",".join(hosts)):
        return f"the server ({', '.join(hosts)}) is not on this host"
    return freezer_for(backend_pid, None if port is None or port < 0 else port)


def connect_args_for(target: AsyncEngine | str) -> dict[str, Any]:
    """``asyncpg.connect`` keyword arguments for the server of an engine or URL."""
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


def connect_args_of(connection: asyncpg.Connection) -> dict[str, Any]:
    """``asyncpg.connect`` keyword arguments for the server ``connection`` talks to.

    From what asyncpg keeps of the connection's own (its address and parameters),
    so the monitor reaches the server exactly as the application did.
    """
    address = connection._addr
    params = connection._params
    if isinstance(address, str):  # a unix socket: <directory>/.s.PGSQL.<port>
        directory, _slash, name = address.rpartition("/")
        host: str = directory
        port = int(name.rsplit(".", 1)[1])
    else:
        host, port = str(address[0]), int(address[1])
    args: dict[str, Any] = {
        "host": host,
        "port": port,
        "user": params.user,
        "password": params.password,
        "database": params.database,
        "timeout": _CONNECT_TIMEOUT,
    }
    mode = getattr(params.sslmode, "name", None)
    if mode in ("disable", "allow", "prefer"):
        args["ssl"] = mode  # negotiated as the application's connection was
    elif params.ssl is not None:
        args["ssl"] = params.ssl  # required: the same context (certificates, checks)
    negotiation = getattr(params, "ssl_negotiation", None)
    if getattr(negotiation, "name", None) == "direct" or getattr(params, "direct_tls", False):
        args["direct_tls"] = True
    return args


def _describe(connect_args: dict[str, Any]) -> str:
    host = connect_args.get("host") or "the default host"
    port = connect_args.get("port")
    return f"PostgreSQL at {host}" + (f":{port}" if port else "")
