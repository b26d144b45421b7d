"""What a run expects to find, and the one place an outcome is judged against it.

A normal test or simulation expects nothing: any finding fails it. A *canary*
(``expect_violation=True`` or ``expect_violation=(some_invariant, ...)``) is a
known-buggy variant whose violation the run must find: it guards the
invariants against going blind. The pytest marker, simulation tests and
``interlace run`` all judge with ``Expectation.judge``, so they say the same
thing in the same words.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from interlace._core.errors import UsageError
from interlace.invariants import Invariant, InvariantViolation
from interlace.outcome import Failure, Outcome


@dataclass(frozen=True)
class Judgement:
    """Whether an outcome meets the expectation, and one line saying why."""

    ok: bool
    message: str
    #: the finding was the expected violation of a canary
    caught: bool = False


@dataclass(frozen=True)
class Expectation:
    """Nothing (``NONE``), any invariant violation, or a violation of one of ``invariants``."""

    violation: bool = False
    #: names of the invariants one of which must be violated; empty: any of them
    invariants: tuple[str, ...] = ()

    @staticmethod
    def of(
        expect_violation: bool | Iterable[Invariant | str],
        declared: Iterable[Invariant] | None = None,
    ) -> Expectation:
        """From the ``expect_violation=`` keyword of a simulation or a pytest marker.

        ``declared`` (a simulation's invariants) lets names be checked now, at
        declaration, instead of never matching later.
        """
        if isinstance(expect_violation, bool):
            return Expectation(violation=expect_violation)
        names = tuple(i.name if isinstance(i, Invariant) else i for i in expect_violation)
        if not names or not all(isinstance(name, str) for name in names):
            raise UsageError(
                "expect_violation takes True, False, or the Invariant objects (or their names) "
                f"one of which the run must violate; got {expect_violation!r}"
            )
        if declared is not None:
            known = {i.name for i in declared}
            missing = [n for n in names if n not in known]
            if missing:
                raise UsageError(
                    f"expect_violation names {missing[0]!r}, which is not among the "
                    "simulation's invariants; pass the Invariant objects themselves"
                )
        return Expectation(violation=True, invariants=names)

    @property
    def canary(self) -> bool:
        return self.violation

    def describe(self) -> str:
        """``a violation of 'X' or 'Y'``, or ``an invariant violation``."""
        if not self.invariants:
            return "an invariant violation"
        return "a violation of " + " or ".join(repr(name) for name in self.invariants)

    def met_by(self, failure: Failure) -> bool:
        """Whether ``failure`` is the violation this canary expects."""
        if not self.violation or failure.outcome is not Outcome.VIOLATION:
            return False
        if not isinstance(failure.exception, AssertionError):
            return False  # the application raised: not an invariant's verdict
        if not self.invariants:
            return True
        if not isinstance(failure.exception, InvariantViolation):
            return False
        return any(name in self.invariants for name in failure.exception.invariants)

    def judge(self, failure: Failure | None, searched: str) -> Judgement:
        """Judge a finding (or its absence) after ``searched`` ("200 schedules", ...).

        Problems (usage and internal errors) are never judged here: they are
        not about the code under test, whatever was expected.
        """
        if not self.violation:
            if failure is None:
                return Judgement(True, f"no violation in {searched}")
            return Judgement(False, first_line(failure.headline()))
        if failure is None:
            return Judgement(
                False,
                f"canary not caught: expected {self.describe()} within {searched} and found "
                "none; the invariants may have gone blind, or the budget is too small",
            )
        if self.met_by(failure):
            return Judgement(
                True,
                f"expected violation found at schedule {failure.schedule + 1}: "
                f"{first_line(failure.headline())}",
                caught=True,
            )
        return Judgement(
            False,
            f"canary expected {self.describe()} but failed otherwise: "
            f"{first_line(failure.headline())}",
        )


NONE = Expectation()


def first_line(text: str) -> str:
    return text.splitlines()[0] if text else ""


__all__ = ["NONE", "Expectation", "Judgement"]
