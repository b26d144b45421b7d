"""The core's internal face: the controlled loop, the director, strategies' protocol, traces.

Everything above the core (the engine, the front ends, ``interlace.strategies``,
``interlace.db``) imports the core from here, not from its modules; the modules
are the core's own business. The user-facing extension points are re-exported,
documented, by ``interlace.lowlevel``. Private; see ``interlace``.
"""

from __future__ import annotations

from interlace._core.clock import VirtualClock
from interlace._core.director import Director, Limits, ScheduleOutcome
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
from interlace._core.loop import ControlledLoop, Controller
from interlace._core.strategy import Candidate, Strategy
from interlace._core.tasks import label_task
from interlace._core.trace import Decision, RecordedChoice, Token, Trace, describe_runnable
from interlace._core.waits import (
    OutsideWaits,
    Wait,
    WaitKind,
    attach_outside_waits,
    detach_outside_waits,
    outside_waits_of,
)

__all__ = [
    "Candidate",
    "ControlledLoop",
    "Controller",
    "Deadlock",
    "Decision",
    "Director",
    "InterlaceError",
    "Limits",
    "Nondeterminism",
    "OutsideWaits",
    "RecordedChoice",
    "ScheduleOutcome",
    "SchedulerFailure",
    "StepBoundExceeded",
    "Strategy",
    "StuckOutsideIO",
    "Token",
    "TokenError",
    "Trace",
    "UsageError",
    "VirtualClock",
    "Wait",
    "WaitKind",
    "attach_outside_waits",
    "describe_runnable",
    "detach_outside_waits",
    "label_task",
    "outside_waits_of",
]
