"""The LLM provider fails mid-stream while another request for the same chat runs."""

from __future__ import annotations

import interlace
from simulations.editor_chat.invariants import (
    CHAT_INVARIANTS,
    provider_error_during_other_request,
)
from simulations.editor_chat.world import (
    FOLLOW_UP,
    QUESTION,
    SCRIPT,
    TEACHER,
    ChatWorld,
    chat_world,
    reset_world,
    streaming_provider,
)


@interlace.simulation(
    world=chat_world("fixed"),
    reset=reset_world,
    invariants=(*CHAT_INVARIANTS, provider_error_during_other_request),
    databases=("sqlite", "postgres"),
)
async def provider_error_mid_stream(world: ChatWorld) -> None:
    """Process web-1's provider fails after one chunk (HTTP 502); web-2's answers in full.

    The failed request must end with done(reason="error"), keep its user
    message and save no reply; the other request must not notice.
    """
    failing = world.handler("web-1", streaming_provider(failure="error", fail_after_chunks=1))
    healthy = world.handler("web-2")
    await world.run(
        failing.send(TEACHER, SCRIPT, QUESTION),
        healthy.send(TEACHER, SCRIPT, FOLLOW_UP),
    )
