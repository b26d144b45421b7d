"""The editor-chat simulations on SQLite: the fixed handler passes, the pre-fix race is caught."""

from __future__ import annotations

from pathlib import Path

import pytest
from simulations.editor_chat import cancelled, different, http, identical, provider_error

import interlace
from interlace import Config, InvariantViolation, Simulation
from interlace._core.trace import RecordedChoice, Token
from interlace.corpus import Corpus
from interlace.db.supply import SqliteSupply
from interlace.discovery import discover, resolve
from interlace.explore import ScheduleRecord
from interlace.outcome import Verdict
from interlace.runner import run_simulation

ROOT = Path(__file__).resolve().parents[2]
SQLITE = SqliteSupply()

FIXED = [
    identical.two_processes,
    identical.one_process,
    different.different_messages,
    cancelled.cancelled_mid_stream,
    provider_error.provider_error_mid_stream,
    http.identical_over_http,
]
CANARIES = [identical.two_processes_pre_fix, http.identical_over_http_pre_fix]


def _name(simulation: Simulation) -> str:
    return simulation.attribute


def test_every_simulation_is_discovered_and_all_but_one_run_on_both_databases() -> None:
    found = discover(ROOT / "simulations")
    postgres_only = identical.two_processes_pre_fix_lost_message
    assert {s.name for s in found} == {s.name for s in [*FIXED, *CANARIES, postgres_only]}
    assert all(s.databases == ("sqlite", "postgres") for s in found if s is not postgres_only)
    assert postgres_only.databases == ("postgres",)


@pytest.mark.parametrize("simulation", FIXED, ids=_name)
def test_the_fixed_handler_passes_on_sqlite(simulation: Simulation) -> None:
    run = run_simulation(simulation, SQLITE, Config(schedules=20, strategy="portfolio"))
    assert run.verdict is Verdict.PASSED, run.message + (
        "\n" + run.failure.describe() if run.failure else ""
    )
    assert run.report is not None and run.report.distinct_interleavings > 1
    assert all(count > 0 for count in run.sometimes.values())


@pytest.mark.parametrize("simulation", CANARIES, ids=_name)
def test_the_pre_fix_race_is_caught_on_sqlite_and_its_token_replays_it(
    simulation: Simulation,
) -> None:
    run = run_simulation(simulation, SQLITE, Config(schedules=200))
    assert run.verdict is Verdict.CAUGHT, run.message
    failure = run.failure
    assert failure is not None and failure.schedule < 200
    assert isinstance(failure.exception, InvariantViolation)
    assert "stands after" in str(failure.exception)  # the reply landed after another question
    with pytest.raises(InvariantViolation) as replayed:
        interlace.replay(simulation.scenario(SQLITE), failure.token)
    assert str(replayed.value) == str(failure.exception)
    replayed_report = interlace.replay_report(simulation.scenario(SQLITE), failure.token)
    assert replayed_report.failure is not None
    assert replayed_report.failure.trace == failure.trace


def test_the_committed_regression_tokens_replay_on_sqlite() -> None:
    regressions = [
        r for r in Corpus(ROOT / "simulations" / "regressions").load() if "[sqlite]" in r.scenario
    ]
    assert regressions, "simulations/regressions/ holds the token of the pre-fix race on SQLite"
    for regression in regressions:
        target = resolve(regression.scenario)
        assert target.simulation is not None and target.database == "sqlite"
        replayed = interlace.replay_report(target.simulation.scenario(SQLITE), regression.token)
        failure, stale = replayed.failure, replayed.problem and replayed.problem.message
        assert stale is None, f"{regression.path.name}: {stale}"
        if target.simulation.canary:
            assert failure is not None and target.simulation.expectation.met_by(failure), (
                regression.path
            )
        else:
            assert failure is None, f"{regression.path.name} fails again: {failure}"


def test_the_same_seed_explores_the_same_schedules() -> None:
    def traces() -> list[object]:
        seen: list[object] = []

        def record(schedule: ScheduleRecord) -> None:
            seen.append(schedule.trace)

        interlace.explore(
            identical.two_processes.scenario(SQLITE), schedules=6, seed=3, on_schedule=record
        )
        return seen

    assert traces() == traces()


def test_a_token_that_no_longer_fits_is_reported_stale_not_replayed() -> None:
    run = run_simulation(identical.two_processes_pre_fix, SQLITE, Config(schedules=50))
    assert run.failure is not None
    token = Token.decode(run.failure.token)
    # a wrong check byte in the middle of the schedule: requests are mid-transaction there
    middle = len(token.choices) // 2
    choices = list(token.choices)
    choices[middle] = RecordedChoice(choices[middle].task_index, choices[middle].check ^ 0xFF)
    broken = Token(token.scenario, token.strategy, token.seed, tuple(choices)).encode()
    replayed = interlace.replay_report(identical.two_processes_pre_fix.scenario(SQLITE), broken)
    failure, stale = replayed.failure, replayed.problem and replayed.problem.message
    assert failure is None
    assert stale is not None and f"at step {middle} " in stale
