"""Hypothesis' example database replays a known failing schedule first.

The searches here are random (a derandomized or seeded search does not use
the database), but the outcome is not: the first example of a fresh search is
the simplest one, which passes, and the first example of the second search is
the failure saved by the first.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.database import DirectoryBasedExampleDatabase

import interlace
from interlace.hypothesis import Schedule, Session, schedules, session


async def withdrawals(amounts: list[int]) -> None:
    account = {"balance": 100}

    async def withdraw(amount: int) -> None:
        current = account["balance"]
        await interlace.point("check limits")
        account["balance"] = current - amount

    await asyncio.gather(*(withdraw(amount) for amount in amounts))
    expected = 100 - sum(amounts)
    assert account["balance"] == expected, f"lost update: {account['balance']} != {expected}"


@dataclass(frozen=True)
class Example:
    requests: int
    schedule: Schedule
    failed: bool


def search(sim: Session, database: DirectoryBasedExampleDatabase) -> list[Example]:
    """Run the @given test once; return its examples in the order hypothesis ran them."""
    examples: list[Example] = []

    @settings(database=database, max_examples=1000, deadline=None)
    @given(amounts=st.lists(st.integers(1, 100), min_size=1, max_size=4), schedule=schedules())
    def check(amounts: list[int], schedule: Schedule) -> None:
        try:
            sim.run(withdrawals, schedule, amounts)
        except AssertionError:
            examples.append(Example(len(amounts), schedule, failed=True))
            raise
        examples.append(Example(len(amounts), schedule, failed=False))

    with pytest.raises(AssertionError, match="lost update"):
        check()
    return examples


def first_failure(examples: list[Example]) -> int:
    """The 1-based number of the first failing example."""
    return next(number for number, e in enumerate(examples, start=1) if e.failed)


def test_the_second_run_fails_on_its_first_example(tmp_path: Path) -> None:
    database = DirectoryBasedExampleDatabase(tmp_path / "examples")
    with session() as sim:
        first = search(sim, database)
        second = search(sim, database)
    assert first_failure(first) > 1, "a fresh search starts from the simplest, passing example"
    assert first_failure(second) == 1, "the saved failure is replayed first"
    replayed, shrunk = second[0], first[-1]
    assert replayed.requests == shrunk.requests == 2
    assert replayed.schedule.choices == shrunk.schedule.choices
