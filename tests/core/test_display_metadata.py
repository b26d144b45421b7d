"""Display metadata on traces: names from label_task and the app, internal tasks, invariant marks.

None of it reaches a token: a trace replays to the same decisions whatever
its tasks are called.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from known_bugs import reset_accounts, sqlite_accounts
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

import interlace
from interlace.invariants import final
from interlace.lowlevel import ControlledLoop, Director, Limits, Token, Trace, label_task
from interlace.outcome import ScheduleRecord
from interlace.scenario import Scenario
from interlace.strategies import RandomStrategy


def _run_by_hand(body: object, seed: int = 3) -> Trace:
    async def one_schedule() -> Trace:
        strategy = RandomStrategy()
        strategy.begin(seed)
        loop = asyncio.get_running_loop()
        assert isinstance(loop, ControlledLoop)
        outcome = await Director(loop, strategy, Limits(max_steps=1_000)).run(body)  # type: ignore[arg-type]
        assert outcome.error is None, outcome.error
        return outcome.trace

    with asyncio.Runner(loop_factory=ControlledLoop) as runner:
        return runner.run(one_schedule())


async def _request(name: str) -> None:
    label_task(name)
    helper = asyncio.create_task(asyncio.sleep(0))  # the request's own helper task
    await asyncio.sleep(0)
    await helper


async def _flush() -> None:
    await asyncio.sleep(0)


async def _requests() -> None:
    flusher = asyncio.create_task(_flush(), name="flusher")  # the app names it
    await asyncio.gather(_request("web-1 POST /chat"), _request("web-2 POST /chat"))
    await flusher


def test_display_names_come_from_label_task_ancestors_and_the_app() -> None:
    trace = _run_by_hand(_requests)
    assert trace.display_names == {
        "T1": "flusher",
        "T2": "web-1 POST /chat",
        "T2.1": "web-1 POST /chat",  # inherited from the request
        "T3": "web-2 POST /chat",
        "T3.1": "web-2 POST /chat",
    }
    assert trace.display_name("main") == "main"
    assert trace.internal_tasks == frozenset() and trace.marks == {}


def test_labels_change_no_decision_and_no_token() -> None:
    naming = {"on": False}

    async def request(name: str) -> None:
        if naming["on"]:
            label_task(name)
        helper = asyncio.create_task(asyncio.sleep(0))
        await asyncio.sleep(0)
        await helper

    async def two_requests() -> None:
        await asyncio.gather(request("a"), request("b"))

    for seed in range(5):
        naming["on"] = False
        plain = _run_by_hand(two_requests, seed)
        naming["on"] = True
        named = _run_by_hand(two_requests, seed)
        assert plain == named and plain.decisions == named.decisions
        assert plain.display_names == {} and named.display_names["T1"] == "a"
        token = Token.from_trace("tests:two_requests", "random", seed, plain).encode()
        assert Token.from_trace("tests:two_requests", "random", seed, named).encode() == token


def test_label_task_is_a_no_op_outside_a_simulation() -> None:
    label_task("nothing to name")  # no loop at all

    async def plain() -> None:
        label_task("nothing to name")

    asyncio.run(plain())


@asynccontextmanager
async def _accounts() -> AsyncIterator[AsyncEngine]:
    async with sqlite_accounts() as engine:
        yield engine


async def _read_in_a_session(engine: AsyncEngine) -> int:
    async with AsyncSession(engine) as session:  # its close runs in a shielded task
        result = await session.execute(text("SELECT balance FROM accounts WHERE id = 1"))
        return int(result.scalar_one())


def test_the_orm_s_own_tasks_and_the_invariant_checks_are_recorded() -> None:
    @final("the balance is readable")
    async def readable(engine: AsyncEngine) -> None:
        assert await _read_in_a_session(engine) >= 0

    async def body(engine: AsyncEngine) -> None:
        await asyncio.gather(_read_in_a_session(engine), _read_in_a_session(engine))

    scenario = Scenario(
        body=body,
        name="tests:sessions",
        resource=_accounts,
        reset=reset_accounts,
        invariants=(readable,),
    )
    records: list[ScheduleRecord] = []
    report = interlace.explore(scenario, schedules=1, seed=0, on_schedule=records.append)
    assert report.passed, report.describe()
    trace = records[0].trace
    started = {d.task: d.label for d in trace.decisions if d.label.startswith("start ")}
    closes = {task for task, label in started.items() if label == "start AsyncSession.close"}
    assert closes and trace.internal_tasks == closes
    begun = trace.marks["invariants"]
    checking = {d.task for d in trace.decisions if d.step >= begun and d.task != "main"}
    assert trace.invariant_tasks == checking  # the invariant's own session close
    assert all(d.task == "main" or d.task in checking for d in trace.decisions[begun:])
