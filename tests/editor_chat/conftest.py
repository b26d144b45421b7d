"""Database fixtures for the editor chat's tests: SQLite always, PostgreSQL when available.

Database-backed tests take the `engine` (or `session_factory`) fixture and run
once per database: `[sqlite]` on a file in `tmp_path`, `[postgres]` in the
throwaway database the top-level `interlace_postgres_database` fixture creates for this
test session on a server of the provider chain (`interlace.db.provider`):
skipped with the reason when there is none, failed under
INTERLACE_REQUIRE_POSTGRES=1.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
import pytest_asyncio

from editor_chat import create_schema, drop_schema, make_engine, make_session_factory

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

    from interlace.db.provider import PostgresDatabase


@pytest.fixture(scope="session")
def postgres_database_url(interlace_postgres_database: PostgresDatabase) -> str:
    """A `postgresql+asyncpg://` URL of the session's fresh database."""
    return interlace_postgres_database.sqlalchemy_url()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'editor_chat.db'}"
    url: str = request.getfixturevalue("postgres_database_url")
    return url


@pytest_asyncio.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    """An engine on an empty editor chat schema."""
    engine = make_engine(database_url)
    await drop_schema(engine)
    await create_schema(engine)
    try:
        yield engine
    finally:
        await engine.dispose()


@pytest.fixture
def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return make_session_factory(engine)
