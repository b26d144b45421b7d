"""Invariants of a simulation: final, always and sometimes.

An invariant is a named check of the simulation's *world* (whatever its
``world=`` factory yields: an engine, the requests it sent and what they got
back). Its name is a sentence that says what must hold; the check raises
``AssertionError`` (a plain ``assert cond, "detail"``) with the detail when it
does not, or returns False. The contract of the return value:

- ``final`` and ``always``: ``None`` or ``True`` holds, ``False`` is a violation
  (without a detail: prefer ``assert cond, "detail"``);
- ``sometimes``: ``True`` (it happened in this schedule) or ``False``;
- anything else (a forgotten ``return`` in a sometimes check, a string, a
  count) is a usage error at its first call: the run stops with a message
  naming the invariant, never with a violation or a token.

::

    from interlace import invariants

    @invariants.final("every message_id is unique")
    async def unique_ids(world: ChatWorld) -> None:
        ids = [m["message_id"] for m in await world.thread()]
        assert len(ids) == len(set(ids)), f"{len(ids) - len(set(ids))} duplicated ids"

    @invariants.always("at most one request holds the guard")
    def single_flight(world: ChatWorld) -> None:
        assert len(world.holding) <= 1, f"{world.holding} hold it at once"

    @invariants.sometimes("a state_rev conflict happened", databases=("postgres",))
    def conflict_happened(world: ChatWorld) -> bool:
        return world.conflicts > 0

The three kinds:

- ``final``: checked once per schedule, after the simulation's body returned
  (every request it started has finished). It may be async and read the
  database.
- ``always``: checked before every scheduling decision of the schedule (and
  once more at the end). It must be synchronous and cheap: it reads
  in-memory state only.
- ``sometimes``: must hold in at least one schedule of a run. It returns a
  bool (it may be async) and is evaluated after each passing schedule. It is
  counted over the explored schedules only (not the reruns of shrinking or
  of the determinism check). A run that used its whole budget and never saw
  it hold fails as *vacuous*: the schedules never exercised what the name
  says, so the other invariants proved less than they seem to. A run that
  stops early at a failure does not judge its sometimes invariants.

``databases`` limits an invariant to some database kinds, e.g. a conflict
that only PostgreSQL's row locking can produce.

A violation is raised as ``InvariantViolation`` (an ``AssertionError``), whose
message names the kind, the invariant and the detail.
"""

from __future__ import annotations

import inspect
import traceback
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from interlace._core.errors import UsageError

InvariantKind = Literal["final", "always", "sometimes"]
KINDS: tuple[InvariantKind, ...] = ("final", "always", "sometimes")

CheckFunction = Callable[[Any], object]
_F = TypeVar("_F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Invariant:
    """A named check of a simulation's world; see the module docstring for the kinds."""

    name: str
    kind: InvariantKind
    check: CheckFunction
    databases: tuple[str, ...] | None = None

    def applies_to(self, database: str | None) -> bool:
        """Whether this invariant is checked on ``database`` (None: a run without a database)."""
        return self.databases is None or database in self.databases

    def __call__(self, world: Any) -> object:
        """Call the check directly (in a plain test, outside any simulation)."""
        return self.check(world)


#: (filename, line, function) of one frame, as ``traceback.extract_tb`` gives them
SourceFrame = tuple[str, int, str]


@dataclass(frozen=True)
class Violation:
    """One invariant that did not hold, and the detail its check gave."""

    invariant: str
    kind: InvariantKind
    detail: str
    #: where it failed, outermost frame first: the frames of the check's AssertionError,
    #: or the check's own definition when it returned False. Reports (SARIF, GitHub
    #: annotations) point at the innermost application frame of these
    #: (``interlace.report.locations``).
    frames: tuple[SourceFrame, ...] = field(default=(), compare=False)

    def describe(self) -> str:
        detail = self.detail.strip() or "(the check gave no detail)"
        return f"{self.kind} invariant violated: {self.invariant}\n  {_indent(detail)}"


class InvariantViolation(AssertionError):
    """One or more invariants did not hold in a schedule.

    ``violations`` lists them in declaration order; the message shows each
    with its detail, so it reads well in a report and in a replay.
    """

    def __init__(self, violations: Sequence[Violation]) -> None:
        if not violations:
            raise ValueError("InvariantViolation needs at least one violation")
        self.violations = tuple(violations)
        super().__init__("\n".join(v.describe() for v in self.violations))

    @property
    def invariants(self) -> tuple[str, ...]:
        """The names of the violated invariants."""
        return tuple(v.invariant for v in self.violations)


def final(name: str, *, databases: Iterable[str] | None = None) -> Callable[[_F], Invariant]:
    """Declare a final invariant: ``check(world)`` after the body; may be async."""
    return _declare("final", name, databases)


def always(name: str, *, databases: Iterable[str] | None = None) -> Callable[[_F], Invariant]:
    """Declare an always invariant: ``check(world)`` before every decision; sync and cheap."""
    return _declare("always", name, databases)


def sometimes(name: str, *, databases: Iterable[str] | None = None) -> Callable[[_F], Invariant]:
    """Declare a sometimes invariant: ``check(world) -> bool`` must be true in some schedule."""
    return _declare("sometimes", name, databases)


def _declare(
    kind: InvariantKind, name: str, databases: Iterable[str] | None
) -> Callable[[_F], Invariant]:
    if not name.strip():
        raise UsageError(f"a {kind} invariant needs a name: a sentence saying what must hold")
    allowed = None if databases is None else tuple(databases)

    def wrap(check: _F) -> Invariant:
        if kind == "always" and inspect.iscoroutinefunction(check):
            raise UsageError(
                f"always invariant {name!r} is async, but it runs before every decision "
                "where nothing may be awaited: make it a plain def reading in-memory state, "
                "or declare it with invariants.final if it must read the database"
            )
        return Invariant(name=name.strip(), kind=kind, check=check, databases=allowed)

    return wrap


class Checker:
    """Checks one schedule's world against the invariants that apply to its database."""

    def __init__(self, invariants: Iterable[Invariant], database: str | None, world: Any) -> None:
        applicable = [i for i in invariants if i.applies_to(database)]
        self.world = world
        self.always = [i for i in applicable if i.kind == "always"]
        self.final = [i for i in applicable if i.kind == "final"]
        self.sometimes = [i for i in applicable if i.kind == "sometimes"]

    def check_always(self) -> None:
        """Run every always invariant; raise ``InvariantViolation`` naming those that failed."""
        violations = [v for v in (_run_sync(i, self.world) for i in self.always) if v]
        if violations:
            raise InvariantViolation(violations)

    async def check_final(self) -> None:
        """Run the always invariants once more, then the final ones; raise on any violation."""
        violations = [v for v in (_run_sync(i, self.world) for i in self.always) if v]
        for invariant in self.final:
            violation = await _run_async(invariant, self.world)
            if violation is not None:
                violations.append(violation)
        if violations:
            raise InvariantViolation(violations)

    async def sometimes_held(self) -> list[str]:
        """Names of the sometimes invariants that hold in this schedule."""
        held = []
        for invariant in self.sometimes:
            outcome = invariant.check(self.world)
            if inspect.isawaitable(outcome):
                outcome = await outcome
            if not isinstance(outcome, bool):
                hint = " (a missing return?)" if outcome is None else ""
                raise UsageError(
                    f"sometimes invariant {invariant.name!r} returned {outcome!r}{hint}; "
                    "it must return True when what it names happened in the schedule, else False"
                )
            if outcome:
                held.append(invariant.name)
        return held


def _run_sync(invariant: Invariant, world: Any) -> Violation | None:
    try:
        outcome = invariant.check(world)
    except AssertionError as failed:
        return Violation(invariant.name, invariant.kind, str(failed), _frames_of(failed))
    if inspect.isawaitable(outcome):
        _discard(outcome)
        raise UsageError(
            f"{invariant.kind} invariant {invariant.name!r} returned an awaitable; "
            "always invariants must be synchronous"
        )
    return _judge_return(invariant, outcome)


async def _run_async(invariant: Invariant, world: Any) -> Violation | None:
    try:
        outcome = invariant.check(world)
        if inspect.isawaitable(outcome):
            outcome = await outcome
    except AssertionError as failed:
        return Violation(invariant.name, invariant.kind, str(failed), _frames_of(failed))
    return _judge_return(invariant, outcome)


def _judge_return(invariant: Invariant, outcome: object) -> Violation | None:
    """None or True holds, False is a violation, anything else is a usage error."""
    if outcome is None or outcome is True:
        return None
    if outcome is False:
        return Violation(
            invariant.name, invariant.kind, "(the check returned False)", _definition(invariant)
        )
    raise UsageError(
        f"{invariant.kind} invariant {invariant.name!r} returned {outcome!r}; a {invariant.kind} "
        "check returns None or True when it holds and False when it does not (or raises "
        "AssertionError with a detail, as `assert cond, 'detail'` does)"
    )


def _frames_of(error: BaseException) -> tuple[SourceFrame, ...]:
    return tuple(
        (entry.filename, entry.lineno or 0, entry.name)
        for entry in traceback.extract_tb(error.__traceback__)
    )


def _definition(invariant: Invariant) -> tuple[SourceFrame, ...]:
    """The line that defines the check (``def``), for a check that returned False."""
    code = getattr(inspect.unwrap(invariant.check), "__code__", None)
    if code is None:
        return ()
    return ((code.co_filename, code.co_firstlineno, code.co_name),)


def _discard(awaitable: Awaitable[object]) -> None:
    close = getattr(awaitable, "close", None)
    if callable(close):
        close()  # a coroutine never awaited would warn at garbage collection


def _indent(text: str) -> str:
    return text.replace("\n", "\n  ")
