"""The editor chat over HTTP: a small ASGI app with a streaming (SSE) chat endpoint.

Starlette, because this layer needs only routing, JSON responses and a
streaming (SSE) response, which that small ASGI toolkit provides without
FastAPI's validation and dependency-injection layers, and httpx's ASGI
transport tests it in-process.

Endpoints (the caller's identity comes from `X-User-Id`, a stand-in for the
real app's login session):

- `POST /tools/{tool_id}/chat` with JSON `{"message": "..."}`: streams
  `text/event-stream` frames `event: NAME\\ndata: JSON\\n\\n` (meta, delta...,
  done). The first event is awaited before the response starts, so a busy
  chat (409), an invalid request (422) or a failed save come back as plain
  JSON `{"error": CODE, "message": TEXT}` instead of a stream.
- `GET /tools/{tool_id}/chat`: the stored thread, `{"messages": [...]}`.
"""

from __future__ import annotations

import json
import uuid
from contextlib import aclosing, asynccontextmanager
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from editor_chat.database import create_schema, make_engine, make_session_factory
from editor_chat.errors import ChatBusy, InvalidChatRequest, RetriesExhausted, StateConflict
from editor_chat.guard import SingleFlightGuard
from editor_chat.provider import FakeProvider
from editor_chat.service import ChatService, Variant

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, AsyncIterator

    from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
    from starlette.requests import Request

    from editor_chat.events import ChatEvent
    from editor_chat.provider import ChatProvider

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///editor_chat.db"
USER_ID_HEADER = "X-User-Id"

INVALID_JSON = "Förfrågan måste vara ett JSON-objekt med fältet 'message'."
MESSAGE_NOT_TEXT = "Fältet 'message' måste vara en text."
INVALID_TOOL_ID = "Ogiltigt verktygs-id: ange ett UUID i adressen."
INVALID_USER_ID = f"Ogiltigt användar-id: ange ett UUID i rubriken {USER_ID_HEADER}."
THREAD_CHANGED = "Chatten ändrades samtidigt från ett annat håll. Försök igen."


def create_app(
    database_url: str = DEFAULT_DATABASE_URL,
    provider: ChatProvider | None = None,
    *,
    engine: AsyncEngine | None = None,
    session_factory: async_sessionmaker[AsyncSession] | None = None,
    guard: SingleFlightGuard | None = None,
    variant: Variant = "fixed",
) -> Starlette:
    """Build the ASGI app.

    By default the app owns its database: it creates an engine for
    `database_url`, creates the schema at startup and disposes of the engine
    at shutdown. Pass `engine` or `session_factory` instead to use a database
    you own (then the schema is yours to create). `provider` defaults to a
    `FakeProvider`; `guard` to a new guard (one per app, as one per process).
    """
    if engine is not None and session_factory is not None:
        raise ValueError("pass engine or session_factory, not both")
    owned_engine = None
    if session_factory is None:
        if engine is None:
            owned_engine = engine = make_engine(database_url)
        session_factory = make_session_factory(engine)

    service = ChatService(
        session_factory=session_factory,
        provider=provider if provider is not None else FakeProvider(),
        guard=guard if guard is not None else SingleFlightGuard(),
        variant=variant,
    )
    api = _ChatApi(service)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if owned_engine is not None:
            await create_schema(owned_engine)
        try:
            yield
        finally:
            if owned_engine is not None:
                await owned_engine.dispose()

    return Starlette(
        routes=[
            Route("/tools/{tool_id}/chat", api.post_chat, methods=["POST"]),
            Route("/tools/{tool_id}/chat", api.get_thread, methods=["GET"]),
        ],
        lifespan=lifespan,
    )


class _ChatApi:
    def __init__(self, service: ChatService) -> None:
        self._service = service

    async def post_chat(self, request: Request) -> Response:
        try:
            user_id, tool_id = _caller_and_tool(request)
            text = await _message_text(request)
        except InvalidChatRequest as invalid:
            return _error(422, "invalid_request", str(invalid))
        except _MalformedBody as malformed:
            return _error(400, "malformed_body", str(malformed))

        events = self._service.send(user_id, tool_id, text)
        try:
            first = await anext(events)
        except InvalidChatRequest as invalid:
            return _error(422, "invalid_request", str(invalid))
        except ChatBusy as busy:
            return _error(409, "chat_busy", str(busy))
        except (RetriesExhausted, StateConflict):
            return _error(409, "thread_changed", THREAD_CHANGED)
        return StreamingResponse(_sse_frames(first, events), media_type="text/event-stream")

    async def get_thread(self, request: Request) -> Response:
        try:
            user_id, tool_id = _caller_and_tool(request)
        except InvalidChatRequest as invalid:
            return _error(422, "invalid_request", str(invalid))
        messages = await self._service.read_thread(user_id, tool_id)
        return _json(200, {"messages": messages})


async def _sse_frames(
    first: ChatEvent, rest: AsyncGenerator[ChatEvent, None]
) -> AsyncIterator[str]:
    # aclosing: when the client goes away, the handler's generator is closed at
    # once, which releases the guard and saves no reply.
    async with aclosing(rest):
        yield sse_frame(first)
        async for event in rest:
            yield sse_frame(event)


def sse_frame(event: ChatEvent) -> str:
    """`event: NAME\\ndata: JSON\\n\\n`, with non-ASCII characters kept as they are."""
    data = json.dumps(event.payload(), ensure_ascii=False, separators=(",", ":"))
    return f"event: {event.name}\ndata: {data}\n\n"


class _MalformedBody(Exception):
    pass


def _caller_and_tool(request: Request) -> tuple[uuid.UUID, uuid.UUID]:
    tool_id = _parse_uuid(request.path_params["tool_id"], INVALID_TOOL_ID)
    user_id = _parse_uuid(request.headers.get(USER_ID_HEADER), INVALID_USER_ID)
    return user_id, tool_id


def _parse_uuid(value: str | None, error: str) -> uuid.UUID:
    if value is None:
        raise InvalidChatRequest(error)
    try:
        return uuid.UUID(value)
    except ValueError:
        raise InvalidChatRequest(error) from None


async def _message_text(request: Request) -> str:
    try:
        body = json.loads(await request.body())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise _MalformedBody(INVALID_JSON) from None
    if not isinstance(body, dict) or "message" not in body:
        raise _MalformedBody(INVALID_JSON)
    message = body["message"]
    if not isinstance(message, str):
        raise InvalidChatRequest(MESSAGE_NOT_TEXT)
    return message


def _error(status: int, code: str, message: str) -> Response:
    return _json(status, {"error": code, "message": message})


def _json(status: int, content: Any) -> Response:
    # JSONResponse keeps non-ASCII as is (ensure_ascii=False), like the SSE frames.
    return JSONResponse(content, status_code=status)
