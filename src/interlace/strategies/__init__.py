"""Scheduling strategies: one module each, behind the small ``Strategy`` protocol."""

from __future__ import annotations

from interlace._core import Candidate, Strategy
from interlace.strategies.dfs import DFSStrategy
from interlace.strategies.guided import GuidedStrategy
from interlace.strategies.pct import PCTStrategy
from interlace.strategies.portfolio import PortfolioStrategy
from interlace.strategies.random import RandomStrategy
from interlace.strategies.replay import ReplayStrategy

__all__ = [
    "Candidate",
    "DFSStrategy",
    "GuidedStrategy",
    "PCTStrategy",
    "PortfolioStrategy",
    "RandomStrategy",
    "ReplayStrategy",
    "Strategy",
    "by_name",
]

NAMES = "random, pct, pct<depth> (e.g. pct2), dfs, dfs<bound> (e.g. dfs3), portfolio"


def by_name(name: str) -> Strategy:
    """The strategy called ``name``: one of ``NAMES``."""
    if name == "random":
        return RandomStrategy()
    if name == "portfolio":
        return PortfolioStrategy()
    for prefix, make in (("pct", _pct), ("dfs", _dfs)):
        if name == prefix:
            return make(None)
        if name.startswith(prefix) and name[len(prefix) :].isdigit():
            return make(int(name[len(prefix) :]))
    raise ValueError(f"unknown strategy {name!r}: choose one of {NAMES}")


def _pct(depth: int | None) -> Strategy:
    return PCTStrategy() if depth is None else PCTStrategy(depth=depth)


def _dfs(bound: int | None) -> Strategy:
    return DFSStrategy() if bound is None else DFSStrategy(max_preemptions=bound)
