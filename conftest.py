"""The whole test suite's configuration.

PostgreSQL comes from interlace's own pytest plugin (``interlace.pytest_plugin``):
the session fixtures ``interlace_postgres`` (a server from the provider chain in
``interlace.db.provider``: ``INTERLACE_POSTGRES_URL``, else the embedded server, else
testcontainers) and ``interlace_postgres_database`` (a fresh database on it). Without
a server, tests that need one are skipped with the reason, or fail with it when
``INTERLACE_REQUIRE_POSTGRES=1``; the summary's last line says which server was used.
"""

from __future__ import annotations

import pytest

from interlace.db import provider


def pytest_report_header(config: pytest.Config) -> str:
    # The header must not start a server: the choice is made when a test first needs one.
    return f"interlace postgres: decided at first use ({provider.describe_plan()})"
