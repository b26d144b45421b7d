"""A request cancelled mid-stream (the client went away) while another request runs."""

from __future__ import annotations

import interlace
from simulations.editor_chat.invariants import CHAT_INVARIANTS, cancelled_while_streaming
from simulations.editor_chat.world import (
    FOLLOW_UP,
    QUESTION,
    SCRIPT,
    TEACHER,
    ChatWorld,
    chat_world,
    reset_world,
)


@interlace.simulation(
    world=chat_world("fixed"),
    reset=reset_world,
    invariants=(*CHAT_INVARIANTS, cancelled_while_streaming),
    databases=("sqlite", "postgres"),
)
async def cancelled_mid_stream(world: ChatWorld) -> None:
    """The first request is cancelled after its first delta; a second one, elsewhere, runs on.

    The cancellation comes from a separate task (the client disconnecting), so
    the scheduler decides where it lands: while the reply streams, or as late
    as the reply's own unit of work.
    """
    first, second = world.handler("web-1"), world.handler("web-2")
    await world.run(
        first.send(TEACHER, SCRIPT, QUESTION, disconnect_after_deltas=1),
        second.send(TEACHER, SCRIPT, FOLLOW_UP),
    )
