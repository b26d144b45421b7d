"""The events one chat request streams back: `meta`, then `delta`..., then `done`.

Each event knows its SSE name and its JSON payload; the web layer only frames
them. A request that is cancelled mid-stream ends without a `done`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal

if TYPE_CHECKING:
    from uuid import UUID

DoneReason = Literal["stop", "error"]


@dataclass(frozen=True)
class MetaEvent:
    """The user message is saved; the reply with `assistant_message_id` starts streaming."""

    name: ClassVar[str] = "meta"
    message_id: UUID
    assistant_message_id: UUID

    def payload(self) -> dict[str, Any]:
        return {
            "message_id": str(self.message_id),
            "assistant_message_id": str(self.assistant_message_id),
        }


@dataclass(frozen=True)
class DeltaEvent:
    """The next piece of the assistant's reply."""

    name: ClassVar[str] = "delta"
    text: str

    def payload(self) -> dict[str, Any]:
        return {"text": self.text}


@dataclass(frozen=True)
class DoneEvent:
    """The reply is finished.

    `reason="stop"`: the reply is saved (`orphaned` if its user message was
    gone by then). `reason="error"`: the provider failed or timed out; no
    reply was saved, the user message stays.
    """

    name: ClassVar[str] = "done"
    reason: DoneReason
    assistant_message_id: UUID | None = None
    orphaned: bool = False

    def payload(self) -> dict[str, Any]:
        return {
            "reason": self.reason,
            "assistant_message_id": (
                None if self.assistant_message_id is None else str(self.assistant_message_id)
            ),
            "orphaned": self.orphaned,
        }


ChatEvent = MetaEvent | DeltaEvent | DoneEvent
