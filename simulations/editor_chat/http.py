"""The editor chat over HTTP: real requests to the ASGI app through httpx, SSE read and parsed."""

from __future__ import annotations

import interlace
from simulations.editor_chat.invariants import (
    CHAT_INVARIANTS,
    guard_turned_one_away,
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


async def _two_tabs_and_another_process(world: ChatWorld) -> None:
    first, second = world.web_process("web-1"), world.web_process("web-2")
    await world.run(
        first.post(TEACHER, SCRIPT, QUESTION),
        first.post(TEACHER, SCRIPT, QUESTION),
        second.post(TEACHER, SCRIPT, QUESTION),
    )


@interlace.simulation(
    world=chat_world("fixed"),
    reset=reset_world,
    invariants=(*CHAT_INVARIANTS, guard_turned_one_away),
    databases=DATABASES,
)
async def identical_over_http(world: ChatWorld) -> None:
    """The same question from two tabs (one process, 409 expected) and a second process."""
    await _two_tabs_and_another_process(world)


@interlace.simulation(
    world=chat_world("pre_fix"),
    reset=reset_world,
    invariants=CHAT_INVARIANTS,
    databases=DATABASES,
    expect_violation=True,
)
async def identical_over_http_pre_fix(world: ChatWorld) -> None:
    """Canary: the same requests against the handler before PR-0009."""
    await _two_tabs_and_another_process(world)
