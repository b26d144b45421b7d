"""A run as JSON, for CI artifacts and other tools: ``interlace run --json FILE``.

One document per run::

    {"version": 2, "interlace": "0.1.0", "database": "sqlite",
     "budget": {"schedules": 200, ...}, "ok": true, "exit_status": 0,
     "simulations": [
       {"scenario": "simulations.editor_chat.identical:two_processes[sqlite]",
        "verdict": "passed", "outcome": "passed", "ok": true, "message": "...",
        "schedules": 200, "interleavings": 84, "elapsed": 5.6,
        "sometimes": {"a reply was saved after ...": 200},
        "regressions": [{"file": "...token", "outcome": "passes"}],
        "problem": null | {"outcome": "usage error", "message": "...", "token": null},
        "failure": null | {"outcome": "violation", "kind": "invariant",
                           "exception": "InvariantViolation",
                           "message": "...", "token": "interlace:v1:...",
                           "replay": "interlace replay '...'", "schedule": 0,
                           "decisions": [{"step": 0, "task": "main", "label": "...",
                                          "runnable": ["main"], "preemption": false}, ...]}}]}
"""

from __future__ import annotations

import importlib.metadata
import json
from collections.abc import Sequence
from typing import Any

from interlace.config import Config
from interlace.outcome import Failure, Outcome, Problem, RegressionReplay, SimulationRun, Verdict
from interlace.report.failure import interlace_replay_command

FORMAT_VERSION = 2

#: the outcome class of each verdict (``interlace.outcome``)
_VERDICT_OUTCOMES = {
    Verdict.PASSED: "passed",
    Verdict.CAUGHT: "passed",
    Verdict.VIOLATION: "finding",
    Verdict.REGRESSION: "finding",
    Verdict.VACUOUS: "finding",
    Verdict.MISSED: "finding",
    Verdict.USAGE_ERROR: Outcome.USAGE_ERROR.value,
    Verdict.INTERNAL_ERROR: Outcome.INTERNAL_ERROR.value,
}


def run_document(runs: Sequence[SimulationRun], config: Config, database: str) -> dict[str, Any]:
    """The run as a JSON-ready dict (see the module docstring)."""
    return {
        "version": FORMAT_VERSION,
        "interlace": _version(),
        "database": database,
        "budget": {
            "schedules": config.schedules,
            "strategy": config.strategy_name,
            "seed": config.seed,
        },
        "ok": all(run.ok for run in runs),
        "exit_status": max((run.verdict.exit_code for run in runs), default=0),
        "simulations": [_simulation(run) for run in runs],
    }


def _version() -> str:
    try:
        return importlib.metadata.version("interlace")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def dumps(document: dict[str, Any]) -> str:
    """Indented JSON with non-ASCII kept as is (the chat's Swedish texts stay readable)."""
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def _simulation(run: SimulationRun) -> dict[str, Any]:
    report = run.report
    return {
        "scenario": run.scenario,
        "verdict": run.verdict.value,
        "outcome": _VERDICT_OUTCOMES[run.verdict],
        "ok": run.ok,
        "canary": run.canary,
        "message": run.message,
        "schedules": None if report is None else report.schedules_run,
        "interleavings": None if report is None else report.distinct_interleavings,
        "determinism_best_effort": None if report is None else report.best_effort,
        "elapsed": round(run.elapsed, 3),
        "sometimes": dict(run.sometimes),
        "regressions": [_regression(r) for r in run.regressions],
        "problem": None if run.problem is None else _problem(run.problem),
        "failure": None if run.failure is None else failure_document(run.failure),
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


def failure_document(failure: Failure) -> dict[str, Any]:
    """A failure with its whole trace, one entry per decision."""
    shrinking = failure.shrinking
    return {
        "outcome": failure.outcome.value,
        "kind": failure.kind,
        "exception": type(failure.exception).__name__,
        "message": str(failure.exception),
        "token": failure.token,
        "replay": interlace_replay_command(failure.token),
        "schedule": failure.schedule,
        "shrinking": None
        if shrinking is None
        else {
            "found_preemptions": shrinking.found_size[0],
            "found_decisions": shrinking.found_size[1],
            "runs": shrinking.runs,
            "seconds": round(shrinking.seconds, 3),
            "minimal": shrinking.minimal,
            "stopped": shrinking.stopped,
        },
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
