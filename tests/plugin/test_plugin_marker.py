"""The pytest plugin end to end (pytester): marked async tests become explorations."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest

pytest_plugins = ["pytester"]

LOST_UPDATE = """
import asyncio
import pytest

@pytest.mark.interlace(schedules=50)
async def test_lost_update():
    account = {"balance": 100}

    async def withdraw(amount):
        balance = account["balance"]
        await asyncio.sleep(0)
        account["balance"] = balance - amount

    await asyncio.gather(withdraw(30), withdraw(50))
    assert account["balance"] == 20, f"lost update: balance is {account['balance']}"
"""

LOCKED = """
import asyncio
import pytest

@pytest.mark.interlace(schedules=30)
async def test_locked_withdrawals():
    lock = asyncio.Lock()
    account = {"balance": 100}

    async def withdraw(amount):
        async with lock:
            balance = account["balance"]
            await asyncio.sleep(0)
            account["balance"] = balance - amount

    await asyncio.gather(withdraw(30), withdraw(50))
    assert account["balance"] == 20
"""

PLAIN_ASYNCIO = """
import asyncio
import pytest

@pytest.mark.asyncio
async def test_plain_pytest_asyncio():
    await asyncio.sleep(0)
    assert asyncio.get_running_loop() is not None
"""

QUIET = ["-p", "no:cacheprovider", "-o", "asyncio_default_fixture_loop_scope=function"]


def _token(output: str) -> str:
    match = re.search(r"^token: (interlace:v1:\S+)$", output, re.MULTILINE)
    assert match is not None, output
    return match.group(1)


def _table(output: str) -> str:
    start = output.index("step | main")
    return output[start : output.index("* = preemption)", start)]


def test_a_failing_exploration_reports_invariant_table_token_and_replay_command(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_bank=LOST_UPDATE)
    result = pytester.runpytest(*QUIET)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*interlace found a failing schedule in * of 50 schedules (portfolio, seed 0)",
            "AssertionError: lost update: balance is *",
            "step | main *| T1 *| T2*",
            "*preemptions; * = preemption)",
            "(1 row hidden: 1 setup; --interlace-full shows them)",
            "token: interlace:v1:test_bank:test_lost_update:*",
            "replay with pytest: pytest test_bank.py::test_lost_update --interlace-replay "
            "'interlace:v1:*'",
        ]
    )
    # a preemption is what makes this bug: the table marks it
    assert re.search(r"\| start (test_lost_update\.<locals>\.)?w\S* \*", result.stdout.str())
    # the headline is said once, the table fits pytest's terminal width
    report = result.stdout.str().split("short test summary info")[0]
    assert report.count("lost update: balance is") == 1, report
    table = _table(report).splitlines()
    assert max(map(len, table)) <= 80, table


def test_interlace_full_shows_the_folded_rows(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_bank=LOST_UPDATE)
    result = pytester.runpytest(*QUIET, "--interlace-full")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["step | main *| T1 *| T2*", "   0 | start test_lost_update*"])
    assert "shows them)" not in result.stdout.str()


def test_the_printed_replay_command_reruns_only_that_schedule(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_bank=LOST_UPDATE + LOCKED)
    first = pytester.runpytest(*QUIET)
    first.assert_outcomes(failed=1, passed=1)
    token = _token(first.stdout.str())
    replayed = pytester.runpytest(*QUIET, "--interlace-replay", token)
    replayed.assert_outcomes(failed=1, deselected=1)
    replayed.stdout.fnmatch_lines(["*the replayed schedule fails", "AssertionError: lost update*"])
    assert _token(replayed.stdout.str()) == token
    assert _table(replayed.stdout.str()) == _table(first.stdout.str())


def test_replay_of_a_token_no_test_runs_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_bank=LOCKED)
    result = pytester.runpytest(
        *QUIET, "--interlace-replay", "interlace:v1:elsewhere:test_x:random:1:eJwDAAAAAAE"
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*--interlace-replay: no collected test runs scenario elsewhere:test_x*"]
    )


def test_a_malformed_replay_token_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_bank=LOCKED)
    result = pytester.runpytest(*QUIET, "--interlace-replay", "not-a-token")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--interlace-replay: malformed interlace token 'not-a-token'*"])


def test_options_override_the_marker_and_the_seed_is_fixed_by_default(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_bank=LOST_UPDATE)
    default = pytester.runpytest(*QUIET)
    default.stdout.fnmatch_lines(["interlace: seed 0"])
    chosen = pytester.runpytest(
        *QUIET,
        "--interlace-schedules",
        "1",
        "--interlace-strategy",
        "random",
        "--interlace-seed",
        "7",
    )
    chosen.stdout.fnmatch_lines(["interlace: seed 7"])
    # one schedule of a random walk from seed 7 happens not to preempt at the right place
    output = chosen.stdout.str()
    assert "of 1 schedules (random, seed 7)" in output or chosen.ret == 0


def test_a_random_seed_is_chosen_once_and_printed(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_bank=LOCKED)
    result = pytester.runpytest(*QUIET, "--interlace-seed", "random")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        ["interlace: seed * (chosen at random; rerun with --interlace-seed *)"]
    )


def test_bad_option_values_are_usage_errors(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_bank=LOCKED)
    result = pytester.runpytest(*QUIET, "--interlace-seed", "soon")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--interlace-seed must be a non-negative integer or 'random'*"])


def test_plain_pytest_asyncio_tests_keep_working_in_strict_and_auto_mode(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_mixed=LOCKED + PLAIN_ASYNCIO)
    for mode in ("strict", "auto"):
        result = pytester.runpytest(*QUIET, "-o", f"asyncio_mode={mode}")
        result.assert_outcomes(passed=2)


def test_pytest_asyncio_auto_mode_does_not_grab_a_marked_test(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_bank=LOST_UPDATE)
    result = pytester.runpytest(*QUIET, "-o", "asyncio_mode=auto")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*interlace found a failing schedule*"])


def test_junit_xml_carries_the_report_and_the_token(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_bank=LOST_UPDATE + LOCKED)
    report = pytester.path / "junit.xml"
    result = pytester.runpytest(*QUIET, f"--junitxml={report}")
    result.assert_outcomes(failed=1, passed=1)
    cases = {case.get("name"): case for case in ET.parse(report).getroot().iter("testcase")}
    failing = cases["test_lost_update"]
    failure = failing.find("failure")
    assert failure is not None and failure.text is not None
    assert "AssertionError: lost update" in failure.text
    assert "step | main" in failure.text
    properties = {p.get("name"): p.get("value") for p in failing.iter("property")}
    assert properties["interlace_token"] == _token(result.stdout.str())
    passing = {
        p.get("name"): p.get("value") for p in cases["test_locked_withdrawals"].iter("property")
    }
    assert passing["interlace_schedules"] == "30"


def test_fixtures_reach_the_explored_test(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_fixture="""
        import asyncio
        import pytest

        @pytest.fixture
        def amounts():
            return (30, 50)

        @pytest.mark.interlace(schedules=5)
        @pytest.mark.parametrize("start", [100, 80])
        async def test_total(amounts, start):
            account = {"balance": start}
            lock = asyncio.Lock()
            async def withdraw(amount):
                async with lock:
                    account["balance"] -= amount
                    await asyncio.sleep(0)
            await asyncio.gather(*(withdraw(a) for a in amounts))
            assert account["balance"] == start - 80
        """
    )
    result = pytester.runpytest(*QUIET)
    result.assert_outcomes(passed=2)


def test_expect_violation_passes_when_found_and_fails_when_blind(pytester: pytest.Pytester) -> None:
    canary = LOST_UPDATE.replace(
        "@pytest.mark.interlace(schedules=50)",
        "@pytest.mark.interlace(schedules=50, expect_violation=True)",
    )
    blind = LOCKED.replace(
        "@pytest.mark.interlace(schedules=30)",
        "@pytest.mark.interlace(schedules=30, expect_violation=True)",
    )
    pytester.makepyfile(test_canary=canary, test_blind=blind)
    result = pytester.runpytest(*QUIET)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        ["*canary not caught: expected an invariant violation within 30 of 30 schedules*"]
    )


def test_misuse_says_what_to_do(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_misuse="""
        import pytest

        @pytest.mark.interlace(schedules=5)
        def test_sync():
            pass
        """
    )
    result = pytester.runpytest(*QUIET)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*@pytest.mark.interlace needs an async test (async def)*"])
    pytester.makepyfile(
        test_misuse="""
        import pytest

        @pytest.mark.interlace(100)
        async def test_positional():
            pass
        """
    )
    result = pytester.runpytest(*QUIET)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*@pytest.mark.interlace takes only the keywords*got 100*"])


GIVEN = """
import asyncio
import pytest
from hypothesis import given, settings, strategies as st

@pytest.mark.interlace(schedules=20)
@settings(max_examples=10, database=None, deadline=None)
@given(st.integers(min_value=0, max_value=40))
async def test_withdrawals(amount):
    account = {"balance": 100}

    async def withdraw(n):
        balance = account["balance"]
        if n:
            await asyncio.sleep(0)
        account["balance"] = balance - n

    await asyncio.gather(withdraw(amount), withdraw(amount))
    assert account["balance"] == 100 - 2 * amount, f"lost update: balance is {account['balance']}"
"""


@pytest.mark.parametrize("mode", ["strict", "auto"])
def test_each_hypothesis_example_is_explored_and_hypothesis_shrinks_the_example(
    pytester: pytest.Pytester, mode: str
) -> None:
    pytester.makepyfile(test_given=GIVEN)
    result = pytester.runpytest(*QUIET, "-o", f"asyncio_mode={mode}")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*InterlaceExampleFailed: interlace found a failing schedule in * of 20 schedules*",
            "*AssertionError: lost update: balance is 99",
            "*token: interlace:v1:test_given:test_withdrawals:portfolio:*",
            "*replay: rerun the test: hypothesis tries this example first, with the same seed",
            "*amount=1,",  # the smallest amount that still loses an update
        ]
    )
