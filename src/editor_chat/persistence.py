"""How the chat handler writes the thread: the fixed (PR-0009) persistence.

Every write is one short unit of work: get or create the session row, read
the thread, edit it, update with the expected `state_rev`. The fixed
persistence retries that on a `StateConflict`, re-applying the edit to the
latest thread (the merge), and places each reply after the user message it
answers. The pre-fix persistence in `editor_chat.legacy` shares the unit of
work and differs only in those two choices.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from editor_chat.errors import RetriesExhausted, StateConflict
from editor_chat.messages import append_once, insert_reply, read_thread, with_thread

if TYPE_CHECKING:
    from editor_chat.messages import ChatMessage, JsonObject
    from editor_chat.repository import ToolSessionKey, ToolSessionSnapshot
    from editor_chat.unit_of_work import UnitOfWork

UnitOfWorkFactory = Callable[[], "UnitOfWork"]
ThreadEdit = Callable[[list["JsonObject"]], list["JsonObject"]]

DEFAULT_MAX_ATTEMPTS = 5


class ThreadPersistence(Protocol):
    """Writes a request's two messages; each call is its own transaction(s)."""

    async def save_user_message(
        self, key: ToolSessionKey, message: ChatMessage
    ) -> ToolSessionSnapshot:
        """Store the user's message; return the session as written."""
        ...

    async def save_reply(self, key: ToolSessionKey, reply: ChatMessage) -> ToolSessionSnapshot:
        """Store the assistant's reply; return the session as written."""
        ...


async def edit_thread_once(
    new_unit_of_work: UnitOfWorkFactory, key: ToolSessionKey, edit: ThreadEdit
) -> ToolSessionSnapshot:
    """Read the thread, apply `edit`, write it back if nobody wrote in between.

    Raises `StateConflict` (and rolls back) if the row moved on meanwhile.
    """
    async with new_unit_of_work() as uow:
        current = await uow.sessions.get_or_create(key)
        edited = edit(read_thread(current.state))
        return await uow.sessions.update_state(
            key, with_thread(current.state, edited), expected_state_rev=current.state_rev
        )


class CorrelatedPersistence:
    """The fixed persistence: conflict retry with merge, replies placed by `in_reply_to`.

    At most `max_attempts` units of work per message, then `RetriesExhausted`.
    """

    def __init__(
        self, new_unit_of_work: UnitOfWorkFactory, *, max_attempts: int = DEFAULT_MAX_ATTEMPTS
    ) -> None:
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {max_attempts}")
        self._new_unit_of_work = new_unit_of_work
        self._max_attempts = max_attempts

    async def save_user_message(
        self, key: ToolSessionKey, message: ChatMessage
    ) -> ToolSessionSnapshot:
        return await self._edit_with_retry(key, lambda thread: append_once(thread, message))

    async def save_reply(self, key: ToolSessionKey, reply: ChatMessage) -> ToolSessionSnapshot:
        return await self._edit_with_retry(key, lambda thread: insert_reply(thread, reply))

    async def _edit_with_retry(self, key: ToolSessionKey, edit: ThreadEdit) -> ToolSessionSnapshot:
        # Each attempt re-reads the latest thread and re-applies the edit to it,
        # so messages others committed meanwhile are kept and ours lands once.
        last_conflict: StateConflict | None = None
        for _attempt in range(self._max_attempts):
            try:
                return await edit_thread_once(self._new_unit_of_work, key, edit)
            except StateConflict as conflict:
                last_conflict = conflict
        assert last_conflict is not None  # max_attempts >= 1
        raise RetriesExhausted(attempts=self._max_attempts, last_conflict=last_conflict)
