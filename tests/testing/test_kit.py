"""interlace.testing: request records, ids, processes, the ASGI client, reading back, canaries."""

from __future__ import annotations

import asyncio
import sys
import uuid
from typing import Any

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, insert, select
from starlette.applications import Starlette
from starlette.requests import Request as HttpRequest
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

import interlace
from interlace import Config, invariants
from interlace.db.supply import SqliteSupply
from interlace.outcome import Verdict
from interlace.runner import run_simulation
from interlace.testing import (
    Request,
    RequestIds,
    SseEvent,
    World,
    canary,
    current_request,
    parse_sse,
    reset_world,
    scoped,
)

SQLITE = SqliteSupply()
METADATA = MetaData()
NOTES = Table("notes", METADATA, Column("id", Integer, primary_key=True), Column("text", String))


class Busy(Exception):
    """Turned away on purpose (409)."""


class Conflict(Exception):
    """An expected failure."""


def _run(simulation: interlace.Simulation, schedules: int = 3) -> Any:
    run = run_simulation(simulation, SQLITE, Config(schedules=schedules))
    detail = run.failure.describe() if run.failure else ""
    assert run.verdict in (Verdict.PASSED, Verdict.CAUGHT), f"{run.message}\n{detail}"
    return run


# ---- request records ------------------------------------------------------------------

SEEN: list[list[Request]] = []


@invariants.final("records are kept")
def keep_records(world: World) -> None:
    SEEN.append(list(world.requests))


async def _ok(request: Request) -> str:
    request.receive("first")
    await asyncio.sleep(0)
    request.receive("second")
    return "body"


async def _busy(request: Request) -> None:
    raise Busy("try later")


async def _conflict(request: Request) -> None:
    await asyncio.sleep(0)
    raise Conflict("changed meanwhile")


async def _hangs(request: Request) -> None:
    await asyncio.sleep(10)


@interlace.simulation(
    world=World.factory(refusals={Busy: 409}, failures=(Conflict,)),
    reset=reset_world,
    invariants=(keep_records,),
)
async def four_requests(world: World) -> None:
    web1, web2 = world.process("web-1"), world.process("web-2")
    slow = asyncio.ensure_future(web2.call(_hangs, what="hangs"))
    await world.run(
        web1.call(_ok, what="ok", subject="the subject"),
        web1.call(_busy, what="busy"),
        web2.call(_conflict, what="conflict"),
    )
    slow.cancel()
    await world.run(slow)


def test_requests_are_recorded_with_steps_outcomes_and_statuses() -> None:
    SEEN.clear()
    _run(four_requests)
    records = SEEN[-1]
    by_what = {r.what: r for r in records}
    assert sorted(by_what) == ["busy", "conflict", "hangs", "ok"]
    assert sorted(r.number for r in records) == [1, 2, 3, 4]
    ok, busy, conflict, hangs = (by_what[w] for w in ("ok", "busy", "conflict", "hangs"))
    assert ok.outcome == "ok" and ok.body == "body" and ok.status is None
    assert ok.events == ["first", "second"] and ok.subject == "the subject"
    assert ok.started <= ok.event_steps[0] < ok.event_steps[1] <= (ok.ended or 0)
    assert ok.process == "web-1" and ok.label == f"{ok.task} (web-1)"
    assert busy.outcome == "refused" and busy.status == 409 and isinstance(busy.exception, Busy)
    assert busy.ending() == "was refused with 409"
    assert conflict.outcome == "failed" and conflict.error == "Conflict: changed meanwhile"
    assert hangs.outcome == "cancelled" and hangs.ended is not None
    assert all(r.task.startswith("T") for r in records)
    assert len({r.task for r in records}) == 4
    # a request that ended while another of its process ran says which
    if ok.ended is not None and busy.ended is not None and busy.ended < ok.ended:
        assert ok not in busy.in_flight_at_end or ok.ended > busy.ended


async def _bug(request: Request) -> None:
    raise KeyError("not an expected failure")


@interlace.simulation(world=World.factory(), reset=reset_world)
async def a_bug(world: World) -> None:
    await world.run(world.process("web-1").call(_bug))


def test_an_unexpected_exception_of_a_request_fails_the_schedule() -> None:
    run = run_simulation(a_bug, SQLITE, Config(schedules=2))
    assert run.verdict is Verdict.VIOLATION
    assert run.failure is not None and isinstance(run.failure.exception, KeyError)


# ---- ids --------------------------------------------------------------------------------

DRAWN: list[dict[str, list[uuid.UUID]]] = []


async def _draws(request: Request) -> None:
    world = current_request()
    assert world is request
    drawn = DRAWN[-1].setdefault(request.what, [])
    drawn.append(uuid.uuid4())  # replaced inside requests
    await asyncio.sleep(0)
    drawn.append(uuid.uuid4())


@invariants.final("ids are per request")
def ids_are_per_request(world: World) -> None:
    for request in world.requests:
        number = request.number
        expected = [uuid.UUID(int=(number << 64) | k) for k in (1, 2)]
        assert DRAWN[-1][request.what] == expected, (request.what, DRAWN[-1])
        assert world.ids.first_of(number) == expected[0] and world.ids.drawn_by(number) == 2
    DRAWN.append({})


@interlace.simulation(
    world=World.factory(replace_uuid4=("uuid.uuid4",)),
    reset=reset_world,
    invariants=(ids_are_per_request,),
)
async def ids_in_requests(world: World) -> None:
    web = world.process("web-1")
    await world.run(web.call(_draws, what="a"), web.call(_draws, what="b"))


def test_ids_inside_requests_are_deterministic_and_uuid4_is_restored_after() -> None:
    real = uuid.uuid4
    DRAWN[:] = [{}]
    _run(ids_in_requests, schedules=4)
    assert uuid.uuid4 is real
    assert uuid.uuid4().version == 4  # outside any request: the real one


def test_request_ids_by_hand() -> None:
    ids = RequestIds()
    with ids.drawing_for(2):
        assert ids.new_id() == uuid.UUID(int=(2 << 64) | 1)
        assert ids.uuid4() == uuid.UUID(int=(2 << 64) | 2)
    assert ids.new_id() == uuid.UUID(int=1)  # request 0: drawn outside any request
    assert ids.uuid4().version == 4
    ids.reset()
    assert ids.first_of(2) is None
    with pytest.raises(ValueError, match=r"module\.attribute"), ids.replacing("uuid4"):
        pass


# ---- processes: singletons, request scope -------------------------------------------------

MADE: list[object] = []


class Guard:
    def __init__(self) -> None:
        MADE.append(self)


async def _uses_guard(request: Request) -> tuple[object, object, object]:
    process = current_request()
    assert process is request
    first = scoped(dict)
    await asyncio.sleep(0)
    assert scoped(dict) is first  # one per request
    return first, request.scope[dict], None


@interlace.simulation(world=World.factory(), reset=reset_world)
async def singletons(world: World) -> None:
    web1, web2 = world.process("web-1"), world.process("web-2")
    assert world.process("web-1") is web1
    assert web1.singleton(Guard) is web1.singleton(Guard)
    assert web1.singleton(Guard) is not web2.singleton(Guard)
    records = await world.run(web1.call(_uses_guard), web1.call(_uses_guard))
    assert records[0].body[0] is not records[1].body[0]


def test_processes_keep_singletons_per_schedule_and_requests_their_scope() -> None:
    MADE.clear()
    _run(singletons, schedules=3)
    assert len(MADE) == 2 * 3  # two processes in each of three schedules: reset forgets them
    with pytest.raises(LookupError, match="outside a simulated request"):
        scoped(dict)


# ---- HTTP through each process's app --------------------------------------------------------


class Broken(Exception):
    pass


def _app(process: Any) -> Starlette:
    count = {"served": 0}  # per process: the app is the process's own

    async def hello(request: HttpRequest) -> Response:
        count["served"] += 1
        return JSONResponse({"process": process.name, "served": count["served"]})

    async def full(request: HttpRequest) -> Response:
        return JSONResponse({"error": "full"}, status_code=409)

    async def stream(request: HttpRequest) -> Response:
        async def frames() -> Any:
            yield 'event: meta\ndata: {"n": 1}\n\n'
            await asyncio.sleep(0)
            yield "event: done\ndata: bye\n\n"

        return StreamingResponse(frames(), media_type="text/event-stream")

    async def broken(request: HttpRequest) -> Response:
        raise Broken("the app failed")

    return Starlette(
        routes=[
            Route("/hello", hello),
            Route("/full", full, methods=["POST"]),
            Route("/stream", stream),
            Route("/broken", broken),
        ]
    )


HTTP: list[dict[str, Request]] = []


@interlace.simulation(
    world=World.factory(app=_app, refusals={Busy: 409}, failures=(Broken,)), reset=reset_world
)
async def over_http(world: World) -> None:
    web1, web2 = world.process("web-1"), world.process("web-2")
    records = await world.run(
        web1.get("/hello"),
        web1.get("/hello"),
        web2.post("/full", json={}),
        web2.get("/stream"),
        web2.get("/broken"),
    )
    HTTP.append({f"{r.process} {r.what} {r.number}": r for r in records})


def test_http_requests_record_status_body_sse_events_and_what_the_app_raised() -> None:
    HTTP.clear()
    _run(over_http, schedules=2)
    records = sorted(HTTP[-1].values(), key=lambda r: r.number)
    hello = [r for r in records if r.what == "GET /hello"]
    assert [r.outcome for r in hello] == ["ok", "ok"] and {r.status for r in hello} == {200}
    assert sorted(r.body["served"] for r in hello) == [1, 2]  # one app for web-1's requests
    (full,) = (r for r in records if r.what == "POST /full")
    assert full.outcome == "refused" and full.body == {"error": "full"}
    assert full.error == 'HTTP 409: {"error": "full"}'
    (stream,) = (r for r in records if r.what == "GET /stream")
    assert stream.events == [SseEvent("meta", {"n": 1}), SseEvent("done", "bye")]
    assert stream.first(SseEvent) == SseEvent("meta", {"n": 1})
    (broken,) = (r for r in records if r.what == "GET /broken")
    assert broken.outcome == "failed" and isinstance(broken.exception, Broken)
    assert broken.status == 500


def test_parse_sse() -> None:
    assert parse_sse("data: 1\n\nevent: x\ndata: a\ndata: b\n\n") == [
        SseEvent("message", 1),
        SseEvent("x", "a\nb"),
    ]
    with pytest.raises(ValueError, match="without data"):
        parse_sse("event: x\n\n")


# ---- reading back ---------------------------------------------------------------------------


async def _note(request: Request) -> None:
    world = request.subject
    async with world.engine.begin() as connection:
        await connection.execute(insert(NOTES).values(text=request.what))


READ: list[tuple[list[Any], bool]] = []


@invariants.final("every note is stored")
async def notes_stored(world: World) -> None:
    texts = await world.scalars(select(NOTES.c.text).order_by(NOTES.c.text))
    again = await world.rows(select(NOTES.c.text).order_by(NOTES.c.text))
    READ.append((texts, again is await world.rows(select(NOTES.c.text).order_by(NOTES.c.text))))
    assert texts == ["a", "b"], texts


@interlace.simulation(
    world=World.factory(schema=METADATA), reset=reset_world, invariants=(notes_stored,)
)
async def two_notes(world: World) -> None:
    web = world.process("web-1")
    await world.run(
        web.call(_note, what="a", subject=world), web.call(_note, what="b", subject=world)
    )


def test_rows_read_back_once_per_schedule_and_reset_empties_the_schema_tables() -> None:
    READ.clear()
    _run(two_notes, schedules=3)
    assert READ == [(["a", "b"], True)] * 3  # each schedule starts from empty tables


# ---- the canary pair --------------------------------------------------------------------------


class CounterWorld(World):
    def __init__(self, database: Any, engine: Any, *, racy: bool) -> None:
        super().__init__(database, engine)
        self.racy = racy
        self.counter = 0

    async def reset(self) -> None:
        await super().reset()
        self.counter = 0


async def _add(request: Request) -> None:
    world = request.subject
    if world.racy:
        value = world.counter
        await asyncio.sleep(0)
        world.counter = value + 1
        return
    world.counter += 1
    await asyncio.sleep(0)


@invariants.final("both increments count")
def counted(world: CounterWorld) -> None:
    assert world.counter == 2, f"counter is {world.counter}"


@canary(world=CounterWorld.factory(racy=True))
@interlace.simulation(
    world=CounterWorld.factory(racy=False), reset=reset_world, invariants=(counted,)
)
async def increments(world: CounterWorld) -> None:
    """Two increments at once."""
    web = world.process("web-1")
    await world.run(web.call(_add, subject=world), web.call(_add, subject=world))


def test_a_canary_is_declared_once_beside_its_fixed_simulation() -> None:
    module = sys.modules[__name__]
    pre_fix = module.increments_pre_fix
    assert isinstance(pre_fix, interlace.Simulation) and pre_fix.canary
    assert pre_fix.name == f"{__name__}:increments_pre_fix"
    assert pre_fix.invariants == increments.invariants and pre_fix.reset is increments.reset
    assert pre_fix.databases == increments.databases
    assert pre_fix.description == "Canary of increments: Two increments at once."
    assert _run(increments, schedules=10).verdict is Verdict.PASSED
    assert _run(pre_fix, schedules=50).verdict is Verdict.CAUGHT
    with pytest.raises(interlace.UsageError, match="exists already"):
        canary(world=CounterWorld.factory(racy=True))(increments)
    with pytest.raises(interlace.UsageError, match="goes above"):
        canary(world=CounterWorld.factory(racy=True))(_add)  # type: ignore[arg-type]
