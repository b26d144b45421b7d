"""``interlace.point`` and ``interlace.always``: hooks that app and scenario code call."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from interlace._core import ControlledLoop, Controller


async def point(label: str) -> None:
    """Let the scheduler switch to another task here; a no-op outside a simulation.

    Use it where the application does something the scheduler cannot see,
    between two steps that another request could come between::

        balance = cache[user]
        await interlace.point("read balance")
        cache[user] = balance - amount

    Outside a simulation (production, plain tests) it returns at once, without
    even yielding to the event loop.
    """
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return
    if isinstance(loop, ControlledLoop) and loop.director is not None:
        await loop.director.point(label)


def always(check: Callable[[], object]) -> None:
    """Check ``check()`` before every decision of the current schedule.

    Call it from the scenario, before starting its tasks; ``check`` must be
    synchronous and cheap (it reads in-memory state, it does no I/O) and
    raise (e.g. ``AssertionError``) when the invariant is violated; the
    schedule then fails at that step. Outside a simulation it does nothing.
    """
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return
    if isinstance(loop, ControlledLoop) and loop.director is not None:
        loop.director.add_check(check)


def mark(phase: str) -> None:
    """Record that ``phase`` of the schedule begins at the next decision (reports only).

    The engine marks ``"invariants"`` in the root task once the body has
    returned, so reports can fold away the final invariant checks' own reads.
    """
    director = _director()
    if director is not None:
        director.mark(phase)


def _director() -> Controller | None:
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return None
    if isinstance(loop, ControlledLoop):
        return loop.director
    return None
