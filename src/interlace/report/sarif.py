"""A run as SARIF 2.1.0, for code-scanning tools: ``--sarif FILE``.

One result per violation (an ``InvariantViolation`` of two invariants is two
results), at its first application frame (``interlace.report.locations``),
with the token, the replay command and the scenario as properties. A failing
run without a violating schedule (a missed canary, a vacuous run) is one
result at the simulation's definition; a usage or internal error is a tool
execution notification, not a result (it says nothing about the code).

Each result has a fingerprint that is the same on every run that finds the
same violation: a hash of the scenario, the rule, the invariant (or the
exception type) and the message with its numbers masked, and the location's
file and function, never the token, the seed or a line number (a seed or an
unrelated edit above it would change them).

    >>> document = sarif_document(runs, info)
    >>> document["runs"][0]["results"][0]["properties"]["token"]
    'interlace:v1:...'
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from interlace.outcome import Failure, Outcome, SimulationRun, Verdict
from interlace.report.context import RunInfo
from interlace.report.locations import (
    Located,
    SourceLocation,
    definition_of,
    failure_locations,
)

SARIF_VERSION = "2.1.0"
SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
FINGERPRINT = "interlace/v1"
_NUMBER = re.compile(r"\d+")

_RULES: dict[str, tuple[str, str]] = {
    # id: (short description, full description)
    "interlace/invariant": (
        "An invariant failed in a schedule",
        "Some interleaving of the simulated concurrent requests breaks an invariant; "
        "the token replays it exactly.",
    ),
    "interlace/error": (
        "The application raised in a schedule",
        "Some interleaving of the simulated concurrent requests makes the application "
        "raise; the token replays it exactly.",
    ),
    "interlace/scheduler": (
        "The scheduler found a deadlock, a step bound or a divergence",
        "Some interleaving deadlocks, runs past the step bound (a possible livelock), "
        "gets stuck, or does not replay the same way.",
    ),
    "interlace/judgement": (
        "A simulation's run failed its expectation",
        "A canary's expected violation was not found, or a sometimes invariant never "
        "held, so the checks prove less than they seem to.",
    ),
}


def sarif_document(runs: Sequence[SimulationRun], info: RunInfo) -> dict[str, Any]:
    """The run as a SARIF 2.1.0 log (a JSON-ready dict)."""
    results: list[dict[str, Any]] = []
    for run in runs:
        if run.ok or run.problem is not None:
            continue
        if run.failure is not None:
            for located in failure_locations(run.failure):
                results.append(_result(run, run.failure, located, info))
        else:
            results.append(_judgement(run, info))
    notifications = [
        {
            "level": "error",
            "message": {"text": f"{run.scenario}: {run.problem.headline()}"},
            "properties": {"outcome": run.problem.outcome.value},
        }
        for run in runs
        if run.problem is not None
    ]
    used = sorted({result["ruleId"] for result in results})
    return {
        "$schema": SARIF_SCHEMA,
        "version": SARIF_VERSION,
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "interlace",
                        "version": info.version,
                        "rules": [_rule(rule) for rule in used],
                    }
                },
                "invocations": [
                    {
                        "executionSuccessful": not notifications,
                        "startTimeUtc": info.started_text,
                        "toolExecutionNotifications": notifications,
                        "properties": {"settings": info.settings, "database": info.database},
                    }
                ],
                "results": [
                    {**result, "ruleIndex": used.index(result["ruleId"])} for result in results
                ],
            }
        ],
    }


def render_sarif(runs: Sequence[SimulationRun], info: RunInfo) -> str:
    """``sarif_document`` as indented JSON text."""
    return json.dumps(sarif_document(runs, info), indent=2, ensure_ascii=False) + "\n"


def _rule(rule: str) -> dict[str, Any]:
    short, full = _RULES[rule]
    return {
        "id": rule,
        "shortDescription": {"text": short},
        "fullDescription": {"text": full},
        "defaultConfiguration": {"level": "error"},
    }


def _rule_of(failure: Failure) -> str:
    if failure.outcome is Outcome.SCHEDULER_FINDING:
        return "interlace/scheduler"
    return "interlace/invariant" if failure.kind == "invariant" else "interlace/error"


def _result(
    run: SimulationRun, failure: Failure, located: Located, info: RunInfo
) -> dict[str, Any]:
    rule = _rule_of(failure)
    what = located.invariant or type(failure.exception).__name__
    result: dict[str, Any] = {
        "ruleId": rule,
        "level": "error",
        "message": {"text": f"{run.scenario}: {located.message}"},
        "locations": _locations(located.location, info),
        "fingerprints": {
            FINGERPRINT: _fingerprint(run.scenario, rule, what, located, info),
        },
        "properties": {
            "scenario": run.scenario,
            "verdict": run.verdict.value,
            "outcome": failure.outcome.value,
            "token": failure.token,
            "replay": info.replay(run, failure),
            "schedule": failure.schedule,
        },
    }
    return result


def _judgement(run: SimulationRun, info: RunInfo) -> dict[str, Any]:
    location = definition_of(run.scenario)
    located = Located(run.message, None, location)
    rule = "interlace/judgement"
    return {
        "ruleId": rule,
        "level": "error",
        "message": {"text": f"{run.scenario}: {run.message}"},
        "locations": _locations(location, info),
        "fingerprints": {
            FINGERPRINT: _fingerprint(run.scenario, rule, run.verdict.name, located, info)
        },
        "properties": {
            "scenario": run.scenario,
            "verdict": run.verdict.value,
            "outcome": "missed" if run.verdict is Verdict.MISSED else "vacuous",
        },
    }


def _locations(location: SourceLocation | None, info: RunInfo) -> list[dict[str, Any]]:
    if location is None:
        return []
    path = location.relative(info.root)
    artifact = (
        {"uri": Path(path).as_uri()}  # outside the project: an absolute file URI
        if Path(path).is_absolute()
        else {"uri": path, "uriBaseId": "%SRCROOT%"}
    )
    return [
        {
            "physicalLocation": {
                "artifactLocation": artifact,
                "region": {"startLine": max(location.line, 1)},
            },
            "logicalLocations": [{"name": location.function, "kind": "function"}],
        }
    ]


def _fingerprint(scenario: str, rule: str, what: str, located: Located, info: RunInfo) -> str:
    where = located.location
    place = "" if where is None else f"{where.relative(info.root)}:{where.function}"
    first_line = located.message.strip().splitlines()[0] if located.message.strip() else ""
    text = "\x1f".join((scenario, rule, what, _NUMBER.sub("#", first_line), place))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


__all__ = ["FINGERPRINT", "SARIF_SCHEMA", "SARIF_VERSION", "render_sarif", "sarif_document"]
