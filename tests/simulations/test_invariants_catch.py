"""The chat invariants are not blind: each catches the bug it names in a broken handler.

The handler is the real ``ChatService`` with one part swapped for a broken
one (a guard that never lets go, a persistence that writes a message twice),
explored like any simulation on SQLite.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any
from uuid import UUID

import pytest
from simulations.editor_chat.invariants import (
    CHAT_INVARIANTS,
    busy_only_while_another_in_flight,
    message_ids_unique,
    user_messages_persisted_once,
)
from simulations.editor_chat.world import (
    QUESTION,
    SCRIPT,
    TEACHER,
    ChatWorld,
    chat_world,
    reset_world,
)

import interlace
from editor_chat import (
    SingleFlightGuard,
    ToolSessionKey,
    ToolSessionRepository,
    ToolSessionSnapshot,
)
from interlace import Config, InvariantViolation
from interlace.db.supply import SqliteSupply
from interlace.outcome import Verdict
from interlace.runner import run_simulation

SQLITE = SqliteSupply()


class GuardThatNeverLetsGo(SingleFlightGuard):
    """Forgets to release the pair: every later request for it gets 409."""

    @contextmanager
    def hold(self, user_id: UUID, tool_id: UUID) -> Iterator[None]:
        with super().hold(user_id, tool_id):
            yield
        self._in_flight.add((user_id, tool_id))


class RepositoryThatWritesTwice(ToolSessionRepository):
    """Every update stores its last message a second time, as a careless retry would."""

    async def update_state(
        self, key: ToolSessionKey, state: Mapping[str, Any], *, expected_state_rev: int
    ) -> ToolSessionSnapshot:
        messages = list(state.get("messages", []))
        doubled = {**state, "messages": [*messages, messages[-1]]}
        return await super().update_state(key, doubled, expected_state_rev=expected_state_rev)


@interlace.simulation(world=chat_world(), reset=reset_world, invariants=CHAT_INVARIANTS)
async def sequential_requests_with_a_stuck_guard(world: ChatWorld) -> None:
    web = world.handler("web-1", guard=GuardThatNeverLetsGo())
    await world.run(web.send(TEACHER, SCRIPT, QUESTION))
    await world.run(web.send(TEACHER, SCRIPT, QUESTION))  # the first has ended: no 409 allowed


@interlace.simulation(world=chat_world(), reset=reset_world, invariants=CHAT_INVARIANTS)
async def a_retry_that_duplicates(world: ChatWorld) -> None:
    web = world.handler("web-1", repository=RepositoryThatWritesTwice)
    await world.run(web.send(TEACHER, SCRIPT, QUESTION))


def _violation(simulation: interlace.Simulation) -> InvariantViolation:
    run = run_simulation(simulation, SQLITE, Config(schedules=5))
    assert run.verdict is Verdict.VIOLATION, run.message
    assert run.failure is not None and isinstance(run.failure.exception, InvariantViolation)
    return run.failure.exception


def test_a_409_while_nothing_is_in_flight_is_caught() -> None:
    violation = _violation(sequential_requests_with_a_stuck_guard)
    assert violation.invariants[0] == busy_only_while_another_in_flight.name
    assert violation.violations[0].kind == "always"
    assert "T2 (web-1) got 409 (chat busy) while no other request for the chat of (teacher, " in (
        str(violation)
    )


def test_a_duplicated_message_is_caught_twice() -> None:
    violation = _violation(a_retry_that_duplicates)
    assert set(violation.invariants) >= {user_messages_persisted_once.name, message_ids_unique.name}
    # the user message's update stores it twice, the reply's update a third time
    assert "the message of T1 (web-1) is stored 3 times" in str(violation)
    assert "shares its message_id with 2 other message(s)" in str(violation)


@pytest.mark.parametrize("kind", ["final", "always", "sometimes"])
def test_invariants_name_their_kind_and_reject_misuse(kind: str) -> None:
    declare: Callable[[str], Callable[[Any], interlace.invariants.Invariant]]
    declare = getattr(interlace.invariants, kind)
    with pytest.raises(interlace.UsageError, match="needs a name"):
        declare("  ")
    if kind == "always":
        with pytest.raises(interlace.UsageError, match="always invariant 'x' is async"):

            @declare("x")
            async def check(world: object) -> None: ...
