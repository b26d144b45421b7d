"""The pre-fix persistence that PR-0009 replaced, kept to reproduce its races.

Before the change the handler wrote each message with a single attempt (a
`state_rev` conflict failed the request and the message was lost) and wrote
the assistant reply as the last message of the thread, so under concurrent
requests a reply could land after someone else's question.

Select it with `ChatService(..., variant="pre_fix")`. Everything else is
shared with the fixed handler. One difference from the historical code: the
messages still carry `message_id` and `in_reply_to`, which this persistence
ignores when it writes; they are there so a simulation can see which
question each reply landed after.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from editor_chat.persistence import edit_thread_once

if TYPE_CHECKING:
    from collections.abc import Sequence

    from editor_chat.messages import ChatMessage, JsonObject
    from editor_chat.persistence import UnitOfWorkFactory
    from editor_chat.repository import ToolSessionKey, ToolSessionSnapshot


class PreFixPersistence:
    """One attempt per message (a conflict propagates), replies appended last."""

    def __init__(self, new_unit_of_work: UnitOfWorkFactory) -> None:
        self._new_unit_of_work = new_unit_of_work

    async def save_user_message(
        self, key: ToolSessionKey, message: ChatMessage
    ) -> ToolSessionSnapshot:
        return await edit_thread_once(
            self._new_unit_of_work, key, lambda thread: append_last(thread, message)
        )

    async def save_reply(self, key: ToolSessionKey, reply: ChatMessage) -> ToolSessionSnapshot:
        return await edit_thread_once(
            self._new_unit_of_work, key, lambda thread: append_last(thread, reply)
        )


def append_last(messages: Sequence[JsonObject], message: ChatMessage) -> list[JsonObject]:
    """The pre-fix placement: whatever the thread holds now, the message goes last."""
    return [*messages, message.to_json()]
