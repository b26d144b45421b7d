"""The card's case: identical user messages for the same (user, tool) at once."""

from __future__ import annotations

import interlace
from interlace.testing import canary
from simulations.editor_chat.invariants import (
    CHAT_INVARIANTS,
    conflict_retried,
    guard_turned_one_away,
    reply_saved_after_a_later_question,
    user_messages_persisted_once,
)
from simulations.editor_chat.world import (
    QUESTION,
    SCRIPT,
    TEACHER,
    ChatWorld,
    chat_world,
    reset_world,
)

DATABASES = ("sqlite", "postgres")


async def _from_two_processes(world: ChatWorld) -> None:
    first, second = world.handler("web-1"), world.handler("web-2")
    await world.run(
        first.send(TEACHER, SCRIPT, QUESTION),
        second.send(TEACHER, SCRIPT, QUESTION),
    )


# two_processes_pre_fix, the canary: the handler before PR-0009 misplaces a reply
@canary(world=chat_world("pre_fix"))
@interlace.simulation(
    world=chat_world("fixed"),
    reset=reset_world,
    invariants=(*CHAT_INVARIANTS, reply_saved_after_a_later_question, conflict_retried),
    databases=DATABASES,
)
async def two_processes(world: ChatWorld) -> None:
    """The same question twice at once from two processes: each guard lets its request in."""
    await _from_two_processes(world)


@interlace.simulation(
    world=chat_world("fixed"),
    reset=reset_world,
    invariants=(*CHAT_INVARIANTS, guard_turned_one_away),
    databases=DATABASES,
)
async def one_process(world: ChatWorld) -> None:
    """The same question twice at once in one process: the shared guard answers one with 409."""
    web = world.handler("web-1")
    await world.run(
        web.send(TEACHER, SCRIPT, QUESTION),
        web.send(TEACHER, SCRIPT, QUESTION),
    )


@interlace.simulation(
    world=chat_world("pre_fix", history=1),
    reset=reset_world,
    invariants=(user_messages_persisted_once,),
    databases=("postgres",),
    expect_violation=(user_messages_persisted_once,),
)
async def two_processes_pre_fix_lost_message(world: ChatWorld) -> None:
    """Canary: before PR-0009 a state_rev conflict lost one of the two messages.

    The teacher's chat already holds an exchange: when both requests create
    the row instead, the second INSERT waits for the first to commit and
    reads its message. Only PostgreSQL can show it: on SQLite, get-or-create's
    INSERT takes the write lock first, so the second writer waits instead of
    conflicting. The misplaced reply, which the other canary finds first, is
    not checked here.
    """
    await _from_two_processes(world)
