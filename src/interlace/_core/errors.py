"""Failures the scheduler itself reports, and errors about tokens.

A ``SchedulerFailure`` is a verdict about the code under test (it deadlocked, it
never stopped, it waited forever on outside I/O); it is reported like a failed
invariant, with a token that replays it. A ``TokenError`` is about the token
itself (malformed, for another scenario, no longer fits the code).
"""

from __future__ import annotations


class InterlaceError(Exception):
    """Base class of every error interlace raises itself."""


class SchedulerFailure(InterlaceError):
    """The schedule could not complete; the message names the tasks and where each waits."""


class Deadlock(SchedulerFailure):
    """Every live task waits on another simulated task or an asyncio primitive."""


class StepBoundExceeded(SchedulerFailure):
    """The schedule made more decisions than allowed: possible livelock or unfair schedule."""


class StuckOutsideIO(SchedulerFailure):
    """A task waited on outside I/O (a driver, a thread, a socket) longer than the bound."""


class Nondeterminism(SchedulerFailure):
    """Two runs of the same choices diverged: something outside the scheduler decides."""


class TokenError(InterlaceError):
    """A replay token is malformed, names another scenario, or no longer fits the code."""


class UsageError(InterlaceError):
    """interlace was used in a way it cannot support; the message says how to fix it."""
