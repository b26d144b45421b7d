"""Simulated server processes: per-process singletons, per-request records, an ASGI client.

A real deployment runs several processes of one app against one database.
What a process keeps for its lifetime (an in-memory guard, a cache, the ASGI
app, its services) is shared by its requests and by no other process; that
is where per-process races and per-process guards live. ``world.process(name)``
makes one on first use in a schedule, and the world's reset forgets them all::

    web1, web2 = world.process("web-1"), world.process("web-2")
    guard = web1.singleton(SingleFlightGuard)          # one per process
    await world.run(
        web1.post("/items/1/reserve", json={"buyer": "ann"}),   # through web-1's app
        web2.call(lambda request: reserve(engine, 1, "bob"), what="reserve"),
    )

``call(handler)`` runs one request in the current task (``world.run`` gives
each its own): it opens a ``Request`` record, makes it the current request
(ids drawn belong to it, ``scoped`` objects are its own), names the task for
reports (``web-1 reserve``, ``interlace.lowlevel.label_task``), runs
``handler(request)`` and records how it ended. ``http(method, path, ...)``
does the same through the process's ASGI app and records the status, the
body or the SSE events, and what the app raised.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import TYPE_CHECKING, Any, TypeVar

import httpx

from interlace.lowlevel import label_task
from interlace.testing import ids as ids_module
from interlace.testing import requests as requests_module
from interlace.testing.asgi import asgi_client, parse_sse, response_body
from interlace.testing.requests import Request, current_step

if TYPE_CHECKING:
    from interlace.testing.world import World

_T = TypeVar("_T")
Handler = Callable[[Request], Awaitable[object]]


class Process:
    """One simulated server process of a world (see the module docstring)."""

    def __init__(self, world: World, name: str) -> None:
        self.world = world
        self.name = name
        self._singletons: dict[Hashable, Any] = {}

    def singleton(self, make: Callable[[], _T], key: Hashable = None) -> _T:
        """This process's one ``make()`` (keyed by ``make``, or by ``key``), made on first use."""
        slot = make if key is None else key
        if slot not in self._singletons:
            self._singletons[slot] = make()
        made: _T = self._singletons[slot]
        return made

    @property
    def app(self) -> Any:
        """This process's ASGI app: the world's ``app(process)``, or a singleton keyed ``"app"``."""

        def make() -> Any:
            if self.world.app is None:
                raise ValueError(
                    f"process {self.name} has no ASGI app: give the world app=(process) -> app, "
                    f"or make one with process.singleton(..., key='app')"
                )
            return self.world.app(self)

        return self.singleton(make, key="app")

    @property
    def client(self) -> httpx.AsyncClient:
        """An httpx client for this process's app (``interlace.testing.asgi``)."""
        return self.singleton(lambda: asgi_client(self.app), key="client")

    async def call(
        self, handler: Handler, *, what: str = "call", subject: object = None
    ) -> Request:
        """Run ``handler(request)`` as one simulated request of this process; return its record."""
        world = self.world
        task = asyncio.current_task()
        request = Request(
            number=len(world.requests) + 1,
            task=task.get_name() if task is not None else "main",
            process=self.name,
            what=what,
            subject=subject,
            started=current_step(),
        )
        world.requests.append(request)
        requests_module.enter(request)  # this task's own context: the request is its
        ids_module.enter_request(request.number)
        label_task(f"{self.name} {what}")
        try:
            request.body = await handler(request)
        except world.refusals_types as refusal:
            request.outcome, request.exception = "refused", refusal
            request.status = world.refusal_status(refusal)
        except world.failures as failure:
            request.outcome, request.exception = "failed", failure
        except asyncio.CancelledError:
            request.outcome = "cancelled"
            raise
        else:
            request.outcome = self._judge(request)
        finally:
            request.ended = current_step()
            request.in_flight_at_end = tuple(
                other
                for other in world.requests
                if other is not request and other.process == self.name and other.ended is None
            )
        return request

    def _judge(self, request: Request) -> requests_module.Outcome:
        raised = request.exception
        if raised is not None:
            if not isinstance(raised, self.world.failures):
                raise raised  # the app raised something unexpected: a bug, it fails the schedule
            return "failed"
        if request.status is None or request.status < 400:
            return "ok"
        return "refused" if self.world.http_refusal(request) else "failed"

    async def http(
        self,
        method: str,
        path: str,
        *,
        subject: object = None,
        what: str | None = None,
        **options: Any,
    ) -> Request:
        """One HTTP request to this process's app; ``options`` go to ``httpx.AsyncClient.request``.

        A ``text/event-stream`` answer is read to its end and its events are
        recorded (``SseEvent``); any other body is kept as JSON or text.
        ``what`` names the request in records and reports (default: ``METHOD
        path``; give the route, ``POST /chat``, when the path holds ids).
        """

        async def send(request: Request) -> object:
            response = await self.client.request(method, path, **options)
            request.status = response.status_code
            if response.headers.get("content-type", "").startswith("text/event-stream"):
                for event in parse_sse(response.text):
                    request.receive(event)
                return None
            return response_body(response)

        return await self.call(send, what=what or f"{method} {path}", subject=subject)

    async def get(self, path: str, **options: Any) -> Request:
        """``http("GET", path, ...)``."""
        return await self.http("GET", path, **options)

    async def post(self, path: str, **options: Any) -> Request:
        """``http("POST", path, ...)``."""
        return await self.http("POST", path, **options)

    async def close(self) -> None:
        """Close the process's client (the world's reset does, outside the schedule)."""
        client = self._singletons.get("client")
        if isinstance(client, httpx.AsyncClient):
            await client.aclose()
