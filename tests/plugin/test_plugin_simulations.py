"""The pytest plugin end to end (pytester): simulations collected as tests, judged like ``run``."""

from __future__ import annotations

import re

import pytest

pytest_plugins = ["pytester"]

QUIET = ["-p", "no:cacheprovider", "-o", "asyncio_default_fixture_loop_scope=function"]

COUNTER = """
import asyncio
import contextlib

import interlace
from interlace import invariants


@invariants.final("the counter counts every increment")
def counted(world):
    assert world["count"] == 2, f"count is {world['count']}, expected 2"


@invariants.sometimes("pigs flew")
def pigs_flew(world):
    return False


@contextlib.asynccontextmanager
async def counter():
    yield {"count": 0}


async def reset(world):
    world["count"] = 0


async def increments(world, lock=None):
    async def increment():
        async with lock or contextlib.nullcontext():
            value = world["count"]
            await asyncio.sleep(0)
            world["count"] = value + 1

    await asyncio.gather(increment(), increment())


def declare(**options):
    options.setdefault("invariants", (counted,))
    return interlace.simulation(world=counter, reset=reset, databases=(), **options)


@declare()
async def test_racy(world):
    await increments(world)


@declare()
async def test_locked(world):
    await increments(world, asyncio.Lock())


@declare(expect_violation=True)
async def test_racy_canary(world):
    await increments(world)


@declare(invariants=(), expect_violation=True)
async def test_blind_canary(world):
    await increments(world)


@declare(invariants=(counted, pigs_flew))
async def test_vacuous(world):
    await increments(world, asyncio.Lock())


@interlace.simulation(databases=("sqlite",))
async def test_on_sqlite(database):
    assert database.kind == "sqlite" and database.url.startswith("sqlite+aiosqlite:///")


not_collected = test_locked  # not a test name, and an alias of a collected one
"""


def test_simulations_are_collected_and_judged_like_interlace_run(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_counter=COUNTER)
    result = pytester.runpytest(*QUIET, "-v", "--interlace-schedules", "40")
    result.stdout.fnmatch_lines_random(
        [
            "test_counter.py::test_racy FAILED*",
            "test_counter.py::test_locked PASSED*",
            "test_counter.py::test_racy_canary PASSED*",
            "test_counter.py::test_blind_canary FAILED*",
            "test_counter.py::test_vacuous FAILED*",
            "test_counter.py::test_on_sqlite?sqlite? PASSED*",
        ]
    )
    result.assert_outcomes(passed=3, failed=3)
    output = result.stdout.str()
    assert "test_counter:test_racy: VIOLATION: AssertionError" not in output  # an invariant
    result.stdout.fnmatch_lines_random(
        [
            "test_counter:test_racy: VIOLATION: InvariantViolation: final invariant violated: "
            "the counter counts every increment",
            "  count is 1, expected 2",
            "replay: interlace replay 'interlace:v1:test_counter:test_racy:portfolio:*'",
            "replay with pytest: pytest test_counter.py::test_racy --interlace-replay *",
            "test_counter:test_blind_canary: MISSED: canary not caught: expected an invariant "
            "violation within 40 schedules and found none*",
            "test_counter:test_vacuous: VACUOUS: vacuous: sometimes invariant 'pigs flew' never "
            "held in 40 schedules*",
        ]
    )
    # the headline once: in the title, not again in the report under it
    start = output.index("test_counter:test_racy: VIOLATION")
    racy = output[start : output.index("replay with pytest:", start)]
    assert racy.count("final invariant violated") == 1, racy
    assert racy.count("count is 1, expected 2") == 1
    assert "step | main" in racy and "(1 row hidden: 1 setup; --interlace-full shows them)" in racy


def test_a_simulation_token_replays_through_pytest(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_counter=COUNTER)
    first = pytester.runpytest(*QUIET, "test_counter.py::test_racy")
    first.assert_outcomes(failed=1)
    token = re.search(r"^token: (\S+)$", first.stdout.str(), re.MULTILINE)
    assert token is not None
    replayed = pytester.runpytest(*QUIET, "--interlace-replay", token.group(1))
    replayed.assert_outcomes(failed=1, deselected=5)
    replayed.stdout.fnmatch_lines(["*the replayed schedule fails", "*count is 1, expected 2"])


ON_POSTGRES = """
import interlace

@interlace.simulation(databases=("postgres",))
async def test_on_postgres(database):
    assert database.kind == "postgres"
    assert database.url.startswith("postgresql+asyncpg://")
"""


@pytest.mark.postgres
def test_a_postgres_simulation_gets_a_database_from_the_provider_chain(
    pytester: pytest.Pytester, interlace_postgres: object
) -> None:
    # interlace_postgres: skip (or fail) here, with the reason, when there is no server at all
    pytester.makepyfile(test_pg=ON_POSTGRES)
    result = pytester.runpytest(*QUIET, "-v", "--interlace-schedules", "2")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["test_pg.py::test_on_postgres?postgres? PASSED*"])


@pytest.mark.parametrize(("required", "outcome"), [("", "skipped"), ("1", "failed")])
def test_without_a_postgres_server_the_simulation_skips_or_fails_with_the_reason(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, required: str, outcome: str
) -> None:
    monkeypatch.setenv("INTERLACE_POSTGRES", "url")
    monkeypatch.setenv("INTERLACE_POSTGRES_URL", "postgresql://nobody@127.0.0.1:1/nothing")
    monkeypatch.setenv("INTERLACE_REQUIRE_POSTGRES", required)
    pytester.makepyfile(test_pg=ON_POSTGRES)
    result = pytester.runpytest(*QUIET, "-rsf")
    result.assert_outcomes(**{outcome: 1})
    result.stdout.fnmatch_lines(["*no PostgreSQL server available:*"])
