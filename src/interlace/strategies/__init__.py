"""Scheduling strategies: one module each, behind the small ``Strategy`` protocol."""

from __future__ import annotations

from interlace.strategies.base import Candidate, Strategy
from interlace.strategies.pct import PCTStrategy
from interlace.strategies.random import RandomStrategy
from interlace.strategies.replay import ReplayStrategy

__all__ = ["Candidate", "PCTStrategy", "RandomStrategy", "ReplayStrategy", "Strategy", "by_name"]


def by_name(name: str) -> Strategy:
    """The strategy called ``name`` ("random", "pct", "pct2", "pct3", ...)."""
    if name == "random":
        return RandomStrategy()
    if name == "pct":
        return PCTStrategy()
    if name.startswith("pct") and name[3:].isdigit():
        return PCTStrategy(depth=int(name[3:]))
    raise ValueError(
        f"unknown strategy {name!r}: choose one of random, pct, pct<depth> (e.g. pct2)"
    )
