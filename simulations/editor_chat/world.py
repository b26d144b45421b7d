"""The simulated editor-chat deployment: processes, requests, and what each request saw.

A ``ChatWorld`` is made once per exploration on a fresh database (engine,
schema, warm pool) and reset before every schedule. Inside a schedule the
body asks for processes and runs requests through them at once::

    first, second = world.process("web-1"), world.process("web-2")
    await world.run(first.send(TEACHER, SCRIPT, QUESTION), second.send(TEACHER, SCRIPT, QUESTION))

A process is what one server process has: its own ``SingleFlightGuard`` and
its own ``ChatService`` (or ASGI app, see ``web_process``). Every request is
recorded as a ``Request``: when it started and ended on the world's step
counter, the events it received, how it ended. The invariants
(``simulations.editor_chat.invariants``) read these records and the database.

Determinism: in handler processes, message and row ids come from
``SimulatedIds`` (request n's k-th id is ``UUID(int=n << 64 | k)``), never
from ``uuid4``. The ASGI app (``editor_chat.web.create_app``) takes no id
generator and uses ``uuid4``: those ids decide nothing, and invariant messages
name requests (T1, T2), never ids. The step counter counts recorded events,
never wall time.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx
from sqlalchemy import delete, event, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

import interlace
from editor_chat import (
    EDITOR_CHAT_CONTEXT,
    ChatBusy,
    ChatEvent,
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
    make_engine,
    make_session_factory,
)
from editor_chat.web import USER_ID_HEADER, create_app
from interlace.db import postgres
from interlace.db.supply import Database
from interlace.lowlevel import label_task

Variant = Literal["fixed", "pre_fix"]
Pair = tuple[uuid.UUID, uuid.UUID]  # (user_id, tool_id)
Outcome = Literal["running", "streamed", "busy", "failed", "cancelled"]
RepositoryWrapper = type[ToolSessionRepository]

TEACHER = uuid.UUID("00000000-0000-4000-8000-0000000000a1")
OTHER_TEACHER = uuid.UUID("00000000-0000-4000-8000-0000000000a2")
SCRIPT = uuid.UUID("00000000-0000-4000-8000-0000000000b1")
QUESTION = "Hur loopar jag över en lista?"
FOLLOW_UP = "Och hur gör jag med en while-loop?"
REPLY = "Använd en for-loop: for elev in klass: print(elev)"

# The production busy timeout of editor_chat's SQLite engines (seconds); interlace
# waits it out in virtual time, so correct code that waits for the lock passes.
SQLITE_BUSY_TIMEOUT = 5
# Pool: at least the concurrent requests of any simulation here, plus the reader.
POOL_SIZE = 6

_REQUEST: ContextVar[int] = ContextVar("editor_chat_simulated_request", default=0)


class SimulatedIds:
    """Deterministic UUIDs, attributed to the request whose task drew them.

    Request ``n``'s ``k``-th id is ``UUID(int=n << 64 | k)``; ids drawn outside
    any request are request 0's. ``ChatService.send`` draws its user message's
    id first, so a request's first id is its question's, even when the request
    failed before telling the client.
    """

    def __init__(self) -> None:
        self._drawn: dict[int, int] = {}

    def new_id(self) -> uuid.UUID:
        number = _REQUEST.get()
        count = self._drawn.get(number, 0) + 1
        self._drawn[number] = count
        return uuid.UUID(int=(number << 64) | count)

    def first_of(self, number: int) -> uuid.UUID | None:
        """The first id request ``number`` drew (its question's), if it drew any."""
        return uuid.UUID(int=(number << 64) | 1) if self._drawn.get(number) else None

    def reset(self) -> None:
        self._drawn.clear()


class UpdateLedger:
    """Counts the committed updates of each chat, and the state_rev conflicts met.

    It sees every update through the repository the services use
    (``ChatService(repository_factory=...)``) and counts one only once its
    transaction has committed (SQLAlchemy's ``after_commit`` session event).
    """

    def __init__(self) -> None:
        self.committed: dict[Pair, int] = {}
        self.conflicts = 0

    def repository(
        self,
        new_id: Callable[[], uuid.UUID],
        base: RepositoryWrapper = ToolSessionRepository,
    ) -> Callable[[AsyncSession], ToolSessionRepository]:
        """A ``repository_factory`` for ``ChatService`` that counts on ``base``'s updates."""
        counting = _counting(base)

        def make(session: AsyncSession) -> ToolSessionRepository:
            made: ToolSessionRepository = counting(session, new_id=new_id, ledger=self)
            return made

        return make

    def reset(self) -> None:
        self.committed.clear()
        self.conflicts = 0


def _counting(base: RepositoryWrapper) -> Any:
    """``base`` with the ledger's bookkeeping around ``update_state``."""

    class LedgerRepository(base):  # type: ignore[valid-type,misc]
        def __init__(
            self,
            session: AsyncSession,
            *,
            new_id: Callable[[], uuid.UUID],
            ledger: UpdateLedger,
        ) -> None:
            super().__init__(session, new_id=new_id)
            self._ledger = ledger
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
                self._ledger.conflicts += 1
                raise
            self._pending.append((key.user_id, key.tool_id))
            return snapshot

        def _on_commit(self, session: object) -> None:
            for pair in self._pending:
                self._ledger.committed[pair] = self._ledger.committed.get(pair, 0) + 1
            self._pending.clear()

    return LedgerRepository


@dataclass
class Request:
    """One simulated chat request and everything it saw."""

    number: int
    label: str
    """The request's task in the interleaving table (T1, T2, ...)."""
    process: str
    user_id: uuid.UUID
    tool_id: uuid.UUID
    text: str
    started: int
    """World step at which the request arrived (before the guard)."""
    ended: int | None = None
    events: list[ChatEvent] = field(default_factory=list)
    event_steps: list[int] = field(default_factory=list)
    outcome: Outcome = "running"
    error: str | None = None
    """``Type: message`` of the error that ended the request, if one did."""
    busy_message: str | None = None
    """The text of the 409 "chat busy" answer, if the guard turned the request away."""
    in_flight_when_refused: tuple[str, ...] = ()
    """Labels of this process's requests for the same chat in flight at the 409."""
    http_status: int | None = None
    malformed: str | None = None
    """What was wrong with the response, if it could not be read as the chat protocol."""
    drawn_question_id: uuid.UUID | None = None

    @property
    def pair(self) -> Pair:
        return (self.user_id, self.tool_id)

    @property
    def past_guard(self) -> bool:
        """Whether the single-flight guard let the request in."""
        return self.outcome != "busy" and self.outcome != "running"

    @property
    def meta(self) -> MetaEvent | None:
        return next((e for e in self.events if isinstance(e, MetaEvent)), None)

    @property
    def done(self) -> DoneEvent | None:
        return next((e for e in self.events if isinstance(e, DoneEvent)), None)

    @property
    def question_id(self) -> uuid.UUID | None:
        """The id of this request's user message: from ``meta``, else the first id it drew."""
        meta = self.meta
        return meta.message_id if meta is not None else self.drawn_question_id

    @property
    def reply_saved(self) -> bool:
        done = self.done
        return done is not None and done.reason == "stop"

    def step_of(self, kind: type[ChatEvent]) -> int | None:
        for step, received in zip(self.event_steps, self.events, strict=True):
            if isinstance(received, kind):
                return step
        return None

    def ending(self) -> str:
        """How the request ended, for messages: ``streamed a reply``, ``409 chat busy``..."""
        if self.outcome == "busy":
            return "was turned away with 409 (chat busy)"
        if self.outcome == "cancelled":
            return "was cancelled"
        if self.outcome == "failed":
            return f"failed with {self.error}"
        if self.outcome == "running":
            return "had not ended"
        done = self.done
        if done is None:
            return "streamed without done"
        return "streamed a reply" if done.reason == "stop" else "ended with done(reason=error)"


class ChatWorld:
    """The editor chat's database and this schedule's processes and requests."""

    def __init__(
        self, database: Database, engine: AsyncEngine, variant: Variant, history: int = 0
    ) -> None:
        self.database = database
        self.engine = engine
        self.variant: Variant = variant
        self.history = history
        """Earlier exchanges already in the teacher's chat when a schedule starts."""
        self.session_factory: async_sessionmaker[AsyncSession] = make_session_factory(engine)
        self.ids = SimulatedIds()
        self.ledger = UpdateLedger()
        self.requests: list[Request] = []
        self.processes: dict[str, Process | WebProcess] = {}
        self.step = 0
        self.counts_commits = True
        """False once a process the ledger cannot see (an ASGI app) has run."""
        self._stored: dict[Pair, StoredChat] | None = None

    async def reset(self) -> None:
        """Empty the table and forget the previous schedule (runs outside the schedule)."""
        async with self.engine.begin() as connection:
            await connection.execute(delete(ToolSession))
            if self.history:
                await connection.execute(insert(ToolSession).values(**_earlier_chat(self.history)))
        self.ids.reset()
        self.ledger.reset()
        self.requests.clear()
        self.processes.clear()
        self.step = 0
        self.counts_commits = True
        self._stored = None

    def process(
        self,
        name: str,
        provider: FakeProvider | None = None,
        *,
        guard: SingleFlightGuard | None = None,
        repository: RepositoryWrapper | None = None,
    ) -> Process:
        """The process called ``name`` (made on first use): one guard, one ChatService.

        ``guard`` and ``repository`` (a subclass of ``ToolSessionRepository``)
        replace the production parts, to check that the invariants catch a
        broken one.
        """
        existing = self.processes.get(name)
        if isinstance(existing, Process):
            return existing
        if existing is not None:
            raise ValueError(f"process {name!r} is already an ASGI process")
        made = Process(
            self,
            name,
            provider or streaming_provider(),
            guard or SingleFlightGuard(),
            repository or ToolSessionRepository,
        )
        self.processes[name] = made
        return made

    def web_process(self, name: str, provider: FakeProvider | None = None) -> WebProcess:
        """The process called ``name`` serving the ASGI app (``editor_chat.web``)."""
        existing = self.processes.get(name)
        if isinstance(existing, WebProcess):
            return existing
        if existing is not None:
            raise ValueError(f"process {name!r} is already a handler process")
        made = WebProcess(self, name, provider or streaming_provider())
        self.processes[name] = made
        self.counts_commits = False
        return made

    async def run(self, *requests: Awaitable[Request]) -> list[Request]:
        """Run the requests at once, each in its own task; return their records.

        A cancelled request is an outcome, recorded on its ``Request``; any
        other exception escaping a request is a failure of the schedule.
        """
        results = await asyncio.gather(*requests, return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException) and not isinstance(result, asyncio.CancelledError):
                raise result
        return [r for r in results if isinstance(r, Request)]

    def tick(self) -> int:
        self.step += 1
        return self.step

    def open_request(
        self, process: str, user_id: uuid.UUID, tool_id: uuid.UUID, text: str
    ) -> Request:
        """Record a request arriving, in the current task, and attribute its ids to it."""
        number = len(self.requests) + 1
        _REQUEST.set(number)  # the task's own context: ids drawn from here on are its
        task = asyncio.current_task()
        label = task.get_name() if task is not None else f"request {number}"
        request = Request(number, label, process, user_id, tool_id, text, started=self.tick())
        self.requests.append(request)
        return request

    def receive(self, request: Request, received: ChatEvent) -> None:
        request.events.append(received)
        request.event_steps.append(self.tick())

    def close_request(self, request: Request) -> None:
        request.ended = self.tick()
        request.drawn_question_id = self.ids.first_of(request.number)

    def in_flight(self, process: str, pair: Pair, besides: Request) -> tuple[str, ...]:
        return tuple(
            r.label
            for r in self.requests
            if r is not besides and r.process == process and r.pair == pair and r.ended is None
        )

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
            if request.question_id is not None and str(request.question_id) == message_id:
                return request, "question"
            meta = request.meta
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
        return f"{request.label}'s {kind} (position {position + 1})"

    def successful_updates(self, pair: Pair) -> tuple[int, str]:
        """How many updates of ``pair``'s row succeeded, and how that was counted."""
        earlier = 1 if self.history and pair == (TEACHER, SCRIPT) else 0  # the history's write
        if self.counts_commits:
            committed = self.ledger.committed.get(pair, 0) + earlier
            return committed, "committed updates seen by the repository"
        acknowledged = earlier
        for request in self.requests:
            if request.pair == pair:
                acknowledged += (request.meta is not None) + request.reply_saved
        return acknowledged, "writes acknowledged to clients (meta, done)"

    async def stored(self) -> dict[Pair, StoredChat]:
        """Every stored editor chat, read once per schedule after the requests ended."""
        if self._stored is None:
            async with self.session_factory() as session:
                rows = (
                    await session.execute(
                        select(
                            ToolSession.user_id,
                            ToolSession.tool_id,
                            ToolSession.state,
                            ToolSession.state_rev,
                        )
                        .where(ToolSession.context == EDITOR_CHAT_CONTEXT)
                        .order_by(ToolSession.user_id, ToolSession.tool_id)
                    )
                ).all()
            self._stored = {
                (row.user_id, row.tool_id): StoredChat(
                    state_rev=row.state_rev, messages=list(row.state.get("messages", []))
                )
                for row in rows
            }
        return self._stored


@dataclass(frozen=True)
class StoredChat:
    """A chat as the database holds it after the schedule."""

    state_rev: int
    messages: list[dict[str, Any]]


class Process:
    """A server process running the handler directly: one guard, one service."""

    def __init__(
        self,
        world: ChatWorld,
        name: str,
        provider: FakeProvider,
        guard: SingleFlightGuard,
        repository: RepositoryWrapper,
    ) -> None:
        self.world = world
        self.name = name
        self.guard = guard
        self.service = ChatService(
            session_factory=world.session_factory,
            provider=provider,
            guard=self.guard,
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
        """One chat request through ``ChatService.send``, recorded as it goes.

        ``disconnect_after_deltas``: once that many deltas have arrived, a
        separate task (the client going away) cancels this request, at
        whatever point the scheduler lets it run.
        """
        world = self.world
        label_task(f"{self.name} send")  # the request's column in the interleaving table
        request = world.open_request(self.name, user_id, tool_id, text)
        streaming = asyncio.Event()
        disconnect = None
        if disconnect_after_deltas is not None:
            disconnect = asyncio.create_task(_cancel_when_set(streaming, asyncio.current_task()))
        deltas = 0
        try:
            async with contextlib.aclosing(self.service.send(user_id, tool_id, text)) as events:
                async for received in events:
                    world.receive(request, received)
                    deltas += isinstance(received, DeltaEvent)
                    if disconnect_after_deltas is not None and deltas >= disconnect_after_deltas:
                        streaming.set()
            request.outcome = "streamed"
        except ChatBusy as busy:
            request.outcome = "busy"
            request.busy_message = str(busy)
            request.in_flight_when_refused = world.in_flight(self.name, request.pair, request)
        except (StateConflict, RetriesExhausted) as error:
            request.outcome = "failed"
            request.error = f"{type(error).__name__}: {error}"
        except asyncio.CancelledError:
            request.outcome = "cancelled"
            raise
        finally:
            world.close_request(request)
            if disconnect is not None and not disconnect.done():
                disconnect.cancel()
        return request


async def _cancel_when_set(streaming: asyncio.Event, request: asyncio.Task[Any] | None) -> None:
    await streaming.wait()
    if request is not None and not request.done():
        request.cancel()


class WebProcess:
    """A server process serving the ASGI app; requests are real HTTP requests through httpx."""

    def __init__(self, world: ChatWorld, name: str, provider: FakeProvider) -> None:
        self.world = world
        self.name = name
        self.guard = SingleFlightGuard()
        # create_app takes no id generator: ids in this process come from uuid4. They
        # decide nothing (no branch depends on them), and messages name requests, not ids.
        self.app = create_app(
            session_factory=world.session_factory,
            provider=provider,
            guard=self.guard,
            variant=world.variant,
        )
        self._app = _RememberErrors(self.app)

    async def post(self, user_id: uuid.UUID, tool_id: uuid.UUID, text: str) -> Request:
        """``POST /tools/{tool_id}/chat``, reading the whole SSE stream (or the JSON error)."""
        world = self.world
        label_task(f"{self.name} POST /chat")  # the request's column in the interleaving table
        request = world.open_request(self.name, user_id, tool_id, text)
        raised: list[Exception] = []
        _APP_ERRORS.set(raised)  # this task's own context: the app runs in it
        # raise_app_exceptions=False: a stream the app breaks off still reaches the
        # client as far as it got, as with a real server; _RememberErrors keeps the error
        transport = httpx.ASGITransport(app=self._app, raise_app_exceptions=False)
        try:
            async with httpx.AsyncClient(
                transport=transport, base_url="http://editor-chat.test", trust_env=False
            ) as client:
                response = await client.post(
                    f"/tools/{tool_id}/chat",
                    json={"message": text},
                    headers={USER_ID_HEADER: str(user_id)},
                )
            request.http_status = response.status_code
            self._record(request, response)
            for error in raised:
                if not isinstance(error, StateConflict | RetriesExhausted):
                    raise error  # a bug, not an outcome: it fails the schedule
                # saving the reply failed after the stream had started: it broke off
                request.outcome = "failed"
                request.error = f"the stream broke off: {type(error).__name__}: {error}"
        except asyncio.CancelledError:
            request.outcome = "cancelled"
            raise
        finally:
            world.close_request(request)
        return request

    def _record(self, request: Request, response: httpx.Response) -> None:
        world = self.world
        if response.status_code == 200:
            try:
                for received in parse_sse(response.text):
                    world.receive(request, received)
            except ValueError as bad:
                request.malformed = str(bad)
            request.outcome = "streamed"
            return
        body = _json_or_text(response)
        if (
            response.status_code == 409
            and isinstance(body, dict)
            and body.get("error") == "chat_busy"
        ):
            request.outcome = "busy"
            request.busy_message = str(body.get("message"))
            request.in_flight_when_refused = world.in_flight(self.name, request.pair, request)
            return
        request.outcome = "failed"
        request.error = f"HTTP {response.status_code}: {json.dumps(body, ensure_ascii=False)}"


_APP_ERRORS: ContextVar[list[Exception]] = ContextVar("editor_chat_simulated_app_errors")


class _RememberErrors:
    """ASGI wrapper that records what the app raised for the request's client to judge."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await self.app(scope, receive, send)
        except Exception as error:
            _APP_ERRORS.get().append(error)
            raise


def parse_sse(text: str) -> list[ChatEvent]:
    """The chat events of an SSE body (``event: NAME\\ndata: JSON\\n\\n`` frames)."""
    received: list[ChatEvent] = []
    for frame in text.split("\n\n"):
        if not frame.strip():
            continue
        fields = dict(line.split(": ", 1) for line in frame.splitlines() if ": " in line)
        name, data = fields.get("event"), fields.get("data")
        if name is None or data is None:
            raise ValueError(f"SSE frame without event or data: {frame!r}")
        received.append(_chat_event(name, json.loads(data)))
    return received


def _chat_event(name: str, payload: dict[str, Any]) -> ChatEvent:
    if name == "meta":
        return MetaEvent(
            message_id=uuid.UUID(payload["message_id"]),
            assistant_message_id=uuid.UUID(payload["assistant_message_id"]),
        )
    if name == "delta":
        return DeltaEvent(text=str(payload["text"]))
    if name == "done":
        reply = payload.get("assistant_message_id")
        return DoneEvent(
            reason="stop" if payload.get("reason") == "stop" else "error",
            assistant_message_id=None if reply is None else uuid.UUID(reply),
            orphaned=payload.get("orphaned") is True,
        )
    raise ValueError(f"unknown SSE event {name!r}")


def _json_or_text(response: httpx.Response) -> object:
    try:
        return response.json()
    except ValueError:
        return response.text


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


def chat_world(
    variant: Variant = "fixed", *, history: int = 0
) -> Callable[[Database], contextlib.AbstractAsyncContextManager[ChatWorld]]:
    """The world factory of a simulation: ``world=chat_world("pre_fix", history=1)``.

    ``history``: earlier exchanges (question and reply) already stored in the
    teacher's chat of the script when each schedule starts (written with
    state_rev 1). Without them, the first writes create the row, and on
    PostgreSQL the second creator waits for the first to commit.
    """

    @contextlib.asynccontextmanager
    async def world(database: Database) -> AsyncIterator[ChatWorld]:
        if database.kind == "sqlite":
            engine = make_engine(
                database.url, sqlite_busy_timeout=SQLITE_BUSY_TIMEOUT, pool_size=POOL_SIZE
            )
        else:
            engine = make_engine(database.url, pool_size=POOL_SIZE)
        try:
            await create_schema(engine)
            await interlace.warm_pool(engine, POOL_SIZE)
            async with contextlib.AsyncExitStack() as stack:
                if database.kind == "postgres":
                    # requests wait on each other's row locks: the monitor proves those
                    # waits blocked on parked tasks, so the scheduler goes on deciding
                    await stack.enter_async_context(postgres.monitor(engine))
                yield ChatWorld(database, engine, variant, history)
        finally:
            await engine.dispose()

    return world


async def reset_world(world: ChatWorld) -> None:
    """The ``reset=`` of every editor-chat simulation."""
    await world.reset()
