"""Where a finding is in the application's source: what SARIF, GitHub annotations and JSON point at.

A violation's location is its *first application frame*: the innermost frame
of its traceback that is not interlace's own code, the standard library, or
an installed package (SQLAlchemy, aiosqlite, asyncpg, ... in site-packages).
That is the line a person fixes or reads first: the ``assert`` in an
invariant, the application line that raised. An ``InvariantViolation`` has
one location per violated invariant (each check's own frames). A finding
with no application frame at all (a deadlock, a step bound: raised by the
scheduler) points at the definition of the simulation or test it ran.

    >>> [located.location for located in failure_locations(failure)]
    [SourceLocation(path='/repo/simulations/chat/invariants.py', line=41, function='unique_ids')]

Nothing here imports or runs anything: the scenario's definition is looked
up only in modules already imported (the run imported them).
"""

from __future__ import annotations

import inspect
import os
import re
import sys
import traceback
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from interlace._core import Token, TokenError
from interlace.invariants import InvariantViolation, SourceFrame
from interlace.outcome import Failure, headline_of
from interlace.report.frames import is_application_file

_VARIANT = re.compile(r"\[[^\[\]]*\]$")


@dataclass(frozen=True)
class SourceLocation:
    """A line of the application's source."""

    path: str  # absolute
    line: int
    function: str

    def relative(self, root: Path | None = None) -> str:
        """The path relative to ``root`` (default: the current directory), POSIX style.

        A file outside ``root`` keeps its absolute path.
        """
        base = Path(root if root is not None else Path.cwd()).resolve()
        try:
            return Path(self.path).resolve().relative_to(base).as_posix()
        except ValueError:
            return Path(self.path).as_posix()


@dataclass(frozen=True)
class Located:
    """One violation of a finding (a finding may violate several invariants) and where it is."""

    #: the violation's own headline: ``final invariant violated: ...`` (may span lines)
    message: str
    #: the invariant's name for an invariant violation, else None
    invariant: str | None
    location: SourceLocation | None


def is_application(filename: str) -> bool:
    """Whether a frame of ``filename`` is the application's: ``raised at`` uses the same rule."""
    return bool(filename) and is_application_file(filename)


def application_frame(frames: Iterable[SourceFrame]) -> SourceLocation | None:
    """The innermost application frame of ``frames`` (outermost first), or None."""
    found = None
    for filename, line, function in frames:
        if is_application(filename):
            found = SourceLocation(os.path.abspath(filename), line, function)
    return found


def frames_of(error: BaseException) -> tuple[SourceFrame, ...]:
    """The frames of ``error``'s traceback, outermost first."""
    return tuple(
        (entry.filename, entry.lineno or 0, entry.name)
        for entry in traceback.extract_tb(error.__traceback__)
    )


def failure_locations(failure: Failure) -> list[Located]:
    """One ``Located`` per violation of ``failure``, in order (see the module docstring)."""
    fallback = scenario_location(failure.token)
    error = failure.exception
    if isinstance(error, InvariantViolation):
        return [
            Located(
                violation.describe(),
                violation.invariant,
                application_frame(violation.frames) or fallback,
            )
            for violation in error.violations
        ]
    return [Located(headline_of(error), None, application_frame(frames_of(error)) or fallback)]


def scenario_location(token: str) -> SourceLocation | None:
    """The definition of the simulation or test a token's scenario names, if it is imported."""
    try:
        scenario = Token.decode(token).scenario
    except TokenError:
        return None
    return definition_of(scenario)


def definition_of(scenario: str) -> SourceLocation | None:
    """Where ``module:qualname[variant]`` is defined, looked up in ``sys.modules`` only."""
    module_name, _, qualname = scenario.partition(":")
    target: object = sys.modules.get(module_name)
    if target is None or not qualname:
        return None
    for part in _VARIANT.sub("", qualname).split("."):
        target = getattr(target, part, None)
        if target is None:
            return None
    return _code_location(target)


def _code_location(target: object) -> SourceLocation | None:
    # a Simulation or Scenario holds its function as .body; a test may be wrapped
    body = getattr(target, "body", target)
    function = inspect.unwrap(body) if callable(body) else body
    code = getattr(function, "__code__", None)
    if code is None:
        return None
    return SourceLocation(os.path.abspath(code.co_filename), code.co_firstlineno, code.co_name)


def first_location(located: Sequence[Located]) -> SourceLocation | None:
    """The first known location among ``located``."""
    return next((item.location for item in located if item.location is not None), None)


__all__ = [
    "Located",
    "SourceLocation",
    "application_frame",
    "definition_of",
    "failure_locations",
    "first_location",
    "frames_of",
    "is_application",
    "scenario_location",
]
