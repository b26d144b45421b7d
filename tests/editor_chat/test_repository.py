from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError, OperationalError

from editor_chat import (
    EDITOR_CHAT_CONTEXT,
    SessionNotFound,
    StateConflict,
    ToolSession,
    ToolSessionKey,
    ToolSessionRepository,
    UnitOfWork,
    create_schema,
    drop_schema,
    make_engine,
)

if TYPE_CHECKING:
    from pathlib import Path

    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

KEY = ToolSessionKey(
    tool_id=uuid.UUID(int=1), user_id=uuid.UUID(int=2), context=EDITOR_CHAT_CONTEXT
)
THREAD = {"messages": [{"role": "user", "content": "Hur skriver jag en loop? Ä Ö å 🙂"}]}


def ids_from(start: int) -> list[uuid.UUID]:
    return [uuid.UUID(int=n) for n in range(start, start + 10)]


@pytest.mark.asyncio
async def test_get_or_create_creates_an_empty_session_once(
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    fresh_ids = iter(ids_from(100))
    async with session_factory() as session:
        repository = ToolSessionRepository(session, new_id=lambda: next(fresh_ids))
        assert await repository.get(KEY) is None
        created = await repository.get_or_create(KEY)
        again = await repository.get_or_create(KEY)
        await session.commit()
    assert created.id == uuid.UUID(int=100)
    assert (created.key, dict(created.state), created.state_rev) == (KEY, {}, 0)
    assert again == created
    async with session_factory() as session:
        assert len((await session.execute(select(ToolSession.id))).all()) == 1


@pytest.mark.asyncio
async def test_sessions_differ_by_context(
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    other = ToolSessionKey(tool_id=KEY.tool_id, user_id=KEY.user_id, context="other_tool_state")
    async with UnitOfWork(session_factory) as uow:
        first = await uow.sessions.get_or_create(KEY)
        second = await uow.sessions.get_or_create(other)
    assert first.id != second.id


@pytest.mark.asyncio
async def test_update_state_bumps_the_revision_and_stores_the_state(
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    async with UnitOfWork(session_factory) as uow:
        created = await uow.sessions.get_or_create(KEY)
        updated = await uow.sessions.update_state(KEY, THREAD, expected_state_rev=0)
    assert (updated.id, updated.state_rev, dict(updated.state)) == (created.id, 1, THREAD)
    async with UnitOfWork(session_factory) as uow:
        stored = await uow.sessions.get(KEY)
    assert stored == updated


@pytest.mark.asyncio
async def test_update_with_a_stale_revision_raises_conflict_with_both_revisions(
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    async with UnitOfWork(session_factory) as uow:
        await uow.sessions.get_or_create(KEY)
        await uow.sessions.update_state(KEY, THREAD, expected_state_rev=0)
    with pytest.raises(StateConflict) as conflict:
        async with UnitOfWork(session_factory) as uow:
            await uow.sessions.update_state(KEY, {"messages": []}, expected_state_rev=0)
    assert (conflict.value.expected_rev, conflict.value.current_rev) == (0, 1)
    assert "expected state_rev 0, found 1" in str(conflict.value)
    async with UnitOfWork(session_factory) as uow:
        stored = await uow.sessions.get(KEY)
    assert stored is not None
    assert (dict(stored.state), stored.state_rev) == (THREAD, 1)


@pytest.mark.asyncio
async def test_update_of_a_missing_session_is_not_found(
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    with pytest.raises(SessionNotFound, match="create it first"):
        async with UnitOfWork(session_factory) as uow:
            await uow.sessions.update_state(KEY, THREAD, expected_state_rev=0)


@pytest.mark.asyncio
async def test_unit_of_work_rolls_back_when_the_block_raises(
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    with pytest.raises(RuntimeError, match="boom"):
        async with UnitOfWork(session_factory) as uow:
            await uow.sessions.get_or_create(KEY)
            raise RuntimeError("boom")
    async with UnitOfWork(session_factory) as uow:
        assert await uow.sessions.get(KEY) is None


@pytest.mark.asyncio
async def test_unit_of_work_is_single_use(
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    uow = UnitOfWork(session_factory)
    with pytest.raises(RuntimeError, match="inside `async with`"):
        _ = uow.sessions
    async with uow:
        pass
    with pytest.raises(RuntimeError, match="single-use"):
        async with uow:
            pass


@pytest.mark.asyncio
async def test_the_key_triple_is_unique(session_factory: async_sessionmaker[AsyncSession]) -> None:
    async with UnitOfWork(session_factory) as uow:
        await uow.sessions.get_or_create(KEY)
    async with session_factory() as session:
        session.add(
            ToolSession(
                id=uuid.uuid4(), tool_id=KEY.tool_id, user_id=KEY.user_id, context=KEY.context
            )
        )
        with pytest.raises(IntegrityError):
            await session.commit()


@pytest.mark.asyncio
async def test_state_rev_cannot_go_negative(
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    async with session_factory() as session:
        session.add(
            ToolSession(
                id=uuid.uuid4(),
                tool_id=KEY.tool_id,
                user_id=KEY.user_id,
                context=KEY.context,
                state_rev=-1,
            )
        )
        with pytest.raises(IntegrityError):
            await session.commit()


@pytest.mark.postgres
@pytest.mark.asyncio
async def test_postgres_schema_uses_jsonb_and_native_uuids(postgres_database_url: str) -> None:
    engine = make_engine(postgres_database_url)
    try:
        await drop_schema(engine)
        await create_schema(engine)
        async with engine.connect() as connection:
            rows = await connection.execute(
                text(
                    "SELECT column_name, data_type FROM information_schema.columns "
                    "WHERE table_name = 'tool_sessions'"
                )
            )
            types = {column: data_type for column, data_type in rows}
    finally:
        await engine.dispose()
    assert types["state"] == "jsonb"
    assert types["id"] == types["tool_id"] == types["user_id"] == "uuid"
    assert types["created_at"] == "timestamp with time zone"


def test_make_engine_refuses_other_databases() -> None:
    with pytest.raises(ValueError, match="sqlite and postgresql"):
        make_engine("mysql+aiomysql://localhost/chat")
    with pytest.raises(ValueError, match="only applies to SQLite"):
        make_engine("postgresql+asyncpg://localhost/chat", sqlite_busy_timeout=0)


@pytest.mark.asyncio
async def test_sqlite_busy_timeout_zero_fails_at_once_on_a_locked_database(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'locked.db'}", sqlite_busy_timeout=0)
    try:
        await create_schema(engine)
        async with engine.connect() as holder, engine.connect() as waiter:
            await holder.execute(text("BEGIN IMMEDIATE"))
            with pytest.raises(OperationalError, match="database is locked"):
                await waiter.execute(text("BEGIN IMMEDIATE"))
            await holder.rollback()
    finally:
        await engine.dispose()
