"""Tokens: round trip, and the exact messages for bad input."""

from __future__ import annotations

import pytest
from known_bugs import lost_update, lost_update_fixed

import interlace
from interlace import TokenError
from interlace._core.trace import Decision, RecordedChoice, Token, Trace


def _trace() -> Trace:
    return Trace(
        (
            Decision(0, "main", 0, "start s", ("main",), False),
            Decision(1, "T2", 2, "SELECT t", ("T1", "T2"), True),
            Decision(2, "T1", 1, "UPDATE t", ("T1",), False),
        )
    )


def test_round_trip_keeps_scenario_strategy_seed_and_choices() -> None:
    token = Token.from_trace("pkg.mod:scenario", "pct3", 12345, _trace())
    decoded = Token.decode(token.encode())
    assert decoded == token
    assert [c.task_index for c in decoded.choices] == [0, 2, 1]
    assert token.encode().startswith("interlace:v1:pkg.mod:scenario:pct3:12345:")
    assert "\n" not in token.encode() and " " not in token.encode()


def test_large_task_indexes_survive_varint_encoding() -> None:
    token = Token("m:s", "random", 0, (RecordedChoice(300, 7), RecordedChoice(5, 255)))
    assert Token.decode(token.encode()).choices == token.choices


def test_malformed_token_says_what_shape_is_expected() -> None:
    with pytest.raises(TokenError) as error:
        Token.decode("not-a-token")
    assert str(error.value) == (
        "malformed interlace token 'not-a-token': expected "
        "interlace:v1:<module>:<qualname>:<strategy>:<seed>:<decisions>"
    )


def test_unknown_version_is_named() -> None:
    with pytest.raises(TokenError, match=r"unsupported interlace token version 'v9'"):
        Token.decode("interlace:v9:m:s:random:1:eJwDAAAAAAE")


def test_corrupt_payload_is_reported() -> None:
    with pytest.raises(TokenError, match=r"its decisions do not decode"):
        Token.decode("interlace:v1:m:s:random:1:!!!notbase64")


def test_bad_seed_is_reported() -> None:
    with pytest.raises(TokenError) as error:
        Token.decode("interlace:v1:m:s:random:-3:eJwDAAAAAAE")
    assert str(error.value) == (
        "malformed interlace token: seed '-3' is not a non-negative integer"
    )


def test_replaying_a_token_of_another_scenario_fails_with_both_names() -> None:
    report = interlace.explore(lost_update, schedules=50, seed=0)
    assert report.failure is not None
    with pytest.raises(TokenError) as error:
        interlace.replay(lost_update_fixed, report.failure.token)
    assert str(error.value) == (
        "token is for scenario 'known_bugs:lost_update', not "
        "'known_bugs:lost_update_fixed': replay it against the scenario that made it"
    )


def test_token_that_no_longer_fits_the_code_names_the_step() -> None:
    report = interlace.explore(lost_update, schedules=50, seed=0)
    assert report.failure is not None
    decoded = Token.decode(report.failure.token)
    # the same scenario name, but step 1 now chooses a task that does not exist
    broken = Token(
        decoded.scenario,
        decoded.strategy,
        decoded.seed,
        (decoded.choices[0], RecordedChoice(7, decoded.choices[1].check), *decoded.choices[2:]),
    )
    with pytest.raises(TokenError) as error:
        interlace.replay(lost_update, broken.encode())
    message = str(error.value)
    assert message.startswith("token does not fit the code: at step 1 it runs task #7, ")
    assert "which is not runnable now (runnable: T1 at 'start _withdraw', T2 at" in message
    assert message.endswith("the scenario or the code under test changed since the token was made")


def test_changed_labels_are_detected_by_the_check_byte() -> None:
    report = interlace.explore(lost_update, schedules=50, seed=0)
    assert report.failure is not None
    decoded = Token.decode(report.failure.token)
    first = decoded.choices[1]
    tampered = RecordedChoice(first.task_index, (first.check + 1) % 256)
    broken = Token(
        decoded.scenario,
        decoded.strategy,
        decoded.seed,
        (decoded.choices[0], tampered, *decoded.choices[2:]),
    )
    with pytest.raises(TokenError, match=r"at step 1 the runnable tasks or the label of T\d"):
        interlace.replay(lost_update, broken.encode())


def test_a_run_shorter_than_the_token_is_reported() -> None:
    report = interlace.explore(lost_update, schedules=50, seed=0)
    assert report.failure is not None
    decoded = Token.decode(report.failure.token)
    longer = Token(
        decoded.scenario,
        decoded.strategy,
        decoded.seed,
        (*decoded.choices, RecordedChoice(0, 0)),
    )
    with pytest.raises(TokenError, match=r"the run ended after \d+ decisions but the token has"):
        interlace.replay(lost_update, longer.encode())
