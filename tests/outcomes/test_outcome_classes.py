"""Every outcome class through every front end: the API, ``interlace run``, and pytest.

The engine classifies once (``interlace.engine.classify``); these tests pin
what each front end makes of each class: the exit status, the first line the
user reads, whether there is a token, and whether anything is shrunk or saved.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

import interlace
from interlace import Outcome, invariants
from interlace._core.errors import StuckOutsideIO
from interlace._core.loop import ControlledLoop
from interlace.cli import main
from interlace.explore import interleaving_digest

pytest_plugins = ["pytester"]

# ---- the API ---------------------------------------------------------------------------

counter = {"value": 0}


@interlace.scenario
async def lost_increment() -> None:
    counter["value"] = 0

    async def increment() -> None:
        value = counter["value"]
        await asyncio.sleep(0)
        counter["value"] = value + 1

    await asyncio.gather(increment(), increment())
    assert counter["value"] == 2, f"lost update: {counter['value']}"


@interlace.scenario
async def forgotten_event() -> None:
    never = asyncio.Event()
    await asyncio.gather(never.wait(), asyncio.sleep(0))


def test_a_violation_has_a_token_and_is_shrunk() -> None:
    report = interlace.explore(lost_increment, schedules=50)
    assert report.outcome is Outcome.VIOLATION and report.problem is None
    assert report.failure is not None and report.failure.shrinking is not None
    assert report.failure.token.startswith("interlace:v1:")
    assert report.outcome.exit_code == 1


def test_a_deadlock_is_a_scheduler_finding() -> None:
    report = interlace.explore(forgotten_event, schedules=5)
    assert report.outcome is Outcome.SCHEDULER_FINDING
    assert report.failure is not None and report.failure.kind == "scheduler"
    assert report.failure.headline().startswith("Deadlock: deadlock: every live task waits")


@contextlib.asynccontextmanager
async def a_world() -> AsyncIterator[dict[str, int]]:
    yield {"runs": 0}


async def count_runs(world: dict[str, int]) -> None:
    world["runs"] += 1


@invariants.sometimes("the check forgot its return")
def forgot_return(world: dict[str, int]) -> bool:
    world["runs"] += 0  # no return: None


@invariants.final("the check returns False")
def returns_false(world: dict[str, int]) -> bool:
    return False


@invariants.final("the check returns a count")
def returns_a_count(world: dict[str, int]) -> int:
    return 3


def _with(check: invariants.Invariant) -> interlace.Scenario:
    simulation = interlace.simulation(
        world=a_world, reset=count_runs, invariants=(check,), databases=()
    )(_nothing)
    return simulation.scenario(None)


async def _nothing(world: dict[str, int]) -> None:
    await asyncio.sleep(0)


def test_a_sometimes_returning_none_is_a_usage_error_not_a_violation() -> None:
    report = interlace.explore(_with(forgot_return), schedules=20)
    assert report.outcome is Outcome.USAGE_ERROR and report.failure is None
    assert report.problem is not None and report.problem.token is None
    assert report.schedules_run == 1  # at its first call
    assert report.problem.message.endswith(
        "sometimes invariant 'the check forgot its return' returned None (a missing return?); "
        "it must return True when what it names happened in the schedule, else False"
    )


def test_a_final_returning_false_is_a_violation() -> None:
    report = interlace.explore(_with(returns_false), schedules=5)
    assert report.outcome is Outcome.VIOLATION
    assert report.failure is not None
    assert "final invariant violated: the check returns False" in str(report.failure.exception)


def test_a_final_returning_anything_else_is_a_usage_error() -> None:
    report = interlace.explore(_with(returns_a_count), schedules=5)
    assert report.outcome is Outcome.USAGE_ERROR
    assert report.problem is not None
    assert "final invariant 'the check returns a count' returned 3" in report.problem.message


def _break_the_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    """Inject an exception into interlace's own code path (the director's drain)."""

    def broken(self: ControlledLoop) -> list[object]:
        raise RuntimeError("injected fault in interlace's own code")

    monkeypatch.setattr(ControlledLoop, "ready_callbacks", broken)


def test_an_exception_in_interlace_itself_is_an_internal_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _break_the_loop(monkeypatch)
    report = interlace.explore(lost_increment, schedules=5)
    assert report.outcome is Outcome.INTERNAL_ERROR and report.failure is None
    assert report.outcome.exit_code == 3
    assert report.problem is not None and report.problem.token is not None
    assert report.problem.headline().startswith(
        "internal error in interlace (a bug: please report it with this token): "
    )
    assert "RuntimeError: injected fault in interlace's own code" in report.problem.headline()
    assert "Traceback" in report.problem.describe()


def test_the_applications_own_exception_is_a_violation() -> None:
    @interlace.scenario
    async def raises() -> None:
        await asyncio.sleep(0)
        raise KeyError("the app's own bug")

    report = interlace.explore(raises, schedules=3)
    assert report.outcome is Outcome.VIOLATION
    assert report.failure is not None and report.failure.kind == "error"


release = threading.Event()


@contextlib.asynccontextmanager
async def schedule_counter() -> AsyncIterator[dict[str, int]]:
    yield {"schedules": 0}


async def next_schedule(state: dict[str, int]) -> None:
    state["schedules"] += 1


@interlace.scenario(resource=schedule_counter, reset=next_schedule)
async def stuck_from_the_second_schedule(state: dict[str, int]) -> None:
    await asyncio.sleep(0)
    if state["schedules"] >= 2:
        await asyncio.get_running_loop().run_in_executor(None, release.wait, 5)


def test_a_schedule_stuck_after_others_worked_is_a_finding_never_shrunk() -> None:
    release.clear()
    unblock = threading.Timer(1.5, release.set)
    unblock.start()
    try:
        report = interlace.explore(stuck_from_the_second_schedule, schedules=5, stuck_after=0.3)
    finally:
        unblock.cancel()
        release.set()
    assert report.outcome is Outcome.SCHEDULER_FINDING
    assert report.failure is not None and isinstance(report.failure.exception, StuckOutsideIO)
    assert report.failure.shrinking is None  # rerunning it would wait the bound again
    assert report.schedules_run == 2


# ---- interlace run -----------------------------------------------------------------------

SIMULATIONS = """
import asyncio
import contextlib

import interlace
from interlace import invariants


@contextlib.asynccontextmanager
async def world():
    yield {"count": 0}


async def reset(world):
    world["count"] = 0


@invariants.final("the counter counts every increment")
def counted(world):
    assert world["count"] == 2, f"count is {world['count']}"


@invariants.sometimes("something happened")
def forgot_return(world):
    world["count"]


async def increments(world):
    async def increment():
        value = world["count"]
        await asyncio.sleep(0)
        world["count"] = value + 1

    await asyncio.gather(increment(), increment())


@interlace.simulation(world=world, reset=reset, invariants=({check},), databases=())
async def {name}(world):
    await increments(world)
"""


def _project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, check: str) -> Path:
    package = tmp_path / f"outcome_{name}"
    package.mkdir()
    (package / "__init__.py").write_text("")
    source = SIMULATIONS.replace("{name}", name).replace("{check}", check)
    (package / "sims.py").write_text(source)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    return package


def _run(package: Path, corpus: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    status = main(["run", str(package), "--schedules", "20", "--corpus", str(corpus)])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_run_exits_1_on_a_violation_and_saves_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    package = _project(tmp_path, monkeypatch, "violated", "counted")
    status, out, err = _run(package, tmp_path / "corpus", capsys)
    assert status == 1, out
    assert re.search(r"^  outcome_violated\.sims:violated: VIOLATION \(", out, re.M), out
    assert list((tmp_path / "corpus").glob("*.token")), "a finding's token is saved"
    assert err == ""


def test_run_exits_2_on_a_usage_error_and_saves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    package = _project(tmp_path, monkeypatch, "misused", "forgot_return")
    status, out, err = _run(package, tmp_path / "corpus", capsys)
    assert status == 2, out
    assert re.search(r"^  outcome_misused\.sims:misused: USAGE ERROR \(", out, re.M), out
    assert "Errors (not findings: nothing was shrunk or saved):" in out
    assert "token:" not in out
    assert not (tmp_path / "corpus").exists()
    assert err.splitlines()[0] == (
        "interlace: outcome_misused.sims:misused: outcome_misused.sims:misused: sometimes "
        "invariant 'something happened' returned None (a missing return?); it must return True "
        "when what it names happened in the schedule, else False"
    )


def test_run_exits_3_on_an_internal_error_and_saves_nothing(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    package = _project(tmp_path, monkeypatch, "broken", "counted")
    _break_the_loop(monkeypatch)
    status, out, err = _run(package, tmp_path / "corpus", capsys)
    assert status == 3, out
    assert re.search(r"^  outcome_broken\.sims:broken: INTERNAL ERROR \(", out, re.M), out
    assert not (tmp_path / "corpus").exists()
    assert err.splitlines()[0].startswith(
        "interlace: outcome_broken.sims:broken: internal error in interlace (a bug: please "
        "report it with this token): in a schedule of outcome_broken.sims:broken: "
        "RuntimeError: injected fault in interlace's own code"
    )


# ---- pytest ------------------------------------------------------------------------------

MARKED = """
import asyncio

import pytest

import interlace
from interlace import invariants

counter = {"value": 0}


@pytest.mark.interlace(schedules=20)
async def test_violation():
    counter["value"] = 0

    async def increment():
        value = counter["value"]
        await asyncio.sleep(0)
        counter["value"] = value + 1

    await asyncio.gather(increment(), increment())
    assert counter["value"] == 2, "lost update"


@invariants.sometimes("something happened")
def forgot_return(world):
    pass


@interlace.simulation(invariants=(forgot_return,), databases=())
async def test_misused():
    await asyncio.sleep(0)
"""


def test_pytest_reports_a_violation_with_its_token_and_a_usage_error_in_one_line(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makepyfile(test_outcomes=MARKED)
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(["interlace found a failing schedule in * schedules*", "*token:*"])
    result.stdout.fnmatch_lines(
        [
            "interlace: *:test_misused: sometimes invariant 'something happened' returned None "
            "(a missing return?); it must return True when what it names happened in the "
            "schedule, else False"
        ]
    )
    assert "Traceback" not in result.stdout.str()
    assert "pluggy/" not in result.stdout.str()


def test_pytest_reports_an_internal_error_as_interlaces(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makepyfile(test_outcomes=MARKED)
    _break_the_loop(monkeypatch)
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "-k", "violation")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["internal error in interlace (a bug: please report it with this token): *"]
    )


def test_pytest_stops_on_an_unknown_strategy(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makepyfile(test_outcomes=MARKED)
    result = pytester.runpytest("--interlace-strategy", "bogus")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--interlace-strategy: unknown strategy 'bogus'*"])


# ---- sometimes counts explored schedules only ------------------------------------------


@invariants.sometimes("the schedule ran")
def ran(world: dict[str, int]) -> bool:
    return True


@invariants.final("the counter counts every increment")
def counted(world: dict[str, int]) -> None:
    assert world["count"] == 2, f"count is {world['count']}"


@contextlib.asynccontextmanager
async def count_world() -> AsyncIterator[dict[str, int]]:
    yield {"count": 0}


async def zero(world: dict[str, int]) -> None:
    world["count"] = 0


async def two_increments(world: dict[str, int]) -> None:
    async def increment() -> None:
        value = world["count"]
        await asyncio.sleep(0)
        world["count"] = value + 1

    await asyncio.gather(increment(), increment())


def test_sometimes_counts_only_explored_schedules_not_shrink_or_determinism_reruns() -> None:
    simulation = interlace.simulation(
        world=count_world, reset=zero, invariants=(counted, ran), databases=()
    )(two_increments)
    report = interlace.explore(
        simulation.scenario(None), schedules=200, seed=3, check_determinism=True
    )
    assert report.failure is not None and report.failure.shrinking is not None
    assert report.failure.shrinking.runs > 0
    # every passing explored schedule held it once; the failing one and the reruns did not count
    assert report.sometimes == {"the schedule ran": report.schedules_run - 1}


def test_interleavings_are_kept_as_16_byte_digests() -> None:
    records: list[interlace.ScheduleRecord] = []
    interlace.explore(lost_increment, schedules=30, shrink=False, on_schedule=records.append)
    digests = {interleaving_digest(record.trace) for record in records}
    assert all(len(digest) == 16 for digest in digests)
    assert interleaving_digest(records[0].trace) == interleaving_digest(records[0].trace)
