"""editor_chat: the editor-chat backend of PR-0009, the reference system under test.

A real service as its team would write it; it does not know about interlace.
A teacher's chat with the AI beside the script editor is stored as a thread in
`tool_sessions.state["messages"]` (see `editor_chat.messages`), written with
optimistic concurrency on `state_rev`.

Driving the handler directly (as the simulations do)::

    engine = make_engine("sqlite+aiosqlite:///chat.db", sqlite_busy_timeout=0)
    await create_schema(engine)
    service = ChatService(
        session_factory=make_session_factory(engine),  # one engine, many services
        provider=FakeProvider(reply="Hej!", chunks=3, delay=0.01),
        guard=SingleFlightGuard(),                     # one guard per "process"
        variant="fixed",                               # or "pre_fix"
        new_id=uuid.uuid4,                             # injectable id generator
    )
    async with aclosing(service.send(user_id, tool_id, "Hur loopar jag?")) as events:
        async for event in events:                     # MetaEvent, DeltaEvent..., DoneEvent
            ...
    events = await service.send_all(user_id, tool_id, "Tack!")  # or all at once
    thread = await service.read_thread(user_id, tool_id)        # list of JSON messages

Public names:

- `ChatService(session_factory=, provider=, guard=, variant="fixed", new_id=uuid.uuid4,
  max_attempts=5, chunk_timeout=30.0, max_message_chars=4000, repository_factory=None)`:
  `send(user_id, tool_id, text) -> AsyncIterator[ChatEvent]`,
  `send_all(...) -> list[ChatEvent]`, `read_thread(user_id, tool_id) -> list[dict]`,
  `unit_of_work() -> UnitOfWork`.
- Events: `MetaEvent(message_id, assistant_message_id)`, `DeltaEvent(text)`,
  `DoneEvent(reason="stop"|"error", assistant_message_id, orphaned)`; each has `.name`
  and `.payload()`.
- `ChatMessage` and `EDITOR_CHAT_CONTEXT`; `SingleFlightGuard`; `ChatProvider` (protocol),
  `FakeProvider`, `PromptMessage`, `ProviderError`.
- Storage: `ToolSession` (ORM model), `ToolSessionKey`, `ToolSessionSnapshot`,
  `ToolSessionRepository(session, new_id=)` with `get_or_create(key)`, `get(key)`,
  `update_state(key, state, expected_state_rev=)`; `UnitOfWork(session_factory)`.
- Database helpers: `make_engine(url, sqlite_busy_timeout=None, **engine_kwargs)`,
  `make_session_factory(engine)`, `create_schema(engine)`, `drop_schema(engine)`.
- Errors: `ChatBusy` (HTTP 409, `CHAT_BUSY_MESSAGE`), `InvalidChatRequest` (422),
  `StateConflict(expected_rev, current_rev)`, `SessionNotFound`,
  `RetriesExhausted(attempts, last_conflict)`, all `EditorChatError`.
- Web: `create_app(database_url, provider, engine=, session_factory=, guard=, variant=)`
  in `editor_chat.web`; `python -m editor_chat` serves it.

The pre-fix variant (`variant="pre_fix"`, `editor_chat.legacy`) writes each
message once (a conflict propagates as `StateConflict`) and appends replies last.
"""

from __future__ import annotations

from editor_chat.database import create_schema, drop_schema, make_engine, make_session_factory
from editor_chat.errors import (
    CHAT_BUSY_MESSAGE,
    ChatBusy,
    EditorChatError,
    InvalidChatRequest,
    RetriesExhausted,
    SessionNotFound,
    StateConflict,
)
from editor_chat.events import ChatEvent, DeltaEvent, DoneEvent, MetaEvent
from editor_chat.guard import SingleFlightGuard
from editor_chat.messages import EDITOR_CHAT_CONTEXT, ChatMessage
from editor_chat.models import ToolSession
from editor_chat.provider import ChatProvider, FakeProvider, PromptMessage, ProviderError
from editor_chat.repository import ToolSessionKey, ToolSessionRepository, ToolSessionSnapshot
from editor_chat.service import ChatService, Variant
from editor_chat.unit_of_work import UnitOfWork

__all__ = [
    "CHAT_BUSY_MESSAGE",
    "EDITOR_CHAT_CONTEXT",
    "ChatBusy",
    "ChatEvent",
    "ChatMessage",
    "ChatProvider",
    "ChatService",
    "DeltaEvent",
    "DoneEvent",
    "EditorChatError",
    "FakeProvider",
    "InvalidChatRequest",
    "MetaEvent",
    "PromptMessage",
    "ProviderError",
    "RetriesExhausted",
    "SessionNotFound",
    "SingleFlightGuard",
    "StateConflict",
    "ToolSession",
    "ToolSessionKey",
    "ToolSessionRepository",
    "ToolSessionSnapshot",
    "UnitOfWork",
    "Variant",
    "create_schema",
    "drop_schema",
    "make_engine",
    "make_session_factory",
]
