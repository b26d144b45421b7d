"""Shrinking: make a failing schedule as simple as it can be while the same invariant fails.

A schedule found by a random walk or PCT switches tasks far more often than
the bug needs. The shrinker reruns edited versions of the failing schedule
(with ``GuidedStrategy``: follow the edited choices where they fit, never
preempt otherwise) and keeps an edit when the run still fails the same way
and is smaller: first fewer preemptions, then fewer decisions. The edits, in
order:

1. drop one preemption: at a preemption, let the task that ran before go on
   (in place of the switch, or for one more step before it), skip that
   choice altogether, or switch one step earlier;
2. drop the tail: from some step on, make only non-preemptive choices;
3. move one switch to a later step, to leave a local minimum of 1 and 2;
4. when the edits are stuck, search every schedule with fewer preemptions
   (preemption-bounded DFS, deepening from 0): the edits keep the schedule's
   free choices, and the smallest failing schedule may make another one early
   on (start the other request first). Its first failing schedule has the
   fewest preemptions; the edits then resume from it. The search takes at
   most ``SEARCH_RUNS`` runs. When it runs to the end without a find, the
   schedule is *minimal*: no schedule with fewer preemptions fails this way,
   and the report says so.

"The same way" is the failure's signature: the exception type and its
message with numbers masked (``balance is 70`` and ``balance is 50`` are the
same lost update). Shrinking is bounded by a number of runs.
"""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from interlace._core import Strategy
from interlace._core.trace import Trace
from interlace.strategies.dfs import DFSStrategy
from interlace.strategies.guided import GuidedStrategy

_NUMBER = re.compile(r"\d+")
# Runs the search for fewer preemptions may take, of the whole budget: when the edits
# have done their work, a small space is covered (and the result proven minimal) well
# within it; a large one (many free choices where tasks block) is left unproven.
SEARCH_RUNS = 60

#: runs one schedule with the given strategy; returns its trace and failure (None: passed)
RunSchedule = Callable[[Strategy], Awaitable[tuple[Trace, BaseException | None]]]


def signature(error: BaseException) -> str:
    """What must stay the same for a smaller schedule to count as the same failure."""
    lines = str(error).strip().splitlines()
    first = lines[0] if lines else ""
    return f"{type(error).__name__}: {_NUMBER.sub('#', first)}"


def size(trace: Trace) -> tuple[int, int]:
    """(preemptions, decisions): smaller is simpler."""
    return (trace.preemptions, len(trace.decisions))


@dataclass(frozen=True)
class ShrinkBudget:
    """How much shrinking may take: reruns and wall seconds, whichever runs out first."""

    max_runs: int = 300
    seconds: float = 60.0


@dataclass(frozen=True)
class Shrunk:
    """The smallest failing schedule found, and the failure it raised."""

    trace: Trace
    error: BaseException
    runs: int
    #: every schedule with fewer preemptions was run and none failed this way
    minimal: bool = False
    #: why shrinking stopped before it was done ("its time budget of 5.0 s"), or None
    stopped: str | None = None
    elapsed: float = 0.0


async def shrink(
    trace: Trace, error: BaseException, run: RunSchedule, budget: ShrinkBudget | None = None
) -> Shrunk:
    """Shrink ``trace`` (which raised ``error``) within ``budget``."""
    limits = budget or ShrinkBudget()
    max_runs = limits.max_runs
    started = time.monotonic()
    deadline = started + limits.seconds
    wanted = signature(error)
    best, best_error, runs = trace, error, 0
    stopped: list[str] = []

    def out_of_budget() -> bool:
        if runs >= max_runs:
            stopped[:] = [f"its run budget of {max_runs} runs"]
            return True
        if time.monotonic() >= deadline:
            stopped[:] = [f"its time budget of {limits.seconds:.1f} s"]
            return True
        return False

    async def attempt(strategy: Strategy) -> bool:
        nonlocal best, best_error, runs
        runs += 1
        candidate, failure = await run(strategy)
        if failure is None or signature(failure) != wanted or size(candidate) >= size(best):
            return False
        best, best_error = candidate, failure
        return True

    async def apply_edits() -> None:
        improved = True
        while improved and not out_of_budget():
            improved = False
            for edit in _edits(best):
                if out_of_budget():
                    break
                if await attempt(GuidedStrategy(edit)):
                    improved = True
                    break  # restart the edits from the smaller schedule

    async def search_fewer_preemptions() -> bool | None:
        """True: found a smaller one; False: none exists; None: out of runs first."""
        search = DFSStrategy(max_preemptions=best.preemptions - 1)
        stop_at = min(max_runs, runs + SEARCH_RUNS)
        while runs < stop_at and not out_of_budget():
            if not search.begin(0):
                return False
            if await attempt(search):  # every DFS schedule is below the bound
                return True
        return None

    await apply_edits()
    minimal = best.preemptions == 0
    while not minimal and not out_of_budget():
        found = await search_fewer_preemptions()
        if found is None:
            break
        if found:
            await apply_edits()
        minimal = not found or best.preemptions == 0
    reason = None if minimal else (stopped[0] if stopped else None)
    return Shrunk(best, best_error, runs, minimal, reason, time.monotonic() - started)


def _edits(trace: Trace) -> list[list[int]]:
    """Candidate preference lists, the most promising first."""
    choices = [d.task_index for d in trace.decisions]
    edits: list[list[int]] = []
    for decision in trace.decisions:
        if decision.preemption:
            step = decision.step
            previous = trace.decisions[step - 1].task_index
            edits.append([*choices[:step], previous, *choices[step + 1 :]])
            edits.append([*choices[:step], previous, *choices[step:]])
            edits.append([*choices[:step], *choices[step + 1 :]])
            if step > 1:  # switch one step earlier
                edits.append([*choices[: step - 1], choices[step], *choices[step - 1 :]])
    # keep a prefix only: from the cut on, the guide makes no preemption
    for decision in reversed(trace.decisions):
        if decision.preemption:
            edits.append(choices[: decision.step + 1])
    cut = len(choices) // 2
    while cut > 0:
        edits.append(choices[:cut])
        cut //= 2
    # last resort: move one switch to another step (local minima of the edits above)
    for decision in trace.decisions:
        if decision.preemption:
            step, target = decision.step, decision.task_index
            kept = [*choices[:step], trace.decisions[step - 1].task_index, *choices[step + 1 :]]
            for later in range(step + 1, len(choices)):
                edits.append([*kept[:later], target, *kept[later:]])
    return edits
