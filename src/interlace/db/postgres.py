"""PostgreSQL lock waits under the scheduler: nothing to do, or one keyword to opt out.

interlace watches every asyncpg connection a simulated task uses, through
SQLAlchemy or raw asyncpg, wherever it was made (the scenario's resource, its
body, a marked test), with a lock monitor per server that it attaches itself
(``interlace.db.lock_watch``, ``interlace.db.lock_monitor``). A task whose
statement waits on a lock held by a parked task is parked as blocked, never
waited for, never a false deadlock or a "stuck outside I/O" report; when the
server runs on this host, blocked backends are frozen and resumed one at a
time, so waiters released by one COMMIT cannot race, and a lock cycle makes
the same task the 40P01 victim on every replay.

``Config(lock_monitor=False)`` (``explore(..., lock_monitor=False)``,
``@pytest.mark.interlace(lock_monitor=False)``) turns that off: lock waits
then look like outside I/O, and a schedule in which one waits on a parked
task is reported as stuck, unless the resource enters ``monitor`` below.

``monitor(engine)`` is still accepted, for what it adds: a ``freeze`` choice,
and the ``LockMonitor`` object (its ``stats``, ``freezer``, ``best_effort``)::

    @asynccontextmanager
    async def database() -> AsyncIterator[AsyncEngine]:
        engine = create_async_engine(url, pool_size=4)
        await interlace.warm_pool(engine, 4)
        async with interlace.db.postgres.monitor(engine, freeze=True) as lock_monitor:
            yield engine
        await engine.dispose()
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from sqlalchemy.ext.asyncio import AsyncEngine

from interlace._core import ControlledLoop, UsageError
from interlace.db.lock_monitor import (
    DeterminismWarning,
    LockMonitor,
    LockWait,
    MonitorStats,
    connect_args_for,
)
from interlace.db.lock_watch import watching_explicitly


@contextlib.asynccontextmanager
async def monitor(
    target: AsyncEngine | str, *, freeze: bool | None = None
) -> AsyncIterator[LockMonitor]:
    """The lock monitor of the server of ``target``, on this ``ControlledLoop``.

    ``target`` is the scenario's engine (``postgresql+asyncpg://``) or a URL of
    the same server. Enter it in the scenario's resource. Under a schedule
    runner (``explore``, ``replay``, the pytest plugin) it is the monitor
    interlace attached itself (the same object for every call on one server);
    with ``lock_monitor=False``, or on a loop no runner set up, it is made here
    and watches that server until the block ends.

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
    connect_args = connect_args_for(target)
    async with watching_explicitly(loop) as watch:
        yield await watch.monitor_for(connect_args, freeze)


__all__ = ["DeterminismWarning", "LockMonitor", "LockWait", "MonitorStats", "monitor"]
