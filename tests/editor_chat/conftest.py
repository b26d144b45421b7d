"""Database fixtures for the editor chat's tests: SQLite always, PostgreSQL when available.

Database-backed tests take the `engine` (or `session_factory`) fixture and run
once per database: `[sqlite]` on a file in `tmp_path`, `[postgres]` in a
throwaway database created for this test session on the server that
`postgres_admin_url()` names.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from typing import TYPE_CHECKING

import asyncpg  # type: ignore[import-untyped]
import pytest
import pytest_asyncio
from sqlalchemy.engine import make_url

from editor_chat import create_schema, drop_schema, make_engine, make_session_factory

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator
    from pathlib import Path

    from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

POSTGRES_URL_ENV = "INTERLACE_POSTGRES_URL"
REQUIRE_POSTGRES_ENV = "INTERLACE_REQUIRE_POSTGRES"


def postgres_admin_url() -> str | None:
    """The PostgreSQL server to test against (a libpq URL), or None if there is none.

    Kept apart so a provider chain (env var -> embedded server -> skip) can replace it.
    """
    return os.environ.get(POSTGRES_URL_ENV) or None


@pytest.fixture(scope="session")
def postgres_database_url() -> Iterator[str]:
    """A `postgresql+asyncpg://` URL of a fresh database, dropped after the session."""
    admin_url = postgres_admin_url()
    if admin_url is None:
        reason = (
            f"PostgreSQL tests need a server: set {POSTGRES_URL_ENV}, "
            f"e.g. postgresql://postgres@127.0.0.1:5432/test"
        )
        if os.environ.get(REQUIRE_POSTGRES_ENV) == "1":
            pytest.fail(f"{reason} ({REQUIRE_POSTGRES_ENV}=1 forbids skipping them)")
        pytest.skip(reason)
    name = f"editor_chat_test_{uuid.uuid4().hex[:12]}"
    asyncio.run(_run_admin_command(admin_url, f'CREATE DATABASE "{name}"'))
    try:
        yield (
            make_url(admin_url)
            .set(drivername="postgresql+asyncpg", database=name)
            .render_as_string(hide_password=False)
        )
    finally:
        asyncio.run(_run_admin_command(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def _run_admin_command(admin_url: str, command: str) -> None:
    # asyncpg takes libpq URLs; accept a SQLAlchemy-style driver suffix too.
    libpq_url = make_url(admin_url).set(drivername="postgresql").render_as_string(False)
    connection = await asyncpg.connect(libpq_url)
    try:
        await connection.execute(command)
    finally:
        await connection.close()


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
