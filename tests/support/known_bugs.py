"""Known bugs and their fixes, small enough to read at a glance.

They show what interlace finds and stays silent on: the tests (core/,
strategies/, quality/, hypothesis_integration/) and ``bench/time_to_bug.py``
run them. They are test material, not part of the package: pytest puts
``tests/support`` on ``sys.path`` (``pythonpath`` in pyproject.toml), and the
benchmark adds it itself; their tokens name ``known_bugs:<scenario>``.
Each buggy scenario has a fixed twin:

- ``lost_update`` / ``lost_update_fixed``: read, yield, write back (pure asyncio);
- ``checked_lost_update`` / ``checked_lost_update_fixed``: the same, where one request
  first awaits a check: plain asyncio's round-robin never interleaves the two, so
  running it again and again never fails; a schedule has to choose the race;
- ``lock_order_deadlock`` / ``lock_order_fixed``: two asyncio.Locks in opposite order;
- ``four_inside``: a narrow bug, four tasks of four steps in one particular order;
- ``sqlite_lost_update`` / ``sqlite_lost_update_fixed``: SELECT then UPDATE
  without a version check, through SQLAlchemy on aiosqlite;
- ``raw_sqlite_lost_update`` / ``raw_sqlite_lost_update_fixed``: the same
  through aiosqlite directly, where every driver round-trip is a decision.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import aiosqlite
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from interlace import scenario, warm_pool

# ---- pure asyncio -------------------------------------------------------------


@dataclass
class Account:
    """An in-memory balance shared by concurrent requests."""

    balance: int = 100
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


async def _withdraw(account: Account, amount: int) -> None:
    current = account.balance
    await asyncio.sleep(0)  # another request may run between the read and the write
    account.balance = current - amount


async def _withdraw_locked(account: Account, amount: int) -> None:
    async with account.lock:
        await _withdraw(account, amount)


@scenario
async def lost_update() -> None:
    """Two withdrawals read the same balance; one write overwrites the other."""
    account = Account()
    await asyncio.gather(_withdraw(account, 30), _withdraw(account, 50))
    assert account.balance == 20, f"lost update: balance is {account.balance}, expected 20"


@scenario
async def lost_update_fixed() -> None:
    """The same withdrawals under one asyncio.Lock."""
    account = Account()
    await asyncio.gather(_withdraw_locked(account, 30), _withdraw_locked(account, 50))
    assert account.balance == 20, f"lost update: balance is {account.balance}, expected 20"


async def _check_then_withdraw(account: Account, amount: int) -> None:
    await asyncio.sleep(0)  # e.g. a permission check: one await more before the read
    await _withdraw(account, amount)


async def _check_then_withdraw_locked(account: Account, amount: int) -> None:
    await asyncio.sleep(0)
    await _withdraw_locked(account, amount)


@scenario
async def checked_lost_update() -> None:
    """The lost update when the second request awaits a check first.

    Under asyncio's FIFO ready queue the first request writes while the second
    is still checking, so plain ``gather`` passes every time; the race needs the
    second request to read before the first writes.
    """
    account = Account()
    await asyncio.gather(_withdraw(account, 30), _check_then_withdraw(account, 50))
    assert account.balance == 20, f"lost update: balance is {account.balance}, expected 20"


@scenario
async def checked_lost_update_fixed() -> None:
    """The same requests, each read-and-write under one asyncio.Lock."""
    account = Account()
    await asyncio.gather(_withdraw_locked(account, 30), _check_then_withdraw_locked(account, 50))
    assert account.balance == 20, f"lost update: balance is {account.balance}, expected 20"


async def _transfer(first: asyncio.Lock, second: asyncio.Lock) -> None:
    async with first:
        await asyncio.sleep(0)
        async with second:
            await asyncio.sleep(0)


@scenario
async def lock_order_deadlock() -> None:
    """Two transfers take the same two locks in opposite order."""
    a, b = asyncio.Lock(), asyncio.Lock()
    await asyncio.gather(_transfer(a, b), _transfer(b, a))


@scenario
async def lock_order_fixed() -> None:
    """Both transfers take the locks in one global order."""
    a, b = asyncio.Lock(), asyncio.Lock()
    await asyncio.gather(_transfer(a, b), _transfer(a, b))


@dataclass
class Room:
    """How many workers are inside a section that at most three may share."""

    inside: int = 0
    most: int = 0


async def _visit(room: Room) -> None:
    await asyncio.sleep(0)  # step 1: arrive
    room.inside += 1  # step 2: enter
    room.most = max(room.most, room.inside)
    await asyncio.sleep(0)
    await asyncio.sleep(0)  # step 3: work
    room.inside -= 1  # step 4: leave


@scenario
async def four_inside() -> None:
    """A narrow bug: it needs all four workers to enter before any of them leaves.

    Each worker takes four steps; only schedules that interleave all four
    entries ahead of the first exit break the invariant, so a strategy must
    preempt each worker right after it entered.
    """
    room = Room()
    await asyncio.gather(*(_visit(room) for _ in range(4)))
    assert room.most < 4, f"four workers inside at once (most inside: {room.most})"


# ---- SQLite through SQLAlchemy ---------------------------------------------------

ACTORS = 2


@asynccontextmanager
async def sqlite_accounts() -> AsyncIterator[AsyncEngine]:
    """An accounts table in a throwaway SQLite file, with a warm pool."""
    with tempfile.TemporaryDirectory(prefix="interlace-example-") as directory:
        # sqlite3's default busy timeout (5 s): a writer waits for the lock, which
        # interlace models on the virtual clock (interlace.db.sqlite)
        engine = create_async_engine(
            f"sqlite+aiosqlite:///{os.path.join(directory, 'accounts.db')}",
            pool_size=ACTORS + 1,
        )
        async with engine.begin() as connection:
            await connection.execute(
                text("CREATE TABLE accounts (id INTEGER PRIMARY KEY, balance INTEGER NOT NULL)")
            )
        await warm_pool(engine, ACTORS + 1)
        try:
            yield engine
        finally:
            await engine.dispose()


async def reset_accounts(engine: AsyncEngine) -> None:
    async with engine.begin() as connection:
        await connection.execute(text("DELETE FROM accounts"))
        await connection.execute(text("INSERT INTO accounts (id, balance) VALUES (1, 100)"))


async def _balance(engine: AsyncEngine) -> int:
    async with engine.connect() as connection:
        result = await connection.execute(text("SELECT balance FROM accounts WHERE id = 1"))
        return int(result.scalar_one())


async def _sql_withdraw(engine: AsyncEngine, amount: int) -> None:
    async with engine.connect() as connection:
        result = await connection.execute(text("SELECT balance FROM accounts WHERE id = 1"))
        balance = int(result.scalar_one())
        await connection.execute(
            text("UPDATE accounts SET balance = :balance WHERE id = 1"),
            {"balance": balance - amount},
        )
        await connection.commit()


async def _sql_withdraw_atomic(engine: AsyncEngine, amount: int) -> None:
    async with engine.connect() as connection:
        await connection.execute(
            text("UPDATE accounts SET balance = balance - :amount WHERE id = 1"),
            {"amount": amount},
        )
        await connection.commit()


@scenario(resource=sqlite_accounts, reset=reset_accounts)
async def sqlite_lost_update(engine: AsyncEngine) -> None:
    """SELECT, compute, UPDATE with no version check: a concurrent update is lost."""
    await asyncio.gather(_sql_withdraw(engine, 30), _sql_withdraw(engine, 50))
    balance = await _balance(engine)
    assert balance == 20, f"lost update: balance is {balance}, expected 20"


@scenario(resource=sqlite_accounts, reset=reset_accounts)
async def sqlite_lost_update_fixed(engine: AsyncEngine) -> None:
    """One atomic UPDATE per withdrawal; the second writer waits for the first's COMMIT."""
    await asyncio.gather(_sql_withdraw_atomic(engine, 30), _sql_withdraw_atomic(engine, 50))
    balance = await _balance(engine)
    assert balance == 20, f"lost update: balance is {balance}, expected 20"


# ---- SQLite through aiosqlite directly ---------------------------------------------


@dataclass
class RawDatabase:
    """A SQLite file and one open aiosqlite connection per actor."""

    path: str
    connections: list[aiosqlite.Connection]


@asynccontextmanager
async def raw_sqlite_accounts() -> AsyncIterator[RawDatabase]:
    with tempfile.TemporaryDirectory(prefix="interlace-example-") as directory:
        path = os.path.join(directory, "accounts.db")
        # isolation_level=None: autocommit, each statement is its own transaction.
        # timeout=0: interlace models busy waits only for SQLAlchemy engines; a raw
        # connection's busy wait would run in aiosqlite's thread and stall the schedule
        connections = [
            await aiosqlite.connect(path, timeout=0, isolation_level=None)
            for _ in range(ACTORS + 1)
        ]
        await connections[0].execute(
            "CREATE TABLE accounts (id INTEGER PRIMARY KEY, balance INTEGER NOT NULL)"
        )
        try:
            yield RawDatabase(path, connections)
        finally:
            for connection in connections:
                await connection.close()


async def reset_raw_accounts(database: RawDatabase) -> None:
    connection = database.connections[-1]
    await connection.execute("DELETE FROM accounts")
    await connection.execute("INSERT INTO accounts (id, balance) VALUES (1, 100)")


async def _raw_withdraw(connection: aiosqlite.Connection, amount: int) -> None:
    # execute_fetchall finishes the statement in one round-trip: an open cursor would
    # keep SQLite's read lock and make the other writer fail with "database is locked"
    rows = list(await connection.execute_fetchall("SELECT balance FROM accounts WHERE id = 1"))
    await connection.execute("UPDATE accounts SET balance = ? WHERE id = 1", (rows[0][0] - amount,))


async def _raw_withdraw_atomic(connection: aiosqlite.Connection, amount: int) -> None:
    await connection.execute("UPDATE accounts SET balance = balance - ? WHERE id = 1", (amount,))


async def _raw_balance(database: RawDatabase) -> int:
    connection = database.connections[-1]
    rows = list(await connection.execute_fetchall("SELECT balance FROM accounts WHERE id = 1"))
    return int(rows[0][0])


@scenario(resource=raw_sqlite_accounts, reset=reset_raw_accounts)
async def raw_sqlite_lost_update(database: RawDatabase) -> None:
    """The lost update through aiosqlite directly: each round-trip is a decision."""
    first, second = database.connections[0], database.connections[1]
    await asyncio.gather(_raw_withdraw(first, 30), _raw_withdraw(second, 50))
    balance = await _raw_balance(database)
    assert balance == 20, f"lost update: balance is {balance}, expected 20"


@scenario(resource=raw_sqlite_accounts, reset=reset_raw_accounts)
async def raw_sqlite_lost_update_fixed(database: RawDatabase) -> None:
    first, second = database.connections[0], database.connections[1]
    await asyncio.gather(_raw_withdraw_atomic(first, 30), _raw_withdraw_atomic(second, 50))
    balance = await _raw_balance(database)
    assert balance == 20, f"lost update: balance is {balance}, expected 20"


#: (scenario, whether interlace must find a failure in it), for runs over every known bug
CATALOGUE = (
    (lost_update, True),
    (lost_update_fixed, False),
    (checked_lost_update, True),
    (checked_lost_update_fixed, False),
    (lock_order_deadlock, True),
    (lock_order_fixed, False),
    (four_inside, True),
    (sqlite_lost_update, True),
    (sqlite_lost_update_fixed, False),
    (raw_sqlite_lost_update, True),
    (raw_sqlite_lost_update_fixed, False),
)
