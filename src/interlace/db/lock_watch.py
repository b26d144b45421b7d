"""PostgreSQL lock waits out of the box: every asyncpg connection watched, no user code.

A statement that waits for a lock held by a parked task looks to the director
like outside I/O that never ends. A ``LockMonitor`` (``lock_monitor.py``)
proves such waits blocked, but it must know which task uses which backend,
and it needs a connection of its own to ask the server. The lock watch does
both, for every schedule runner (``interlace.engine``), unless it is turned
off (``Config(lock_monitor=False)``, ``explore(..., lock_monitor=False)``,
``@pytest.mark.interlace(lock_monitor=False)``):

- **Hooks.** When interlace installs its instrumentation, asyncpg's query
  methods (``Connection.execute``, ``fetch``, ``fetchrow``, ``fetchval``,
  ``fetchmany``, ``executemany``, ``prepare``, ``cursor``, ``transaction``,
  the ``copy_*`` methods, and a ``PreparedStatement``'s ``fetch*``,
  ``executemany``, ``explain``, ``cursor``) are wrapped, process-wide, so
  that each call first tells the loop's lock watch which connection is used,
  and by which task: the task that awaits a query on a connection is mapped
  to its backend pid (``Connection.get_server_pid()``). That covers raw
  asyncpg, asyncpg pools and SQLAlchemy's asyncpg dialect alike, wherever the
  connection was made: the scenario's resource, its body, a marked test.
  SQLAlchemy's pool checkouts map the connection too, as soon as it is
  checked out, and its checkin unmaps it. Outside a ``ControlledLoop`` the
  hooks cost one check per call.
- **One monitor per server.** The first connection seen on a server (by its
  address) gets a ``LockMonitor`` for it, which connects, with the same
  address and parameters, in a task of its own: never a simulated task's
  child, so nothing it does is a decision, and its own connection is never
  mapped to a task. The runner waits for every monitor to be ready before
  each schedule, so a server the resource used (``warm_pool``) is watched
  from the first schedule on; a server first seen inside a schedule is
  watched once its monitor has connected (the director waits for it when a
  task waits on that server; nothing is decided meanwhile).
- **The explainer.** The lock watch is the loop's ``OutsideWaits`` explainer
  and hands each question to the monitors. It is attached once the
  scenario's resource is entered, unless the resource attached an explainer
  of its own, which then rules the loop. ``interlace.db.postgres.monitor``
  (still accepted) returns the watch's monitor of a server, with its
  ``freeze`` choice applied.

Limits: a server is known by the address asyncpg connected to, so one server
reached under two addresses (``localhost`` and ``127.0.0.1``) gets two
monitors, which do not see each other's lock holders; a connection used by a
task only through objects made before it used it (a cursor made by another
task) is mapped to the task that made them.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import weakref
from collections.abc import AsyncIterator, Callable, Collection, Sequence
from typing import Any

import asyncpg  # type: ignore[import-untyped,unused-ignore]
from asyncpg.prepared_stmt import PreparedStatement  # type: ignore[import-untyped,unused-ignore]
from sqlalchemy import event
from sqlalchemy.pool import ConnectionPoolEntry, Pool, PoolProxiedConnection

from interlace._core import (
    ControlledLoop,
    Wait,
    attach_outside_waits,
    detach_outside_waits,
    outside_waits_of,
)
from interlace.db.lock_monitor import (
    MONITOR_CONNECTIONS,
    LockMonitor,
    connect_args_of,
)

# asyncpg's methods that talk to the server, on a connection and on a prepared statement
_CONNECTION_METHODS = (
    "execute",
    "executemany",
    "fetch",
    "fetchval",
    "fetchrow",
    "fetchmany",
    "prepare",
    "cursor",
    "transaction",
    "copy_from_table",
    "copy_from_query",
    "copy_to_table",
    "copy_records_to_table",
    "add_listener",
)
_STATEMENT_METHODS = (
    "fetch",
    "fetchval",
    "fetchrow",
    "fetchmany",
    "executemany",
    "explain",
    "cursor",
)
_RECORD_KEY = "interlace.lock_watch"
_installed: list[bool] = []  # non-empty once asyncpg and the pools are hooked
# The watch of each loop a schedule runner (or monitor()) set up; weak keys: a closed,
# dropped loop takes its watch with it.
_WATCHES: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, LockWatch] = (
    weakref.WeakKeyDictionary()
)


class LockWatch:
    """The lock monitors of one loop, one per PostgreSQL server; its ``OutsideWaits``.

    ``automatic``: a server seen for the first time gets a monitor; otherwise
    only servers given to ``monitor_for`` (``interlace.db.postgres.monitor``) do.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, *, automatic: bool) -> None:
        self._loop = loop
        self.automatic = automatic
        # invariant: one monitor per server address, in the order the servers were seen
        # (the order release_granted and break_cycle ask them in)
        self._monitors: dict[object, LockMonitor] = {}
        self._of_connection: weakref.WeakKeyDictionary[asyncpg.Connection, LockMonitor] = (
            weakref.WeakKeyDictionary()
        )
        self._name_of: Callable[[asyncio.Task[Any]], str] = asyncio.Task.get_name
        self._order_of: Callable[[asyncio.Task[Any]], int] = lambda _task: 0
        self._in_schedule = False
        self._yielded = False  # another explainer rules the loop: watch nothing

    @property
    def monitors(self) -> list[LockMonitor]:
        """The monitors, in the order their servers were first seen."""
        return list(self._monitors.values())

    # ---- attaching -------------------------------------------------------------

    def attach(self, *, required: bool = False) -> None:
        """Become the loop's explainer, unless another one is attached already.

        ``required``: raise ``UsageError`` (from ``attach_outside_waits``) instead.
        """
        current = outside_waits_of(self._loop)
        if current is self:
            return
        if current is not None and not required:
            self._yielded = True
            return
        attach_outside_waits(self._loop, self)
        self._yielded = False

    def detach(self) -> None:
        detach_outside_waits(self._loop, self)

    # ---- connections -------------------------------------------------------------

    def used(self, connection: asyncpg.Connection) -> tuple[LockMonitor, int] | None:
        """``connection`` is used now (a query, a checkout): map it to the running task.

        Returns the monitor and backend pid when a simulated task was mapped.
        """
        if self._yielded or connection in MONITOR_CONNECTIONS:
            return None
        monitor = self._of_connection.get(connection)
        if monitor is None:
            monitor = self._monitor_of(connection)
            if monitor is None:
                return None
        director = getattr(self._loop, "director", None)
        if director is None or not director.in_simulated_task():
            return None
        task = asyncio.current_task(self._loop)
        if task is None:
            return None
        pid = int(connection.get_server_pid())
        monitor.track(task, pid)
        return monitor, pid

    def _monitor_of(self, connection: asyncpg.Connection) -> LockMonitor | None:
        address = getattr(connection, "_addr", None)
        if address is None:
            return None
        monitor = self._monitors.get(address)
        if monitor is None:
            if not self.automatic:
                return None  # not cached: monitor() may name this server later
            monitor = LockMonitor(connect_args_of(connection))
            self._add(address, monitor)
            monitor.start_soon(self._loop)
        self._of_connection[connection] = monitor
        return monitor

    def _add(self, address: object, monitor: LockMonitor) -> None:
        self._monitors[address] = monitor
        if self._in_schedule:
            monitor.begin(self._name_of, self._order_of)

    async def monitor_for(self, connect_args: dict[str, Any], freeze: bool | None) -> LockMonitor:
        """The started monitor of the server of ``connect_args``, with ``freeze`` applied."""
        candidate = LockMonitor(connect_args)
        await candidate.start()
        existing = self._monitors.get(candidate.address)
        if existing is not None:
            await existing.start(raise_errors=False)
            if existing.started:
                await candidate.close()
                existing.require_freezing(freeze)
                return existing
            await existing.close()  # it could not start; the one given here did
        self._add(candidate.address, candidate)
        for connection, monitor in list(self._of_connection.items()):
            if monitor is existing:
                self._of_connection[connection] = candidate
        candidate.require_freezing(freeze)
        return candidate

    async def ready(self) -> None:
        """Wait until every monitor has connected (or failed to); between schedules."""
        for monitor in self.monitors:
            await monitor.start(raise_errors=False)

    async def close(self) -> None:
        """Close every monitor's connection; frozen backends are resumed first."""
        for monitor in self.monitors:
            await monitor.close()
        self._monitors.clear()

    # ---- OutsideWaits: every question goes to the monitors ---------------------------

    @property
    def best_effort(self) -> str | None:
        reasons = dict.fromkeys(m.best_effort for m in self._monitors.values() if m.best_effort)
        return "; ".join(reasons) if reasons else None

    def begin(
        self,
        name_of: Callable[[asyncio.Task[Any]], str],
        order_of: Callable[[asyncio.Task[Any]], int],
    ) -> None:
        self._name_of, self._order_of = name_of, order_of
        self._in_schedule = True
        for monitor in self.monitors:
            monitor.begin(name_of, order_of)

    def explain(self, task: asyncio.Task[Any], wait: Wait) -> Wait:
        for monitor in self.monitors:
            explained = monitor.explain(task, wait)
            if explained is not wait:
                return explained
        return wait

    async def examine(
        self,
        waiting: Sequence[asyncio.Task[Any]],
        settled: Collection[asyncio.Task[Any]],
        still_waiting: Callable[[asyncio.Task[Any]], bool],
    ) -> None:
        for monitor in self.monitors:
            await monitor.examine(waiting, settled, still_waiting)

    def after_decision(self, task: asyncio.Task[Any]) -> None:
        for monitor in self.monitors:
            monitor.after_decision(task)

    async def release_granted(self) -> bool:
        for monitor in self.monitors:
            if await monitor.release_granted():
                return True
        return False

    async def break_cycle(self) -> bool:
        for monitor in self.monitors:
            if await monitor.break_cycle():
                return True
        return False

    def end(self) -> None:
        self._in_schedule = False
        for monitor in self.monitors:
            monitor.end()


def watch_of(loop: asyncio.AbstractEventLoop) -> LockWatch | None:
    """The lock watch set up on ``loop``, if any."""
    return _WATCHES.get(loop)


@contextlib.asynccontextmanager
async def watching(
    loop: ControlledLoop, *, enabled: bool = True
) -> AsyncIterator[LockWatch | None]:
    """Watch every PostgreSQL connection used on ``loop`` while the block runs.

    The schedule runner enters it before the scenario's resource and calls
    ``attach()`` once the resource is entered. ``enabled=False`` sets up no
    watch (only ``interlace.db.postgres.monitor`` then watches lock waits).
    """
    install()
    if not enabled or loop in _WATCHES:
        yield None
        return
    watch = LockWatch(loop, automatic=True)
    _WATCHES[loop] = watch
    try:
        yield watch
    finally:
        watch.detach()
        if _WATCHES.get(loop) is watch:
            del _WATCHES[loop]
        watch.end()
        await watch.close()


@contextlib.asynccontextmanager
async def watching_explicitly(loop: ControlledLoop) -> AsyncIterator[LockWatch]:
    """The loop's watch, attached; made (watching only named servers) when there is none."""
    install()
    watch = _WATCHES.get(loop)
    if watch is not None:
        watch.attach(required=True)
        yield watch
        return
    watch = LockWatch(loop, automatic=False)
    watch.attach(required=True)
    _WATCHES[loop] = watch
    try:
        yield watch
    finally:
        watch.detach()
        if _WATCHES.get(loop) is watch:
            del _WATCHES[loop]
        watch.end()
        await watch.close()


# ---- the hooks ------------------------------------------------------------------------


def install() -> None:
    """Hook asyncpg's query methods and SQLAlchemy's pools, once per process (idempotent)."""
    if _installed:
        return
    connection_class: Any = asyncpg.connection.Connection
    for name in _CONNECTION_METHODS:
        _wrap(connection_class, name, _itself)
    for name in _STATEMENT_METHODS:
        _wrap(PreparedStatement, name, _statement_connection)
    event.listen(Pool, "checkout", _on_checkout)
    event.listen(Pool, "checkin", _on_checkin)
    _installed.append(True)


def _itself(connection: Any) -> Any:
    return connection


def _statement_connection(statement: Any) -> Any:
    return statement._connection


def _wrap(cls: Any, name: str, connection_of: Callable[[Any], Any]) -> None:
    original = cls.__dict__.get(name)
    if original is None:
        return  # not in this asyncpg version

    @functools.wraps(original)
    def noting(self: Any, *args: Any, **kwargs: Any) -> Any:
        _note(connection_of(self))
        return original(self, *args, **kwargs)

    if inspect.iscoroutinefunction(original):
        mark = getattr(inspect, "markcoroutinefunction", None)  # 3.12+
        if mark is not None:
            noting = mark(noting)
    setattr(cls, name, noting)


def _note(connection: Any) -> None:
    """A method of ``connection`` is called: tell the running loop's watch."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return
    watch = _WATCHES.get(loop) if isinstance(loop, ControlledLoop) else None
    if watch is not None and isinstance(connection, asyncpg.Connection):
        watch.used(connection)


def _on_checkout(
    dbapi_connection: Any, record: ConnectionPoolEntry, proxy: PoolProxiedConnection
) -> None:
    driver = getattr(dbapi_connection, "driver_connection", None)
    if not isinstance(driver, asyncpg.Connection):
        return
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return
    watch = _WATCHES.get(loop)
    mapped = watch.used(driver) if watch is not None else None
    if mapped is not None:
        record.info[_RECORD_KEY] = mapped


def _on_checkin(dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
    mapped = record.info.pop(_RECORD_KEY, None)
    if mapped is not None:
        monitor, pid = mapped
        monitor.untrack(pid)
