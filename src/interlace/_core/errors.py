"""Failures the scheduler itself reports, and errors about tokens.

A ``SchedulerFailure`` is a verdict about the code under test (it deadlocked, it
never stopped, it waited forever on outside I/O); it is reported like a failed
invariant, with a token that replays it. A ``TokenError`` is about the token
itself (malformed, for another scenario, no longer fits the code).

The director's verdicts are made by the constructors here (``Deadlock.of``,
``StepBoundExceeded.of``, ``StuckOutsideIO.of``), from plain names and
descriptions, so that every message names the cause and the fix in one place.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Self

#: (task name, what it waits on), e.g. ("T1", "waits in Lock.acquire at transfer (bank.py:14)")
TaskWaits = Sequence[tuple[str, str]]


class InterlaceError(Exception):
    """Base class of every error interlace raises itself."""


class SchedulerFailure(InterlaceError):
    """The schedule could not complete; the message names the tasks and where each waits."""


class Deadlock(SchedulerFailure):
    """Every live task waits on another simulated task or an asyncio primitive."""

    @classmethod
    def of(cls, live: TaskWaits, best_effort: str | None) -> Self:
        """The deadlock of the ``live`` tasks; ``best_effort`` says why replays may diverge."""
        return cls(
            "deadlock: every live task waits on another simulated task, an asyncio "
            "primitive or a database lock another task holds, and no timer is pending:\n"
            f"{_task_lines(live)}{_best_effort_note(best_effort)}"
        )


class StepBoundExceeded(SchedulerFailure):
    """The schedule made more decisions than allowed: possible livelock or unfair schedule."""

    @classmethod
    def of(cls, max_steps: int, runnable: Sequence[tuple[str, str]]) -> Self:
        """``max_steps`` decisions made; ``runnable`` are (task name, label it is parked at)."""
        parked = ", ".join(f"{name} at {label!r}" for name, label in runnable)
        return cls(
            f"step bound exceeded: {max_steps} decisions and the schedule has "
            f"not ended (possible livelock or unfair schedule); runnable: {parked}; raise "
            "max_steps if the scenario is legitimately this long"
        )


class StuckOutsideIO(SchedulerFailure):
    """A task waited on outside I/O (a driver, a thread, a socket) longer than the bound."""

    @classmethod
    def of(
        cls, outside: TaskWaits, waited: float, stuck_after: float, best_effort: str | None
    ) -> Self:
        """The ``outside`` tasks waited ``waited`` wall seconds, more than ``stuck_after``."""
        return cls(
            f"stuck outside I/O: waited {waited:.1f} s (bound: stuck_after="
            f"{stuck_after:g} s) for these tasks:\n{_task_lines(outside)}\n"
            "is the database reachable, and not locked by a connection outside the "
            "simulation? On PostgreSQL, lock waits are recognised by the lock monitor "
            "interlace attaches itself, unless it was turned off (lock_monitor=False) or "
            "another outside-wait explainer rules the loop; then enter "
            "interlace.db.postgres.monitor(engine) in the scenario's resource. "
            "A task that awaits a bare future completed by another simulated task also "
            "looks like this: use an asyncio primitive (Event, Queue) instead"
            f"{_best_effort_note(best_effort)}"
        )

    @classmethod
    def after_cancellation(cls, names: Sequence[str]) -> Self:
        """The tasks ``names`` did not finish once cancelled at the end of the schedule."""
        return cls(
            "these tasks did not finish after cancellation at the end of the schedule: "
            + ", ".join(names)
        )


class Nondeterminism(SchedulerFailure):
    """Two runs of the same choices diverged: something outside the scheduler decides."""


class TokenError(InterlaceError):
    """A replay token is malformed, names another scenario, or no longer fits the code."""


class UsageError(InterlaceError):
    """interlace was used in a way it cannot support; the message says how to fix it."""


def _task_lines(waits: TaskWaits) -> str:
    return "\n".join(f"  {name} {wait}" for name, wait in waits)


def _best_effort_note(reason: str | None) -> str:
    return f"\n(determinism is best effort here: {reason})" if reason else ""
