"""A run as JSON, for CI artifacts and other tools: ``interlace run --json FILE``.

One document per run::

    {"version": 1, "database": "sqlite", "budget": {"schedules": 200, ...},
     "ok": true,
     "simulations": [
       {"scenario": "simulations.editor_chat.identical:two_processes[sqlite]",
        "verdict": "passed", "ok": true, "message": "...",
        "schedules": 200, "interleavings": 84, "elapsed": 5.6,
        "sometimes": {"a reply was saved after ...": 200},
        "regressions": [{"file": "...token", "outcome": "passes"}],
        "failure": null | {"kind": "invariant", "exception": "InvariantViolation",
                           "message": "...", "token": "interlace:v1:...",
                           "replay": "interlace replay '...'", "schedule": 0,
                           "decisions": [{"step": 0, "task": "main", "label": "...",
                                          "runnable": ["main"], "preemption": false}, ...]}}]}
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from interlace.explore import Failure
from interlace.report.failure import interlace_replay_command
from interlace.runner import Budget, ReplayedRegression, SimulationRun

FORMAT_VERSION = 1


def run_document(runs: Sequence[SimulationRun], budget: Budget, database: str) -> dict[str, Any]:
    """The run as a JSON-ready dict (see the module docstring)."""
    return {
        "version": FORMAT_VERSION,
        "database": database,
        "budget": {"schedules": budget.schedules, "strategy": budget.strategy, "seed": budget.seed},
        "ok": all(run.ok for run in runs),
        "simulations": [_simulation(run) for run in runs],
    }


def dumps(document: dict[str, Any]) -> str:
    """Indented JSON with non-ASCII kept as is (the chat's Swedish texts stay readable)."""
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def _simulation(run: SimulationRun) -> dict[str, Any]:
    report = run.report
    return {
        "scenario": run.scenario,
        "verdict": run.verdict.value,
        "ok": run.ok,
        "canary": run.simulation.canary,
        "message": run.message,
        "schedules": None if report is None else report.schedules_run,
        "interleavings": None if report is None else report.distinct_interleavings,
        "determinism_best_effort": None if report is None else report.best_effort,
        "elapsed": round(run.elapsed, 3),
        "sometimes": dict(run.sometimes),
        "regressions": [_regression(r) for r in run.regressions],
        "failure": None if run.failure is None else failure_document(run.failure),
    }


def _regression(replayed: ReplayedRegression) -> dict[str, Any]:
    if replayed.stale is not None:
        outcome = "stale"
    elif replayed.failure is not None:
        outcome = "fails"
    else:
        outcome = "passes"
    return {"file": str(replayed.regression.path), "outcome": outcome, "stale": replayed.stale}


def failure_document(failure: Failure) -> dict[str, Any]:
    """A failure with its whole trace, one entry per decision."""
    return {
        "kind": failure.kind,
        "exception": type(failure.exception).__name__,
        "message": str(failure.exception),
        "token": failure.token,
        "replay": interlace_replay_command(failure.token),
        "schedule": failure.schedule,
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
