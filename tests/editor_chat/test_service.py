"""The chat handler, driven directly. Sequential: interleavings are written out by hand."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from contextlib import aclosing
from typing import TYPE_CHECKING, Any, Protocol

import pytest
from sqlalchemy.ext.asyncio import async_sessionmaker

from editor_chat import (
    EDITOR_CHAT_CONTEXT,
    ChatBusy,
    ChatMessage,
    ChatService,
    DeltaEvent,
    DoneEvent,
    FakeProvider,
    InvalidChatRequest,
    MetaEvent,
    PromptMessage,
    RetriesExhausted,
    SingleFlightGuard,
    StateConflict,
    ToolSessionKey,
    ToolSessionRepository,
    ToolSessionSnapshot,
    UnitOfWork,
)
from editor_chat.persistence import CorrelatedPersistence

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, Mapping

    from sqlalchemy.ext.asyncio import AsyncSession

    from editor_chat import ChatEvent

USER = uuid.UUID(int=1)
TOOL = uuid.UUID(int=2)
KEY = ToolSessionKey(tool_id=TOOL, user_id=USER, context=EDITOR_CHAT_CONTEXT)
REPLY = "Använd en for-loop: for i in range(3): ..."


class MakeService(Protocol):
    def __call__(self, **options: Any) -> ChatService: ...


@pytest.fixture
def make_service(session_factory: async_sessionmaker[AsyncSession]) -> MakeService:
    def make(**options: Any) -> ChatService:
        options.setdefault("provider", FakeProvider(reply=REPLY, chunks=3))
        options.setdefault("guard", SingleFlightGuard())
        return ChatService(session_factory=session_factory, **options)

    return make


class AnotherWriterBetweenReadAndUpdate(ToolSessionRepository):
    """A repository whose reads go stale: another writer commits right after each read.

    While `pending` holds messages, `get_or_create` reads the row, then lets
    another transaction commit the next pending message, and returns what it
    read. The caller's `update_state` then meets a real `StateConflict`. The
    read is a plain SELECT, so it holds no write lock (SQLite) and no row lock
    (PostgreSQL) that would block the other writer.
    """

    def __init__(
        self,
        session: AsyncSession,
        *,
        session_factory: async_sessionmaker[AsyncSession],
        pending: list[ChatMessage],
        conflicts: list[StateConflict],
    ) -> None:
        super().__init__(session)
        self._session_factory = session_factory
        self._pending = pending
        self._conflicts = conflicts

    async def get_or_create(self, key: ToolSessionKey) -> ToolSessionSnapshot:
        if not self._pending:
            return await super().get_or_create(key)
        seen = await self.get(key)
        assert seen is not None, "create the session row before arming the other writer"
        other_writer = CorrelatedPersistence(lambda: UnitOfWork(self._session_factory))
        await other_writer.save_user_message(key, self._pending.pop(0))
        return seen

    async def update_state(
        self, key: ToolSessionKey, state: Mapping[str, Any], *, expected_state_rev: int
    ) -> ToolSessionSnapshot:
        try:
            return await super().update_state(key, state, expected_state_rev=expected_state_rev)
        except StateConflict as conflict:
            self._conflicts.append(conflict)
            raise


class OtherWriter:
    """Arms `AnotherWriterBetweenReadAndUpdate` for a service and records what happened."""

    def __init__(self, session_factory: async_sessionmaker[AsyncSession]) -> None:
        self.pending: list[ChatMessage] = []
        self.conflicts: list[StateConflict] = []
        self._session_factory = session_factory

    def repository(self, session: AsyncSession) -> ToolSessionRepository:
        return AnotherWriterBetweenReadAndUpdate(
            session,
            session_factory=self._session_factory,
            pending=self.pending,
            conflicts=self.conflicts,
        )

    def will_write(self, *contents: str) -> list[ChatMessage]:
        messages = [
            ChatMessage(role="user", content=content, message_id=uuid.uuid4())
            for content in contents
        ]
        self.pending.extend(messages)
        return messages


async def create_session_row(service: ChatService) -> None:
    async with service.unit_of_work() as uow:
        await uow.sessions.get_or_create(KEY)


def user_message(content: str, message_id: uuid.UUID) -> dict[str, Any]:
    return ChatMessage(role="user", content=content, message_id=message_id).to_json()


def reply_to(meta: MetaEvent, *, content: str = REPLY, orphaned: bool = False) -> dict[str, Any]:
    return ChatMessage(
        role="assistant",
        content=content,
        message_id=meta.assistant_message_id,
        in_reply_to=meta.message_id,
        orphaned=orphaned,
    ).to_json()


async def start(events: AsyncGenerator[ChatEvent, None]) -> MetaEvent:
    """Run a request until its user message is saved and the reply starts streaming."""
    meta = await anext(events)
    assert isinstance(meta, MetaEvent)
    return meta


async def finish(events: AsyncGenerator[ChatEvent, None]) -> list[ChatEvent]:
    async with aclosing(events):
        return [event async for event in events]


# --- the happy path ---------------------------------------------------------------


@pytest.mark.asyncio
async def test_reply_is_streamed_and_both_messages_are_saved(make_service: MakeService) -> None:
    service = make_service()
    events = await service.send_all(USER, TOOL, "Hur skriver jag en loop?")

    assert [event.name for event in events] == ["meta", "delta", "delta", "delta", "done"]
    meta = events[0]
    assert isinstance(meta, MetaEvent)
    assert "".join(event.text for event in events if isinstance(event, DeltaEvent)) == REPLY
    assert events[-1] == DoneEvent(reason="stop", assistant_message_id=meta.assistant_message_id)
    assert await service.read_thread(USER, TOOL) == [
        user_message("Hur skriver jag en loop?", meta.message_id),
        reply_to(meta),
    ]


@pytest.mark.asyncio
async def test_follow_up_sees_the_conversation_so_far(make_service: MakeService) -> None:
    provider = FakeProvider(reply=lambda prompt: f"Svar på {prompt[-1].content}", chunks=2)
    service = make_service(provider=provider)
    await service.send_all(USER, TOOL, "ett")
    await service.send_all(USER, TOOL, "två")

    assert provider.prompts[1] == (
        PromptMessage(role="user", content="ett"),
        PromptMessage(role="assistant", content="Svar på ett"),
        PromptMessage(role="user", content="två"),
    )
    assert [m["content"] for m in await service.read_thread(USER, TOOL)] == [
        "ett",
        "Svar på ett",
        "två",
        "Svar på två",
    ]


@pytest.mark.asyncio
async def test_every_id_comes_from_the_injected_generator(make_service: MakeService) -> None:
    counter = itertools.count(1000)
    service = make_service(new_id=lambda: uuid.UUID(int=next(counter)))
    events = await service.send_all(USER, TOOL, "Hej")

    async with service.unit_of_work() as uow:
        row = await uow.sessions.get(KEY)
    assert row is not None
    meta = events[0]
    assert isinstance(meta, MetaEvent)
    issued = range(1000, next(counter))
    for used in (row.id, meta.message_id, meta.assistant_message_id):
        assert used.int in issued


# --- conflict retry (the fixed persistence) ---------------------------------------


@pytest.mark.asyncio
async def test_user_message_conflict_is_retried_on_the_latest_thread(
    make_service: MakeService, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    other = OtherWriter(session_factory)
    service = make_service(repository_factory=other.repository)
    await create_session_row(service)
    (theirs,) = other.will_write("från en annan flik")

    events = await service.send_all(USER, TOOL, "min fråga")

    meta = events[0]
    assert isinstance(meta, MetaEvent)
    assert [(c.expected_rev, c.current_rev) for c in other.conflicts] == [(0, 1)]
    # Their message, committed between our read and our update, is kept; ours lands once.
    assert await service.read_thread(USER, TOOL) == [
        theirs.to_json(),
        user_message("min fråga", meta.message_id),
        reply_to(meta),
    ]


@pytest.mark.asyncio
async def test_user_message_retries_are_bounded(
    make_service: MakeService, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    other = OtherWriter(session_factory)
    guard = SingleFlightGuard()
    service = make_service(repository_factory=other.repository, max_attempts=3, guard=guard)
    await create_session_row(service)
    theirs = other.will_write("ett", "två", "tre")

    with pytest.raises(RetriesExhausted, match="after 3 attempts") as exhausted:
        await service.send_all(USER, TOOL, "min fråga")

    assert exhausted.value.attempts == 3
    assert (
        exhausted.value.last_conflict.expected_rev,
        exhausted.value.last_conflict.current_rev,
    ) == (
        2,
        3,
    )
    assert await service.read_thread(USER, TOOL) == [message.to_json() for message in theirs]
    assert not guard.is_busy(USER, TOOL)


@pytest.mark.asyncio
async def test_reply_conflict_is_retried_and_the_reply_lands_after_its_question(
    make_service: MakeService, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    other = OtherWriter(session_factory)
    service = make_service(repository_factory=other.repository)
    events = service.send(USER, TOOL, "min fråga")
    meta = await start(events)
    (theirs,) = other.will_write("kom medan svaret strömmade")

    assert (await finish(events))[-1] == DoneEvent(
        reason="stop", assistant_message_id=meta.assistant_message_id
    )

    assert len(other.conflicts) == 1
    assert await service.read_thread(USER, TOOL) == [
        user_message("min fråga", meta.message_id),
        reply_to(meta),
        theirs.to_json(),
    ]


# --- reply placement: fixed versus pre-fix ------------------------------------------


async def two_tabs_interleaved(
    first: ChatService, second: ChatService
) -> tuple[MetaEvent, MetaEvent]:
    """Tab A asks; while A's reply streams, tab B asks and gets its whole reply; then A ends."""
    tab_a = first.send(USER, TOOL, "fråga A")
    meta_a = await start(tab_a)
    events_b = await second.send_all(USER, TOOL, "fråga B")
    await finish(tab_a)
    meta_b = events_b[0]
    assert isinstance(meta_b, MetaEvent)
    return meta_a, meta_b


@pytest.mark.asyncio
async def test_reply_is_inserted_after_its_question_not_last(make_service: MakeService) -> None:
    # Two processes (two guards), so the single-flight guard lets both through.
    meta_a, meta_b = await two_tabs_interleaved(make_service(), make_service())

    assert await make_service().read_thread(USER, TOOL) == [
        user_message("fråga A", meta_a.message_id),
        reply_to(meta_a),
        user_message("fråga B", meta_b.message_id),
        reply_to(meta_b),
    ]


@pytest.mark.asyncio
async def test_pre_fix_appends_the_reply_last_after_the_wrong_question(
    make_service: MakeService,
) -> None:
    meta_a, meta_b = await two_tabs_interleaved(
        make_service(variant="pre_fix"), make_service(variant="pre_fix")
    )

    thread = await make_service().read_thread(USER, TOOL)
    assert thread == [
        user_message("fråga A", meta_a.message_id),
        user_message("fråga B", meta_b.message_id),
        reply_to(meta_b),
        reply_to(meta_a),
    ]
    # A's reply names A's question but follows B's reply: the reported race.
    assert thread[3]["in_reply_to"] == str(meta_a.message_id)


@pytest.mark.asyncio
async def test_pre_fix_loses_the_user_message_on_a_conflict(
    make_service: MakeService, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    other = OtherWriter(session_factory)
    guard = SingleFlightGuard()
    service = make_service(variant="pre_fix", repository_factory=other.repository, guard=guard)
    await create_session_row(service)
    (theirs,) = other.will_write("från en annan flik")

    with pytest.raises(StateConflict):
        await service.send_all(USER, TOOL, "min fråga")

    assert await service.read_thread(USER, TOOL) == [theirs.to_json()]
    assert not guard.is_busy(USER, TOOL)


@pytest.mark.asyncio
async def test_reply_to_a_vanished_question_is_kept_and_marked_orphaned(
    make_service: MakeService,
) -> None:
    service = make_service()
    events = service.send(USER, TOOL, "min fråga")
    meta = await start(events)
    async with service.unit_of_work() as uow:  # the thread is cleared meanwhile
        current = await uow.sessions.get_or_create(KEY)
        await uow.sessions.update_state(KEY, {"messages": []}, expected_state_rev=current.state_rev)

    done = (await finish(events))[-1]

    assert done == DoneEvent(
        reason="stop", assistant_message_id=meta.assistant_message_id, orphaned=True
    )
    assert await service.read_thread(USER, TOOL) == [reply_to(meta, orphaned=True)]


# --- cancellation and provider failures ---------------------------------------------


@pytest.mark.asyncio
async def test_cancellation_while_streaming_saves_no_reply(make_service: MakeService) -> None:
    guard = SingleFlightGuard()
    service = make_service(
        guard=guard,
        provider=FakeProvider(reply=REPLY, chunks=3, failure="hang", fail_after_chunks=1),
    )
    received: list[ChatEvent] = []
    first_delta = asyncio.Event()

    async def client() -> None:
        async for event in service.send(USER, TOOL, "min fråga"):
            received.append(event)
            if isinstance(event, DeltaEvent):
                first_delta.set()

    request = asyncio.create_task(client())
    await first_delta.wait()
    request.cancel()
    with pytest.raises(asyncio.CancelledError):
        await request

    meta = received[0]
    assert isinstance(meta, MetaEvent)
    assert [event.name for event in received] == ["meta", "delta"]
    assert await service.read_thread(USER, TOOL) == [user_message("min fråga", meta.message_id)]
    assert not guard.is_busy(USER, TOOL)


@pytest.mark.asyncio
async def test_client_that_stops_reading_saves_no_reply(make_service: MakeService) -> None:
    guard = SingleFlightGuard()
    service = make_service(guard=guard)
    events = service.send(USER, TOOL, "min fråga")
    meta = await start(events)
    assert isinstance(await anext(events), DeltaEvent)

    await events.aclose()

    assert await service.read_thread(USER, TOOL) == [user_message("min fråga", meta.message_id)]
    assert not guard.is_busy(USER, TOOL)


@pytest.mark.parametrize("failure", ["error", "timeout"])
@pytest.mark.asyncio
async def test_provider_failure_ends_with_done_error_and_keeps_the_question(
    make_service: MakeService, failure: str
) -> None:
    guard = SingleFlightGuard()
    provider = FakeProvider(reply=REPLY, chunks=3, failure=failure, fail_after_chunks=1)  # type: ignore[arg-type]
    service = make_service(guard=guard, provider=provider)

    events = await service.send_all(USER, TOOL, "min fråga")

    assert [event.name for event in events] == ["meta", "delta", "done"]
    assert events[-1] == DoneEvent(reason="error")
    meta = events[0]
    assert isinstance(meta, MetaEvent)
    assert await service.read_thread(USER, TOOL) == [user_message("min fråga", meta.message_id)]
    assert not guard.is_busy(USER, TOOL)


@pytest.mark.asyncio
async def test_provider_that_stops_answering_times_out(make_service: MakeService) -> None:
    service = make_service(provider=FakeProvider(failure="hang"), chunk_timeout=0.01)

    events = await service.send_all(USER, TOOL, "min fråga")

    assert [event.name for event in events] == ["meta", "done"]
    assert events[-1] == DoneEvent(reason="error")
    assert len(await service.read_thread(USER, TOOL)) == 1


# --- the single-flight guard ----------------------------------------------------------


@pytest.mark.asyncio
async def test_second_request_while_one_streams_is_busy(make_service: MakeService) -> None:
    guard = SingleFlightGuard()
    service = make_service(guard=guard)
    first = service.send(USER, TOOL, "första")
    meta = await start(first)

    with pytest.raises(ChatBusy) as busy:
        await service.send_all(USER, TOOL, "andra")
    assert str(busy.value) == "En chatförfrågan pågår redan. Försök igen om en stund."
    other_tool = uuid.UUID(int=3)
    assert (await service.send_all(USER, other_tool, "annat verktyg"))[-1].name == "done"

    await finish(first)
    assert not guard.is_busy(USER, TOOL)
    assert await service.read_thread(USER, TOOL) == [
        user_message("första", meta.message_id),
        reply_to(meta),
    ]
    assert (await service.send_all(USER, TOOL, "tredje"))[-1].name == "done"


@pytest.mark.asyncio
async def test_guard_is_released_when_saving_fails(
    make_service: MakeService, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    other = OtherWriter(session_factory)
    guard = SingleFlightGuard()
    service = make_service(guard=guard, repository_factory=other.repository, max_attempts=1)
    await create_session_row(service)
    other.will_write("från en annan flik")

    with pytest.raises(RetriesExhausted):
        await service.send_all(USER, TOOL, "min fråga")
    assert not guard.is_busy(USER, TOOL)


# --- input validation ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("", "Meddelandet får inte vara tomt."),
        (" \n\t", "Meddelandet får inte vara tomt."),
        ("x" * 21, "Meddelandet är för långt: högst 20 tecken."),
    ],
)
@pytest.mark.asyncio
async def test_invalid_message_is_refused_and_nothing_is_written(
    make_service: MakeService, text: str, error: str
) -> None:
    guard = SingleFlightGuard()
    service = make_service(guard=guard, max_message_chars=20)

    with pytest.raises(InvalidChatRequest) as invalid:
        await service.send_all(USER, TOOL, text)

    assert str(invalid.value) == error
    async with service.unit_of_work() as uow:
        assert await uow.sessions.get(KEY) is None
    assert not guard.is_busy(USER, TOOL)


@pytest.mark.asyncio
async def test_message_at_the_size_limit_is_accepted(make_service: MakeService) -> None:
    service = make_service(max_message_chars=20)
    assert (await service.send_all(USER, TOOL, "å" * 20))[-1].name == "done"


def test_unknown_variant_is_refused() -> None:
    with pytest.raises(ValueError, match="use 'fixed' or 'pre_fix'"):
        ChatService(
            session_factory=async_sessionmaker(),
            provider=FakeProvider(),
            guard=SingleFlightGuard(),
            variant="post_fix",  # type: ignore[arg-type]
        )
