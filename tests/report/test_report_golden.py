"""Golden tests: the text table, the Markdown summary and SARIF of a fixed token.

The token (``report_scenarios.LOST_UPDATE_TOKEN``) is replayed, not explored, so
the trace is the same on every run and every supported Python; the run's
numbers (schedules, times, start) are fixed by hand. A renderer change that
alters these files is intended or a bug: rewrite them with
``INTERLACE_UPDATE_GOLDEN=1`` and review the diff.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

import jsonschema
import pytest
from report_scenarios import LOST_UPDATE_TOKEN, two_withdrawals

import interlace
from interlace.outcome import ExploreReport, Failure, SimulationRun, Verdict
from interlace.report.context import RunInfo
from interlace.report.failure import failure_report, interlace_replay_command
from interlace.report.markdown import render_markdown
from interlace.report.sarif import render_sarif
from interlace.report.table import interleaving_table

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).parent
GOLDEN = HERE / "golden"
UPDATE = os.environ.get("INTERLACE_UPDATE_GOLDEN") == "1"

INFO = RunInfo(
    started=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
    elapsed=1.5,
    database=None,
    settings="--schedules 50 --strategy random --seed 0",
    version="0.0.0+golden",
    root=ROOT,
)


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if UPDATE:
        path.write_text(text, encoding="utf-8")
        return
    assert path.exists(), f"{path} is missing: run with INTERLACE_UPDATE_GOLDEN=1 once"
    assert text == path.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def failure() -> Failure:
    report = interlace.replay_report(two_withdrawals.scenario(None), LOST_UPDATE_TOKEN)
    assert report.failure is not None, "the golden token no longer fails"
    return report.failure


@pytest.fixture(scope="module")
def runs(failure: Failure) -> list[SimulationRun]:
    name = two_withdrawals.scenario_name(None)
    failing = ExploreReport(
        scenario=name,
        strategy="random",
        seed=0,
        schedules_run=5,
        distinct_interleavings=3,
        failure=failure,
        exhausted=False,
        elapsed=0.3,
        coverage_curve=((1, 1), (2, 2), (3, 2), (4, 3), (5, 3)),
    )
    passing = ExploreReport(
        scenario="report_scenarios:locked",
        strategy="random",
        seed=0,
        schedules_run=50,
        distinct_interleavings=4,
        failure=None,
        exhausted=False,
        elapsed=0.5,
        coverage_curve=((10, 3), (50, 4)),
    )
    return [
        SimulationRun(
            passing.scenario,
            None,
            False,
            Verdict.PASSED,
            "no failure in 50 schedules",
            None,
            passing,
        ),
        SimulationRun(
            name,
            None,
            False,
            Verdict.VIOLATION,
            failure.headline().splitlines()[0],
            failure,
            failing,
        ),
    ]


def test_the_text_table_of_the_fixed_token(failure: Failure) -> None:
    table = interleaving_table(failure.trace, width=100)
    command = interlace_replay_command(failure.token)
    report = failure_report(failure, [("replay", command)], width=100)
    assert table in report
    check_golden("lost_update.txt", report + "\n")


def test_the_markdown_summary_of_the_fixed_token(runs: list[SimulationRun]) -> None:
    check_golden("lost_update.md", render_markdown(runs, INFO))


def test_the_sarif_log_of_the_fixed_token_is_valid_sarif_2_1_0(runs: list[SimulationRun]) -> None:
    text = render_sarif(runs, INFO)
    schema = json.loads((HERE / "sarif-schema-2.1.0.json").read_text(encoding="utf-8"))
    jsonschema.Draft4Validator(schema).validate(json.loads(text))
    check_golden("lost_update.sarif", text)
    result = json.loads(text)["runs"][0]["results"][0]
    assert result["properties"]["token"] == LOST_UPDATE_TOKEN
    location = result["locations"][0]["physicalLocation"]
    assert location["artifactLocation"]["uri"] == "tests/report/report_scenarios.py"
    source = (HERE / "report_scenarios.py").read_text().splitlines()
    assert source[location["region"]["startLine"] - 1].strip().startswith("assert balance == 20")
