"""interlace: find races in async Python services that use a real SQL database.

interlace runs several concurrent requests through your real handler and
persistence code, lets a deterministic scheduler decide how they interleave,
checks your invariants after every schedule, and prints a one-line token that
replays a failure exactly::

    import asyncio, interlace

    balance = {"alice": 100}

    async def withdraw(amount: int) -> None:
        current = balance["alice"]
        await asyncio.sleep(0)            # another request may run here
        balance["alice"] = current - amount

    async def two_withdrawals() -> None:
        balance["alice"] = 100
        await asyncio.gather(withdraw(30), withdraw(50))
        assert balance["alice"] == 20, f"lost update: balance is {balance['alice']}"

    report = interlace.explore(two_withdrawals, schedules=100, seed=0)
    print(report.failure.describe())      # the table, the token, the replay command
    interlace.replay(two_withdrawals, report.failure.token)   # raises the same AssertionError
"""

from __future__ import annotations

from interlace import invariants
from interlace._core.errors import (
    Deadlock,
    InterlaceError,
    Nondeterminism,
    SchedulerFailure,
    StepBoundExceeded,
    StuckOutsideIO,
    TokenError,
    UsageError,
)
from interlace._core.loop import ControlledLoop
from interlace._core.trace import Decision, Trace
from interlace.config import Config
from interlace.db.sqlalchemy import warm_pool
from interlace.explore import (
    InternalError,
    explore,
    explore_async,
    replay,
    replay_async,
    replay_report,
    replay_report_async,
)
from interlace.invariants import InvariantViolation
from interlace.outcome import (
    ExploreReport,
    Failure,
    Outcome,
    Problem,
    ReplayReport,
    ScheduleRecord,
)
from interlace.point import always, point
from interlace.scenario import Scenario, scenario
from interlace.simulations import Simulation, simulation

__all__ = [
    "Config",
    "ControlledLoop",
    "Deadlock",
    "Decision",
    "ExploreReport",
    "Failure",
    "InterlaceError",
    "InternalError",
    "InvariantViolation",
    "Nondeterminism",
    "Outcome",
    "Problem",
    "ReplayReport",
    "Scenario",
    "ScheduleRecord",
    "SchedulerFailure",
    "Simulation",
    "StepBoundExceeded",
    "StuckOutsideIO",
    "TokenError",
    "Trace",
    "UsageError",
    "always",
    "explore",
    "explore_async",
    "invariants",
    "point",
    "replay",
    "replay_async",
    "replay_report",
    "replay_report_async",
    "scenario",
    "simulation",
    "warm_pool",
]
