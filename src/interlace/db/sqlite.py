"""SQLite's lock waits, modelled in virtual time.

SQLite has one writer at a time. A connection that finds the database locked
calls its busy handler, which sleeps and retries until the busy timeout (the
``timeout`` argument of ``sqlite3.connect``, 5 s unless the application sets
it) runs out, then raises "database is locked". Inside a simulation that
busy wait would run in aiosqlite's worker thread while the lock holder is
parked by the scheduler: the schedule would stall for the whole timeout.

So on a ``ControlledLoop`` interlace opens SQLite connections with a busy
timeout of 0 and remembers the application's. When a statement of a
simulated task then fails with "database is locked", interlace does what
SQLite's default busy handler does, with the same sleep schedule, but on the
virtual clock: the task sleeps (other tasks run, the holder can finish its
transaction) and retries, and raises "database is locked" only once the
application's timeout has run out in virtual time. Correct code that waits
for the lock passes; code configured with no busy timeout gets the error as
in production. Only statements are retried: a COMMIT that finds readers
holding the database raises, as with a busy timeout of 0.

Outside a schedule (a scenario's resource or reset, ``warm_pool``) the same
waits run on the loop's real clock, so code that waits for the lock there
behaves as in production instead of failing at once.
"""

from __future__ import annotations

import asyncio
import sqlite3
from typing import Any

from sqlalchemy.engine import Dialect, ExecutionContext
from sqlalchemy.pool import ConnectionPoolEntry
from sqlalchemy.util import await_only
from sqlalchemy.util.concurrency import in_greenlet

from interlace._core import ControlledLoop

# sqlite3.connect's default busy timeout, in seconds
DEFAULT_BUSY_TIMEOUT = 5.0
_INFO_KEY = "interlace.sqlite_busy_timeout"
# SQLite's default busy handler (sqliteDefaultBusyCallback): sleeps in ms per retry
_DELAYS_MS = (1, 2, 5, 10, 15, 20, 25, 25, 25, 50, 50, 100)
_TOTALS_MS = (0, 1, 3, 8, 18, 33, 53, 78, 103, 128, 178, 228)


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


def on_connect(
    dialect: Dialect, record: ConnectionPoolEntry, cargs: Any, cparams: dict[str, Any]
) -> None:
    """Open SQLite connections of a controlled loop without a busy wait; keep the app's timeout."""
    if dialect.name != "sqlite" or not _on_controlled_loop():
        return
    timeout = cparams.get("timeout", DEFAULT_BUSY_TIMEOUT)
    record.info[_INFO_KEY] = float(timeout)
    cparams["timeout"] = 0


def execute(cursor: Any, statement: str, parameters: Any, context: ExecutionContext) -> bool:
    """Run a statement, waiting out "database is locked" like SQLite's busy handler would."""
    return _run_waiting(lambda: cursor.execute(statement, parameters), context)


def execute_no_params(cursor: Any, statement: str, context: ExecutionContext) -> bool:
    return _run_waiting(lambda: cursor.execute(statement), context)


def execute_many(cursor: Any, statement: str, parameters: Any, context: ExecutionContext) -> bool:
    return _run_waiting(lambda: cursor.executemany(statement, parameters), context)


def _run_waiting(run: Any, context: ExecutionContext) -> bool:
    """True when handled here; False lets SQLAlchemy execute as usual."""
    timeout = _app_timeout(context)
    if timeout is None or timeout <= 0 or not in_greenlet():
        return False  # no busy timeout: "database is locked" at once, as in production
    attempt = 0
    while True:
        try:
            run()
        except sqlite3.OperationalError as error:
            if not str(error).startswith("database is locked"):
                raise
            pause = busy_sleep(attempt, timeout * 1000)
            if pause is None:
                raise
            # virtual time in a simulated task (the holder may finish meanwhile), real
            # time elsewhere; either way the loop runs on while this statement waits
            await_only(asyncio.sleep(pause))
            attempt += 1
            continue
        return True


def _app_timeout(context: ExecutionContext) -> float | None:
    if context.dialect.name != "sqlite":
        return None
    info = context.root_connection.info
    timeout = info.get(_INFO_KEY)
    return timeout if isinstance(timeout, float) else None


def _on_controlled_loop() -> bool:
    try:
        return isinstance(asyncio.get_running_loop(), ControlledLoop)
    except RuntimeError:
        return False
