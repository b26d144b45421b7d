"""SQLite's lock waits, modelled in virtual time, for every aiosqlite connection.

SQLite has one writer at a time. A connection that finds the database locked
calls its busy handler, which sleeps and retries until the busy timeout (the
``timeout`` argument of ``sqlite3.connect`` and ``aiosqlite.connect``, 5 s
unless the application sets it) runs out, then raises "database is locked".
Inside a simulation that busy wait would run in aiosqlite's worker thread
while the lock holder is parked by the scheduler, and no decision is made
while I/O is in flight: the schedule would stall for the whole timeout, and
then fail. A parked reader is such a holder too: a raw aiosqlite cursor left
open after ``await db.execute("SELECT ...")`` keeps SQLite's SHARED lock, and
a writer's COMMIT waits for it.

So interlace takes the busy wait over. The first time a connection runs
anything on a ``ControlledLoop`` (in the same call to aiosqlite's thread, so
that no extra round-trip, no extra decision, exists in the first schedule
only), it reads the connection's busy timeout (``PRAGMA busy_timeout``),
remembers it as the application's, and sets SQLite's to 0. When an operation
then fails with "database is locked", interlace does what SQLite's default
busy handler does, with the same sleep schedule, but with ``asyncio.sleep``:
on the virtual clock in a simulated task. The writer's wait is a timer wait,
so the director goes on choosing among the other tasks (the reader that holds
the lock gets to run and release it); the writer retries when the clock
reaches its next attempt, and raises "database is locked" only once the
application's timeout has run out in virtual time. Correct code that waits
passes; code configured with no busy timeout gets the error at once, as in
production; no schedule ever waits out a real busy timeout.

This runs at aiosqlite's one funnel (``Connection._execute``), so it covers
raw aiosqlite and SQLAlchemy's aiosqlite dialect alike: statements, cursors'
fetches, and, on raw connections, COMMIT. A COMMIT through SQLAlchemy is not
retried (it raises as with a busy timeout of 0), as before this model moved
here: the reference simulations' known schedules depend on it (see
``commit_not_retried``). ``executescript`` is not retried (a retry would run
the statements before the busy one again); it fails as with a busy timeout of 0.
Retrying is SQLite's busy handler's rule for every busy lock, although SQLite
itself skips the handler (fails at once) when a connection that already
read in a transaction asks for the write lock; under interlace that wait
runs out on the virtual clock instead.

Outside a schedule (a scenario's resource or reset, ``warm_pool``) the same
waits run on the loop's real clock, so code that waits for the lock there
behaves as in production instead of failing at once. A connection taken over
stays modelled on whatever loop uses it later.
"""

from __future__ import annotations

import asyncio
import functools
import sqlite3
import weakref
from collections.abc import Callable
from typing import Any

import aiosqlite

from interlace._core import ControlledLoop

# sqlite3.connect's default busy timeout, in seconds
DEFAULT_BUSY_TIMEOUT = 5.0
# SQLite's default busy handler (sqliteDefaultBusyCallback): sleeps in ms per retry
_DELAYS_MS = (1, 2, 5, 10, 15, 20, 25, 25, 25, 50, 50, 100)
_TOTALS_MS = (0, 1, 3, 8, 18, 33, 53, 78, 103, 128, 178, 228)
# operations a retry would not repeat faithfully
_NOT_RETRIED = frozenset({"executescript", "close"})
_installed: list[bool] = []  # non-empty once aiosqlite is hooked


def busy_sleep(attempt: int, timeout_ms: float) -> float | None:
    """Seconds SQLite's busy handler sleeps before retry ``attempt``; None once it gives up."""
    if attempt < len(_DELAYS_MS):
        delay, prior = _DELAYS_MS[attempt], _TOTALS_MS[attempt]
    else:
        delay = _DELAYS_MS[-1]
        prior = _TOTALS_MS[-1] + delay * (attempt - (len(_DELAYS_MS) - 1))
    if prior + delay > timeout_ms:
        delay = int(timeout_ms - prior)
        if delay <= 0:
            return None
    return delay / 1000


class _BusyTimeout:
    """The application's busy timeout of one connection, once interlace has taken it over."""

    # invariant: written only in the connection's worker thread, before the job that
    # wrote it completes; read in the loop's thread only after awaiting such a job
    seconds: float | None = None


# connections whose COMMIT is not retried (see commit_not_retried)
_COMMIT_AT_ONCE: weakref.WeakSet[aiosqlite.Connection] = weakref.WeakSet()
# Weak keys: a connection that is dropped takes its state with it.
_TAKEN_OVER: weakref.WeakKeyDictionary[aiosqlite.Connection, _BusyTimeout] = (
    weakref.WeakKeyDictionary()
)


def install() -> None:
    """Hook aiosqlite's connections once per process (idempotent)."""
    if _installed:
        return
    original = aiosqlite.Connection._execute

    @functools.wraps(original)
    async def _execute(
        self: aiosqlite.Connection, fn: Callable[..., Any], *args: Any, **kwargs: Any
    ) -> Any:
        return await _run(self, original, fn, args, kwargs)

    aiosqlite.Connection._execute = _execute  # type: ignore[method-assign]
    _installed.append(True)


def commit_not_retried(connection: aiosqlite.Connection) -> None:
    """Let ``connection``'s COMMIT fail at once when the database is locked.

    SQLAlchemy's connections (``interlace.db.sqlalchemy`` marks them as its pool
    opens them): their COMMIT has always raised "database is locked" at once
    under interlace, and explorations recorded under that model keep their meaning.
    """
    _COMMIT_AT_ONCE.add(connection)


def app_busy_timeout(connection: aiosqlite.Connection) -> float | None:
    """The application's busy timeout of ``connection`` in seconds, once taken over."""
    state = _TAKEN_OVER.get(connection)
    return None if state is None else state.seconds


async def _run(
    connection: aiosqlite.Connection,
    original: Callable[..., Any],
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> Any:
    state = _TAKEN_OVER.get(connection)
    if state is None:
        if not _on_controlled_loop():
            return await original(connection, fn, *args, **kwargs)
        state = _TAKEN_OVER.setdefault(connection, _BusyTimeout())
    call = functools.partial(fn, *args, **kwargs)
    name = getattr(fn, "__name__", "")
    retried = name not in _NOT_RETRIED and not (name == "commit" and connection in _COMMIT_AT_ONCE)
    attempt = 0
    while True:
        job = (
            call
            if state.seconds is not None
            else functools.partial(_taking_over, state, connection, call)
        )
        try:
            return await original(connection, job)
        except sqlite3.OperationalError as error:
            if not retried or not str(error).startswith("database is locked"):
                raise
            pause = busy_sleep(attempt, (state.seconds or 0.0) * 1000)
            if pause is None:
                raise  # no busy timeout, or it ran out: as in production
            # virtual time in a simulated task (the holder may finish meanwhile), real
            # time elsewhere; either way the loop runs on while this operation waits
            await asyncio.sleep(pause)
            attempt += 1


def _taking_over(
    state: _BusyTimeout, connection: aiosqlite.Connection, call: Callable[[], Any]
) -> Any:
    """In the worker thread: note the app's busy timeout, set SQLite's to 0, then run ``call``."""
    if state.seconds is None:
        raw: sqlite3.Connection | None = connection._connection
        if raw is not None:
            (milliseconds,) = raw.execute("PRAGMA busy_timeout").fetchone()
            raw.execute("PRAGMA busy_timeout = 0")
            state.seconds = float(milliseconds) / 1000
    return call()


def _on_controlled_loop() -> bool:
    try:
        return isinstance(asyncio.get_running_loop(), ControlledLoop)
    except RuntimeError:
        return False
