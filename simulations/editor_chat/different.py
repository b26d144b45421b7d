"""Different user messages at once: two chats of one teacher's script, and another teacher's."""

from __future__ import annotations

import interlace
from simulations.editor_chat.invariants import (
    CHAT_INVARIANTS,
    conflict_retried,
    reply_saved_after_a_later_question,
)
from simulations.editor_chat.world import (
    FOLLOW_UP,
    OTHER_TEACHER,
    QUESTION,
    SCRIPT,
    TEACHER,
    ChatWorld,
    chat_world,
    reset_world,
)


@interlace.simulation(
    world=chat_world("fixed", history=1),
    reset=reset_world,
    invariants=(*CHAT_INVARIANTS, reply_saved_after_a_later_question, conflict_retried),
    databases=("sqlite", "postgres"),
)
async def different_messages(world: ChatWorld) -> None:
    """Two different questions for one chat from two processes, and another teacher's chat.

    The teacher's chat already holds an exchange, so both questions update an
    existing row (on PostgreSQL they conflict and retry). The other teacher's
    request shares process web-1 with one of the first teacher's: the guard is
    per (user, tool), so it must never answer 409.
    """
    first, second = world.handler("web-1"), world.handler("web-2")
    await world.run(
        first.send(TEACHER, SCRIPT, QUESTION),
        second.send(TEACHER, SCRIPT, FOLLOW_UP),
        first.send(OTHER_TEACHER, SCRIPT, QUESTION),
    )
