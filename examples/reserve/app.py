"""A tiny shop: reserve an item over HTTP. ``check_then_act`` is the race, ``fixed`` its fix."""

from sqlalchemy import String, select, update
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


class Base(DeclarativeBase):
    pass


class Item(Base):
    __tablename__ = "items"
    id: Mapped[int] = mapped_column(primary_key=True)
    reserved_by: Mapped[str | None] = mapped_column(String(40))


class Taken(Exception):
    """The item is reserved already (HTTP 409)."""


async def reserve(engine: AsyncEngine, item_id: int, buyer: str, variant: str) -> None:
    async with engine.begin() as db:
        if variant == "check_then_act":  # two buyers can both see it free
            holder = await db.scalar(select(Item.reserved_by).where(Item.id == item_id))
            if holder is not None:
                raise Taken(f"item {item_id} is reserved by {holder}")
            await db.execute(update(Item).where(Item.id == item_id).values(reserved_by=buyer))
        else:  # fixed: check and act in one statement
            free = (Item.id == item_id) & Item.reserved_by.is_(None)
            done = await db.execute(update(Item).where(free).values(reserved_by=buyer))
            if done.rowcount != 1:
                raise Taken(f"item {item_id} is reserved already")


def create_app(engine: AsyncEngine, variant: str = "fixed") -> Starlette:
    async def post(request: Request) -> JSONResponse:
        buyer = (await request.json())["buyer"]
        try:
            await reserve(engine, int(request.path_params["item"]), buyer, variant)
        except Taken as taken:
            return JSONResponse({"error": str(taken)}, status_code=409)
        return JSONResponse({"reserved_by": buyer})

    return Starlette(routes=[Route("/items/{item}/reserve", post, methods=["POST"])])
