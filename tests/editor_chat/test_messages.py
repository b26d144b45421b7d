from __future__ import annotations

import uuid

import pytest

from editor_chat.messages import (
    ChatMessage,
    append_once,
    find_message,
    insert_reply,
    read_thread,
    with_thread,
)

QUESTION_A = ChatMessage(role="user", content="Fråga A", message_id=uuid.UUID(int=1))
QUESTION_B = ChatMessage(role="user", content="Fråga B", message_id=uuid.UUID(int=2))
REPLY_A = ChatMessage(
    role="assistant", content="Svar A", message_id=uuid.UUID(int=11), in_reply_to=uuid.UUID(int=1)
)


def test_message_is_stored_with_uuid_strings() -> None:
    assert REPLY_A.to_json() == {
        "role": "assistant",
        "content": "Svar A",
        "message_id": "00000000-0000-0000-0000-00000000000b",
        "in_reply_to": "00000000-0000-0000-0000-000000000001",
    }
    assert QUESTION_A.to_json()["in_reply_to"] is None


def test_message_round_trips_through_json() -> None:
    orphan = ChatMessage(role="assistant", content="x", message_id=uuid.UUID(int=5), orphaned=True)
    for message in (QUESTION_A, REPLY_A, orphan):
        assert ChatMessage.from_json(message.to_json()) == message
    assert orphan.to_json()["orphaned"] is True


@pytest.mark.parametrize(
    ("broken", "field"),
    [
        ({"role": "system"}, "role"),
        ({"content": 3}, "content"),
        ({"message_id": "not-a-uuid"}, "message_id"),
        ({"message_id": None}, "message_id"),
        ({"in_reply_to": "123"}, "in_reply_to"),
    ],
)
def test_malformed_stored_message_names_the_field(broken: dict[str, object], field: str) -> None:
    stored = {**QUESTION_A.to_json(), **broken}
    with pytest.raises(ValueError, match=field):
        ChatMessage.from_json(stored)


def test_append_once_keeps_everything_and_adds_ours_once() -> None:
    others = [QUESTION_B.to_json(), {"role": "user", "content": "utan id"}]
    merged = append_once(others, QUESTION_A)
    assert merged == [*others, QUESTION_A.to_json()]
    assert append_once(merged, QUESTION_A) == merged


def test_reply_goes_directly_after_its_question_not_last() -> None:
    thread = [QUESTION_A.to_json(), QUESTION_B.to_json()]
    assert insert_reply(thread, REPLY_A) == [
        QUESTION_A.to_json(),
        REPLY_A.to_json(),
        QUESTION_B.to_json(),
    ]


def test_reply_is_not_inserted_twice() -> None:
    thread = insert_reply([QUESTION_A.to_json()], REPLY_A)
    assert insert_reply(thread, REPLY_A) == thread


def test_reply_without_its_question_is_kept_and_marked_orphaned() -> None:
    thread = insert_reply([QUESTION_B.to_json()], REPLY_A)
    assert thread == [QUESTION_B.to_json(), {**REPLY_A.to_json(), "orphaned": True}]


def test_reply_only_matches_a_user_message() -> None:
    # An assistant message with the question's id must not be taken for the question.
    impostor = {**REPLY_A.to_json(), "message_id": str(QUESTION_A.message_id)}
    thread = insert_reply([impostor], REPLY_A)
    assert thread[-1]["orphaned"] is True


def test_thread_helpers_keep_other_state_keys() -> None:
    state = {"draft": "print('hej')", "messages": [QUESTION_A.to_json()]}
    assert read_thread({}) == []
    thread = read_thread(state)
    thread.append(QUESTION_B.to_json())
    assert len(state["messages"]) == 1  # read_thread returned a copy
    assert with_thread(state, thread) == {"draft": "print('hej')", "messages": thread}
    assert find_message(thread, QUESTION_B.message_id) == QUESTION_B.to_json()
    assert find_message(thread, uuid.UUID(int=99)) is None


def test_thread_that_is_not_a_list_is_rejected() -> None:
    with pytest.raises(ValueError, match="must be a list"):
        read_thread({"messages": {"0": "x"}})
