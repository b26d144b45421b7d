"""Chat messages and the thread they form inside `tool_sessions.state`.

A thread is `state["messages"]`, a list of JSON objects:

    {"role": "user" | "assistant", "content": str,
     "message_id": "<uuid>", "in_reply_to": "<uuid>" | null}

plus `"orphaned": true` on an assistant message whose user message was gone
when it was saved. UUIDs are stored as strings so the state stays plain JSON.

The thread functions work on the raw JSON objects and return new lists: a
merge must keep every message already stored, including ones this code did
not write and cannot parse (older rows without ids).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Literal
from uuid import UUID

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

EDITOR_CHAT_CONTEXT = "editor_chat"
"""The `tool_sessions.context` of the editor chat's rows."""

JsonObject = dict[str, Any]
Role = Literal["user", "assistant"]
ROLES: tuple[Role, ...] = ("user", "assistant")


@dataclass(frozen=True)
class ChatMessage:
    """One message of a chat thread."""

    role: Role
    content: str
    message_id: UUID
    in_reply_to: UUID | None = None
    # invariant: only an assistant message can be orphaned.
    orphaned: bool = False

    def to_json(self) -> JsonObject:
        """The JSON object stored in `state["messages"]`."""
        stored: JsonObject = {
            "role": self.role,
            "content": self.content,
            "message_id": str(self.message_id),
            "in_reply_to": None if self.in_reply_to is None else str(self.in_reply_to),
        }
        if self.orphaned:
            stored["orphaned"] = True
        return stored

    @classmethod
    def from_json(cls, stored: Mapping[str, Any]) -> ChatMessage:
        """Parse a stored message; raises ValueError naming the field that is wrong."""
        role = stored.get("role")
        if role not in ROLES:
            raise ValueError(f"chat message role must be 'user' or 'assistant', got {role!r}")
        content = stored.get("content")
        if not isinstance(content, str):
            raise ValueError(f"chat message content must be a string, got {content!r}")
        in_reply_to = stored.get("in_reply_to")
        return cls(
            role="user" if role == "user" else "assistant",
            content=content,
            message_id=_parse_uuid("message_id", stored.get("message_id")),
            in_reply_to=None if in_reply_to is None else _parse_uuid("in_reply_to", in_reply_to),
            orphaned=stored.get("orphaned") is True,
        )


def read_thread(state: Mapping[str, Any]) -> list[JsonObject]:
    """The stored messages of a session state, oldest first (a new list)."""
    messages = state.get("messages", [])
    if not isinstance(messages, list):
        raise ValueError(f"state['messages'] must be a list, got {type(messages).__name__}")
    return list(messages)


def with_thread(state: Mapping[str, Any], messages: Sequence[JsonObject]) -> JsonObject:
    """A copy of `state` whose thread is `messages`; other keys are kept."""
    return {**state, "messages": list(messages)}


def append_once(messages: Sequence[JsonObject], message: ChatMessage) -> list[JsonObject]:
    """Keep every stored message and append `message` unless its id is already there.

    This is the merge of the conflict retry: applied to the latest thread, it
    keeps what others wrote meanwhile and never stores our message twice.
    """
    if find_message(messages, message.message_id) is not None:
        return list(messages)
    return [*messages, message.to_json()]


def insert_reply(messages: Sequence[JsonObject], reply: ChatMessage) -> list[JsonObject]:
    """Insert an assistant reply directly after the user message it answers.

    The reply is not necessarily last: other user messages may have arrived
    while it streamed. If the user message is gone, the reply is appended and
    marked orphaned rather than dropped. A reply already stored is not added
    again.
    """
    if find_message(messages, reply.message_id) is not None:
        return list(messages)
    question = _index_of_user_message(messages, reply.in_reply_to)
    if question is None:
        return [*messages, replace(reply, orphaned=True).to_json()]
    return [*messages[: question + 1], reply.to_json(), *messages[question + 1 :]]


def find_message(messages: Sequence[JsonObject], message_id: UUID) -> JsonObject | None:
    """The stored message with `message_id`, or None."""
    wanted = str(message_id)
    for stored in messages:
        if stored.get("message_id") == wanted:
            return stored
    return None


def _index_of_user_message(messages: Sequence[JsonObject], message_id: UUID | None) -> int | None:
    if message_id is None:
        return None
    wanted = str(message_id)
    for index, stored in enumerate(messages):
        if stored.get("role") == "user" and stored.get("message_id") == wanted:
            return index
    return None


def _parse_uuid(field: str, value: object) -> UUID:
    if not isinstance(value, str):
        raise ValueError(f"chat message {field} must be a UUID string, got {value!r}")
    try:
        return UUID(value)
    except ValueError:
        raise ValueError(f"chat message {field} must be a UUID string, got {value!r}") from None
