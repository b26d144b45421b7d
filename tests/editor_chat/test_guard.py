from __future__ import annotations

import uuid

import pytest

from editor_chat import CHAT_BUSY_MESSAGE, ChatBusy, SingleFlightGuard

USER = uuid.UUID(int=1)
TOOL = uuid.UUID(int=2)
OTHER_TOOL = uuid.UUID(int=3)


def test_second_hold_of_the_same_pair_is_refused_with_the_swedish_text() -> None:
    guard = SingleFlightGuard()
    with guard.hold(USER, TOOL):
        assert guard.is_busy(USER, TOOL)
        with pytest.raises(ChatBusy) as busy, guard.hold(USER, TOOL):
            pass
    assert (
        str(busy.value)
        == CHAT_BUSY_MESSAGE
        == "En chatförfrågan pågår redan. Försök igen om en stund."
    )
    assert (busy.value.user_id, busy.value.tool_id) == (USER, TOOL)
    assert not guard.is_busy(USER, TOOL)


def test_other_pairs_and_other_guards_are_independent() -> None:
    guard = SingleFlightGuard()
    second_process = SingleFlightGuard()  # best effort: each process has its own guard
    with (
        guard.hold(USER, TOOL),
        guard.hold(USER, OTHER_TOOL),
        guard.hold(TOOL, USER),
        second_process.hold(USER, TOOL),
    ):
        assert guard.is_busy(USER, OTHER_TOOL)


def test_released_when_the_block_raises() -> None:
    guard = SingleFlightGuard()
    with pytest.raises(RuntimeError), guard.hold(USER, TOOL):
        raise RuntimeError("boom")
    assert not guard.is_busy(USER, TOOL)
    with guard.hold(USER, TOOL):
        pass
