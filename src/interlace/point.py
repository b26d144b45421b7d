"""``interlace.point``: a decision point the application marks itself."""

from __future__ import annotations

import asyncio

from interlace._core.loop import ControlledLoop


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
