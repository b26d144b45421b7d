"""Shrinking: make a failing schedule as simple as it can be while the same invariant fails.

A schedule found by a random walk or PCT switches tasks far more often than
the bug needs. The shrinker reruns simpler schedules and keeps one when it
still fails the same way and is smaller: first fewer preemptions, then fewer
decisions. "The same way" is the failure's signature: the exception type and
its message with numbers masked (``balance is 70`` and ``balance is 50`` are
the same lost update).

Switches, not steps. A preemption of the failing schedule is kept as a
``Switch`` aligned on what the tasks do: "when P, parked at ``label`` for the
k-th time, could go on, run T". Editing a list of choices by step number
shifts every later step, so dropping one preemption of five often lands on a
schedule unrelated to the bug, and half the seeds of a real service stopped
at 2-5 preemptions where one was enough. A ``SwitchPlan`` runs never
preempting except for its switches, in order; where a task blocked or ended
it picks the task whose next step came first in the failing schedule, so the
order of requests is kept. The steps, each restarted from every smaller
schedule found:

1. **one switch**: the plan with no switch, then each of the failing
   schedule's switches alone, then each moved by one step of the task it
   preempts (later, then earlier). Most bugs need one preemption, and it is
   one of the found schedule's switches, or next to one: it is found in
   about as many runs as the found schedule has preemptions, times three.
2. **drop switches**: the plans that keep all switches but one, greedily
   (fewer each time a plan fails the same way): for bugs that need several.
3. **one switch, moved further**: each switch moved by 2, 3, ... steps.
4. **edit the choice list** (``GuidedStrategy``: follow the choices where
   they fit, never preempt otherwise), while more than one preemption is
   left: drop one preemption, swap two neighbouring runs of steps, join a
   task's two runs, keep a prefix, move one switch to a later step. These
   leave the local minima of the plans (a bug of three preemptions found
   with nine).
5. **search every schedule with fewer preemptions** (preemption-bounded DFS,
   deepening from 0) with what is left of the budget: a smaller failing
   schedule may make other free choices (start the other request first).
   Its first find has the fewest preemptions. When it finds one, or runs to
   the end without a find, the result is *minimal*: every schedule with
   fewer preemptions was run and none fails this way. Only then; a search
   cut short by the budget claims nothing.
6. **fewer decisions**: keep a prefix of the choices, the rest without
   preemption.

A schedule is a function of its choices, so no list of choices is run whose
schedule is already known (``_Seen``, a trie of every schedule run), and no
plan is run twice.

Budget: a number of runs and a number of seconds (``ShrinkBudget``); the
engine passes ``ShrinkBudget.after_finding(seconds spent finding)``: about
that long, at least ``FLOOR_SECONDS`` and ``MIN_RUNS`` runs (the first runs
are the likely ones: on a loaded machine they must not be cut short), never
more than ``CAP_SECONDS``. Time only
decides *when* to stop, never *what* is tried next: the order of attempts
depends on the failing trace alone, so with an ample budget the result is a
function of the input. ``Shrunk.stopped`` names the cap that stopped it.
"""

from __future__ import annotations

import dataclasses
import itertools
import re
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass

from interlace._core import Candidate, Decision, Strategy, Trace
from interlace.strategies.dfs import DFSStrategy
from interlace.strategies.guided import GuidedStrategy, non_preemptive

_NUMBER = re.compile(r"\d+")

# A failure found in a few milliseconds still gets this long: enough for the switch
# plans and a DFS below the bound of a small scenario (hundreds of runs at 1-5 ms),
# or a few dozen runs of a database-backed one (20-50 ms each).
FLOOR_SECONDS = 2.0
# Never more than this, however long finding took: a CI job waits for the shrinker,
# and past a minute the report is worth more than a smaller schedule.
CAP_SECONDS = 60.0
# Runs when the caller sets none: fast scenarios hit the time budget after about this
# many; the bound keeps a shrink of a sub-millisecond scenario from running 60 s.
DEFAULT_MAX_RUNS = 2000
# Runs made even past the time budget (never past the cap): a bug of one preemption
# found with up to four is shrunk to it within this many (bench/shrink.py: 2-7 runs on
# the PostgreSQL lost message), whether the machine is idle or loaded 5x.
MIN_RUNS = 12

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
    """How long shrinking may take: it stops at ``max_runs`` runs, or when ``seconds``
    have passed, but not before ``min_runs`` runs unless ``cap_seconds`` have passed."""

    max_runs: int
    seconds: float
    #: runs made even when ``seconds`` are spent: the ones most likely to shrink
    min_runs: int = 0
    #: the time never exceeded, not even for ``min_runs`` (None: ``seconds``)
    cap_seconds: float | None = None

    def __post_init__(self) -> None:
        if min(self.max_runs, self.seconds, self.min_runs, self.cap_seconds or 0) < 0:
            raise ValueError(f"a shrink budget cannot be negative: {self}")

    @staticmethod
    def after_finding(
        find_seconds: float,
        *,
        max_runs: int = DEFAULT_MAX_RUNS,
        cap_seconds: float = CAP_SECONDS,
    ) -> ShrinkBudget:
        """About the time spent finding the failure: at least FLOOR_SECONDS and
        MIN_RUNS runs, never more than ``cap_seconds``."""
        seconds = min(cap_seconds, max(FLOOR_SECONDS, find_seconds))
        return ShrinkBudget(max_runs, seconds, min(MIN_RUNS, max_runs), cap_seconds)

    @property
    def cap(self) -> float:
        return self.seconds if self.cap_seconds is None else max(self.seconds, self.cap_seconds)

    def spent(self, runs: int, elapsed: float) -> str | None:
        """None while the budget lasts, else the cap that stops a shrink, as the report
        says it: ``its run budget of 300 runs``, ``its time budget of 4.0 s``."""
        if runs >= self.max_runs:
            return f"its run budget of {self.max_runs} runs"
        if elapsed >= self.cap:
            return f"its time budget of {_seconds(self.cap)}"
        if elapsed >= self.seconds and runs >= self.min_runs:
            return f"its time budget of {_seconds(self.seconds)}"
        return None


def _seconds(value: float) -> str:
    """4.0 s, 0.05 s: a sub-second budget keeps its digits."""
    return f"{value:.1f} s" if value >= 1 else f"{value:.2g} s"


@dataclass(frozen=True)
class Shrunk:
    """The smallest failing schedule found, and the failure it raised."""

    trace: Trace
    error: BaseException
    runs: int
    #: every schedule with fewer preemptions was run and none failed this way
    minimal: bool = False
    #: None when the shrinker finished on its own, else the cap it stopped at
    #: ("its time budget of 4.0 s", "its run budget of 300 runs")
    stopped: str | None = None
    elapsed: float = 0.0


class _OutOfBudget(Exception):
    """Raised by an attempt when the budget is spent; ends the shrink."""


async def shrink(
    trace: Trace,
    error: BaseException,
    run: RunSchedule,
    budget: ShrinkBudget | None = None,
) -> Shrunk:
    """Shrink ``trace`` (which raised ``error``) within ``budget``.

    Without a budget, the floor: ``ShrinkBudget.after_finding(0.0)``. The engine
    passes ``ShrinkBudget.after_finding(seconds it spent finding the failure)``.
    """
    if budget is None:
        budget = ShrinkBudget.after_finding(0.0)
    shrinker = _Shrinker(trace, error, run, budget)
    stopped: str | None = None
    try:
        await shrinker.shrink()
    except _OutOfBudget as spent:
        stopped = str(spent)
    return Shrunk(
        shrinker.best,
        shrinker.best_error,
        shrinker.runs,
        shrinker.minimal,
        stopped,
        time.monotonic() - shrinker.started,
    )


class _Shrinker:
    """One shrink: the best schedule so far, the runs spent, and the steps above."""

    def __init__(
        self, trace: Trace, error: BaseException, run: RunSchedule, budget: ShrinkBudget
    ) -> None:
        self.best, self.best_error = trace, error
        self.wanted = signature(error)
        self.run, self.budget = run, budget
        self.runs = 0
        self.minimal = trace.preemptions == 0
        self.started = time.monotonic()
        self.seen = _Seen()
        self.seen.add(trace, error)
        # a guided list whose run deviated from it is not in ``seen`` under that list
        self.edits_run: dict[tuple[int, ...], Outcome] = {}
        self.plans_run: set[tuple[Switch, ...]] = set()

    async def shrink(self) -> None:
        while True:
            # after every smaller schedule, its own plans first: its switches are others
            if (
                await self.keep_one_switch(farthest=1)
                or await self.drop_switches()
                or await self.keep_one_switch(farthest=len(self.best.decisions))
            ):
                continue
            # with one preemption left, the search below covers what the edits could find
            if self.best.preemptions <= 1 or not await self.apply_edits(_edits):
                break
        if not self.minimal:
            await self.search_fewer_preemptions()
        await self.apply_edits(_prefixes)  # the fewest preemptions: now fewer decisions

    def accept(self, candidate: Trace, failure: BaseException | None) -> bool:
        """Keep ``candidate`` when it fails the same way and is smaller."""
        if failure is None or signature(failure) != self.wanted:
            return False
        if size(candidate) >= size(self.best):
            return False
        self.best, self.best_error = candidate, failure
        self.minimal = self.minimal or candidate.preemptions == 0
        return True

    async def attempt(self, strategy: Strategy) -> bool:
        """Run one schedule; True when it became the best."""
        self.check_budget()
        self.runs += 1
        candidate, failure = await self.run(strategy)
        self.seen.add(candidate, failure)
        return self.accept(candidate, failure)

    async def attempt_choices(self, preferences: Sequence[int]) -> bool:
        """Run the guided schedule of ``preferences``, unless it has been run already."""
        wanted = tuple(preferences)
        known = self.edits_run.get(wanted) or self.seen.outcome_of(wanted)
        if known is not None:
            return self.accept(*known)
        self.check_budget()
        self.runs += 1
        outcome = await self.run(GuidedStrategy(wanted))
        self.seen.add(*outcome)
        self.edits_run[wanted] = outcome
        return self.accept(*outcome)

    def check_budget(self) -> None:
        spent = self.budget.spent(self.runs, time.monotonic() - self.started)
        if spent is not None:
            raise _OutOfBudget(spent)

    async def attempt_plan(self, switches: Sequence[Switch]) -> bool:
        """Run the switch plan of ``switches`` over the best schedule's order, once.

        Once: a smaller schedule suggests many of the same switches again, and its
        order differs from the last one's only where the plans rarely go.
        """
        plan = tuple(switches)
        if plan in self.plans_run:
            return False
        self.plans_run.add(plan)
        return await self.attempt(SwitchPlan(plan, _event_order(self.best)))

    async def keep_one_switch(self, farthest: int) -> bool:
        """Step 1a: the plan with no switch, then those with one of the best schedule's
        switches, moved by at most ``farthest`` steps of the task it preempts."""
        if await self.attempt_plan(()):
            return True
        if self.best.preemptions > 1:
            for switch in _one_switch_plans(self.best, farthest):
                if await self.attempt_plan((switch,)):
                    return True
        return False

    async def drop_switches(self) -> bool:
        """Step 1b: drop one switch at a time while the plan still fails the same way."""
        improved = False
        dropped = True
        while dropped and self.best.preemptions > 1:
            dropped = False
            switches = _switches(self.best)
            for index in range(len(switches)):
                if await self.attempt_plan([*switches[:index], *switches[index + 1 :]]):
                    improved = dropped = True
                    break
        return improved

    async def apply_edits(self, edits: Callable[[Trace], Iterator[list[int]]]) -> bool:
        """Step 2: edits of the choice list, restarted from every smaller schedule."""
        improved = False
        restart = True
        while restart:
            restart = False
            for edit in edits(self.best):
                if await self.attempt_choices(edit):
                    improved = restart = True
                    break
        return improved

    async def search_fewer_preemptions(self) -> None:
        """Step 3: every schedule below the bound, in order of preemptions."""
        search = DFSStrategy(max_preemptions=self.best.preemptions - 1)
        while search.begin(0):
            if await self.attempt(search):
                break
        # the first find has the fewest preemptions: every schedule below it was run
        self.minimal = True


Point = tuple[str, int]  # (label a task is parked at, times it ran from that label before)


@dataclass(frozen=True)
class Switch:
    """One preemption, aligned on what the two tasks do rather than on its step.

    At the first step where ``away`` ran last, is parked at ``point`` and could
    go on, run ``to`` (if ``to_label`` is given: only when ``to`` is parked
    there). ``point`` is None when the failing schedule never ran ``away`` again;
    the switch then comes after ``away_steps`` steps of ``away``.
    """

    away: str
    point: Point | None
    away_steps: int
    to: str
    to_label: str | None


def _points(decisions: Sequence[Decision], task: str) -> list[Point]:
    """The points ``task`` ran from, in its own order."""
    visits: dict[str, int] = {}
    points: list[Point] = []
    for decision in decisions:
        if decision.task == task:
            points.append((decision.label, visits.get(decision.label, 0)))
            visits[decision.label] = visits.get(decision.label, 0) + 1
    return points


def _switches(trace: Trace) -> list[Switch]:
    """The preemptions of ``trace`` as switches, in the order it made them."""
    return [switch for switch, _points_of_away, _index in _preemptions(trace)]


def _preemptions(trace: Trace) -> Iterator[tuple[Switch, list[Point], int]]:
    """Each preemption's switch, the points of the task it preempts, and its point's index."""
    decisions = trace.decisions
    for decision in decisions:
        if not decision.preemption:
            continue
        away = decisions[decision.step - 1].task
        points = _points(decisions, away)
        ran = sum(1 for d in decisions[: decision.step] if d.task == away)
        point = points[ran] if ran < len(points) else None
        yield Switch(away, point, ran, decision.task, decision.label), points, ran


def _one_switch_plans(trace: Trace, farthest: int) -> list[Switch]:
    """The single switches ``trace`` suggests, the most likely first.

    First each of its own switches; then each moved by one step of the task it
    preempts (later, then earlier), then by two, ... up to ``farthest``: the bug's
    one preemption is often one of the found schedule's switches, made a little
    later or earlier. Alone in a plan, a switch goes to its task wherever that
    task is parked by then: the other switches that brought it there are gone.
    """
    found = list(_preemptions(trace))
    plans: dict[Switch, None] = {}
    for switch, _points_of_away, _index in found:
        plans.setdefault(dataclasses.replace(switch, to_label=None), None)
    longest = max((len(points) for _switch, points, _index in found), default=0)
    for distance in range(1, min(longest, farthest + 1)):
        for switch, points, index in found:
            for point in (index + distance, index - distance):
                if 1 <= point < len(points):  # point 0: the task has not run yet
                    plan = Switch(switch.away, points[point], point, switch.to, None)
                    plans.setdefault(plan, None)
    return list(plans)


Event = tuple[str, str, int]  # (task, label, how many times it ran from that label before)


def _event_order(trace: Trace) -> dict[Event, int]:
    """The step at which ``trace`` ran each task from each label, the n-th time."""
    visits: dict[tuple[str, str], int] = {}
    order: dict[Event, int] = {}
    for decision in trace.decisions:
        key = (decision.task, decision.label)
        count = visits.get(key, 0)
        visits[key] = count + 1
        order.setdefault((*key, count), decision.step)
    return order


class SwitchPlan:
    """Never preempt, except for ``switches``, in order; free choices follow ``order``.

    A free choice (the task that ran last blocked or ended) goes to the runnable
    task whose next step came first in the failing schedule, so the plan keeps
    that schedule's order of requests while it drops its other preemptions.
    """

    name = "shrink"

    def __init__(self, switches: Sequence[Switch], order: dict[Event, int]) -> None:
        self.switches = tuple(switches)
        self.order = order
        self._next = 0
        self._visits: dict[tuple[str, str], int] = {}
        self._steps: dict[str, int] = {}

    def begin(self, seed: int) -> bool:
        self._next = 0
        self._visits = {}
        self._steps = {}
        return True

    def choose(
        self, step: int, runnable: Sequence[Candidate], previous: Candidate | None
    ) -> Candidate:
        if previous is None:
            chosen = self._free(runnable)
        else:
            chosen = self._switch(runnable, previous) or non_preemptive(runnable, previous)
        key = (chosen.name, chosen.label)
        self._visits[key] = self._visits.get(key, 0) + 1
        self._steps[chosen.name] = self._steps.get(chosen.name, 0) + 1
        return chosen

    def end(self, trace: Trace) -> None:
        return None

    def _switch(self, runnable: Sequence[Candidate], previous: Candidate) -> Candidate | None:
        """The target of the next switch, when this is its step."""
        if self._next >= len(self.switches):
            return None
        switch = self.switches[self._next]
        if previous.name != switch.away:
            return None
        if switch.point is None:
            if self._steps.get(previous.name, 0) != switch.away_steps:
                return None
        elif (previous.label, self._visits.get((previous.name, previous.label), 0)) != switch.point:
            return None
        for candidate in runnable:
            if candidate.name == switch.to and switch.to_label in (None, candidate.label):
                self._next += 1
                return candidate
        return None

    def _free(self, runnable: Sequence[Candidate]) -> Candidate:
        def rank(position: int) -> tuple[int, int]:
            candidate = runnable[position]
            visits = self._visits.get((candidate.name, candidate.label), 0)
            event = (candidate.name, candidate.label, visits)
            return (self.order.get(event, len(self.order)), position)

        return runnable[min(range(len(runnable)), key=rank)]


class _Seen:
    """Schedules already run, in a trie of their choices.

    The outcome of a guided list of choices is known without a run when the
    guide, walking the trie, makes a known schedule's choices: each preferred
    task where it is runnable, its own choice (never preempt, else the first
    task) where it is not, and from the end of the list on its own choices
    only, which the schedule must have made too.
    """

    def __init__(self) -> None:
        self.root = _Node()

    def add(self, trace: Trace, failure: BaseException | None) -> None:
        outcome = (trace, failure)
        tail = _guided_tail(trace)
        index_of = {d.task: d.task_index for d in trace.decisions}
        node = self.root
        for depth, decision in enumerate(trace.decisions):
            if depth >= tail and node.known is None:
                node.known = outcome
            if node.runnable is None and all(name in index_of for name in decision.runnable):
                node.runnable = tuple(index_of[name] for name in decision.runnable)
            node = node.children.setdefault(decision.task_index, _Node())
        node.known = node.known or outcome
        node.ended = node.ended or outcome

    def outcome_of(self, preferences: Sequence[int]) -> Outcome | None:
        """The outcome of the guided run of ``preferences``, when it is known."""
        node, last = self.root, None
        for wanted in preferences:
            if node.ended is not None:
                return node.ended  # that schedule ended here: the rest of the list is unused
            choice = _guided_choice(node, wanted, last)
            child = node.children.get(choice) if choice is not None else None
            if child is None:
                return None
            node, last = child, choice
        return node.known


def _guided_choice(node: _Node, wanted: int, last: int | None) -> int | None:
    """What the guide runs at ``node`` when it prefers ``wanted`` (None: not known)."""
    if wanted in node.children:  # a schedule ran it here, so it is runnable here
        return wanted
    if node.runnable is None:
        return None
    if wanted in node.runnable:
        return wanted
    return last if last in node.runnable else node.runnable[0]


Outcome = tuple[Trace, BaseException | None]


class _Node:
    """One step in ``_Seen``: the choices made after it, and what is known there."""

    __slots__ = ("children", "ended", "known", "runnable")

    def __init__(self) -> None:
        self.children: dict[int, _Node] = {}
        #: the runnable tasks' indices at this step, in creation order (None: not known)
        self.runnable: tuple[int, ...] | None = None
        #: a schedule through here whose own choices the guide makes from here on
        self.known: Outcome | None = None
        #: a schedule that ended here
        self.ended: Outcome | None = None


def _guided_tail(trace: Trace) -> int:
    """The first step from which ``trace`` made only the choices a guide makes by itself."""
    decisions = trace.decisions
    tail = len(decisions)
    for step in range(len(decisions) - 1, -1, -1):
        if not _is_default(decisions, step):
            break
        tail = step
    return tail


def _is_default(decisions: Sequence[Decision], step: int) -> bool:
    decision = decisions[step]
    previous = decisions[step - 1].task if step > 0 else None
    if previous is not None and previous in decision.runnable:
        return decision.task == previous
    return bool(decision.runnable) and decision.task == decision.runnable[0]


def _edits(trace: Trace) -> Iterator[list[int]]:
    """Edits towards fewer preemptions, the most promising first."""
    choices = [d.task_index for d in trace.decisions]
    preemptions = [d.step for d in trace.decisions if d.preemption]
    for step in preemptions:
        previous = choices[step - 1]
        yield [*choices[:step], previous, *choices[step + 1 :]]
        yield [*choices[:step], previous, *choices[step:]]
        yield [*choices[:step], *choices[step + 1 :]]
        if step > 1:  # switch one step earlier
            yield [*choices[: step - 1], choices[step], *choices[step - 1 :]]
    # swap two neighbouring runs of steps of different tasks: both keep their length,
    # so every later step stays where it was (A A B B B C -> B B B A A C)
    blocks = _blocks(choices)
    for (start, middle), (_, end) in itertools.pairwise(blocks):
        yield [*choices[:start], *choices[middle:end], *choices[start:middle], *choices[end:]]
    yield from _merges(choices, blocks)
    yield from _prefixes(trace)
    # last resort: move one switch to another step (local minima of the edits above)
    for step in preemptions:
        target = choices[step]
        kept = [*choices[:step], choices[step - 1], *choices[step + 1 :]]
        for later in range(step + 1, len(choices)):
            yield [*kept[:later], target, *kept[later:]]


def _prefixes(trace: Trace) -> Iterator[list[int]]:
    """Keep a prefix only: from the cut on, the guide makes no preemption.

    These shorten a schedule whose preemptions are as few as they get: the
    non-preemptive tail may reach the failure in fewer decisions.
    """
    choices = [d.task_index for d in trace.decisions]
    for decision in reversed(trace.decisions):
        if decision.preemption:
            yield choices[: decision.step + 1]
    cut = len(choices) // 2
    while cut > 0:
        yield choices[:cut]
        cut //= 2


def _blocks(choices: Sequence[int]) -> list[tuple[int, int]]:
    """(start, end) of every maximal run of one task's steps."""
    starts = [step for step, task in enumerate(choices) if step == 0 or task != choices[step - 1]]
    return list(itertools.pairwise([*starts, len(choices)]))


def _merges(choices: list[int], blocks: list[tuple[int, int]]) -> Iterator[list[int]]:
    """Join a task's run of steps to its next one: move the first later, or the next earlier.

    Only the steps in between shift; every step after the joined run stays where it was.
    """
    for position, (start, end) in enumerate(blocks):
        task = choices[start]
        later = next((b for b in blocks[position + 1 :] if choices[b[0]] == task), None)
        if later is None or later[0] == end:
            continue
        next_start, next_end = later
        between = choices[end:next_start]
        moved_later = [*choices[:start], *between, *choices[start:end], *choices[next_start:]]
        moved_earlier = [*choices[:end], *choices[next_start:next_end], *between]
        yield moved_later
        yield [*moved_earlier, *choices[next_end:]]
