"""interlace.testing: the world code every simulation of a service needs, written once.

A simulation runs concurrent requests through a service's real code. Around
them it needs a *world*: the database the exploration owns, the server
processes (each with its own in-memory state), a record of every request
(when it started and ended, its status, body or streamed events, what it
raised, how it ended), ids that replay, and reads of the database for the
final invariants. ``interlace.testing`` is that world, to use as is or to
subclass. Modules, one concept each:

- ``world``: ``World`` (the database, processes, records, ``rows()``),
  ``World.factory(...)`` (the ``world=`` of a simulation), ``reset_world`` (its ``reset=``);
- ``processes``: ``Process`` (per-process singletons, ``call``/``http``
  requests, an ASGI client per process);
- ``requests``: ``Request`` (the record), ``current_request()``, ``scoped()``
  (per-request objects), ``current_step()``;
- ``ids``: ``RequestIds`` (deterministic per-request UUIDs; the hook that
  replaces ``uuid4`` inside simulated requests);
- ``asgi``: ``asgi_client(app)``, ``parse_sse``, ``SseEvent``;
- ``canary``: ``@canary(world=...)``, a fixed simulation and its canary
  declared once.

A whole simulation of a small shop (its ``app.create_app(engine, variant)``
serves ``POST /items/{id}/reserve`` and answers 200 or 409)::

    import interlace
    from interlace import invariants
    from interlace.testing import World, canary, reset_world

    from app import Base, create_app, seed

    def shop(variant: str):
        return World.factory(
            schema=Base.metadata,
            app=lambda process: create_app(process.world.engine, variant),
        )

    @invariants.final("at most one buyer is told they got the item")
    async def sold_once(world: World) -> None:
        told = [r.label for r in world.requests if r.status == 200]
        assert len(told) <= 1, f"{', '.join(told)} were all told they got it"

    async def reset(world: World) -> None:
        await world.reset()          # empty the tables, forget the last schedule
        await seed(world.engine)     # the one item on sale

    @canary(world=shop("check_then_act"))
    @interlace.simulation(world=shop("fixed"), reset=reset, invariants=(sold_once,),
                          databases=("sqlite", "postgres"))
    async def test_two_buyers(world: World) -> None:
        first, second = world.process("web-1"), world.process("web-2")
        await world.run(first.post("/items/1/reserve", json={"buyer": "ann"}),
                        second.post("/items/1/reserve", json={"buyer": "bob"}))

What the world factory receives: the exploration's fresh ``Database``
(``interlace.testing.Database``: ``kind`` is ``"sqlite"`` or ``"postgres"``,
``url`` an async SQLAlchemy URL), once per exploration, outside any schedule.
"""

from __future__ import annotations

from interlace.db.supply import Database
from interlace.testing.asgi import SseEvent, asgi_client, parse_sse
from interlace.testing.canary import canary
from interlace.testing.ids import RequestIds
from interlace.testing.processes import Process
from interlace.testing.requests import Outcome, Request, current_request, current_step, scoped
from interlace.testing.world import World, reset_world

__all__ = [
    "Database",
    "Outcome",
    "Process",
    "Request",
    "RequestIds",
    "SseEvent",
    "World",
    "asgi_client",
    "canary",
    "current_request",
    "current_step",
    "parse_sse",
    "reset_world",
    "scoped",
]
