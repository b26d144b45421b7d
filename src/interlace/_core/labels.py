"""Decision labels: whether a task's step is a decision point, and what to call it.

A label is what a strategy and a trace see of a parked step: ``start
withdraw``, ``SELECT accounts``, ``after Lock.acquire in transfer``. Which
steps are decision points:

- a task's first step ("start ...");
- a bare yield to the loop (``await asyncio.sleep(0)``) or ``interlace.point``;
- a wake-up caused by another simulated task (releasing a Lock, setting an
  Event, finishing), by a virtual timer, or by cancellation;
- a wake-up after outside I/O, unless the task is inside a SQLAlchemy async
  operation (a SQLAlchemy frame is in its await chain): SQLAlchemy's statements, COMMIT and
  ROLLBACK are decision points of their own (``interlace.db.sqlalchemy``), and
  the driver round-trips within them are atomic; nor while raw asyncpg prepares a
  statement (only its first use on a connection does), which belongs to the
  statement's round-trip.

Labels are part of a token's check byte, so they name code (functions, asyncio
waits, task names), never addresses, times or counters.
"""

from __future__ import annotations

import asyncio
from types import FrameType
from typing import Any

from interlace._core.tasks import TaskRegistry
from interlace._core.waits import Wait, app_location, await_frames, innermost_asyncio, module_of


def start_label(task: asyncio.Task[Any]) -> str:
    """The label of a task's first step."""
    return f"start {coroutine_name(task)}"


def decision_label(
    task: asyncio.Task[Any],
    args: tuple[Any, ...],
    *,
    current: asyncio.Task[Any] | None,
    registry: TaskRegistry,
    last_wait: Wait | None,
    waking: str | None,
) -> str | None:
    """The label if this step is a decision point, None if it is an atomic continuation.

    ``args`` are the step's arguments (the future that woke the task, if any),
    ``current`` is the task running while the step is queued (None between steps),
    ``last_wait`` is the last wait the director saw the task in, and ``waking``
    says why the director itself is waking tasks (a timer, a cancellation), if it is.
    """
    awaited = args[0] if args else None
    if isinstance(awaited, asyncio.Task) and awaited in registry:
        return f"joined {registry.names[awaited]}"
    if last_wait is not None and last_wait.kind == "join":
        return f"joined {last_wait.what}"
    frames = await_frames(task)
    internal = current is task or (current is not None and current in registry)
    from_outside = not internal and waking is None
    after_io = from_outside and not (last_wait and last_wait.settled)
    if after_io and (_in_sqlalchemy_operation(frames) or _preparing_statement(frames)):
        return None  # the atomic continuation of a statement already chosen
    where = _function_of(task, frames)
    if current is task:
        return f"yield in {where}"
    if internal:
        return f"after {_asyncio_wait(frames)} in {where}"
    if waking is not None:
        return f"{waking} in {where}"
    if last_wait is not None and last_wait.settled:
        return f"after {last_wait.what} in {where}"
    return f"after I/O in {where}"


def coroutine_name(task: asyncio.Task[Any]) -> str:
    """The qualified name of the task's coroutine (its type's name for other awaitables)."""
    coro = task.get_coro()
    qualname = getattr(coro, "__qualname__", None)
    return qualname if isinstance(qualname, str) else type(coro).__name__


def _function_of(task: asyncio.Task[Any], frames: list[FrameType]) -> str:
    location = app_location(frames)
    return location.split(" (", 1)[0] if location else coroutine_name(task)


def _asyncio_wait(frames: list[FrameType]) -> str:
    inner = innermost_asyncio(frames)
    return inner[1] if inner is not None else "wake-up"


def _preparing_statement(frames: list[FrameType]) -> bool:
    # asyncpg prepares a statement (and introspects its types) the first time a
    # connection runs it, and not again while it is cached: those round-trips belong to
    # the statement's own, or a schedule's decisions would depend on what the schedules
    # before it left in the connection's statement cache, and tokens would not replay.
    return any(
        frame.f_code.co_name in _PREPARING and module_of(frame) == "asyncpg.connection"
        for frame in frames
    )


_PREPARING = frozenset({"_get_statement", "_introspect_types", "_introspect_type"})


def _in_sqlalchemy_operation(frames: list[FrameType]) -> bool:
    # Any SQLAlchemy frame in the await chain: its async layer is doing driver I/O on
    # the app's behalf (inside greenlet_spawn, or closing a cursor after a result).
    return any(module_of(frame).startswith("sqlalchemy.") for frame in frames)
