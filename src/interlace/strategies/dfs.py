"""Preemption-bounded depth-first search, deepening the bound one preemption at a time.

Most concurrency bugs need few preemptions (Musuvathi and Qadeer, "Iterative
context bounding", PLDI 2007). This strategy first runs every schedule with 0
preemptions, then every schedule with exactly 1, then 2, ... up to
``max_preemptions``, so shallow bugs are found first and every schedule is run
once. A schedule is a prefix of choices to replay followed by non-preemptive
choices; at each new step it records the alternatives it did not take:
switching away from a task that could continue costs one preemption and goes
to the work list of the next bound, while choosing among tasks after the
running one blocked or ended is free and stays in the current bound.

When every work list up to the limit is empty, the search is exhausted: every
schedule with at most ``max_preemptions`` preemptions has been run, and the
report says exactly that, and nothing more.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from interlace._core import Candidate, Nondeterminism
from interlace.strategies.guided import non_preemptive

if TYPE_CHECKING:
    from interlace._core import Trace


class DFSStrategy:
    """Exhaustive search within a preemption bound, with iterative deepening."""

    name = "dfs"

    def __init__(self, max_preemptions: int = 2) -> None:
        if max_preemptions < 0:
            raise ValueError(f"max_preemptions must be >= 0, got {max_preemptions}")
        self.max_preemptions = max_preemptions
        # invariant: work[b] holds prefixes (task indices) whose schedules have b preemptions
        empty_prefix: tuple[int, ...] = ()
        self._work: list[list[tuple[int, ...]]] = [[empty_prefix]]
        self._work.extend([] for _ in range(max_preemptions))
        self._prefix: tuple[int, ...] = ()
        self._chosen: list[int] = []
        self._preemptions = 0
        self.bound = 0  # the bound being searched now
        self.schedules_run = 0

    @property
    def exhausted(self) -> bool:
        return not any(self._work)

    def describe(self) -> str:
        """What has been covered, in words a report can print."""
        if self.exhausted:
            return (
                f"exhausted: {self.schedules_run} schedules within preemption bound "
                f"{self.max_preemptions}"
            )
        if self.bound == 0:
            # nothing is proven yet: even the schedules without preemptions are not all run
            return (
                f"not exhausted: {self.schedules_run} schedules run, the schedules without "
                "preemptions were in progress"
            )
        return (
            f"not exhausted: {self.schedules_run} schedules run; every schedule with fewer "
            f"than {self.bound} preemptions was covered, bound {self.bound} was in progress"
        )

    def begin(self, seed: int) -> bool:
        while self.bound <= self.max_preemptions and not self._work[self.bound]:
            self.bound += 1
        if self.bound > self.max_preemptions:
            return False
        self._prefix = self._work[self.bound].pop()
        self._chosen = []
        self._preemptions = 0
        self.schedules_run += 1
        return True

    def choose(
        self, step: int, runnable: Sequence[Candidate], previous: Candidate | None
    ) -> Candidate:
        if step < len(self._prefix):
            chosen = self._replay(step, runnable)
        else:
            chosen = non_preemptive(runnable, previous)
            self._record_alternatives(runnable, previous, chosen)
        if previous is not None and chosen is not previous:
            self._preemptions += 1
        self._chosen.append(chosen.index)
        return chosen

    def end(self, trace: Trace) -> None:
        return None

    def _replay(self, step: int, runnable: Sequence[Candidate]) -> Candidate:
        wanted = self._prefix[step]
        for candidate in runnable:
            if candidate.index == wanted:
                return candidate
        names = ", ".join(f"{c.name} at {c.label!r}" for c in runnable)
        raise Nondeterminism(
            f"nondeterminism: replaying a DFS prefix, step {step} should run task #{wanted} "
            f"but the runnable tasks are {names}; the code under test does something "
            "the scheduler does not control (wall clock, randomness, outside state)"
        )

    def _record_alternatives(
        self, runnable: Sequence[Candidate], previous: Candidate | None, chosen: Candidate
    ) -> None:
        base = tuple(self._chosen)  # the choices of every step before this one
        # pushed in reverse so the work list pops them in creation order
        for candidate in reversed(runnable):
            if candidate is chosen:
                continue
            cost = self._preemptions + (1 if previous is not None else 0)
            if cost <= self.max_preemptions:
                self._work[cost].append((*base, candidate.index))
