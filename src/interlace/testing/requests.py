"""Request records: what each simulated request did and saw, for invariants to read.

``Process.call`` and ``Process.http`` (``interlace.testing.processes``) open
one ``Request`` per simulated request, in the request's own task, and close
it when the request ends, whatever happened. Invariants read the records
(``world.requests``)::

    @invariants.final("a buyer told 200 holds the item")
    async def told_is_stored(world):
        for request in world.requests:
            if request.outcome == "ok":
                ...

Steps. ``started``, ``ended`` and ``event_steps`` are steps of the schedule:
the number of decisions made so far (the step column of the interleaving
table), read from the running director. Only one simulated task runs between
two decisions, so steps of different requests never tie; outside a
simulation they count records instead.

Outcomes (``Request.outcome``):

=========== ===============================================================
``running`` not ended yet (an always invariant sees these)
``ok``      the handler returned; over HTTP, a status below 400
``refused`` turned away on purpose: the handler raised one of the world's
            ``refusals`` (``{ChatBusy: 409}``: ``status`` is then 409, as the
            web layer answers it), or an HTTP answer the world counts as one
``failed``  ended by one of the world's expected ``failures`` (an exception
            type), or an HTTP error status that is not a refusal
``cancelled`` cancelled (the client went away)
=========== ===============================================================

Any other exception escaping a request is a bug of the code under test: it
propagates and fails the schedule.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from interlace.lowlevel import ControlledLoop, Director

Outcome = Literal["running", "ok", "refused", "failed", "cancelled"]
_T = TypeVar("_T")

_CURRENT: ContextVar[Request | None] = ContextVar("interlace_testing_request", default=None)


@dataclass(eq=False)
class Request:
    """One simulated request and everything it saw (see the module docstring)."""

    number: int
    """1, 2, ... in the order requests arrived in this schedule."""
    task: str
    """The request's task in the interleaving table (``T1``, ``T2``, ...)."""
    process: str
    """The name of the process that served it (``web-1``)."""
    what: str
    """What was asked: ``POST /items/1/reserve``, or the name the caller gave."""
    subject: Any = None
    """What the request is about, as the world describes it (free form)."""
    started: int = 0
    ended: int | None = None
    outcome: Outcome = "running"
    status: int | None = None
    """The HTTP status, or the status a refusal maps to; None for a plain handler call."""
    body: Any = None
    """The handler's return value, or the HTTP body (JSON when it parses, else text)."""
    events: list[Any] = field(default_factory=list)
    """What was streamed to the client, in order (handler events, or parsed SSE events)."""
    event_steps: list[int] = field(default_factory=list)
    exception: BaseException | None = None
    """The refusal or failure that ended the request, or what the ASGI app raised."""
    in_flight_at_end: tuple[Request, ...] = ()
    """Other requests of the same process still running when this one ended."""
    scope: dict[Any, Any] = field(default_factory=dict)
    """Per-request objects (``scoped``), dropped with the record."""

    @property
    def label(self) -> str:
        """``T1 (web-1)``: how invariant messages name the request."""
        return f"{self.task} ({self.process})"

    @property
    def error(self) -> str | None:
        """``Type: message`` of what ended it, or ``HTTP 409: {...}``; None when nothing did."""
        if self.exception is not None:
            return f"{type(self.exception).__name__}: {self.exception}"
        if self.status is not None and self.status >= 400:
            text = self.body if isinstance(self.body, str) else _json(self.body)
            return f"HTTP {self.status}: {text}"
        return None

    def receive(self, event: object) -> None:
        """Record one streamed event at the current step."""
        self.events.append(event)
        self.event_steps.append(current_step())

    def first(self, kind: type[_T]) -> _T | None:
        """The first event of type ``kind``, if one came."""
        return next((e for e in self.events if isinstance(e, kind)), None)

    def step_of(self, kind: type[Any]) -> int | None:
        """The step at which the first event of type ``kind`` came."""
        for step, event in zip(self.event_steps, self.events, strict=True):
            if isinstance(event, kind):
                return step
        return None

    def scoped(self, make: Callable[[], _T], key: object = None) -> _T:
        """The request's own instance of ``make()`` (made on first use in this request)."""
        slot = make if key is None else key
        if slot not in self.scope:
            self.scope[slot] = make()
        made: _T = self.scope[slot]
        return made

    def overlaps(self, step: int) -> bool:
        """Whether the request was in flight at ``step`` (started before it, not ended)."""
        return self.started < step and (self.ended is None or self.ended > step)

    def ending(self) -> str:
        """How it ended, for messages: ``ended ok``, ``was refused with 409``, ..."""
        if self.outcome == "ok":
            return "ended ok" + (f" ({self.status})" if self.status is not None else "")
        if self.outcome == "refused":
            return f"was refused with {self.status}" if self.status else "was refused"
        if self.outcome == "failed":
            return f"failed with {self.error}"
        if self.outcome == "cancelled":
            return "was cancelled"
        return "had not ended"


def current_request() -> Request | None:
    """The record of the simulated request running in this task (None outside one)."""
    return _CURRENT.get()


def enter(request: Request) -> None:
    """Make ``request`` the current request of the running task's context."""
    _CURRENT.set(request)


def scoped(make: Callable[[], _T], key: object = None) -> _T:
    """The current request's own ``make()``: a request-scoped object (a session, a unit of work).

    For dependency overrides, for instance
    ``app.dependency_overrides[get_session] = lambda: scoped(session_factory)``.
    Outside a request it raises ``LookupError``.
    """
    request = _CURRENT.get()
    if request is None:
        raise LookupError("scoped() is called outside a simulated request (Process.call/http)")
    return request.scoped(make, key)


_fallback_steps = [0]


def current_step() -> int:
    """Decisions made so far in the running schedule (a counter outside a simulation)."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        loop = None
    director = loop.director if isinstance(loop, ControlledLoop) else None
    if isinstance(director, Director):
        return len(director.decisions)
    _fallback_steps[0] += 1
    return _fallback_steps[0]


def _json(value: object) -> str:
    try:
        return json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        return repr(value)
