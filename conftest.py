"""Fixtures for the whole test suite.

PostgreSQL comes from the provider chain in ``interlace.db.provider``: an existing server
from ``INTERLACE_POSTGRES_URL``, else the embedded server, else testcontainers. Without
any, tests that need it are skipped with the reason, or fail with it when
``INTERLACE_REQUIRE_POSTGRES=1``.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, NoReturn

import pytest

from interlace.db import provider

if TYPE_CHECKING:
    from collections.abc import Iterator

    from interlace.db.provider import PostgresDatabase, PostgresServer

# What the session's Postgres fixtures ended up with, for the terminal summary.
_POSTGRES_OUTCOME = pytest.StashKey[str]()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "postgres: needs a PostgreSQL server (see conftest.py for the provider chain)"
    )


def pytest_report_header(config: pytest.Config) -> str:
    # The header must not start a server: the choice is made when a test first needs one.
    return f"interlace postgres: decided at first use ({provider.describe_plan()})"


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    outcome = config.stash.get(_POSTGRES_OUTCOME, None)
    if outcome is not None:
        terminalreporter.write_line(f"interlace postgres: {outcome}")


@pytest.fixture(scope="session")
def postgres_server(request: pytest.FixtureRequest) -> Iterator[PostgresServer]:
    """A PostgreSQL server for the whole session, from the provider chain."""
    with contextlib.ExitStack() as stack:
        try:
            server = stack.enter_context(provider.start_server())
        except provider.PostgresUnavailable as exc:
            request.config.stash[_POSTGRES_OUTCOME] = (
                "not available (the reason is on the skipped or failed tests)"
            )
            _skip_or_fail(str(exc))
        request.config.stash[_POSTGRES_OUTCOME] = f"used {server.source}"
        yield server


@pytest.fixture(scope="session")
def postgres_database(postgres_server: PostgresServer) -> Iterator[PostgresDatabase]:
    """A fresh database for the session, configured for simulation; dropped afterwards."""
    try:
        database = provider.create_database_sync(postgres_server)
    except provider.PostgresUnavailable as exc:
        _skip_or_fail(str(exc))
    yield database
    provider.drop_database_sync(database)


def _skip_or_fail(reason: str) -> NoReturn:
    if provider.postgres_required():
        pytest.fail(f"{provider.REQUIRE_ENV} is set and {reason}", pytrace=False)
    pytest.skip(reason)
