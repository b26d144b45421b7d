"""The strategy protocol: what the director asks a strategy, and nothing more.

It belongs to the core: the director is written against it, and every module of
``interlace.strategies`` implements it, importing only the core's face
(``interlace._core``). Users see it as ``interlace.strategies.Strategy`` and
``interlace.lowlevel.Strategy``.

Like shuttle's ``Scheduler`` trait, a strategy only hears that a schedule
begins, picks the next task among the runnable ones, and hears that the
schedule ended. All of its randomness must come from the seed it is given in
``begin``: that is what makes a schedule a function of its seed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from interlace._core.trace import Trace


@dataclass(frozen=True)
class Candidate:
    """A runnable task as a strategy sees it.

    ``index`` is the task's creation order in this schedule (0 for the
    scenario's root task); ``label`` is the point it is parked at, i.e. what it
    will do when chosen (``"SELECT tool_sessions"``, ``"start"``, ...).
    """

    name: str
    index: int
    label: str


class Strategy(Protocol):
    """Chooses which runnable task runs next."""

    @property
    def name(self) -> str:
        """Short name, recorded in tokens (letters, digits, ``-`` and ``_`` only)."""
        ...

    def begin(self, seed: int) -> bool:
        """A schedule begins; seed all randomness from ``seed``.

        Return False when the strategy has no further schedule to offer (an
        exhaustive search that is done); the exploration then stops.
        """
        ...

    def choose(
        self, step: int, runnable: Sequence[Candidate], previous: Candidate | None
    ) -> Candidate:
        """Pick one of ``runnable`` (never empty, in creation order) to run at ``step``.

        ``previous`` is the task chosen at the step before, if it is runnable
        again: choosing another task then is a preemption.
        """
        ...

    def end(self, trace: Trace) -> None:
        """The schedule ended (passed or failed) with ``trace``."""
        ...
