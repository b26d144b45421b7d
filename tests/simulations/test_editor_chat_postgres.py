"""The editor-chat simulations on PostgreSQL (provider chain): conflicts, the lost message."""

from __future__ import annotations

from pathlib import Path

import pytest
from simulations.editor_chat import cancelled, different, http, identical, provider_error
from simulations.editor_chat.invariants import conflict_retried, user_messages_persisted_once

import interlace
from interlace import Config, InvariantViolation, Simulation
from interlace.corpus import Corpus
from interlace.db.provider import PostgresServer
from interlace.db.supply import PostgresSupply
from interlace.discovery import resolve
from interlace.outcome import Verdict
from interlace.runner import run_simulation

pytestmark = pytest.mark.postgres

ROOT = Path(__file__).resolve().parents[2]

FIXED = [
    identical.two_processes,
    identical.one_process,
    different.different_messages,
    cancelled.cancelled_mid_stream,
    provider_error.provider_error_mid_stream,
    http.identical_over_http,
]
CANARIES = [
    identical.two_processes_pre_fix,
    identical.two_processes_pre_fix_lost_message,
    http.identical_over_http_pre_fix,
]


def _name(simulation: Simulation) -> str:
    return simulation.attribute


@pytest.fixture(scope="module")
def supply(interlace_postgres: PostgresServer) -> PostgresSupply:
    return PostgresSupply(interlace_postgres)


@pytest.mark.parametrize("simulation", FIXED, ids=_name)
def test_the_fixed_handler_passes_on_postgres(
    simulation: Simulation, supply: PostgresSupply
) -> None:
    run = run_simulation(simulation, supply, Config(schedules=20, strategy="portfolio"))
    assert run.verdict is Verdict.PASSED, run.message + (
        "\n" + run.failure.describe() if run.failure else ""
    )
    if conflict_retried in simulation.invariants:
        assert run.sometimes[conflict_retried.name] > 0  # the retry path really ran


@pytest.mark.parametrize("simulation", CANARIES, ids=_name)
def test_the_pre_fix_races_are_caught_on_postgres_and_their_tokens_replay_them(
    simulation: Simulation, supply: PostgresSupply
) -> None:
    run = run_simulation(simulation, supply, Config(schedules=200))
    assert run.verdict is Verdict.CAUGHT, run.message
    failure = run.failure
    assert failure is not None and failure.schedule < 200
    with pytest.raises(InvariantViolation) as replayed:
        interlace.replay(simulation.scenario(supply), failure.token)
    assert str(replayed.value) == str(failure.exception)
    replayed_report = interlace.replay_report(simulation.scenario(supply), failure.token)
    assert replayed_report.failure is not None
    assert replayed_report.failure.trace == failure.trace


def test_the_lost_message_is_a_state_rev_conflict(supply: PostgresSupply) -> None:
    simulation = identical.two_processes_pre_fix_lost_message
    run = run_simulation(simulation, supply, Config(schedules=200))
    assert run.failure is not None
    violation = run.failure.exception
    assert isinstance(violation, InvariantViolation)
    assert violation.invariants == (user_messages_persisted_once.name,)
    assert "is stored 0 times" in str(violation)
    assert "the request failed with StateConflict" in str(violation)


def test_the_committed_regression_tokens_replay_on_postgres(supply: PostgresSupply) -> None:
    regressions = [
        r for r in Corpus(ROOT / "simulations" / "regressions").load() if "[postgres]" in r.scenario
    ]
    assert regressions, "simulations/regressions/ holds tokens of the pre-fix races on PostgreSQL"
    for regression in regressions:
        target = resolve(regression.scenario)
        assert target.simulation is not None and target.database == "postgres"
        replayed = interlace.replay_report(target.simulation.scenario(supply), regression.token)
        failure, stale = replayed.failure, replayed.problem and replayed.problem.message
        assert stale is None, f"{regression.path.name}: {stale}"
        if target.simulation.canary:
            assert failure is not None and target.simulation.expectation.met_by(failure), (
                regression.path
            )
        else:
            assert failure is None, f"{regression.path.name} fails again: {failure}"


@pytest.mark.parametrize(
    "simulation", [identical.two_processes, cancelled.cancelled_mid_stream], ids=_name
)
def test_every_schedule_replays_identically_on_postgres(
    simulation: Simulation, supply: PostgresSupply
) -> None:
    report = interlace.explore(
        simulation.scenario(supply), schedules=15, check_determinism=True, shrink=False
    )
    assert report.failure is None, report.failure.describe() if report.failure else ""
