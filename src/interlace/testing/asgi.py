"""An httpx client per simulated process, talking to its ASGI app in-process; SSE parsing.

``asgi_client(app)`` is what ``Process.client`` returns: real HTTP requests
through httpx's ASGI transport, in the calling task, so the scheduler sees
every statement the app runs. The app's lifespan does not run: the world
owns the engine. What the app raises is not turned into an exception in the
client (``raise_app_exceptions=False``, as a real server would answer 500 or
break the stream off); it is kept on the current request's record
(``Request.exception``) for ``Process.http`` to judge.

``parse_sse(text)`` reads a ``text/event-stream`` body into ``SseEvent``s
(``event``, ``data``: the JSON value when the data parses, else the text).

>>> parse_sse('event: meta\\ndata: {"id": 1}\\n\\nevent: done\\ndata: ok\\n\\n')
[SseEvent(event='meta', data={'id': 1}), SseEvent(event='done', data='ok')]
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import httpx

from interlace.testing.requests import current_request

BASE_URL = "http://testserver"


@dataclass(frozen=True)
class SseEvent:
    """One server-sent event: its name (``message`` when the frame names none) and data."""

    event: str
    data: Any


def asgi_client(app: Any, *, base_url: str = BASE_URL) -> httpx.AsyncClient:
    """An httpx client for ``app`` (any ASGI app); the app's exceptions go to the request record."""
    transport = httpx.ASGITransport(app=_RecordErrors(app), raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url=base_url, trust_env=False)


class _RecordErrors:
    """ASGI wrapper: what the app raises is kept on the current request's record."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await self.app(scope, receive, send)
        except Exception as error:
            request = current_request()
            if request is not None and request.exception is None:
                request.exception = error
            raise


def parse_sse(text: str) -> list[SseEvent]:
    """The events of an SSE body; ``ValueError`` for a frame without data."""
    events: list[SseEvent] = []
    for frame in text.replace("\r\n", "\n").split("\n\n"):
        if not frame.strip():
            continue
        name, data_lines = "message", []
        for line in frame.splitlines():
            field, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if field == "event":
                name = value
            elif field == "data":
                data_lines.append(value)
        if not data_lines:
            raise ValueError(f"SSE frame without data: {frame!r}")
        data = "\n".join(data_lines)
        try:
            events.append(SseEvent(name, json.loads(data)))
        except ValueError:
            events.append(SseEvent(name, data))
    return events


def response_body(response: httpx.Response) -> Any:
    """The JSON value of a response body, else its text (None when empty)."""
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        return response.text
