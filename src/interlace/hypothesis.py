"""Hypothesis integration: schedules as generated data, shrunk toward fewer preemptions.

``schedules()`` is a hypothesis strategy of ``Schedule`` values. A schedule is
a short list of small integers, one per scheduling decision that has a
choice: ``0`` makes the choice that adds no preemption (the task that ran
before continues), ``k > 0`` runs the ``k``-th other runnable task. Past the
end of the list every choice is ``0``. Hypothesis shrinks lists toward fewer
and smaller entries, so a failing schedule shrinks toward fewer preemptions
while the workload drawn next to it shrinks toward fewer, simpler requests.

``session()`` keeps one ``ControlledLoop`` and, optionally, one resource (an
engine with a warmed pool) alive across every example of a ``@given`` test,
and resets the resource before each schedule, as ``interlace.explore`` does.
A worked example::

    import asyncio
    from hypothesis import given, settings, strategies as st
    from interlace.hypothesis import Schedule, schedules, session

    async def withdraw(account: dict[str, int], amount: int) -> None:
        current = account["balance"]
        await asyncio.sleep(0)  # another request may run here
        account["balance"] = current - amount

    async def withdrawals(amounts: list[int]) -> None:
        account = {"balance": 100}
        await asyncio.gather(*(withdraw(account, amount) for amount in amounts))
        assert account["balance"] == 100 - sum(amounts), "lost update"

    def test_withdrawals_never_lose_money() -> None:
        with session() as sim:  # session(resource=engine_factory, reset=clear) for a database

            @settings(max_examples=200, deadline=None)
            @given(
                amounts=st.lists(st.integers(1, 100), min_size=1, max_size=4),
                schedule=schedules(),
            )
            def check(amounts: list[int], schedule: Schedule) -> None:
                sim.run(withdrawals, schedule, amounts)  # raises what the schedule raised

            check()

fails, after shrinking, with::

    AssertionError: lost update
    step | main              | T1                | T2
    -----+-------------------+-------------------+------------------
       0 | start withdrawals |                   |
       1 |                   | start withdraw    |
       2 |                   |                   | start withdraw *
       3 |                   |                   | yield in withdraw
       4 |                   | yield in withdraw |
       5 | joined T1, T2     |                   |
    (6 decisions, 1 preemptions; * = preemption)
    Schedule([0, 1]) made 1 preemption(s)
    interlace token: interlace:v1:test_bank:withdrawals:hypothesis:0:eNpjkGUMZ1rKtITxG8NeAA_aA3c
    Failing test case: check(
        amounts=[1, 1],
        schedule=Schedule([0, 1]),
    )

The failing example can be pasted into ``@example(...)``. With a resource,
``sim.run(root, schedule, *args)`` calls ``root(resource, *args)``. When the
root is an ``@interlace.scenario``, ``interlace.replay`` replays the token.
Hypothesis' example database stores the failing example and replays it first
on the next run.

Async ``@given`` test bodies run on a controlled loop with
``on_controlled_loop`` (or ``sim.on_loop``, next to the session's resource)
stacked under ``@given``; inside, ``await run_schedule(root, schedule)`` runs
a schedule on that loop.

This module does not shadow the ``hypothesis`` package: imports are absolute,
so ``from hypothesis import ...`` here and elsewhere is hypothesis itself.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import functools
import inspect
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Iterator, Sequence
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Any, TypeVar

from hypothesis import strategies as st

from interlace._core.errors import TokenError, UsageError
from interlace._core.loop import ControlledLoop
from interlace._core.trace import Token, Trace
from interlace.config import Config
from interlace.engine import ScheduleResult, ScheduleRunner
from interlace.explore import InternalError
from interlace.outcome import Outcome
from interlace.report.table import interleaving_table
from interlace.scenario import Reset, ResourceFactory, Scenario, qualified_name
from interlace.strategies.guided import non_preemptive

if TYPE_CHECKING:
    from interlace._core import Candidate

__all__ = [
    "Schedule",
    "Session",
    "message_texts",
    "on_controlled_loop",
    "run_schedule",
    "schedules",
    "session",
]

_T = TypeVar("_T")
Root = Scenario | Callable[..., Awaitable[object]]

#: the strategy name recorded in the tokens of hypothesis-drawn schedules
STRATEGY_NAME = "hypothesis"


class Schedule:
    """An interlace strategy that follows a list of drawn choices.

    ``choices[i]`` decides the ``i``-th decision at which more than one task
    is runnable (decisions with a single runnable task consume nothing):
    ``0`` is the non-preemptive choice, ``k > 0`` the ``k``-th of the other
    runnable tasks in creation order (wrapping around). Past the end of
    ``choices``, every choice is non-preemptive, so ``Schedule([])`` runs
    each task until it blocks or ends. Trailing zeros are dropped: they
    change nothing.

    >>> Schedule([0, 1, 0])
    Schedule([0, 1])

    After a run, ``trace`` is the trace of that run and ``token`` its replay
    token (both None before the first run).
    """

    def __init__(self, choices: Iterable[int]) -> None:
        values = list(choices)
        if any(value < 0 for value in values):
            raise UsageError(f"schedule choices must be non-negative integers, got {values}")
        while values and values[-1] == 0:
            values.pop()
        self.choices: tuple[int, ...] = tuple(values)
        self.trace: Trace | None = None
        self.token: str | None = None
        # invariant: how many of ``choices`` the running schedule has used
        self._used = 0

    @property
    def name(self) -> str:
        return STRATEGY_NAME

    def begin(self, seed: int) -> bool:
        """Start over from the first choice; the seed is unused (the choices are the data)."""
        self._used = 0
        self.trace = None
        self.token = None
        return True

    def choose(
        self, step: int, runnable: Sequence[Candidate], previous: Candidate | None
    ) -> Candidate:
        if len(runnable) == 1:
            return runnable[0]
        choice = self.choices[self._used] if self._used < len(self.choices) else 0
        self._used += 1
        default = non_preemptive(runnable, previous)
        if choice == 0:
            return default
        others = [candidate for candidate in runnable if candidate.index != default.index]
        return others[(choice - 1) % len(others)]

    def end(self, trace: Trace) -> None:
        self.trace = trace

    def __repr__(self) -> str:
        return f"Schedule({list(self.choices)!r})"


def schedules(*, max_decisions: int = 64, max_choice: int = 3) -> st.SearchStrategy[Schedule]:
    """Hypothesis strategy of ``Schedule`` values; failures shrink toward fewer preemptions.

    ``max_decisions`` bounds how many choices are drawn (later decisions are
    non-preemptive); ``max_choice`` bounds each choice, so with up to
    ``max_choice + 1`` runnable tasks every task can be picked.

    >>> @given(schedule=interlace.hypothesis.schedules())
    ... def test_lost_update(schedule): sim.run(two_withdrawals, schedule)
    """
    if max_decisions < 0 or max_choice < 1:
        raise UsageError(
            f"schedules() needs max_decisions >= 0 and max_choice >= 1, got "
            f"max_decisions={max_decisions}, max_choice={max_choice}"
        )
    choices = st.lists(st.integers(0, max_choice), max_size=max_decisions)
    return choices.map(Schedule)


def message_texts(*, max_size: int = 1000) -> st.SearchStrategy[str]:
    """Message contents a chat-like workload should survive: empty, short, non-ASCII, long.

    Every text is valid Unicode that UTF-8 can encode. Each kind is a branch
    of its own, so every kind turns up within a few examples (plain
    ``st.text()`` rarely draws long text); failures shrink toward the empty
    message.
    """
    if max_size < 2:
        raise UsageError(f"message_texts() needs max_size >= 2, got {max_size}")
    # codec="utf-8": no lone surrogates, which no UTF-8 wire format or database can carry
    any_character = st.characters(codec="utf-8")
    beyond_ascii = st.characters(codec="utf-8", min_codepoint=0x80)  # accents, CJK, emoji
    return st.one_of(
        st.just(""),
        st.text(any_character, max_size=40),
        st.text(beyond_ascii, min_size=1, max_size=40),
        st.text(any_character, min_size=max_size // 2, max_size=max_size),
    )


async def run_schedule(
    root: Root,
    schedule: Schedule,
    *args: Any,
    config: Config | None = None,
) -> Trace:
    """Run ``root(*args)`` once under ``schedule`` on the running ``ControlledLoop``.

    Returns the trace when the schedule passes. Otherwise raises what the
    schedule raised (a failed assertion, a ``Deadlock``, ...), with notes
    holding the interleaving table and the token; ``schedule.trace`` and
    ``schedule.token`` are that run's. A usage or setup error raises
    ``UsageError``, a bug in interlace ``InternalError``. ``config`` bounds
    the schedule (``max_steps``, ``stuck_after``).
    """
    _idle_controlled_loop()
    body, name = _body_and_name(root)
    scenario = Scenario(body=body, name=name)
    async with ScheduleRunner(scenario, config or Config()) as runner:
        return await _run_on(runner, name, schedule, lambda: body(*args))


async def _run_on(
    runner: ScheduleRunner,
    name: str,
    schedule: Schedule,
    root: Callable[[], Awaitable[object]],
) -> Trace:
    """One schedule on ``runner``; what hypothesis should see of it (see ``run_schedule``)."""
    if runner.setup_problem is not None:
        _raise_problem(runner.setup_problem.outcome, runner.setup_problem.describe(), None)
    schedule.begin(0)
    result = await runner.run(schedule, seed=0, root=root)
    token = Token.from_trace(name, schedule.name, 0, result.trace).encode()
    schedule.trace = result.trace
    schedule.token = token
    return _raise_for(result, schedule, token)


def _raise_for(result: ScheduleResult, schedule: Schedule, token: str) -> Trace:
    if result.problem is not None:
        _raise_problem(result.outcome, result.problem.describe(), result.error)
    if result.error is None:
        return result.trace
    error = result.error
    hint = "interleaving_table(trace, full=True)"
    error.add_note(interleaving_table(result.trace, full_hint=hint))
    error.add_note(f"{schedule!r} made {result.trace.preemptions} preemption(s)")
    error.add_note(f"interlace token: {token}")
    raise error


def _raise_problem(outcome: Outcome, message: str, cause: BaseException | None) -> None:
    if outcome is Outcome.INTERNAL_ERROR:
        raise InternalError(message) from cause
    if isinstance(cause, TokenError | UsageError):
        raise cause
    raise UsageError(message) from cause


def _body_and_name(root: Root) -> tuple[Callable[..., Awaitable[object]], str]:
    # a Scenario's body, not its __call__, starts the root task: tokens name the body
    if isinstance(root, Scenario):
        return root.body, root.name
    return root, qualified_name(root)


class Session:
    """A controlled loop and a resource that outlive the examples of a ``@given`` test.

    Make one with ``session()``. ``run`` resets the resource and runs one
    schedule; ``resource`` is the value the resource factory yielded (None
    without a resource). Its schedules run on one engine ``ScheduleRunner``,
    as an exploration's do.
    """

    def __init__(self, config: Config) -> None:
        # invariant: None once closed
        self._runner: asyncio.Runner | None = asyncio.Runner(loop_factory=ControlledLoop)
        self._config = config
        self._stack = AsyncExitStack()
        self._engine: ScheduleRunner | None = None

    @property
    def resource(self) -> Any:
        return None if self._engine is None else self._engine.resource

    def run(self, root: Root, schedule: Schedule, *args: Any) -> Trace:
        """Reset the resource, then run ``root(resource, *args)`` (``root(*args)``
        without a resource) under ``schedule``; see ``run_schedule``."""
        return self._call(self.run_async(root, schedule, *args))

    async def run_async(self, root: Root, schedule: Schedule, *args: Any) -> Trace:
        """``run`` from an async test body on this session's loop (see ``on_loop``)."""
        engine = self._engine
        if engine is None:
            raise UsageError(
                "this interlace hypothesis session has no loop of its own yet: use it inside "
                "its `with session(...)` block"
            )
        body, name = _body_and_name(root)
        bound = (engine.resource, *args) if engine.scenario.resource is not None else args
        return await _run_on(engine, name, schedule, lambda: body(*bound))

    def on_loop(self, test: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
        """Like ``on_controlled_loop``, on this session's loop, next to its resource.

        For example, in a ``with session(resource=..., reset=...) as sim`` block::

            @given(amounts=st.lists(st.integers(1, 100)), schedule=schedules())
            @sim.on_loop
            async def check(amounts: list[int], schedule: Schedule) -> None:
                await sim.run_async(withdraw_all, schedule, amounts)
                async with sim.resource.connect() as connection:
                    ...  # look at the database after the schedule
        """
        return _each_call_on(test, lambda: self)

    def close(self) -> None:
        """Exit the resource and close the loop; later calls raise UsageError."""
        runner, self._runner = self._runner, None
        if runner is None:
            return
        try:
            runner.run(self._stack.aclose())
        finally:
            runner.close()

    def _enter(self, resource: ResourceFactory | None, reset: Reset | None) -> None:
        """Enter the engine (and the resource) on the loop, once, outside any schedule."""

        async def body(*_arguments: Any) -> None:
            return None  # never run: each schedule runs the root given to run()

        scenario = Scenario(body, "interlace.hypothesis:session", resource, reset)

        async def enter() -> ScheduleRunner:
            return await self._stack.enter_async_context(ScheduleRunner(scenario, self._config))

        self._engine = self._call(enter())
        problem = self._engine.setup_problem
        if problem is not None:
            _raise_problem(problem.outcome, problem.describe(), problem.exception)

    def _call(self, coroutine: Coroutine[Any, Any, _T]) -> _T:
        """Run ``coroutine`` to completion on the loop (outside any schedule)."""
        try:
            if self._runner is None:
                raise UsageError(
                    "this interlace hypothesis session is closed: use it inside its "
                    "`with session(...)` block"
                )
            if _loop_is_running():
                raise UsageError(
                    "Session.run is synchronous and was called inside a running event "
                    "loop; from an async test body decorated with @sim.on_loop, await "
                    "sim.run_async(...)"
                )
        except UsageError:
            coroutine.close()  # never started: close it so it is not reported as never awaited
            raise
        return self._runner.run(coroutine)


@contextlib.contextmanager
def session(
    *,
    resource: ResourceFactory | None = None,
    reset: Reset | None = None,
    max_steps: int = 10_000,
    stuck_after: float = 10.0,
) -> Iterator[Session]:
    """A ``Session`` whose loop and resource live for the ``with`` block.

    ``resource`` is a factory of an async context manager (as for
    ``@interlace.scenario``), entered once; ``reset`` receives its value and
    runs before every schedule. ``max_steps`` and ``stuck_after`` bound each
    schedule as in ``interlace.explore``.
    """
    if reset is not None and resource is None:
        raise UsageError(
            "session() has reset= but no resource=: reset receives the resource's value, "
            "so give both"
        )
    opened = Session(Config(max_steps=max_steps, stuck_after=stuck_after))
    try:
        opened._enter(resource, reset)
        yield opened
    finally:
        opened.close()


def on_controlled_loop(
    test: Callable[..., Coroutine[Any, Any, None]],
) -> Callable[..., None]:
    """Run each call of the async ``test`` on one ``ControlledLoop`` kept for that test.

    Stack it under ``@given`` so every example runs on the controlled loop::

        @given(texts=st.lists(message_texts()), schedule=schedules())
        @on_controlled_loop
        async def test_chat(texts: list[str], schedule: Schedule) -> None:
            await run_schedule(post_all, schedule, texts)

    The loop is made at the first call and closed when the process exits, so
    whatever the test keeps on it lives across examples. This is also the
    entry point for a pytest plugin running async ``@given`` tests: wrap
    ``item.obj.hypothesis.inner_test`` with it.
    """
    kept: Session | None = None

    def loop_of_this_test() -> Session:
        nonlocal kept
        if kept is None:
            kept = Session(Config())
            kept._enter(None, None)
            atexit.register(kept.close)
        return kept

    return _each_call_on(test, loop_of_this_test)


def _each_call_on(
    test: Callable[..., Coroutine[Any, Any, None]], session_of: Callable[[], Session]
) -> Callable[..., None]:
    if not inspect.iscoroutinefunction(test):
        raise UsageError(
            f"{qualified_name(test)} is not an async function: on_controlled_loop and "
            "on_loop run `async def` test bodies; call a synchronous body directly"
        )

    @functools.wraps(test)
    def run_on_loop(*args: Any, **kwargs: Any) -> None:
        session_of()._call(test(*args, **kwargs))

    return run_on_loop


def _idle_controlled_loop() -> ControlledLoop:
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        loop = None
    if not isinstance(loop, ControlledLoop):
        running = "no loop" if loop is None else type(loop).__name__
        raise UsageError(
            f"run_schedule needs a running ControlledLoop, but this code runs on {running}; "
            "use `with interlace.hypothesis.session() as sim: sim.run(...)`, or decorate the "
            "async test with @interlace.hypothesis.on_controlled_loop (under @given)"
        )
    if loop.director is not None:
        raise UsageError("run_schedule called from inside a simulation: run one schedule at a time")
    return loop


def _loop_is_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True
