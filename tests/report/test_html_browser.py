"""The HTML report in a real headless Chromium: it loads cleanly and draws what it should.

Chromium comes from the system packages (Debian's ``chromium``); the test
starts it itself. Where none is installed the test is skipped with the reason,
except in CI (``CI`` set), where it fails: CI installs it (``.ci/run``). A
screenshot of the page and the page itself are written to
``$INTERLACE_ARTIFACTS`` (default ``artifacts/``) for CI to keep.
"""

from __future__ import annotations

import os
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest
from chromium_cdp import Chromium, find_chromium
from report_scenarios import sql_withdrawals, two_withdrawals

import interlace
from interlace.cli.progress import in_ci
from interlace.outcome import ExploreReport, SimulationRun, Verdict
from interlace.report.context import RunInfo
from interlace.report.html import HTML_FILE, write_html
from interlace.report.timeline import Timeline

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("INTERLACE_ARTIFACTS", ROOT / "artifacts"))


def chromium_or_skip() -> str:
    found = find_chromium()
    if found is not None:
        return found
    reason = (
        "no Chromium on PATH (chromium, chromium-browser, google-chrome): the HTML report's "
        "browser test needs one; install it with `apt-get install -y chromium`"
    )
    if in_ci():
        pytest.fail(f"CI is set and {reason} (.ci/run installs it)", pytrace=False)
    pytest.skip(reason)


def _run(report: ExploreReport, canary: bool = False) -> SimulationRun:
    if report.failure is None:
        return SimulationRun(report.scenario, None, canary, Verdict.PASSED, "passed", None, report)
    verdict = Verdict.CAUGHT if canary else Verdict.VIOLATION
    headline = report.failure.headline().splitlines()[0]
    return SimulationRun(
        report.scenario, "sqlite", canary, verdict, headline, report.failure, report
    )


@pytest.fixture(scope="module")
def runs() -> list[SimulationRun]:
    in_memory = interlace.explore(
        two_withdrawals.scenario(None), strategy="random", schedules=50, seed=0
    )
    on_sqlite = interlace.explore(sql_withdrawals, strategy="random", schedules=20, seed=0)
    locked = interlace.explore(
        two_withdrawals.scenario(None), strategy="dfs", schedules=1, seed=0, shrink=False
    )
    assert in_memory.failure is not None and on_sqlite.failure is not None
    assert in_memory.failure.shrinking is not None
    assert in_memory.failure.shrinking.nearest_passing is not None
    return [_run(locked), _run(in_memory, canary=True), _run(on_sqlite)]


def test_the_html_report_loads_in_chromium_with_lanes_spans_and_no_errors(
    runs: list[SimulationRun], tmp_path: Path
) -> None:
    executable = chromium_or_skip()
    info = RunInfo(
        started=datetime.now(UTC), elapsed=3.0, database="sqlite", settings="--schedules 50"
    )
    page_path = write_html(runs, info, tmp_path / "html")
    assert page_path.name == HTML_FILE
    sql_failure = runs[2].failure
    assert sql_failure is not None
    expected = Timeline.of(sql_failure.trace, "sqlite")
    assert expected.spans, "the SQLite failure has transactions to draw"

    with Chromium.start(executable) as browser:
        page = browser.open(page_path.resolve().as_uri())
        assert page.evaluate("document.readyState") == "complete"
        sections = page.evaluate("document.querySelectorAll('section.failure').length")
        assert sections == 2
        # the SQLite failure's section: its lanes and transactions are in the DOM
        lanes = page.evaluate(
            "Array.from(document.querySelectorAll('#run-2 .lane'), e => e.dataset.task)"
        )
        assert lanes == list(expected.lanes)
        spans = page.evaluate("document.querySelectorAll('#run-2 rect.span').length")
        assert spans == len(expected.spans)
        commits = page.evaluate("document.querySelectorAll('#run-2 rect.span-commit').length")
        assert commits == sum(1 for s in expected.spans if s.end == "COMMIT")
        decisions = page.evaluate("document.querySelectorAll('#run-2 .decision').length")
        assert decisions == len(sql_failure.trace.decisions)
        assert page.evaluate("document.querySelectorAll('#run-2 .decision.failing').length") == 1
        violation = page.evaluate("document.querySelector('#run-2 .violation-row').textContent")
        assert "lost update: balance is" in violation
        # the in-memory failure: its preemption and where the nearest passing schedule parts
        assert page.evaluate("document.querySelectorAll('#run-1 .decision.preemption').length")
        assert page.evaluate("document.querySelectorAll('#run-1 .parting').length") == 1
        assert "nearest passing schedule: the first" in page.evaluate(
            "document.querySelector('#run-1 .nearest').textContent"
        )
        # clicking a statement shows its full label in the details panel
        page.evaluate(
            "document.querySelector('#run-2 .decision.kind-statement')"
            ".dispatchEvent(new MouseEvent('click', {bubbles: true}))"
        )
        details = page.evaluate("document.querySelector('#run-2 .step-details').textContent")
        assert "ran from 'SELECT accounts'" in details
        # the token and its copy button; copying must not raise, with or without a clipboard
        token = page.evaluate("document.getElementById('token-2').textContent")
        assert token == sql_failure.token
        page.evaluate("document.querySelector('#run-2 button.copy').click()")
        page.evaluate("new Promise(resolve => setTimeout(resolve, 200))")
        assert page.evaluate("document.querySelector('#run-2 button.copy').textContent") in (
            "copied",
            "selected: press Ctrl+C",
        )
        replay = page.evaluate("document.getElementById('replay-2').textContent")
        assert replay == f"interlace replay '{sql_failure.token}'"
        # the summary and the coverage plot, one line per simulation run
        assert page.evaluate("document.querySelectorAll('table.summary tbody tr').length") == 3
        assert page.evaluate("document.querySelectorAll('svg.coverage polyline').length") == 3
        # nothing was fetched: the page is self-contained
        assert page.evaluate("performance.getEntriesByType('resource').length") == 0
        screenshot = page.screenshot(ARTIFACTS / "interlace-report.png")
        assert page.errors() == []
    assert screenshot.stat().st_size > 10_000
    shutil.copy(page_path, ARTIFACTS / HTML_FILE)
