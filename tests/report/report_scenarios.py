"""Simulations the report tests render: a lost update in memory, and one on SQLite.

Do not move lines of this file without regenerating the golden files
(``INTERLACE_UPDATE_GOLDEN=1``): the SARIF golden names the line of the
invariant's ``assert``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
from collections.abc import AsyncIterator
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

import interlace
from interlace import invariants


@invariants.final("the balance counts both withdrawals")
def balance_counts_both(world: dict[str, int]) -> None:
    balance = world["balance"]
    assert balance == 20, f"lost update: balance is {balance}, expected 20"


@contextlib.asynccontextmanager
async def account() -> AsyncIterator[dict[str, int]]:
    yield {"balance": 100}


async def reset_account(world: dict[str, int]) -> None:
    world["balance"] = 100


async def withdraw(world: dict[str, int], amount: int) -> None:
    balance = world["balance"]
    await asyncio.sleep(0)  # another request may run here
    world["balance"] = balance - amount


@interlace.simulation(
    world=account, reset=reset_account, invariants=(balance_counts_both,), databases=()
)
async def two_withdrawals(world: dict[str, int]) -> None:
    """Two withdrawals read the balance, yield, and write it back: a lost update."""
    await asyncio.gather(withdraw(world, 30), withdraw(world, 50))


#: a schedule of two_withdrawals that loses an update (found with seed 0), for the goldens
LOST_UPDATE_TOKEN = (
    "interlace:v1:report_scenarios:two_withdrawals:random:4481891911369680482:"
    "eNpjEGcMZ1rKtITxG8NeAA-YA3E"
)


# ---- on SQLite: each withdrawal reads in one transaction and writes in another ----------

ACTORS = 2


@contextlib.asynccontextmanager
async def sqlite_accounts() -> AsyncIterator[AsyncEngine]:
    with tempfile.TemporaryDirectory(prefix="interlace-report-") as directory:
        path = os.path.join(directory, "accounts.db")
        engine = create_async_engine(f"sqlite+aiosqlite:///{path}", pool_size=ACTORS + 1)
        try:
            async with engine.begin() as connection:
                await connection.execute(
                    text("CREATE TABLE accounts (id INTEGER PRIMARY KEY, balance INTEGER)")
                )
            await interlace.warm_pool(engine, ACTORS + 1)
            yield engine
        finally:
            await engine.dispose()


async def reset_accounts(engine: AsyncEngine) -> None:
    async with engine.begin() as connection:
        await connection.execute(text("DELETE FROM accounts"))
        await connection.execute(text("INSERT INTO accounts VALUES (1, 100)"))


async def sql_withdraw(engine: AsyncEngine, amount: int) -> None:
    async with engine.begin() as connection:
        read = text("SELECT balance FROM accounts WHERE id = 1")
        balance = (await connection.execute(read)).scalar_one()
    async with engine.begin() as connection:
        await connection.execute(
            text("UPDATE accounts SET balance = :balance WHERE id = 1"),
            {"balance": balance - amount},
        )


async def _sql_withdrawals(engine: AsyncEngine) -> None:
    await asyncio.gather(sql_withdraw(engine, 30), sql_withdraw(engine, 50))
    async with engine.connect() as connection:
        read = text("SELECT balance FROM accounts WHERE id = 1")
        balance: Any = (await connection.execute(read)).scalar_one()
    assert balance == 20, f"lost update: balance is {balance}, expected 20"


sql_withdrawals = interlace.scenario(
    _sql_withdrawals, resource=sqlite_accounts, reset=reset_accounts, name="report:sql[sqlite]"
)
