"""Hypothesis finds known races with generated workloads and shrinks them to their minimal form.

Each test runs a ``@given`` test inside a test, catches the final failure and
looks at the last failing example: the one hypothesis reports, shrunk. The
searches are derandomized, so the number of examples they take is stable.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from known_bugs import reset_accounts, sqlite_accounts
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

import interlace
from interlace.hypothesis import Schedule, Session, message_texts, schedules, session

SEARCH = settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@dataclass
class Search:
    """What one ``@given`` search ran: examples, and the failing ones in order."""

    examples: int = 0
    # (example number, workload, schedule) of each failing example; the last is the shrunk one
    failures: list[tuple[int, object, Schedule]] = field(default_factory=list)

    def run(self, workload: object, schedule: Schedule, attempt: Callable[[], object]) -> None:
        self.examples += 1
        try:
            attempt()
        except AssertionError:
            self.failures.append((self.examples, workload, schedule))
            raise

    @property
    def found_at(self) -> int:
        return self.failures[0][0]

    @property
    def shrunk(self) -> tuple[object, Schedule]:
        _, workload, schedule = self.failures[-1]
        return workload, schedule


def preemptions(schedule: Schedule) -> int:
    assert schedule.trace is not None, "the schedule never ran"
    return schedule.trace.preemptions


# ---- pure asyncio ------------------------------------------------------------------


@dataclass
class Account:
    balance: int = 100


async def withdraw(account: Account, amount: int) -> None:
    current = account.balance
    await asyncio.sleep(0)  # another request may run between the read and the write
    account.balance = current - amount


async def withdrawals(amounts: list[int]) -> None:
    account = Account()
    await asyncio.gather(*(withdraw(account, amount) for amount in amounts))
    expected = 100 - sum(amounts)
    assert account.balance == expected, f"lost update: balance {account.balance} != {expected}"


def test_asyncio_lost_update_shrinks_to_two_requests_and_one_preemption() -> None:
    search = Search()
    with session() as sim:

        @SEARCH
        @given(amounts=st.lists(st.integers(1, 100), min_size=1, max_size=4), schedule=schedules())
        def check(amounts: list[int], schedule: Schedule) -> None:
            search.run(amounts, schedule, lambda: sim.run(withdrawals, schedule, amounts))

        with pytest.raises(AssertionError, match="lost update") as failure:
            check()

    amounts, schedule = search.shrunk
    assert amounts == [1, 1]
    assert schedule.choices == (0, 1)
    assert preemptions(schedule) == 1
    assert search.found_at <= 100
    # the reported failure carries the interleaving table and the interlace token
    notes = "\n".join(failure.value.__notes__)
    assert "(6 decisions, 1 preemptions; * = preemption)" in notes
    assert "Schedule([0, 1]) made 1 preemption(s)" in notes
    assert f"interlace token: {schedule.token}" in notes


# ---- SQLAlchemy on aiosqlite ---------------------------------------------------------

#: one entry per time the engine was made
engines_made: list[AsyncEngine] = []


@asynccontextmanager
async def counted_accounts() -> AsyncIterator[AsyncEngine]:
    async with sqlite_accounts() as engine:
        engines_made.append(engine)
        yield engine


async def sql_withdraw(engine: AsyncEngine, amount: int) -> None:
    async with engine.connect() as connection:
        result = await connection.execute(text("SELECT balance FROM accounts WHERE id = 1"))
        balance = int(result.scalar_one())
        await connection.execute(
            text("UPDATE accounts SET balance = :balance WHERE id = 1"),
            {"balance": balance - amount},
        )
        await connection.commit()


async def sql_withdrawals(engine: AsyncEngine, amounts: list[int]) -> None:
    await asyncio.gather(*(sql_withdraw(engine, amount) for amount in amounts))
    async with engine.connect() as connection:
        result = await connection.execute(text("SELECT balance FROM accounts WHERE id = 1"))
        balance = int(result.scalar_one())
    expected = 100 - sum(amounts)
    assert balance == expected, f"lost update: balance {balance} != {expected}"


def test_sqlite_lost_update_shrinks_to_two_requests_and_one_preemption() -> None:
    engines_made.clear()
    search = Search()
    # sqlite_accounts keeps three warm connections: at most three concurrent requests
    with session(resource=counted_accounts, reset=reset_accounts) as sim:

        @SEARCH
        @given(amounts=st.lists(st.integers(1, 100), min_size=1, max_size=3), schedule=schedules())
        def check(amounts: list[int], schedule: Schedule) -> None:
            search.run(amounts, schedule, lambda: sim.run(sql_withdrawals, schedule, amounts))

        with pytest.raises(AssertionError, match="lost update"):
            check()

    amounts, schedule = search.shrunk
    assert amounts == [1, 1]
    assert preemptions(schedule) == 1
    assert schedule.trace is not None
    labels = [decision.label for decision in schedule.trace.decisions]
    assert labels.count("UPDATE accounts") == 2
    assert search.found_at <= 150
    assert len(engines_made) == 1, "the session must make the engine once for all examples"
    assert search.examples > 10


# ---- chat-like workloads: ids and message contents -------------------------------------


MAX_POSTS = 4


@dataclass(frozen=True)
class Post:
    """One request: post ``body`` as message ``message_id`` in ``conversation``."""

    message_id: uuid.UUID
    conversation: uuid.UUID
    body: str


@st.composite
def chat_workloads(draw: st.DrawFn) -> list[Post]:
    """One to four posts with distinct message ids, spread over one or two conversations."""
    conversations = draw(st.lists(st.uuids(), min_size=1, max_size=2, unique=True))
    return draw(
        st.lists(
            st.builds(Post, st.uuids(), st.sampled_from(conversations), message_texts()),
            min_size=1,
            max_size=MAX_POSTS,
            unique_by=lambda post: post.message_id,
        )
    )


@asynccontextmanager
async def chat_database() -> AsyncIterator[AsyncEngine]:
    """A messages table in a throwaway SQLite file; one warm connection per post, plus one."""
    with tempfile.TemporaryDirectory(prefix="interlace-chat-") as directory:
        engine = create_async_engine(
            f"sqlite+aiosqlite:///{os.path.join(directory, 'chat.db')}", pool_size=MAX_POSTS + 1
        )
        async with engine.begin() as connection:
            await connection.execute(
                text(
                    "CREATE TABLE messages (id TEXT PRIMARY KEY, conversation TEXT NOT NULL, "
                    "position INTEGER NOT NULL, body TEXT NOT NULL)"
                )
            )
        await interlace.warm_pool(engine, MAX_POSTS + 1)
        try:
            yield engine
        finally:
            await engine.dispose()


async def clear_messages(engine: AsyncEngine) -> None:
    async with engine.begin() as connection:
        await connection.execute(text("DELETE FROM messages"))


async def post_racy(engine: AsyncEngine, post: Post) -> None:
    """Reads the last position, then inserts after it: two posts can take one position."""
    async with engine.connect() as connection:
        result = await connection.execute(
            text("SELECT coalesce(max(position), 0) FROM messages WHERE conversation = :c"),
            {"c": str(post.conversation)},
        )
        last = int(result.scalar_one())
        await interlace.point("render message")  # the handler does other work in between
        await connection.execute(
            text("INSERT INTO messages VALUES (:id, :c, :position, :body)"),
            {
                "id": str(post.message_id),
                "c": str(post.conversation),
                "position": last + 1,
                "body": post.body,
            },
        )
        await connection.commit()


async def post_atomic(engine: AsyncEngine, post: Post) -> None:
    """Takes the next position inside the INSERT: one statement, one transaction."""
    await interlace.point("render message")
    async with engine.begin() as connection:
        await connection.execute(
            text(
                "INSERT INTO messages SELECT :id, :c, coalesce(max(position), 0) + 1, :body "
                "FROM messages WHERE conversation = :c"
            ),
            {"id": str(post.message_id), "c": str(post.conversation), "body": post.body},
        )


def chat_scenario(
    post: Callable[[AsyncEngine, Post], Awaitable[None]],
) -> Callable[[AsyncEngine, list[Post]], Awaitable[None]]:
    """Run ``posts`` concurrently, then check ids, bodies and positions in storage."""

    async def run_posts(engine: AsyncEngine, posts: list[Post]) -> None:
        await asyncio.gather(*(post(engine, p) for p in posts))
        async with engine.connect() as connection:
            rows = (
                await connection.execute(
                    text("SELECT id, conversation, position, body FROM messages")
                )
            ).all()
        stored = {row.id: row for row in rows}
        assert sorted(stored) == sorted(str(p.message_id) for p in posts), "a message was lost"
        for p in posts:
            assert stored[str(p.message_id)].body == p.body, "a message body changed in storage"
        for conversation in sorted({p.conversation for p in posts}):
            positions = sorted(r.position for r in rows if r.conversation == str(conversation))
            assert positions == list(range(1, len(positions) + 1)), (
                f"positions in a conversation must be 1..n, got {positions}"
            )

    return run_posts


def test_chat_posts_keep_ids_bodies_and_positions_with_the_atomic_insert() -> None:
    seen: list[Post] = []
    with session(resource=chat_database, reset=clear_messages) as sim:

        @settings(SEARCH, max_examples=80)
        @given(posts=chat_workloads(), schedule=schedules())
        def check(posts: list[Post], schedule: Schedule) -> None:
            seen.extend(posts)
            sim.run(chat_scenario(post_atomic), schedule, posts)

        check()

    bodies = [post.body for post in seen]
    # the generated workloads did reach every kind of message content
    assert "" in bodies
    assert any(len(body) >= 500 for body in bodies)
    assert any(any(ord(ch) > 0x7F for ch in body) for body in bodies)
    assert len({post.conversation for post in seen}) > 2


def test_chat_position_race_shrinks_to_two_empty_posts_in_one_conversation() -> None:
    search = Search()
    with session(resource=chat_database, reset=clear_messages) as sim:

        @SEARCH
        @given(posts=chat_workloads(), schedule=schedules())
        def check(posts: list[Post], schedule: Schedule) -> None:
            search.run(posts, schedule, lambda: sim.run(chat_scenario(post_racy), schedule, posts))

        with pytest.raises(AssertionError, match=r"positions in a conversation must be 1\.\.n"):
            check()

    posts, schedule = search.shrunk
    assert isinstance(posts, list)
    assert len(posts) == 2
    assert [post.body for post in posts] == ["", ""]
    assert posts[0].conversation == posts[1].conversation
    assert preemptions(schedule) == 1


def test_message_texts_draw_each_kind() -> None:
    kinds: set[str] = set()

    @settings(max_examples=100, derandomize=True, database=None)
    @given(body=message_texts(max_size=200))
    def check(body: str) -> None:
        body.encode("utf-8")  # storable as UTF-8: no lone surrogates
        if body == "":
            kinds.add("empty")
        elif len(body) >= 100:
            kinds.add("long")
        elif any(ord(ch) > 0x7F for ch in body):
            kinds.add("non-ascii")
        else:
            kinds.add("short")

    check()
    assert kinds == {"empty", "long", "non-ascii", "short"}


def test_a_session_is_closed_after_its_block() -> None:
    with session() as sim:
        pass
    assert isinstance(sim, Session)
    with pytest.raises(interlace.UsageError, match="session is closed"):
        sim.run(withdrawals, Schedule([]), [1])
