"""Guided: follow a list of preferred choices where they fit, and never preempt otherwise.

Shrinking and the determinism check both rerun a schedule from a recorded or
edited list of task indices. Where the preferred task is runnable it runs;
where it is not (an edit changed what is runnable) or the list is used up,
the guide makes the choice that adds no preemption: the task that ran before,
if it can continue, else the runnable task created first.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from interlace._core import Candidate

if TYPE_CHECKING:
    from interlace._core import Trace


def non_preemptive(runnable: Sequence[Candidate], previous: Candidate | None) -> Candidate:
    """The choice that adds no preemption."""
    return previous if previous is not None else runnable[0]


class GuidedStrategy:
    """Runs ``preferences[step]`` when it is runnable, the non-preemptive choice otherwise."""

    def __init__(self, preferences: Sequence[int], name: str = "guided") -> None:
        self.preferences = tuple(preferences)
        self._name = name
        # invariant: steps at which the preference could not be followed
        self.deviations: list[int] = []

    @property
    def name(self) -> str:
        return self._name

    def begin(self, seed: int) -> bool:
        self.deviations = []
        return True

    def choose(
        self, step: int, runnable: Sequence[Candidate], previous: Candidate | None
    ) -> Candidate:
        if step < len(self.preferences):
            wanted = self.preferences[step]
            for candidate in runnable:
                if candidate.index == wanted:
                    return candidate
            self.deviations.append(step)
        return non_preemptive(runnable, previous)

    def end(self, trace: Trace) -> None:
        return None
