"""The editor chat handler: one user message in, a streamed assistant reply out.

Flow of `ChatService.send` (REFERENCE_APP.md, PR-0009):

1. validate the text; hold the single-flight guard for (user, tool);
2. save the user message in its own unit of work (with conflict retry);
3. stream the reply from the provider (no transaction open meanwhile);
4. save the reply in a new unit of work, after the message it answers;
5. release the guard, whatever happened.

Cancellation while streaming saves no reply; a provider error or timeout
ends with `done(reason="error")`. The user message stays in both cases.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from contextlib import aclosing
from typing import TYPE_CHECKING, Literal

from editor_chat.errors import InvalidChatRequest
from editor_chat.events import ChatEvent, DeltaEvent, DoneEvent, MetaEvent
from editor_chat.legacy import PreFixPersistence
from editor_chat.messages import (
    EDITOR_CHAT_CONTEXT,
    ROLES,
    ChatMessage,
    JsonObject,
    find_message,
    read_thread,
)
from editor_chat.persistence import DEFAULT_MAX_ATTEMPTS, CorrelatedPersistence, ThreadPersistence
from editor_chat.provider import PromptMessage, ProviderError
from editor_chat.repository import IdFactory, ToolSessionKey, ToolSessionRepository
from editor_chat.unit_of_work import RepositoryFactory, UnitOfWork

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

    from editor_chat.guard import SingleFlightGuard
    from editor_chat.provider import ChatProvider

Variant = Literal["fixed", "pre_fix"]
"""`"fixed"`: PR-0009's persistence. `"pre_fix"`: the code it replaced (see `legacy`)."""

MAX_MESSAGE_CHARS = 4000
DEFAULT_CHUNK_TIMEOUT = 30.0

EMPTY_MESSAGE = "Meddelandet får inte vara tomt."


def too_long_message(limit: int) -> str:
    return f"Meddelandet är för långt: högst {limit} tecken."


class ChatService:
    """The editor chat handler, driven directly or through `editor_chat.web`.

    Everything stateful comes from outside: the session factory (one engine,
    shared by many services), the provider, the guard (one per process) and
    the id generator (deterministic in simulations).

    >>> service = ChatService(session_factory=factory, provider=FakeProvider(),
    ...                       guard=SingleFlightGuard())
    >>> async with aclosing(service.send(user_id, tool_id, "Hej")) as events:
    ...     async for event in events:
    ...         print(event.name, event.payload())

    `chunk_timeout` bounds the wait for each chunk of the reply, in seconds of
    the event loop's clock (None: no bound). `repository_factory` exists so
    tests can wrap the repository.
    """

    def __init__(
        self,
        *,
        session_factory: async_sessionmaker[AsyncSession],
        provider: ChatProvider,
        guard: SingleFlightGuard,
        variant: Variant = "fixed",
        new_id: IdFactory = uuid.uuid4,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        chunk_timeout: float | None = DEFAULT_CHUNK_TIMEOUT,
        max_message_chars: int = MAX_MESSAGE_CHARS,
        repository_factory: RepositoryFactory | None = None,
    ) -> None:
        self._session_factory = session_factory
        self._provider = provider
        self._guard = guard
        self._new_id = new_id
        self._chunk_timeout = chunk_timeout
        self._max_message_chars = max_message_chars
        self._repository_factory: RepositoryFactory = repository_factory or (
            lambda session: ToolSessionRepository(session, new_id=new_id)
        )
        self.variant = variant
        self._persistence = self._make_persistence(variant, max_attempts)

    def _make_persistence(self, variant: Variant, max_attempts: int) -> ThreadPersistence:
        if variant == "fixed":
            return CorrelatedPersistence(self.unit_of_work, max_attempts=max_attempts)
        if variant == "pre_fix":
            return PreFixPersistence(self.unit_of_work)
        raise ValueError(f"unknown variant {variant!r}; use 'fixed' or 'pre_fix'")

    def unit_of_work(self) -> UnitOfWork:
        """A new unit of work on this service's database."""
        return UnitOfWork(self._session_factory, self._repository_factory)

    async def send(
        self, user_id: uuid.UUID, tool_id: uuid.UUID, text: str
    ) -> AsyncGenerator[ChatEvent, None]:
        """Handle one chat message; yield `meta`, `delta`..., `done`.

        Raises before the first event: `InvalidChatRequest` (nothing written),
        `ChatBusy` (guard held), `RetriesExhausted` (fixed variant) or
        `StateConflict` (pre-fix variant) when the user message cannot be
        saved. The same two errors can end the stream after the deltas, when
        the reply cannot be saved. Close the generator when you stop early
        (`contextlib.aclosing`), so the guard is released at once.
        """
        content = self._validated(text)
        key = ToolSessionKey(tool_id=tool_id, user_id=user_id, context=EDITOR_CHAT_CONTEXT)
        with self._guard.hold(user_id, tool_id):
            question = ChatMessage(role="user", content=content, message_id=self._new_id())
            saved = await self._persistence.save_user_message(key, question)
            reply_id = self._new_id()
            yield MetaEvent(message_id=question.message_id, assistant_message_id=reply_id)

            chunks: list[str] = []
            prompt = prompt_up_to(read_thread(saved.state), question.message_id)
            stream = self._provider.stream_reply(prompt)
            try:
                while True:
                    try:
                        chunk = await self._next_chunk(stream)
                    except StopAsyncIteration:
                        break
                    except (ProviderError, TimeoutError):
                        yield DoneEvent(reason="error")
                        return
                    chunks.append(chunk)
                    yield DeltaEvent(text=chunk)
            finally:
                if isinstance(stream, AsyncGenerator):
                    await stream.aclose()

            # The reply is saved before `done`, so a client that stops reading
            # at `done` cannot keep it from being saved.
            reply = ChatMessage(
                role="assistant",
                content="".join(chunks),
                message_id=reply_id,
                in_reply_to=question.message_id,
            )
            saved = await self._persistence.save_reply(key, reply)
            stored = find_message(read_thread(saved.state), reply_id)
            orphaned = stored is not None and stored.get("orphaned") is True
            yield DoneEvent(reason="stop", assistant_message_id=reply_id, orphaned=orphaned)

    async def send_all(self, user_id: uuid.UUID, tool_id: uuid.UUID, text: str) -> list[ChatEvent]:
        """Run `send` to the end and return its events (for scripts and simulations)."""
        async with aclosing(self.send(user_id, tool_id, text)) as events:
            return [event async for event in events]

    async def read_thread(self, user_id: uuid.UUID, tool_id: uuid.UUID) -> list[JsonObject]:
        """The stored thread of (user, tool), oldest first; empty if there is none."""
        key = ToolSessionKey(tool_id=tool_id, user_id=user_id, context=EDITOR_CHAT_CONTEXT)
        async with self.unit_of_work() as uow:
            snapshot = await uow.sessions.get(key)
        return [] if snapshot is None else read_thread(snapshot.state)

    async def _next_chunk(self, stream: AsyncIterator[str]) -> str:
        # The timeout wraps only the wait for one chunk, never a `yield`:
        # a timeout spanning a yield would cancel the consumer's code instead.
        async with asyncio.timeout(self._chunk_timeout):
            return await anext(stream)

    def _validated(self, text: str) -> str:
        if not text.strip():
            raise InvalidChatRequest(EMPTY_MESSAGE)
        if len(text) > self._max_message_chars:
            raise InvalidChatRequest(too_long_message(self._max_message_chars))
        return text


def prompt_up_to(messages: Sequence[JsonObject], question_id: uuid.UUID) -> list[PromptMessage]:
    """The conversation up to and including our question.

    Messages that arrived after it (another tab's question) are not part of
    what this reply answers.
    """
    prompt: list[PromptMessage] = []
    for stored in messages:
        role, content = stored.get("role"), stored.get("content")
        if role in ROLES and isinstance(content, str):
            prompt.append(
                PromptMessage(role="user" if role == "user" else "assistant", content=content)
            )
        if stored.get("message_id") == str(question_id):
            break
    return prompt
