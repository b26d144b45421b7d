"""What a run found: the outcome classes, failures, problems, and the reports that carry them.

Every schedule's outcome is classified once, in the engine (``interlace.engine``),
into exactly one class; everything downstream (the pytest plugin, ``interlace
run``, the JSON document, the exit status) reads the class and never re-sorts:

=================  ==============================================  =====  ======  =====  ====
class              what                                            token  shrunk  saved  exit
=================  ==============================================  =====  ======  =====  ====
violation          an invariant failed, or the application raised  yes    yes     yes    1
scheduler finding  deadlock, step bound, stuck, nondeterminism     yes    yes*    yes    1
usage error        misuse, a bad invariant return value, stuck     no     no      no     2
                   setup or reset, no database, a stale token
internal error     an exception from interlace's own code          shown  no      no     3
=================  ==============================================  =====  ======  =====  ====

(*) a deadlock or a step bound is shrunk; a schedule stuck on outside I/O or a
divergence is not: rerunning it would wait the whole bound again, or prove
nothing.

A *finding* (violation, scheduler finding) is a ``Failure``: it has a token
that replays it. A usage or internal error is a ``Problem``: a message that
says what is wrong, why, and what to do. Neither travels as an exception
attribute: reports carry them by value.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from pathlib import Path

from interlace._core.errors import TokenError
from interlace._core.trace import Trace
from interlace.report.failure import failure_report, interlace_replay_command


class Outcome(enum.Enum):
    """The class of a schedule's or a run's outcome; see the module docstring."""

    PASSED = "passed"
    VIOLATION = "violation"
    SCHEDULER_FINDING = "scheduler finding"
    USAGE_ERROR = "usage error"
    INTERNAL_ERROR = "internal error"

    @property
    def exit_code(self) -> int:
        """0 passed, 1 a finding, 2 a usage or setup error, 3 a bug in interlace."""
        return _EXIT_CODES[self]

    @property
    def is_finding(self) -> bool:
        """A violation or a scheduler finding: it has a token and is about the code under test."""
        return self in (Outcome.VIOLATION, Outcome.SCHEDULER_FINDING)

    @property
    def is_problem(self) -> bool:
        """A usage or internal error: not about the code under test."""
        return self in (Outcome.USAGE_ERROR, Outcome.INTERNAL_ERROR)


_EXIT_CODES = {
    Outcome.PASSED: 0,
    Outcome.VIOLATION: 1,
    Outcome.SCHEDULER_FINDING: 1,
    Outcome.USAGE_ERROR: 2,
    Outcome.INTERNAL_ERROR: 3,
}

INTERNAL_HEADLINE = "internal error in interlace (a bug: please report it with this token)"


def exit_code(outcomes: list[Outcome]) -> int:
    """The exit status of a run of several outcomes: the most severe one's."""
    return max((outcome.exit_code for outcome in outcomes), default=0)


@dataclass(frozen=True)
class Shrinking:
    """What shrinking did to a finding."""

    #: (preemptions, decisions) of the schedule as found
    found_size: tuple[int, int]
    runs: int
    seconds: float
    #: every schedule with fewer preemptions was run and none fails this way
    minimal: bool = False
    #: why shrinking stopped early ("its time budget of 5.0 s"), None when it finished
    stopped: str | None = None
    #: of the schedules that passed while shrinking, the one whose choices differ least
    #: from the shrunk one (usually the same decisions with one switch undone): reports
    #: show where the two part; None when no shrink run passed
    nearest_passing: Trace | None = None


@dataclass(frozen=True)
class Failure:
    """A finding: a failing schedule, what it raised, its trace and the token that replays it."""

    outcome: Outcome
    exception: BaseException
    token: str
    trace: Trace
    #: index of the schedule of the exploration that found it (0 for a replay)
    schedule: int
    seed: int
    shrinking: Shrinking | None = None

    @property
    def kind(self) -> str:
        """``invariant`` (an AssertionError), ``scheduler`` (deadlock, ...), or ``error``."""
        if self.outcome is Outcome.SCHEDULER_FINDING:
            return "scheduler"
        if isinstance(self.exception, AssertionError):
            return "invariant"
        return "error"

    def headline(self) -> str:
        """``InvariantViolation: final invariant violated: ...`` (may span lines)."""
        return headline_of(self.exception)

    def shrink_note(self) -> str:
        """``shrunk from 5 preemptions / 31 decisions to 1 / 18 in 12 runs (0.4 s)``, or ""."""
        shrinking = self.shrinking
        if shrinking is None:
            return ""
        found_p, found_d = shrinking.found_size
        notes = []
        if (found_p, found_d) != (self.trace.preemptions, len(self.trace.decisions)):
            notes.append(
                f"shrunk from {found_p} preemptions / {found_d} decisions to "
                f"{self.trace.preemptions} / {len(self.trace.decisions)} "
                f"in {shrinking.runs} runs ({shrinking.seconds:.1f} s)"
            )
        if shrinking.minimal and self.trace.preemptions > 0:
            notes.append(
                f"minimal: every schedule with fewer than {self.trace.preemptions} "
                "preemptions was run and none fails this way"
            )
        if shrinking.stopped is not None:
            notes.append(f"shrinking stopped at {shrinking.stopped}")
        return "; ".join(notes)

    def describe(self, *, full: bool = False, width: int | None = None) -> str:
        """The violation, where it was raised, the interleaving table, the token, the replay.

        ``full``: the table shows the rows it folds by default (setup, the
        framework's own tasks, the invariants' reads); ``width``: the columns
        to fit (default: the terminal's). See ``interlace.report.table``.
        """
        return failure_report(
            self,
            [("replay", interlace_replay_command(self.token))],
            full=full,
            width=width,
            full_hint="describe(full=True)",
        )


@dataclass(frozen=True)
class Problem:
    """A usage, setup or internal error: not a finding about the code under test.

    ``message`` says what is wrong, why, and what to do (one paragraph).
    ``token`` is set for an internal error that happened inside a schedule:
    it is shown for the bug report, never saved as a regression.
    """

    outcome: Outcome
    message: str
    exception: BaseException
    token: str | None = None
    #: the formatted traceback of an internal error (for the bug report), else ""
    details: str = ""

    def headline(self) -> str:
        """The first line a person sees."""
        if self.outcome is Outcome.INTERNAL_ERROR:
            return f"{INTERNAL_HEADLINE}: {self.message}"
        return self.message.splitlines()[0] if self.message else "(no message)"

    def describe(self) -> str:
        """The message, and for an internal error its token and traceback."""
        if self.outcome is not Outcome.INTERNAL_ERROR:
            return self.message
        lines = [self.headline()]
        if self.token is not None:
            lines.append(f"token: {self.token}")
        if self.details:
            lines += ["", self.details.rstrip()]
        return "\n".join(lines)


@dataclass(frozen=True)
class ScheduleRecord:
    """One explored schedule, as ``explore(on_schedule=...)`` hears about it."""

    index: int
    seed: int
    trace: Trace
    outcome: Outcome
    error: BaseException | None
    #: distinct interleavings among the schedules explored so far, this one included
    interleavings: int = 0


@dataclass(frozen=True)
class ExploreReport:
    """The result of ``explore``: what ran, and the one outcome it came to."""

    scenario: str
    strategy: str
    seed: int
    schedules_run: int
    distinct_interleavings: int
    failure: Failure | None
    exhausted: bool
    elapsed: float
    #: what the strategy can say it covered (DFS: "exhausted: N schedules within ..."), or ""
    coverage: str = ""
    determinism_checked: bool = False
    #: why this run's schedules may not replay exactly (lock waits that could not be
    #: frozen, ``interlace.db.postgres``); None when a schedule is its choices alone
    best_effort: str | None = None
    #: a usage, setup or internal error that ended the run; never with a failure
    problem: Problem | None = None
    #: sometimes invariant name -> explored schedules in which it held (shrink runs and
    #: determinism reruns are not counted)
    sometimes: dict[str, int] = field(default_factory=dict)
    #: coverage growth: (schedules run, distinct interleavings so far), in order, at most
    #: about 200 points, the last one the whole run (see ``interlace.explore``)
    coverage_curve: tuple[tuple[int, int], ...] = ()

    @property
    def outcome(self) -> Outcome:
        if self.problem is not None:
            return self.problem.outcome
        if self.failure is not None:
            return self.failure.outcome
        return Outcome.PASSED

    @property
    def passed(self) -> bool:
        """No failure and no problem in the schedules run; see ``coverage`` for what that covers."""
        return self.outcome is Outcome.PASSED

    def never_held(self) -> list[str]:
        """Sometimes invariants that held in no explored schedule, in declaration order."""
        return [name for name, count in self.sometimes.items() if count == 0]

    def summary(self) -> str:
        if self.problem is not None:
            verdict = self.problem.outcome.value.upper()
        elif self.failure is not None:
            verdict = "FAILED"
        elif self.exhausted:
            verdict = "no failure, search space exhausted"
        else:
            verdict = "no failure within the budget"
        notes = [self.strategy, f"seed {self.seed}", f"{self.elapsed:.2f} s"]
        if self.determinism_checked:
            notes.append("every schedule run twice")
        summary = (
            f"{self.scenario}: {verdict} after {self.schedules_run} schedules "
            f"({self.distinct_interleavings} distinct interleavings, {', '.join(notes)})"
        )
        if self.coverage:
            summary += f"; {self.coverage}"
        if self.best_effort:
            summary += f"; determinism is best effort: {self.best_effort}"
        return summary

    def describe(self) -> str:
        """The summary, then the failure or the problem in full."""
        if self.problem is not None:
            return f"{self.summary()}\n\n{self.problem.describe()}"
        if self.failure is not None:
            return f"{self.summary()}\n\n{self.failure.describe()}"
        return self.summary()


@dataclass(frozen=True)
class ReplayReport:
    """The result of replaying one token: it passes now, it fails (a finding), or it cannot run."""

    scenario: str
    token: str
    trace: Trace | None
    failure: Failure | None = None
    problem: Problem | None = None

    @property
    def outcome(self) -> Outcome:
        if self.problem is not None:
            return self.problem.outcome
        if self.failure is not None:
            return self.failure.outcome
        return Outcome.PASSED


def headline_of(error: BaseException) -> str:
    """``TypeName: message`` (the message may span lines)."""
    message = str(error).strip() or "(no message)"
    return f"{type(error).__name__}: {message}"


# ---- simulations: verdicts --------------------------------------------------------------


class Verdict(enum.Enum):
    """How a simulation's run ended (``interlace.runner``); ``ok`` says whether it passes."""

    PASSED = "passed"
    CAUGHT = "caught (expected)"
    VIOLATION = "VIOLATION"
    REGRESSION = "REGRESSION"
    VACUOUS = "VACUOUS"
    MISSED = "MISSED"
    USAGE_ERROR = "USAGE ERROR"
    INTERNAL_ERROR = "INTERNAL ERROR"

    @property
    def ok(self) -> bool:
        return self in (Verdict.PASSED, Verdict.CAUGHT)

    @property
    def exit_code(self) -> int:
        """0 passes, 1 fails on the code under test, 2 a usage error, 3 a bug in interlace."""
        if self.ok:
            return 0
        if self is Verdict.USAGE_ERROR:
            return 2
        if self is Verdict.INTERNAL_ERROR:
            return 3
        return 1


@dataclass(frozen=True)
class RegressionReplay:
    """A saved token replayed before exploring: it passes, still fails, is stale, or cannot run."""

    path: Path
    token: str
    report: ReplayReport

    @property
    def failure(self) -> Failure | None:
        return self.report.failure

    @property
    def stale(self) -> str | None:
        """Why the token no longer fits the code (a ``TokenError``), or None."""
        problem = self.report.problem
        if problem is not None and isinstance(problem.exception, TokenError):
            return problem.message
        return None

    @property
    def problem(self) -> Problem | None:
        """A usage or internal error that is not a stale token."""
        problem = self.report.problem
        return problem if problem is not None and self.stale is None else None

    def state(self) -> str:
        """``passes``, ``still fails``, ``stale, delete it (...)``, or the problem."""
        if self.stale is not None:
            return f"stale, delete it ({self.stale})"
        if self.problem is not None:
            return f"could not run ({self.problem.outcome.value})"
        return "still fails" if self.failure is not None else "passes"


@dataclass(frozen=True)
class SimulationRun:
    """The verdict of one simulation on one database kind, and what it rests on."""

    #: ``module:attribute[database]``: the name its tokens carry
    scenario: str
    database: str | None
    canary: bool
    verdict: Verdict
    #: one line saying why (what was found, what was missing)
    message: str
    #: the finding behind the verdict: unexpected, a regression's, or a canary's catch
    failure: Failure | None
    #: None when a failing regression or a setup problem ended the run before exploring
    report: ExploreReport | None
    regressions: tuple[RegressionReplay, ...] = ()
    #: the usage or internal error behind a USAGE_ERROR or INTERNAL_ERROR verdict
    problem: Problem | None = None

    @property
    def ok(self) -> bool:
        return self.verdict.ok

    @property
    def elapsed(self) -> float:
        return 0.0 if self.report is None else self.report.elapsed

    @property
    def sometimes(self) -> dict[str, int]:
        """Explored schedules in which each sometimes invariant held."""
        return {} if self.report is None else dict(self.report.sometimes)


__all__ = [
    "INTERNAL_HEADLINE",
    "ExploreReport",
    "Failure",
    "Outcome",
    "Problem",
    "RegressionReplay",
    "ReplayReport",
    "ScheduleRecord",
    "Shrinking",
    "SimulationRun",
    "Verdict",
    "exit_code",
    "headline_of",
]
