"""The editor chat's invariants: PR-0009's acceptance criteria, checked after every schedule.

Final invariants read the database after the requests have ended (through
the world's engine, from the root task: every request task has finished by
then, so these reads make no scheduling choice) and compare it with what
each request was told. Always invariants read only the in-memory request
records, before every decision. Sometimes invariants make sure the
schedules exercised what the others are meant to guard.
"""

from __future__ import annotations

from collections import Counter

from editor_chat import CHAT_BUSY_MESSAGE, DeltaEvent, DoneEvent, MetaEvent
from interlace import invariants
from interlace.testing import Request
from simulations.editor_chat.world import ChatWorld, ask, busy_message, reply_saved


@invariants.final("every user message whose request got past the guard is persisted exactly once")
async def user_messages_persisted_once(world: ChatWorld) -> None:
    stored = await world.stored()
    problems = []
    for request in world.requests:
        if request.outcome in ("refused", "running"):
            continue  # the guard turned it away
        chat = stored.get(ask(request).pair)
        messages = chat.messages if chat is not None else []
        question = world.question_id(request)
        if question is None:
            problems.append(
                f"{_who(request)} got past the guard but its message was never saved: "
                f"the request {request.ending()}"
            )
            continue
        copies = sum(
            1 for m in messages if m.get("role") == "user" and m.get("message_id") == str(question)
        )
        if copies != 1:
            problems.append(
                f"the message of {_who(request)} is stored {copies} times in "
                f"{world.describe(ask(request).pair)} (the request {request.ending()})"
            )
    for pair, chat in stored.items():
        for position, message in enumerate(chat.messages):
            message_id = message.get("message_id")
            if (
                message.get("role") == "user"
                and world.owner_of(message_id) is None
                and not world.is_earlier(message_id)
            ):
                problems.append(
                    f"{world.describe(pair)} holds a user message of no request at position "
                    f"{position + 1} (a retry's duplicate?)"
                )
    assert not problems, "\n".join(problems)


@invariants.final("every message_id is unique")
async def message_ids_unique(world: ChatWorld) -> None:
    stored = await world.stored()
    problems = []
    for pair, chat in stored.items():
        counts = Counter(m.get("message_id") for m in chat.messages)
        for position, message in enumerate(chat.messages):
            count = counts[message.get("message_id")]
            if count > 1:
                problems.append(
                    f"{world.name_message(message, position)} shares its message_id with "
                    f"{count - 1} other message(s) in {world.describe(pair)}"
                )
    assert not problems, "\n".join(problems)


@invariants.final(
    "each assistant message's in_reply_to names a persisted user message and stands "
    "directly after it (or is marked orphaned when that message is gone)"
)
async def replies_follow_their_question(world: ChatWorld) -> None:
    stored = await world.stored()
    problems = []
    for pair, chat in stored.items():
        messages = chat.messages
        for position, message in enumerate(messages):
            if message.get("role") != "assistant":
                continue
            reply = world.name_message(message, position)
            question = _position_of_user_message(messages, message.get("in_reply_to"))
            orphaned = message.get("orphaned") is True
            if question is None:
                if not orphaned:
                    problems.append(
                        f"{reply} replies to a message that is not stored, and is not "
                        "marked orphaned"
                    )
            elif orphaned:
                problems.append(f"{reply} is marked orphaned, but its question is stored")
            elif question != position - 1:
                before = world.name_message(messages[position - 1], position - 1)
                problems.append(
                    f"{reply} stands after {before}, not directly after the question it "
                    f"replies to, {world.name_message(messages[question], question)}, "
                    f"in {world.describe(pair)}"
                )
    assert not problems, "\n".join(problems)


@invariants.final("state_rev equals the number of successful updates")
async def state_rev_counts_updates(world: ChatWorld) -> None:
    stored = await world.stored()
    problems = []
    pairs = list(dict.fromkeys([*stored, *(ask(r).pair for r in world.requests)]))
    for pair in pairs:
        chat = stored.get(pair)
        state_rev = chat.state_rev if chat is not None else 0
        updates, counted = world.successful_updates(pair)
        if state_rev != updates:
            problems.append(
                f"{world.describe(pair)} has state_rev {state_rev} after {updates} successful "
                f"updates ({counted})"
            )
    assert not problems, "\n".join(problems)


@invariants.final("each saved reply is the text its request streamed")
async def saved_reply_is_what_streamed(world: ChatWorld) -> None:
    stored = await world.stored()
    problems = []
    for request in world.requests:
        done = request.first(DoneEvent)
        if done is None or done.reason != "stop" or done.assistant_message_id is None:
            continue
        chat = stored.get(ask(request).pair)
        messages = chat.messages if chat is not None else []
        saved = [m for m in messages if m.get("message_id") == str(done.assistant_message_id)]
        streamed = "".join(e.text for e in request.events if isinstance(e, DeltaEvent))
        if not saved:
            problems.append(f"{_who(request)} was told its reply is saved, but it is not stored")
        elif saved[0].get("content") != streamed:
            problems.append(f"the stored reply of {_who(request)} differs from what it streamed")
    assert not problems, "\n".join(problems)


@invariants.always(
    "a 409 carries exactly the Swedish text and occurs only while another request for "
    "the same (user, tool) is in flight in the same process"
)
def busy_only_while_another_in_flight(world: ChatWorld) -> None:
    problems = []
    for request in world.requests:
        message = busy_message(request)
        if message is None:
            continue
        if message != CHAT_BUSY_MESSAGE:
            problems.append(f"{_who(request)} got 409 with {message!r}, not {CHAT_BUSY_MESSAGE!r}")
        if request.status != 409:
            problems.append(f"{_who(request)} was turned away with HTTP {request.status}")
        pair = ask(request).pair
        if not any(ask(other).pair == pair for other in request.in_flight_at_end):
            problems.append(
                f"{_who(request)} got 409 (chat busy) while no other request for "
                f"{world.describe(pair)} was in flight in process {request.process}"
            )
    assert not problems, "\n".join(problems)


@invariants.always("every response is meta, then deltas, then at most one done, then nothing")
def responses_follow_the_protocol(world: ChatWorld) -> None:
    problems = []
    for request in world.requests:
        problem = _protocol_problem(request)
        if problem is not None:
            problems.append(f"{_who(request)}: {problem}")
    assert not problems, "\n".join(problems)


def _protocol_problem(request: Request) -> str | None:
    malformed = ask(request).malformed
    if malformed is not None:
        return f"unreadable response: {malformed}"
    events = request.events
    if not events:
        return None
    if not isinstance(events[0], MetaEvent):
        return f"the first event is {events[0].name}, not meta"
    for position, received in enumerate(events[1:], start=2):
        if isinstance(received, MetaEvent):
            return f"event {position} is a second meta"
        if isinstance(received, DoneEvent) and position != len(events):
            return f"event {position} is done, but {len(events) - position} more follow it"
    return None


# ---- sometimes ----------------------------------------------------------------------


@invariants.sometimes("a reply was saved after a later question had arrived in its chat")
def reply_saved_after_a_later_question(world: ChatWorld) -> bool:
    # The fixed handler then inserts the reply before the end of the thread; the
    # pre-fix one appends it after the other question.
    for replied in world.requests:
        saved_at = replied.step_of(DoneEvent) if reply_saved(replied) else None
        asked_at = replied.step_of(MetaEvent)
        if saved_at is None or asked_at is None:
            continue
        for other in world.requests:
            other_asked = other.step_of(MetaEvent)
            if (
                other is not replied
                and ask(other).pair == ask(replied).pair
                and other_asked is not None
                and asked_at < other_asked < saved_at
            ):
                return True
    return False


@invariants.sometimes(
    "a state_rev conflict sent a request round the retry loop", databases=("postgres",)
)
def conflict_retried(world: ChatWorld) -> bool:
    # On SQLite get-or-create's INSERT takes the write lock first, so writers queue
    # instead of conflicting; only PostgreSQL's row versions produce a conflict.
    return world.ledger.conflicts > 0


@invariants.sometimes("the guard turned a concurrent request away with 409")
def guard_turned_one_away(world: ChatWorld) -> bool:
    return any(r.outcome == "refused" for r in world.requests)


@invariants.sometimes("a request was cancelled while its reply was streaming")
def cancelled_while_streaming(world: ChatWorld) -> bool:
    return any(
        r.outcome == "cancelled" and r.first(MetaEvent) is not None and r.first(DoneEvent) is None
        for r in world.requests
    )


@invariants.sometimes("a provider error ended a stream while another request was in flight")
def provider_error_during_other_request(world: ChatWorld) -> bool:
    for failed in world.requests:
        done = failed.first(DoneEvent)
        errored_at = failed.step_of(DoneEvent)
        if done is None or done.reason != "error" or errored_at is None:
            continue
        if any(other is not failed and other.overlaps(errored_at) for other in world.requests):
            return True
    return False


# ---- sets ---------------------------------------------------------------------------

#: What every editor-chat simulation checks.
CHAT_INVARIANTS = (
    user_messages_persisted_once,
    message_ids_unique,
    replies_follow_their_question,
    state_rev_counts_updates,
    saved_reply_is_what_streamed,
    busy_only_while_another_in_flight,
    responses_follow_the_protocol,
)


def _who(request: Request) -> str:
    return request.label  # T1 (web-1)


def _position_of_user_message(messages: list[dict[str, object]], message_id: object) -> int | None:
    if message_id is None:
        return None
    for position, message in enumerate(messages):
        if message.get("role") == "user" and message.get("message_id") == message_id:
            return position
    return None
