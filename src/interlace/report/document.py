"""A run as JSON, for CI artifacts and other tools: ``interlace run --json FILE``.

The format is versioned (``"version": 3``) and described by a JSON Schema
shipped beside this module (``schemas/run-v3.schema.json``; ``schema()``
loads it); the README documents every field. One document per run::

    {"version": 3, "interlace": "0.1.0", "started": "2026-05-01T12:00:00Z",
     "elapsed": 12.5, "command": "interlace run", "database": "sqlite",
     "budget": {"schedules": 200, "strategy": "portfolio", "seed": 0},
     "ok": false, "exit_status": 1,
     "simulations": [
       {"scenario": "simulations.bank:transfer[sqlite]", "database": "sqlite",
        "verdict": "VIOLATION", "outcome": "violation", "ok": false, "canary": false,
        "message": "...", "schedules": 12, "interleavings": 12, "elapsed": 0.4,
        "coverage": [[1, 1], [2, 2], ...], "sometimes": {}, "regressions": [],
        "determinism_best_effort": null, "problem": null,
        "failure": {"outcome": "violation", "kind": "invariant",
                    "exception": "InvariantViolation", "message": "...",
                    "token": "interlace:v1:...", "replay": "interlace replay '...'",
                    "schedule": 11, "seed": 123,
                    "locations": [{"path": "simulations/bank.py", "line": 14,
                                   "function": "balanced", "invariant": "...",
                                   "message": "final invariant violated: ..."}],
                    "shrinking": {"found_preemptions": 3, "found_decisions": 40,
                                  "preemptions": 1, "decisions": 31, "runs": 18,
                                  "seconds": 0.6, "minimal": true, "stopped": null,
                                  "nearest_passing": {"parts_at": 17, ...}},
                    "decisions": [{"step": 0, "task": "main", "label": "start transfer",
                                   "runnable": ["main"], "preemption": false}, ...]}}]}

Version 3 (this one) added ``started``, ``elapsed``, ``command``, each
simulation's ``database`` and ``coverage``, each failure's ``seed``,
``locations`` and the shrunk size and nearest passing schedule in
``shrinking``, and made a simulation's ``outcome`` its outcome class
(version 2 said ``finding`` for every failing verdict).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from importlib import resources
from typing import Any, cast

from interlace.config import Config
from interlace.outcome import Failure, Outcome, Problem, RegressionReplay, SimulationRun, Verdict
from interlace.report.context import RunInfo
from interlace.report.locations import failure_locations
from interlace.report.timeline import parting

FORMAT_VERSION = 3
SCHEMA_FILE = f"run-v{FORMAT_VERSION}.schema.json"


def run_document(runs: Sequence[SimulationRun], info: RunInfo, config: Config) -> dict[str, Any]:
    """The run as a JSON-ready dict (see the module docstring)."""
    return {
        "version": FORMAT_VERSION,
        "interlace": info.version,
        "started": info.started_text,
        "elapsed": round(info.elapsed, 3),
        "command": info.command,
        "database": info.database,
        "budget": {
            "schedules": config.schedules,
            "strategy": config.strategy_name,
            "seed": config.seed,
        },
        "ok": all(run.ok for run in runs),
        "exit_status": max((run.verdict.exit_code for run in runs), default=0),
        "simulations": [_simulation(run, info) for run in runs],
    }


def render_json(runs: Sequence[SimulationRun], info: RunInfo, config: Config) -> str:
    """``run_document`` as indented JSON text."""
    return dumps(run_document(runs, info, config))


def dumps(document: dict[str, Any]) -> str:
    """Indented JSON with non-ASCII kept as is (the chat's Swedish texts stay readable)."""
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def schema() -> dict[str, Any]:
    """The JSON Schema of this version of the document."""
    text = resources.files("interlace.report").joinpath("schemas", SCHEMA_FILE).read_text("utf-8")
    return cast(dict[str, Any], json.loads(text))


def outcome_class(run: SimulationRun) -> str:
    """The run's outcome class: passed, violation, scheduler finding, usage or internal error.

    A caught canary passed; a missed canary and a vacuous run failed their
    run's own expectation without a failing schedule: a violation.
    """
    if run.problem is not None:
        return run.problem.outcome.value
    if run.ok:
        return Outcome.PASSED.value
    if run.failure is not None and run.verdict in (Verdict.VIOLATION, Verdict.REGRESSION):
        return run.failure.outcome.value
    return Outcome.VIOLATION.value


def _simulation(run: SimulationRun, info: RunInfo) -> dict[str, Any]:
    report = run.report
    return {
        "scenario": run.scenario,
        "database": run.database,
        "verdict": run.verdict.value,
        "outcome": outcome_class(run),
        "ok": run.ok,
        "canary": run.canary,
        "message": run.message,
        "schedules": None if report is None else report.schedules_run,
        "interleavings": None if report is None else report.distinct_interleavings,
        "coverage": [] if report is None else [list(p) for p in report.coverage_curve],
        "determinism_best_effort": None if report is None else report.best_effort,
        "elapsed": round(run.elapsed, 3),
        "sometimes": dict(run.sometimes),
        "regressions": [_regression(r) for r in run.regressions],
        "problem": None if run.problem is None else _problem(run.problem),
        "failure": None if run.failure is None else failure_document(run, run.failure, info),
    }


def _problem(problem: Problem) -> dict[str, Any]:
    return {
        "outcome": problem.outcome.value,
        "exception": type(problem.exception).__name__,
        "message": problem.message,
        "token": problem.token,
    }


def _regression(replayed: RegressionReplay) -> dict[str, Any]:
    if replayed.stale is not None:
        outcome = "stale"
    elif replayed.problem is not None:
        outcome = replayed.problem.outcome.value
    elif replayed.failure is not None:
        outcome = "fails"
    else:
        outcome = "passes"
    return {"file": str(replayed.path), "outcome": outcome, "stale": replayed.stale}


def failure_document(run: SimulationRun, failure: Failure, info: RunInfo) -> dict[str, Any]:
    """A failure with its locations, its shrinking and its whole trace."""
    return {
        "outcome": failure.outcome.value,
        "kind": failure.kind,
        "exception": type(failure.exception).__name__,
        "message": str(failure.exception),
        "token": failure.token,
        "replay": info.replay(run, failure),
        "schedule": failure.schedule,
        "seed": failure.seed,
        "locations": [
            {
                "path": None if item.location is None else item.location.relative(info.root),
                "line": None if item.location is None else item.location.line,
                "function": None if item.location is None else item.location.function,
                "invariant": item.invariant,
                "message": item.message,
            }
            for item in failure_locations(failure)
        ],
        "shrinking": _shrinking(failure),
        "decisions": [
            {
                "step": d.step,
                "task": d.task,
                "label": d.label,
                "runnable": list(d.runnable),
                "preemption": d.preemption,
            }
            for d in failure.trace.decisions
        ],
    }


def _shrinking(failure: Failure) -> dict[str, Any] | None:
    shrinking = failure.shrinking
    if shrinking is None:
        return None
    nearest = None
    if shrinking.nearest_passing is not None:
        parted = parting(failure.trace, shrinking.nearest_passing)
        nearest = {
            "parts_at": None if parted is None else parted.step,
            "description": None if parted is None else parted.describe(),
            "decisions": len(shrinking.nearest_passing.decisions),
            "preemptions": shrinking.nearest_passing.preemptions,
        }
    return {
        "found_preemptions": shrinking.found_size[0],
        "found_decisions": shrinking.found_size[1],
        "preemptions": failure.trace.preemptions,
        "decisions": len(failure.trace.decisions),
        "runs": shrinking.runs,
        "seconds": round(shrinking.seconds, 3),
        "minimal": shrinking.minimal,
        "stopped": shrinking.stopped,
        "nearest_passing": nearest,
    }


__all__ = [
    "FORMAT_VERSION",
    "dumps",
    "failure_document",
    "outcome_class",
    "render_json",
    "run_document",
    "schema",
]
