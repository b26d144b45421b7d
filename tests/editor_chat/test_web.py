"""The HTTP layer, in-process through httpx's ASGI transport."""

from __future__ import annotations

import json
import uuid
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import pytest_asyncio
from sqlalchemy import func, select

from editor_chat import CHAT_BUSY_MESSAGE, FakeProvider, SingleFlightGuard, ToolSession
from editor_chat.__main__ import main
from editor_chat.web import create_app

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
    from starlette.applications import Starlette

USER = uuid.UUID(int=1)
TOOL = uuid.UUID(int=2)
CHAT_PATH = f"/tools/{TOOL}/chat"
CALLER = {"X-User-Id": str(USER)}
REPLY = "Hej på dig! 🙂"


@pytest.fixture
def guard() -> SingleFlightGuard:
    return SingleFlightGuard()


@pytest.fixture
def app(session_factory: async_sessionmaker[AsyncSession], guard: SingleFlightGuard) -> Starlette:
    return create_app(
        provider=FakeProvider(reply=REPLY, chunks=2), session_factory=session_factory, guard=guard
    )


@pytest_asyncio.fixture
async def client(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://editor.test") as client:
        yield client


def parse_sse(body: str) -> list[tuple[str, Any]]:
    assert body.endswith("\n\n")
    events = []
    for frame in body[: -len("\n\n")].split("\n\n"):
        event_line, data_line = frame.split("\n")
        assert event_line.startswith("event: ")
        assert data_line.startswith("data: ")
        events.append((event_line[len("event: ") :], json.loads(data_line[len("data: ") :])))
    return events


async def stored_rows(session_factory: async_sessionmaker[AsyncSession]) -> int:
    async with session_factory() as session:
        return (await session.execute(select(func.count()).select_from(ToolSession))).scalar_one()


@pytest.mark.asyncio
async def test_chat_streams_sse_frames_with_non_ascii_kept(client: httpx.AsyncClient) -> None:
    response = await client.post(CHAT_PATH, headers=CALLER, json={"message": "Hur gör jag?"})

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = parse_sse(response.text)
    meta = events[0][1]
    assert events == [
        ("meta", meta),
        ("delta", {"text": "Hej på "}),
        ("delta", {"text": "dig! 🙂"}),
        (
            "done",
            {
                "reason": "stop",
                "assistant_message_id": meta["assistant_message_id"],
                "orphaned": False,
            },
        ),
    ]
    assert 'event: delta\ndata: {"text":"Hej på "}\n\n' in response.text  # not \\u00e5

    thread = await client.get(CHAT_PATH, headers=CALLER)
    assert thread.status_code == 200
    assert thread.json() == {
        "messages": [
            {
                "role": "user",
                "content": "Hur gör jag?",
                "message_id": meta["message_id"],
                "in_reply_to": None,
            },
            {
                "role": "assistant",
                "content": REPLY,
                "message_id": meta["assistant_message_id"],
                "in_reply_to": meta["message_id"],
            },
        ]
    }


@pytest.mark.asyncio
async def test_busy_chat_is_a_409_json_error_with_the_swedish_text(
    client: httpx.AsyncClient,
    guard: SingleFlightGuard,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    with guard.hold(USER, TOOL):  # a request is streaming for this (user, tool)
        response = await client.post(CHAT_PATH, headers=CALLER, json={"message": "Hej"})

    assert response.status_code == 409
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {
        "error": "chat_busy",
        "message": "En chatförfrågan pågår redan. Försök igen om en stund.",
    }
    assert "pågår" in response.text
    assert response.json()["message"] == CHAT_BUSY_MESSAGE
    assert await stored_rows(session_factory) == 0


@pytest.mark.parametrize(
    ("path", "headers", "body", "status", "message"),
    [
        pytest.param(
            CHAT_PATH,
            CALLER,
            {"message": ""},
            422,
            "Meddelandet får inte vara tomt.",
            id="empty",
        ),
        pytest.param(
            CHAT_PATH,
            CALLER,
            {"message": "   "},
            422,
            "Meddelandet får inte vara tomt.",
            id="whitespace",
        ),
        pytest.param(
            CHAT_PATH,
            CALLER,
            {"message": "x" * 4001},
            422,
            "Meddelandet är för långt: högst 4000 tecken.",
            id="too-long",
        ),
        pytest.param(
            CHAT_PATH,
            CALLER,
            {"message": 42},
            422,
            "Fältet 'message' måste vara en text.",
            id="not-text",
        ),
        pytest.param(
            "/tools/inte-ett-uuid/chat",
            CALLER,
            {"message": "Hej"},
            422,
            "Ogiltigt verktygs-id: ange ett UUID i adressen.",
            id="bad-tool-id",
        ),
        pytest.param(
            CHAT_PATH,
            {},
            {"message": "Hej"},
            422,
            "Ogiltigt användar-id: ange ett UUID i rubriken X-User-Id.",
            id="no-user-id",
        ),
        pytest.param(
            CHAT_PATH,
            {"X-User-Id": "12345"},
            {"message": "Hej"},
            422,
            "Ogiltigt användar-id: ange ett UUID i rubriken X-User-Id.",
            id="bad-user-id",
        ),
        pytest.param(
            CHAT_PATH,
            CALLER,
            {"text": "Hej"},
            400,
            "Förfrågan måste vara ett JSON-objekt med fältet 'message'.",
            id="no-message-field",
        ),
        pytest.param(
            CHAT_PATH,
            CALLER,
            ["Hej"],
            400,
            "Förfrågan måste vara ett JSON-objekt med fältet 'message'.",
            id="not-an-object",
        ),
    ],
)
@pytest.mark.asyncio
async def test_invalid_requests_are_json_errors_and_write_nothing(
    client: httpx.AsyncClient,
    session_factory: async_sessionmaker[AsyncSession],
    path: str,
    headers: dict[str, str],
    body: Any,
    status: int,
    message: str,
) -> None:
    response = await client.post(path, headers=headers, json=body)

    assert response.status_code == status
    assert response.json()["message"] == message
    assert await stored_rows(session_factory) == 0


@pytest.mark.asyncio
async def test_body_that_is_not_json_is_a_400(
    client: httpx.AsyncClient, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    response = await client.post(
        CHAT_PATH, headers={**CALLER, "Content-Type": "application/json"}, content=b"{nej"
    )

    assert response.status_code == 400
    assert response.json() == {
        "error": "malformed_body",
        "message": "Förfrågan måste vara ett JSON-objekt med fältet 'message'.",
    }
    assert await stored_rows(session_factory) == 0


@pytest.mark.asyncio
async def test_reading_a_thread_needs_valid_ids(client: httpx.AsyncClient) -> None:
    assert (await client.get(CHAT_PATH, headers=CALLER)).json() == {"messages": []}
    response = await client.get(CHAT_PATH, headers={"X-User-Id": "nej"})
    assert response.status_code == 422


@pytest.mark.asyncio
async def test_app_from_a_database_url_creates_its_schema_at_startup(database_url: str) -> None:
    app = create_app(database_url, FakeProvider(reply="Hej", chunks=1))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://editor.test") as client:
            user = {"X-User-Id": str(uuid.uuid4())}
            response = await client.post(CHAT_PATH, headers=user, json={"message": "Hej"})
            thread = await client.get(CHAT_PATH, headers=user)

    assert [name for name, _ in parse_sse(response.text)] == ["meta", "delta", "done"]
    assert [m["content"] for m in thread.json()["messages"]] == ["Hej", "Hej"]


def test_create_app_takes_an_engine_or_a_session_factory_not_both(
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    engine = session_factory.kw["bind"]
    with pytest.raises(ValueError, match="not both"):
        create_app(engine=engine, session_factory=session_factory)


def test_command_line_help_shows_how_to_try_it(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_status:
        main(["--help"])
    assert exit_status.value.code == 0
    assert "curl -N -X POST" in capsys.readouterr().out
