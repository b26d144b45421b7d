"""The simulated editor-chat deployment, on ``interlace.testing``.

``chat_world("fixed")`` is the ``world=`` of every editor-chat simulation: a
``ChatWorld`` (an ``interlace.testing.World``) on the exploration's fresh
database, reset before every schedule. Inside a schedule the body asks for
processes and runs requests through them at once::

    first, second = world.handler("web-1"), world.handler("web-2")
    await world.run(first.send(TEACHER, SCRIPT, QUESTION), second.send(TEACHER, SCRIPT, QUESTION))

``handler(name)`` is a process running ``ChatService`` directly (its guard
and service are singletons of the process), ``web(name)`` one serving the
ASGI app (``editor_chat.web``) through its httpx client. Their classes are
still called ``Process`` and ``WebProcess``: a request task's first decision
is labelled with its coroutine (``start Process.send``), and that name is in
the committed regression tokens. Every request is an
``interlace.testing.Request`` whose ``subject`` is the ``Ask`` it sent; a 409
"chat busy" is a refusal, a conflict the handler gave up on a failure.

Determinism: in handler processes, message and row ids come from the world's
``RequestIds`` (request n's k-th id is ``UUID(int=n << 64 | k)``). The ASGI
app takes no id generator and uses ``uuid4``: those ids decide nothing, and
invariant messages name requests (T1, T2), never ids.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import event, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from editor_chat import (
    EDITOR_CHAT_CONTEXT,
    ChatBusy,
    ChatMessage,
    ChatService,
    DeltaEvent,
    DoneEvent,
    FakeProvider,
    MetaEvent,
    RetriesExhausted,
    SingleFlightGuard,
    StateConflict,
    ToolSession,
    ToolSessionKey,
    ToolSessionRepository,
    ToolSessionSnapshot,
    create_schema,
    make_session_factory,
)
from editor_chat.web import USER_ID_HEADER, create_app
from interlace import testing
from interlace.testing import Database, Request, SseEvent, World, reset_world

Variant = Literal["fixed", "pre_fix"]
Pair = tuple[uuid.UUID, uuid.UUID]  # (user_id, tool_id)

TEACHER = uuid.UUID("00000000-0000-4000-8000-0000000000a1")
OTHER_TEACHER = uuid.UUID("00000000-0000-4000-8000-0000000000a2")
SCRIPT = uuid.UUID("00000000-0000-4000-8000-0000000000b1")
QUESTION = "Hur loopar jag över en lista?"
FOLLOW_UP = "Och hur gör jag med en while-loop?"
REPLY = "Använd en for-loop: for elev in klass: print(elev)"

__all__ = ["reset_world"]  # the reset= of every editor-chat simulation


@dataclass
class Ask:
    """What a chat request sent: the ``subject`` of its record."""

    user_id: uuid.UUID
    tool_id: uuid.UUID
    text: str
    malformed: str | None = None
    """What was wrong with the response, if it could not be read as the chat protocol."""

    @property
    def pair(self) -> Pair:
        return (self.user_id, self.tool_id)


class UpdateLedger:
    """Counts each chat's committed updates (``after_commit``), and the state_rev conflicts met."""

    def __init__(self) -> None:
        self.committed: dict[Pair, int] = {}
        self.conflicts = 0

    def repository(
        self, new_id: Callable[[], uuid.UUID], base: type[ToolSessionRepository]
    ) -> Callable[[AsyncSession], ToolSessionRepository]:
        """A ``repository_factory`` for ``ChatService`` that counts on ``base``'s updates."""
        ledger = self

        class LedgerRepository(base):  # type: ignore[valid-type,misc]
            def __init__(self, session: AsyncSession) -> None:
                super().__init__(session, new_id=new_id)
                self._pending: list[Pair] = []
                event.listen(session.sync_session, "after_commit", self._on_commit)

            async def update_state(
                self, key: ToolSessionKey, state: Mapping[str, Any], *, expected_state_rev: int
            ) -> ToolSessionSnapshot:
                try:
                    snapshot: ToolSessionSnapshot = await super().update_state(
                        key, state, expected_state_rev=expected_state_rev
                    )
                except StateConflict:
                    ledger.conflicts += 1
                    raise
                self._pending.append((key.user_id, key.tool_id))
                return snapshot

            def _on_commit(self, session: object) -> None:
                for pair in self._pending:
                    ledger.committed[pair] = ledger.committed.get(pair, 0) + 1
                self._pending.clear()

        return LedgerRepository

    def reset(self) -> None:
        self.committed.clear()
        self.conflicts = 0


@dataclass(frozen=True)
class StoredChat:
    """A chat as the database holds it after the schedule."""

    state_rev: int
    messages: list[dict[str, Any]]


class ChatWorld(World):
    """The editor chat's database and this schedule's processes and requests."""

    def __init__(
        self, database: Database, engine: AsyncEngine, *, variant: Variant, history: int = 0
    ) -> None:
        super().__init__(
            database,
            engine,
            refusals={ChatBusy: 409},  # as editor_chat.web answers it
            failures=(StateConflict, RetriesExhausted),
            http_refusal=lambda r: isinstance(r.body, dict) and r.body.get("error") == "chat_busy",
            tables=(ToolSession,),
        )
        self.variant: Variant = variant
        self.history = history
        """Earlier exchanges already in the teacher's chat when a schedule starts."""
        self.session_factory = make_session_factory(engine)
        self.ledger = UpdateLedger()
        self.counts_commits = True
        """False once a process the ledger cannot see (an ASGI app) has run."""

    async def reset(self) -> None:
        await super().reset()
        if self.history:
            async with self.engine.begin() as connection:
                await connection.execute(insert(ToolSession).values(**_earlier_chat(self.history)))
        self.ledger.reset()
        self.counts_commits = True

    def handler(
        self,
        name: str,
        provider: FakeProvider | None = None,
        *,
        guard: SingleFlightGuard | None = None,
        repository: type[ToolSessionRepository] = ToolSessionRepository,
    ) -> Process:
        """Process ``name`` running the handler; ``guard``, ``repository`` replace production's."""
        process = self.process(name)
        return process.singleton(
            lambda: Process(process, provider, guard or SingleFlightGuard(), repository),
            key=Process,
        )

    def web(self, name: str, provider: FakeProvider | None = None) -> WebProcess:
        """Process ``name`` serving the ASGI app (``editor_chat.web``)."""
        process = self.process(name)
        self.counts_commits = False
        return process.singleton(lambda: WebProcess(process, provider), key=WebProcess)

    # ---- reading requests and the database, for the invariants -------------------------

    def question_id(self, request: Request) -> uuid.UUID | None:
        """The id of the request's user message: from ``meta``, else the first id it drew."""
        meta = request.first(MetaEvent)
        return meta.message_id if meta is not None else self.ids.first_of(request.number)

    def describe(self, pair: Pair) -> str:
        user, tool = pair
        who = {TEACHER: "teacher", OTHER_TEACHER: "other teacher"}.get(user, str(user))
        what = "script" if tool == SCRIPT else str(tool)
        return f"the chat of ({who}, {what})"

    def is_earlier(self, message_id: object) -> bool:
        """Whether a stored message was in the chat before the schedule (``history``)."""
        return isinstance(message_id, str) and message_id in _EARLIER_IDS

    def owner_of(self, message_id: object) -> tuple[Request, str] | None:
        """The request a stored message belongs to, and whether it is its question or reply."""
        for request in self.requests:
            question = self.question_id(request)
            if question is not None and str(question) == message_id:
                return request, "question"
            meta = request.first(MetaEvent)
            if meta is not None and str(meta.assistant_message_id) == message_id:
                return request, "reply"
        return None

    def name_message(self, message: Mapping[str, Any], position: int) -> str:
        """``T1's question (position 2)``, for invariant messages."""
        owner = self.owner_of(message.get("message_id"))
        role = message.get("role")
        if self.is_earlier(message.get("message_id")):
            return f"an earlier {role} message (position {position + 1})"
        if owner is None:
            return f"a {role} message of no request (position {position + 1})"
        request, kind = owner
        return f"{request.task}'s {kind} (position {position + 1})"

    def successful_updates(self, pair: Pair) -> tuple[int, str]:
        """How many updates of ``pair``'s row succeeded, and how that was counted."""
        earlier = 1 if self.history and pair == (TEACHER, SCRIPT) else 0  # the history's write
        if self.counts_commits:
            committed = self.ledger.committed.get(pair, 0) + earlier
            return committed, "committed updates seen by the repository"
        acknowledged = earlier + sum(
            (r.first(MetaEvent) is not None) + reply_saved(r)
            for r in self.requests
            if ask(r).pair == pair
        )
        return acknowledged, "writes acknowledged to clients (meta, done)"

    async def stored(self) -> dict[Pair, StoredChat]:
        """Every stored editor chat, read once per schedule after the requests ended."""
        rows = await self.rows(
            select(
                ToolSession.user_id, ToolSession.tool_id, ToolSession.state, ToolSession.state_rev
            )
            .where(ToolSession.context == EDITOR_CHAT_CONTEXT)
            .order_by(ToolSession.user_id, ToolSession.tool_id)
        )
        return {
            (row.user_id, row.tool_id): StoredChat(
                row.state_rev, list(row.state.get("messages", []))
            )
            for row in rows
        }


class Process:
    """A server process running ``ChatService`` directly: one guard, one service."""

    def __init__(
        self,
        process: testing.Process,
        provider: FakeProvider | None,
        guard: SingleFlightGuard,
        repository: type[ToolSessionRepository],
    ) -> None:
        world = process.world
        assert isinstance(world, ChatWorld)
        self.process = process
        self.guard = guard
        self.service = ChatService(
            session_factory=world.session_factory,
            provider=provider or streaming_provider(),
            guard=guard,
            variant=world.variant,
            new_id=world.ids.new_id,
            repository_factory=world.ledger.repository(world.ids.new_id, repository),
        )

    async def send(
        self,
        user_id: uuid.UUID,
        tool_id: uuid.UUID,
        text: str,
        *,
        disconnect_after_deltas: int | None = None,
    ) -> Request:
        """One chat request through ``ChatService.send``, its events recorded as they come.

        ``disconnect_after_deltas``: once that many deltas have arrived, a
        separate task (the client going away) cancels this request, at
        whatever point the scheduler lets it run.
        """
        streaming = asyncio.Event()

        async def handle(request: Request) -> None:
            disconnect = None
            if disconnect_after_deltas is not None:
                disconnect = asyncio.create_task(
                    _cancel_when_set(streaming, asyncio.current_task())
                )
            deltas = 0
            try:
                async with contextlib.aclosing(self.service.send(user_id, tool_id, text)) as events:
                    async for received in events:
                        request.receive(received)
                        deltas += isinstance(received, DeltaEvent)
                        if (
                            disconnect_after_deltas is not None
                            and deltas >= disconnect_after_deltas
                        ):
                            streaming.set()
            finally:
                if disconnect is not None and not disconnect.done():
                    disconnect.cancel()

        return await self.process.call(handle, what="send", subject=Ask(user_id, tool_id, text))


async def _cancel_when_set(streaming: asyncio.Event, request: asyncio.Task[Any] | None) -> None:
    await streaming.wait()
    if request is not None and not request.done():
        request.cancel()


class WebProcess:
    """A server process serving the ASGI app; requests are real HTTP requests through httpx."""

    def __init__(self, process: testing.Process, provider: FakeProvider | None) -> None:
        world = process.world
        assert isinstance(world, ChatWorld)
        self.process = process
        app = create_app(
            session_factory=world.session_factory,
            provider=provider or streaming_provider(),
            guard=SingleFlightGuard(),
            variant=world.variant,
        )
        process.singleton(lambda: app, key="app")

    async def post(self, user_id: uuid.UUID, tool_id: uuid.UUID, text: str) -> Request:
        """``POST /tools/{tool_id}/chat``: the SSE stream read as chat events, or the JSON error."""
        request = await self.process.post(
            f"/tools/{tool_id}/chat",
            json={"message": text},
            headers={USER_ID_HEADER: str(user_id)},
            subject=Ask(user_id, tool_id, text),
            what="POST /chat",  # the request's column in the interleaving table: web-1 POST /chat
        )
        try:
            request.events[:] = [_chat_event(e) for e in request.events]
        except (KeyError, TypeError, ValueError) as bad:
            ask(request).malformed = f"{type(bad).__name__}: {bad}"
        return request


def _chat_event(received: SseEvent) -> Any:
    payload = received.data
    if received.event == "meta":
        return MetaEvent(
            message_id=uuid.UUID(payload["message_id"]),
            assistant_message_id=uuid.UUID(payload["assistant_message_id"]),
        )
    if received.event == "delta":
        return DeltaEvent(text=str(payload["text"]))
    if received.event == "done":
        reply = payload.get("assistant_message_id")
        return DoneEvent(
            reason="stop" if payload.get("reason") == "stop" else "error",
            assistant_message_id=None if reply is None else uuid.UUID(reply),
            orphaned=payload.get("orphaned") is True,
        )
    raise ValueError(f"unknown SSE event {received.event!r}")


# ---- what the invariants read of a request ---------------------------------------------


def ask(request: Request) -> Ask:
    subject = request.subject
    assert isinstance(subject, Ask)
    return subject


def reply_saved(request: Request) -> bool:
    done = request.first(DoneEvent)
    return done is not None and done.reason == "stop"


def busy_message(request: Request) -> str | None:
    """The text of the 409 "chat busy" answer, if the guard turned the request away."""
    if request.outcome != "refused":
        return None
    if isinstance(request.body, dict):
        return str(request.body.get("message"))
    return str(request.exception)


# ---- the world's parts -----------------------------------------------------------------

_EARLIER = 0xE  # the "request number" of ids of earlier messages
_EARLIER_IDS = frozenset(str(uuid.UUID(int=(_EARLIER << 64) | k)) for k in range(1, 201))


def _earlier_chat(exchanges: int) -> dict[str, Any]:
    """The teacher's chat row with ``exchanges`` earlier questions and replies."""
    messages = []
    for exchange in range(exchanges):
        question = uuid.UUID(int=(_EARLIER << 64) | (2 * exchange + 1))
        reply = uuid.UUID(int=(_EARLIER << 64) | (2 * exchange + 2))
        messages.append(ChatMessage("user", QUESTION, question).to_json())
        messages.append(ChatMessage("assistant", REPLY, reply, in_reply_to=question).to_json())
    return {
        "id": uuid.UUID(int=(_EARLIER << 64)),
        "tool_id": SCRIPT,
        "user_id": TEACHER,
        "context": EDITOR_CHAT_CONTEXT,
        "state": {"messages": messages},
        "state_rev": 1,
    }


def streaming_provider(**options: Any) -> FakeProvider:
    """The LLM as the simulations see it: a reply in 3 chunks, 50 ms (virtual) apart.

    The delay matters: while one request streams, the virtual clock moves, so
    requests waiting on SQLite's lock or on the scheduler get to run.
    """
    options.setdefault("reply", REPLY)
    options.setdefault("chunks", 3)
    options.setdefault("delay", 0.05)
    return FakeProvider(**options)


def chat_world(variant: Variant = "fixed", *, history: int = 0) -> Any:
    """The world factory of a simulation: ``world=chat_world("pre_fix", history=1)``.

    ``history``: earlier exchanges (question and reply) already stored in the
    teacher's chat of the script when each schedule starts (written with
    state_rev 1). Without them, the first writes create the row, and on
    PostgreSQL the second creator waits for the first to commit.
    """
    return ChatWorld.factory(schema=create_schema, variant=variant, history=history)
