"""The editor chat over HTTP: real requests to the ASGI app through httpx, SSE read and parsed."""

from __future__ import annotations

import interlace
from interlace.testing import canary
from simulations.editor_chat.invariants import CHAT_INVARIANTS, guard_turned_one_away
from simulations.editor_chat.world import (
    QUESTION,
    SCRIPT,
    TEACHER,
    ChatWorld,
    chat_world,
    reset_world,
)


# identical_over_http_pre_fix, the canary: the same requests against the handler before PR-0009
@canary(world=chat_world("pre_fix"))
@interlace.simulation(
    world=chat_world("fixed"),
    reset=reset_world,
    invariants=(*CHAT_INVARIANTS, guard_turned_one_away),
    databases=("sqlite", "postgres"),
)
async def identical_over_http(world: ChatWorld) -> None:
    """The same question from two tabs (one process, 409 expected) and a second process."""
    first, second = world.web("web-1"), world.web("web-2")
    await world.run(
        first.post(TEACHER, SCRIPT, QUESTION),
        first.post(TEACHER, SCRIPT, QUESTION),
        second.post(TEACHER, SCRIPT, QUESTION),
    )
