"""Domain errors of the editor chat.

Errors a user can see (a busy chat, an invalid message) carry Swedish text,
because the web layer shows them as they are. Errors meant for developers and
logs (conflicts, exhausted retries) are in English and say what to do.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from uuid import UUID

# The card fixes this text; clients may match on it.
CHAT_BUSY_MESSAGE = "En chatförfrågan pågår redan. Försök igen om en stund."


class EditorChatError(Exception):
    """Base class of every error the editor chat raises on purpose."""


class ChatBusy(EditorChatError):
    """A chat request for the same (user, tool) is already streaming in this process.

    The web layer answers HTTP 409 with `CHAT_BUSY_MESSAGE`.
    """

    def __init__(self, user_id: UUID, tool_id: UUID) -> None:
        super().__init__(CHAT_BUSY_MESSAGE)
        self.user_id = user_id
        self.tool_id = tool_id


class InvalidChatRequest(EditorChatError):
    """The request cannot be accepted as sent; the message (Swedish) says why.

    Nothing has been written when this is raised. The web layer answers 422.
    """


class SessionNotFound(EditorChatError):
    """No tool session row exists for the key an update was aimed at."""


class StateConflict(EditorChatError):
    """An update expected `state_rev == expected_rev` but the row is at `current_rev`.

    Someone else committed a change between our read and our update. Re-read
    the session, re-apply the change to the latest state and update again.
    """

    def __init__(self, expected_rev: int, current_rev: int) -> None:
        super().__init__(
            f"tool session changed concurrently: expected state_rev {expected_rev}, "
            f"found {current_rev}; re-read the session and apply the change again"
        )
        self.expected_rev = expected_rev
        self.current_rev = current_rev


class RetriesExhausted(EditorChatError):
    """Every attempt to persist a chat message met a `StateConflict`.

    The thread kept changing under us; the client should try again later.
    """

    def __init__(self, attempts: int, last_conflict: StateConflict) -> None:
        super().__init__(
            f"gave up persisting the chat message after {attempts} attempts because the "
            f"thread kept changing (last conflict: expected state_rev "
            f"{last_conflict.expected_rev}, found {last_conflict.current_rev}); "
            f"try the request again later"
        )
        self.attempts = attempts
        self.last_conflict = last_conflict
