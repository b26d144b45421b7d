"""PCT: probabilistic concurrency testing (Burckhardt, Kothari, Musuvathi, Nagarakatte 2010).

Every task gets a random priority when it first becomes runnable; the
highest-priority runnable task always runs. At ``depth - 1`` change points,
chosen uniformly among the ``k`` steps a schedule is expected to take, the
task about to run drops below every initial priority. A bug that needs ``d``
ordering constraints among ``n`` tasks is then found in one schedule with
probability at least ``1 / (n * k ** (d - 1))``.

``k`` is not known before the first schedule: it starts at ``initial_steps``
and becomes the longest schedule seen so far, as in shuttle's PCT.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import TYPE_CHECKING

from interlace._core import Candidate

if TYPE_CHECKING:
    from interlace._core import Trace


class PCTStrategy:
    """Priority-based random scheduling with ``depth - 1`` priority change points."""

    def __init__(self, depth: int = 3, initial_steps: int = 20) -> None:
        if depth < 1:
            raise ValueError(f"PCT depth must be at least 1, got {depth}")
        if initial_steps < 1:
            raise ValueError(f"PCT initial_steps must be at least 1, got {initial_steps}")
        self.depth = depth
        # invariant: the longest schedule seen so far, at least initial_steps
        self.expected_steps = initial_steps
        self._rng = random.Random(0)
        self._priority: dict[int, float] = {}
        # step -> rank of the change point (1-based); later ones rank higher
        self._change_points: dict[int, int] = {}

    @property
    def name(self) -> str:
        return f"pct{self.depth}"

    def begin(self, seed: int) -> bool:
        self._rng = random.Random(seed)
        self._priority = {}
        count = min(self.depth - 1, self.expected_steps)
        steps = sorted(self._rng.sample(range(1, self.expected_steps + 1), count))
        self._change_points = {step: rank for rank, step in enumerate(steps, start=1)}
        return True

    def choose(
        self, step: int, runnable: Sequence[Candidate], previous: Candidate | None
    ) -> Candidate:
        for candidate in runnable:
            if candidate.index not in self._priority:
                # initial priorities lie in [0, 1), above every lowered one
                self._priority[candidate.index] = self._rng.random()
        chosen = self._highest(runnable)
        rank = self._change_points.get(step)
        if rank is not None:
            # below all initial priorities; a later change point ranks above an earlier one
            self._priority[chosen.index] = float(rank - self.depth)
            chosen = self._highest(runnable)
        return chosen

    def end(self, trace: Trace) -> None:
        self.expected_steps = max(self.expected_steps, len(trace.decisions))

    def _highest(self, runnable: Sequence[Candidate]) -> Candidate:
        return max(runnable, key=lambda candidate: self._priority[candidate.index])
