import asyncio

import pytest
from app import Base, Item, create_app, reserve
from sqlalchemy import insert, select

import interlace
from interlace import invariants
from interlace.testing import World, canary, reset_world


def shop(variant: str):  # the world: the database, and one app per simulated process
    return World.factory(schema=Base.metadata, app=lambda p: create_app(p.world.engine, variant))


async def one_item(world: World) -> None:  # before each schedule: item 1 on sale
    await reset_world(world)
    async with world.engine.begin() as db:
        await db.execute(insert(Item).values(id=1))


@invariants.final("one buyer gets the item, and it is stored as theirs")
async def sold_once(world: World) -> None:
    told = [r for r in world.requests if r.status == 200]
    holders = await world.scalars(select(Item.reserved_by))
    assert len(told) == 1, f"{len(told)} buyers were told they got the item"
    assert holders == [told[0].body["reserved_by"]], f"stored {holders}, told {told[0].label}"


@canary(world=shop("check_then_act"))  # test_two_buyers_pre_fix: must be caught
@interlace.simulation(
    world=shop("fixed"), reset=one_item, invariants=(sold_once,), databases=("sqlite", "postgres")
)
async def test_two_buyers(world: World) -> None:
    first, second = world.process("web-1"), world.process("web-2")
    await world.run(
        first.post("/items/1/reserve", json={"buyer": "ann"}),
        second.post("/items/1/reserve", json={"buyer": "bob"}),
    )


@pytest.fixture(params=["sqlite", "postgres"])
def url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path}/shop.db"
    return request.getfixturevalue("interlace_postgres_database").sqlalchemy_url()


@pytest.mark.interlace(schedules=30)
async def test_reserve(url, variant="fixed"):  # the body is one schedule, with its own world
    async with World.open(url, schema=Base.metadata) as world:
        await one_item(world)
        buyers = [reserve(world.engine, 1, buyer, variant) for buyer in ("ann", "bob")]
        done = await asyncio.gather(*buyers, return_exceptions=True)
        assert done.count(None) == 1, f"both reserved it: {done}"


@pytest.mark.interlace(schedules=30, expect_violation=True)  # the canary: must be caught
async def test_reserve_pre_fix(url):
    await test_reserve(url, "check_then_act")
