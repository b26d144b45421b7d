"""Portfolio: rotate strategies with different strengths, schedule by schedule.

No single strategy wins everywhere: a random walk finds shallow bugs with
many interleavings in a few schedules, PCT finds bugs of a given depth with a
guaranteed probability, and DFS covers every schedule within a preemption
bound and can say so. The portfolio gives schedule ``i`` to member
``i mod len(members)``; each member keeps its own state across its turns
(PCT its step estimate, DFS its work lists). When DFS is exhausted, its turns
go to the others.

The default rotation is random, PCT 3, random, DFS, random, PCT 2: the random
walk gets every other turn because on request handlers of a few statements it
finds most bugs within a handful of schedules (bench/RESULTS.md), while the
others add depth guarantees and coverage.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from interlace._core import Candidate, Strategy
from interlace.strategies.dfs import DFSStrategy
from interlace.strategies.pct import PCTStrategy
from interlace.strategies.random import RandomStrategy

if TYPE_CHECKING:
    from interlace._core import Trace


class PortfolioStrategy:
    """Random, PCT (depths 3 and 2) and preemption-bounded DFS, in turn."""

    name = "portfolio"

    def __init__(self, members: Sequence[Strategy] | None = None) -> None:
        self.members: list[Strategy] = list(
            members
            if members is not None
            else (
                RandomStrategy(),
                PCTStrategy(depth=3),
                RandomStrategy(),
                DFSStrategy(),
                RandomStrategy(),
                PCTStrategy(depth=2),
            )
        )
        if not self.members:
            raise ValueError("a portfolio needs at least one strategy")
        self._turn = -1
        self._current: Strategy = self.members[0]
        self._retired: list[bool] = [False] * len(self.members)

    @property
    def current(self) -> Strategy:
        """The member running the current schedule."""
        return self._current

    def describe(self) -> str:
        """What the DFS member has covered, when there is one."""
        notes = [m.describe() for m in self.members if isinstance(m, DFSStrategy)]
        return "; ".join(notes)

    def begin(self, seed: int) -> bool:
        for _ in range(len(self.members)):
            self._turn = (self._turn + 1) % len(self.members)
            if self._retired[self._turn]:
                continue
            member = self.members[self._turn]
            if member.begin(seed):
                self._current = member
                return True
            self._retired[self._turn] = True  # exhausted: its turns go to the others
        return False

    def choose(
        self, step: int, runnable: Sequence[Candidate], previous: Candidate | None
    ) -> Candidate:
        return self._current.choose(step, runnable, previous)

    def end(self, trace: Trace) -> None:
        self._current.end(trace)
