"""Freezing PostgreSQL backends: stop a blocked backend, continue it when its turn comes.

When one COMMIT releases several waiting transactions, the server wakes them all
and they race: which one takes the next lock, or appends first, depends on the
operating system's scheduler, so a replay could diverge. interlace therefore
stops (SIGSTOP) each backend it has proven blocked, and continues (SIGCONT) one
at a time once the server shows its lock granted. That needs the server on this
host and the right to signal its processes (the same user, or root).

Signalling the wrong process would be a serious bug, so a ``Freezer`` only
signals processes it has verified: the monitor connection's own backend must be
a process of this host whose title names that connection (its client port, or
``[local]`` for a unix socket), and every other backend must be a child of the
same postmaster. Every stopped process is remembered process-wide and continued
at interpreter exit too, so no backend stays stopped after a crash of the
simulation (a SIGKILL of this process is the one case no code can cover).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import sys
from dataclasses import dataclass, field

# Every backend this process has stopped and not yet continued.
_STOPPED: set[int] = set()


def _continue_all_stopped() -> None:
    for pid in sorted(_STOPPED):
        _send_continue(pid)
    _STOPPED.clear()


atexit.register(_continue_all_stopped)


@dataclass
class Freezer:
    """Stops and continues backends of one PostgreSQL server running on this host."""

    postmaster: int
    # pid -> whether it is a backend of this server (checked once per pid)
    _verified: dict[int, bool] = field(default_factory=dict)
    # invariant: the pids this freezer stopped and has not continued
    _stopped: set[int] = field(default_factory=set)

    def owns(self, pid: int) -> bool:
        """Is ``pid`` a backend of this server, so that it may be signalled?"""
        verified = self._verified.get(pid)
        if verified is None:
            verified = _parent_of(pid) == self.postmaster
            self._verified[pid] = verified
        return verified

    def stop(self, pid: int) -> None:
        """Stop backend ``pid`` (it must be ``owns``-verified)."""
        if not self.owns(pid):
            raise ValueError(f"process {pid} is not a backend of postmaster {self.postmaster}")
        # Remembered before the signal: an interrupt in between leaves at worst a
        # SIGCONT for a process that was never stopped, which is harmless.
        self._stopped.add(pid)
        _STOPPED.add(pid)
        try:
            os.kill(pid, signal.SIGSTOP)
        except ProcessLookupError:
            self._forget(pid)  # the backend ended (its connection closed)

    def resume(self, pid: int) -> None:
        """Continue backend ``pid`` if this freezer stopped it."""
        if pid in self._stopped:
            _send_continue(pid)
            self._forget(pid)

    def resume_all(self) -> None:
        """Continue every backend this freezer stopped; never raises."""
        for pid in sorted(self._stopped):
            _send_continue(pid)
            _STOPPED.discard(pid)
        self._stopped.clear()

    def stopped(self) -> frozenset[int]:
        return frozenset(self._stopped)

    def _forget(self, pid: int) -> None:
        self._stopped.discard(pid)
        _STOPPED.discard(pid)


def freezer_for(backend_pid: int, client_port: int | None) -> Freezer | str:
    """A ``Freezer`` for the server of a connection, or the reason there cannot be one.

    ``backend_pid`` is the connection's backend (``pg_backend_pid()``) and
    ``client_port`` its client port as the server saw it (None for a unix socket).
    """
    if not hasattr(signal, "SIGSTOP"):
        return f"{sys.platform} has no SIGSTOP/SIGCONT"
    title = _command_line(backend_pid)
    if title is None:
        return (
            f"the server's backend {backend_pid} is not a process of this host "
            "(a remote server, or one in a container)"
        )
    marker = "[local]" if client_port is None else f"({client_port})"
    if "postgres" not in title or marker not in title:
        return (
            f"process {backend_pid} of this host does not look like the backend of the "
            f"monitor connection (its title {title.strip()!r} lacks {marker!r}): the server "
            "runs elsewhere (a container?), or update_process_title is off"
        )
    try:
        os.kill(backend_pid, 0)  # signal 0: only checks the permission
    except PermissionError:
        return (
            f"no permission to signal the server's processes (they run as another user "
            f"than uid {os.getuid()}): run as root or as the server's user"
        )
    except ProcessLookupError:
        return f"the server's backend {backend_pid} vanished while it was checked"
    postmaster = _parent_of(backend_pid)
    if postmaster is None:
        return f"cannot read the parent process of backend {backend_pid}"
    return Freezer(postmaster)


def _send_continue(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, signal.SIGCONT)


def _command_line(pid: int) -> str | None:
    """The process title of ``pid`` on this host (NULs as spaces), None if unreadable."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as file:
            return file.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        pass
    try:
        import psutil  # type: ignore[import-untyped,unused-ignore]  # noqa: PLC0415
    except ImportError:
        return None  # no /proc (macOS) and no psutil: the process cannot be checked
    try:
        return " ".join(psutil.Process(pid).cmdline())
    except (psutil.Error, OSError):
        return None


def _parent_of(pid: int) -> int | None:
    """The parent pid of ``pid`` on this host, None if unreadable."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as file:
            stat = file.read()
        # the command name (field 2) may contain spaces and parentheses: split after it
        return int(stat[stat.rindex(b")") + 2 :].split()[1])
    except (OSError, ValueError, IndexError):
        pass
    try:
        import psutil  # noqa: PLC0415
    except ImportError:
        return None
    try:
        return int(psutil.Process(pid).ppid())
    except (psutil.Error, OSError):
        return None
