"""interlace's extension points: the controlled loop, the director, strategies, traces.

``interlace`` holds the verbs most users need (``scenario``, ``explore``,
``replay``, ``point``, ...). This module is for code that extends interlace
itself, as ``trio.lowlevel`` is for trio: teaching the scheduler about a new
kind of outside wait, writing a strategy, running one schedule by hand, or
reading a trace. What is here is documented and kept stable; what is not
(``interlace._core``) may change in any release.

**Explaining outside waits** (``OutsideWaits``, ``Wait``, ``attach_outside_waits``,
``detach_outside_waits``, ``outside_waits_of``). The director makes a decision
only when no simulated I/O is in flight. A task that waits on something
outside the simulation (a database driver's socket, a thread) is waited for
in real time, and reported as stuck after ``Limits.stuck_after`` seconds. Some
such waits never end by themselves: a statement blocked on a lock that a
parked task holds. An explainer proves them blocked on what settled tasks
hold; the director then counts them as settled (a ``Wait`` of kind
``dblock``) and goes on deciding. interlace attaches its own for PostgreSQL's
lock waits (``interlace.db.lock_watch``) once the scenario's resource is
entered, unless the resource attached another one. One explainer is attached
per loop, and every schedule on that loop consults it::

    import asyncio
    from contextlib import asynccontextmanager
    from dataclasses import replace

    from interlace.lowlevel import Wait, attach_outside_waits, detach_outside_waits


    class BrokerWaits:
        '''Tasks waiting for a message broker's lease held by another task are blocked.'''

        best_effort = None  # replays are exact: the broker decides nothing by itself

        def __init__(self, broker: Broker) -> None:
            self.broker = broker
            self.blocked: dict[asyncio.Task, str] = {}

        def begin(self, name_of, order_of) -> None:
            self.name_of = name_of
            self.blocked.clear()

        def explain(self, task: asyncio.Task, wait: Wait) -> Wait:
            holder = self.blocked.get(task)
            return wait if holder is None else replace(wait, kind="dblock", what=holder)

        async def examine(self, waiting, settled, still_waiting) -> None:
            for task in waiting:
                holder = await self.broker.lease_holder_of(task)  # ask the broker
                if holder in settled and still_waiting(task):
                    self.blocked[task] = f"the lease held by {self.name_of(holder)}"

        def after_decision(self, task: asyncio.Task) -> None:
            self.blocked.clear()  # the released task may give a lease back

        async def release_granted(self) -> bool:
            return False  # nothing frozen

        async def break_cycle(self) -> bool:
            return False  # leases cannot form cycles

        def end(self) -> None:
            self.blocked.clear()


    @asynccontextmanager
    async def broker_world():
        broker = await Broker.connect()
        loop = asyncio.get_running_loop()
        explainer = BrokerWaits(broker)
        attach_outside_waits(loop, explainer)
        try:
            yield broker
        finally:
            detach_outside_waits(loop, explainer)

The protocol's docstring says when the director calls each method and what
each may rely on.

**The controlled loop** (``ControlledLoop``). An asyncio selector loop on
which a director controls the steps of simulated tasks. Outside a schedule it
behaves like any loop; run code on it with
``asyncio.Runner(loop_factory=ControlledLoop)``.

**Running a schedule** (``Director``, ``Limits``, ``ScheduleOutcome``). A
``Director`` runs one schedule on a ``ControlledLoop``: it adopts the root
task and every task it creates, parks their steps at decision points, asks a
strategy which one runs, and returns a ``ScheduleOutcome`` (the trace, the
root's result, the failure if any) instead of raising. ``interlace.explore``
runs many of these, with resources, resets and shrinking around them; by
hand::

    import asyncio
    from interlace.lowlevel import ControlledLoop, Director, Limits
    from interlace.strategies import RandomStrategy

    async def one_schedule(seed: int) -> None:
        strategy = RandomStrategy()
        strategy.begin(seed)
        loop = asyncio.get_running_loop()
        outcome = await Director(loop, strategy, Limits(max_steps=1_000)).run(two_withdrawals)
        print(outcome.error, [(d.task, d.label) for d in outcome.trace.decisions])

    with asyncio.Runner(loop_factory=ControlledLoop) as runner:
        runner.run(one_schedule(7))

**Strategies** (``Strategy``, ``Candidate``). A strategy hears that a
schedule begins (with its seed), picks one ``Candidate`` among the runnable
tasks at every step, and hears that the schedule ended. All its randomness
must come from the seed. ``interlace.strategies`` holds interlace's own; pass
yours to ``interlace.explore(..., strategy=...)``.

**Traces and tokens** (``Trace``, ``Decision``, ``Token``). A ``Trace`` is the
list of a schedule's ``Decision``s: at each step the runnable tasks, the one
that ran, and the label of the point it ran from. A ``Token`` is a trace
reduced to one printable, versioned line that replays it; ``Token.decode``
reads one, ``Token.from_trace(...).encode()`` makes one. A trace also carries
display metadata, which no token holds: ``display_names`` (structural name ->
the name reports show), ``internal_tasks`` (the ORM's and drivers' own tasks),
``invariant_tasks`` and ``marks`` (where the final invariant checks began).

**Naming tasks in reports** (``label_task``). A world helper that runs a
request in a task names it, so the interleaving table heads its column with
the request instead of ``T3``; a no-op outside a simulation::

    async def post(self, path: str, body: dict) -> Response:
        label_task(f"{self.name} POST {path}")   # the column reads "web-1 POST /chat"
        ...

Without a label, a task shows its nearest labelled ancestor's name, else the
app's own task name (``asyncio.create_task(..., name="flush")``).
"""

from __future__ import annotations

from interlace._core import (
    Candidate,
    ControlledLoop,
    Decision,
    Director,
    Limits,
    OutsideWaits,
    ScheduleOutcome,
    Strategy,
    Token,
    Trace,
    Wait,
    WaitKind,
    attach_outside_waits,
    detach_outside_waits,
    label_task,
    outside_waits_of,
)

__all__ = [
    "Candidate",
    "ControlledLoop",
    "Decision",
    "Director",
    "Limits",
    "OutsideWaits",
    "ScheduleOutcome",
    "Strategy",
    "Token",
    "Trace",
    "Wait",
    "WaitKind",
    "attach_outside_waits",
    "detach_outside_waits",
    "label_task",
    "outside_waits_of",
]
