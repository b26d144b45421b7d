"""Uniform random walk: at every step, any runnable task with equal probability."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import TYPE_CHECKING

from interlace._core import Candidate

if TYPE_CHECKING:
    from interlace._core import Trace


class RandomStrategy:
    """Seeded uniform choice. Finds shallow bugs fast; no guarantee for deep ones."""

    name = "random"

    def __init__(self) -> None:
        self._rng = random.Random(0)

    def begin(self, seed: int) -> bool:
        self._rng = random.Random(seed)
        return True

    def choose(
        self, step: int, runnable: Sequence[Candidate], previous: Candidate | None
    ) -> Candidate:
        return runnable[self._rng.randrange(len(runnable))]

    def end(self, trace: Trace) -> None:
        return None
