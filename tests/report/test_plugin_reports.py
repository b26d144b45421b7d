"""The pytest plugin's reports: ``--interlace-html DIR`` and ``--interlace-sarif FILE``."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

pytest_plugins = ["pytester"]

TESTS = """
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


@pytest.mark.interlace(schedules=20)
async def test_locked():
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

QUIET = ["-p", "no:cacheprovider", "-o", "asyncio_default_fixture_loop_scope=function"]
SARIF_SCHEMA = Path(__file__).parent / "sarif-schema-2.1.0.json"


def test_the_plugin_writes_an_html_report_and_sarif_of_the_session(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_bank=TESTS)
    result = pytester.runpytest(
        *QUIET, "--interlace-html", "report", "--interlace-sarif", "out/interlace.sarif"
    )
    result.assert_outcomes(failed=1, passed=1)
    result.stdout.fnmatch_lines(["interlace: wrote *report*interlace-report.html"])
    page = (pytester.path / "report" / "interlace-report.html").read_text(encoding="utf-8")
    assert "test_bank:test_lost_update" in page and "test_bank:test_locked" in page
    assert 'class="swimlanes"' in page and "pytest test_bank.py::test_lost_update" in page
    sarif = json.loads((pytester.path / "out" / "interlace.sarif").read_text(encoding="utf-8"))
    jsonschema.Draft4Validator(json.loads(SARIF_SCHEMA.read_text())).validate(sarif)
    [finding] = sarif["runs"][0]["results"]
    assert finding["properties"]["replay"].startswith("pytest test_bank.py::test_lost_update ")
    location = finding["locations"][0]["physicalLocation"]
    assert location["artifactLocation"]["uri"] == "test_bank.py"
    lines = (pytester.path / "test_bank.py").read_text().splitlines()
    assert lines[location["region"]["startLine"] - 1].strip().startswith("assert account")


def test_without_the_options_no_report_is_written(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_bank=TESTS.replace("schedules=50", "schedules=2"))
    result = pytester.runpytest(*QUIET, "-k", "locked")
    result.assert_outcomes(passed=1, deselected=1)
    assert "interlace: wrote" not in result.stdout.str()
    assert not list(pytester.path.rglob("*.html"))
