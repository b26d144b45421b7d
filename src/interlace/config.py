"""One value that describes a run: budget, strategy, seed, limits, shrinking, determinism check.

Every front end turns its own input into a ``Config`` (``interlace run``'s
flags, the pytest marker and options, ``explore``'s keywords) and hands it to
the engine; nothing else configures a run. Like hypothesis's ``settings`` and
shuttle's ``Config``, it is immutable, validated when made, and changed by
making a new one::

    config = interlace.Config(schedules=500, strategy="pct3", seed=7)
    quick = config.replace(schedules=20)
    interlace.explore(two_withdrawals, quick)
    interlace.explore(two_withdrawals, schedules=20)      # the same: keywords override

Fields:

- ``schedules``: how many schedules an exploration runs at most (it stops at
  the first failure, and earlier when an exhaustive strategy is done);
- ``strategy``: ``random``, ``pct``/``pct<d>``, ``dfs``/``dfs<b>``, ``portfolio``;
- ``seed``: schedule ``i`` gets the ``i``-th seed drawn from ``random.Random(seed)``;
- ``max_steps``: decisions before a schedule is reported as a possible livelock;
- ``stuck_after``: wall seconds a task may wait on outside I/O (and a reset may
  take) before it is reported as stuck;
- ``shrink``: shrink a finding to fewer preemptions, then fewer decisions;
- ``shrink_runs``: reruns shrinking may take at most;
- ``shrink_seconds``: wall seconds shrinking may take; ``None`` (the default)
  means about as long as finding the failure took, at least 2 s and 12 runs,
  never more than 60 s (``interlace.shrink.ShrinkBudget.after_finding``);
- ``check_determinism``: run every schedule twice and report the first
  decision where the two runs differ;
- ``lock_monitor``: watch every asyncpg connection a simulated task uses with
  a PostgreSQL lock monitor interlace attaches itself, so lock waits on parked
  tasks are proven blocked (``interlace.db.postgres``); False turns it off.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TypedDict

from interlace._core.errors import UsageError
from interlace.strategies import NAMES as STRATEGY_NAMES
from interlace.strategies import Strategy, by_name


@dataclass(frozen=True)
class Config:
    """How to run an exploration; see the module docstring for each field."""

    schedules: int = 200
    #: a strategy's name, or a ``Strategy`` object (stateful: give each run its own)
    strategy: str | Strategy = "random"
    seed: int = 0
    max_steps: int = 10_000
    stuck_after: float = 10.0
    shrink: bool = True
    shrink_runs: int = 2000
    shrink_seconds: float | None = None
    check_determinism: bool = False
    lock_monitor: bool = True

    def __post_init__(self) -> None:
        _at_least("schedules", self.schedules, 1)
        _at_least("seed", self.seed, 0)
        _at_least("max_steps", self.max_steps, 1)
        _at_least("shrink_runs", self.shrink_runs, 0)
        if not isinstance(self.lock_monitor, bool):
            raise UsageError(f"lock_monitor must be True or False, got {self.lock_monitor!r}")
        if not self.stuck_after > 0:
            raise UsageError(
                f"stuck_after must be a positive number of seconds, got {self.stuck_after!r}"
            )
        if self.shrink_seconds is not None and not self.shrink_seconds >= 0:
            raise UsageError(
                f"shrink_seconds must be None or a non-negative number, got {self.shrink_seconds!r}"
            )
        if isinstance(self.strategy, str):
            try:
                by_name(self.strategy)
            except ValueError as error:
                raise UsageError(str(error)) from None
        elif not callable(getattr(self.strategy, "choose", None)):
            raise UsageError(
                f"strategy must be a name ({STRATEGY_NAMES}) or a Strategy object, "
                f"got {self.strategy!r}"
            )

    @property
    def strategy_name(self) -> str:
        """The strategy's name, as tokens record it."""
        return self.strategy if isinstance(self.strategy, str) else self.strategy.name

    def make_strategy(self) -> Strategy:
        """A fresh strategy of this name (or the ``Strategy`` object given)."""
        return by_name(self.strategy) if isinstance(self.strategy, str) else self.strategy

    def replace(self, **changes: object) -> Config:
        """A copy with ``changes`` (field names as keywords); unknown names are a UsageError."""
        unknown = sorted(set(changes) - {f.name for f in dataclasses.fields(self)})
        if unknown:
            raise UsageError(
                f"unknown Config field(s) {', '.join(unknown)}; known: {', '.join(FIELDS)}"
            )
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]

    def describe(self) -> str:
        """``--schedules 200 --strategy portfolio --seed 0``: the run's budget as flags."""
        return f"--schedules {self.schedules} --strategy {self.strategy_name} --seed {self.seed}"


class ConfigChanges(TypedDict, total=False):
    """The keywords ``explore`` and ``replay`` accept: any ``Config`` field."""

    schedules: int
    strategy: str | Strategy
    seed: int
    max_steps: int
    stuck_after: float
    shrink: bool
    shrink_runs: int
    shrink_seconds: float | None
    check_determinism: bool
    lock_monitor: bool


FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Config))


def configured(config: Config | None, changes: ConfigChanges) -> Config:
    """``config`` (or the defaults) with the keyword ``changes`` applied."""
    base = config if config is not None else Config()
    if not isinstance(base, Config):
        raise UsageError(
            f"config must be an interlace.Config, got {type(base).__name__}; "
            "pass keywords (schedules=..., strategy=...) or Config(...)"
        )
    return base.replace(**changes) if changes else base


def _at_least(name: str, value: object, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise UsageError(f"{name} must be an integer of at least {minimum}, got {value!r}")


__all__ = ["FIELDS", "STRATEGY_NAMES", "Config", "ConfigChanges", "configured"]
