"""The task registry of one schedule: which tasks are simulated, in what order, by what name.

A task is simulated when the director adopts it: the schedule's root task, and
every task a simulated task creates (its children, their children, ...), seen
at its first step. Tasks created by code outside the simulation (a driver's
own tasks, the director itself) are not adopted and run as on any loop.

Names are structural: ``main`` for the root, ``T1``, ``T2`` for its children
in creation order, ``T1.2`` for the second child of ``T1``. They depend on the
program's structure alone, never on asyncio's global ``Task-N`` counter nor on
the app's own task names, so a trace names the same task the same way in
every run, process and Python version, and tokens replay across them.

Display names are separate: what a report shows at the head of a task's
column (``web-1 POST /chat``). A task gets one from ``label_task`` (a world
helper names the request it runs), else from its nearest labelled ancestor
(the request's own helper tasks are part of it), else from the app's own
task name (``create_task(..., name=...)``, ``task.set_name``). They are read
when a trace is made and never reach a token.

The registry also records two facts reports use to fold rows away: which
tasks are framework-internal (their coroutine is the ORM's or a driver's,
e.g. SQLAlchemy closing a connection under ``asyncio.shield``), and which
were created by the final invariant checks (by the root once the engine has
marked them begun, or by such a task).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import re
from collections.abc import Iterator
from typing import Any

from interlace._core.loop import ControlledLoop

ROOT_NAME = "main"
_DEFAULT_TASK_NAME = re.compile(r"Task-\d+")
# tasks whose coroutine is defined here are the framework's own, not the app's
_INTERNAL_MODULES = ("sqlalchemy.", "asyncpg.", "aiosqlite.", "psycopg.")


class TaskRegistry:
    """The simulated tasks of one schedule, in creation order, with structural names."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        # invariant: tasks in creation order; index[t] is t's position in it
        self.tasks: list[asyncio.Task[Any]] = []
        self.index: dict[asyncio.Task[Any], int] = {}
        self.names: dict[asyncio.Task[Any], str] = {}
        self._used_names: dict[str, int] = {}
        self._children: dict[asyncio.Task[Any], int] = {}
        self._adopting_root = False
        # the name the app passed to the create_task call running now, if any
        self._creating_name: str | None = None
        # display metadata (never part of a token): see the module docstring
        self.parents: dict[asyncio.Task[Any], asyncio.Task[Any] | None] = {}
        self._labels: dict[asyncio.Task[Any], str] = {}
        self.internal: set[asyncio.Task[Any]] = set()
        self.checking: set[asyncio.Task[Any]] = set()
        self.invariants_begun = False

    def __contains__(self, task: object) -> bool:
        return task in self.index

    @contextlib.contextmanager
    def adopting_root(self) -> Iterator[None]:
        """Around the root's ``create_task``: the task created inside is ``main``."""
        self._adopting_root = True
        try:
            yield
        finally:
            self._adopting_root = False

    @contextlib.contextmanager
    def creating(self, name: str | None) -> Iterator[None]:
        """Around ``loop.create_task``: the first step seen inside belongs to the new task."""
        outer = self._creating_name
        self._creating_name = name
        try:
            yield
        finally:
            self._creating_name = outer

    def should_adopt(self, task: asyncio.Task[Any]) -> bool:
        """Is this first step of an unknown task that of a task the simulation created?"""
        if self._adopting_root:
            return True
        current = asyncio.current_task(self._loop)
        if current is None or current not in self.index:
            return False
        coro = task.get_coro()
        return inspect.iscoroutine(coro) and inspect.getcoroutinestate(coro) == "CORO_CREATED"

    def adopt(self, task: asyncio.Task[Any]) -> str:
        """Register ``task`` as simulated and return its structural name."""
        # Trace names are structural (main, T1, T1.2), never the app's own task names:
        # those may be set before or after create_task depending on the Python version
        # (TaskGroup on 3.11 renames after), and tokens must replay across versions.
        name = ROOT_NAME if self._adopting_root else self._unique(self._child_name())
        if self._creating_name is None and _DEFAULT_TASK_NAME.fullmatch(task.get_name()):
            task.set_name(name)  # replace asyncio's global Task-N counter in app logs
        parent = None if self._adopting_root else asyncio.current_task(self._loop)
        self.index[task] = len(self.tasks)
        self.tasks.append(task)
        self.names[task] = name
        self.parents[task] = parent
        if _is_internal(task):
            self.internal.add(task)
        checks = self.invariants_begun and (parent is self.tasks[0] or parent in self.checking)
        if parent is not None and checks:
            self.checking.add(task)  # created by the root's invariant checks
        return name

    def label(self, task: asyncio.Task[Any], name: str) -> None:
        """Record ``name`` as the display name of ``task`` (the last label wins)."""
        self._labels[task] = name

    def display_names(self) -> dict[str, str]:
        """Structural name -> display name, for the tasks that have one (module docstring)."""
        shown: dict[str, str] = {}
        for task in self.tasks:
            name = self._display_name(task)
            if name is not None and name != self.names[task]:
                shown[self.names[task]] = name
        return shown

    def _display_name(self, task: asyncio.Task[Any]) -> str | None:
        label = self._labels.get(task)
        if label is not None:
            return label
        ancestor = self.parents.get(task)
        while ancestor is not None and self.parents.get(ancestor) is not None:
            # the root's label is the scenario's, not inherited by the requests
            if ancestor in self._labels:
                return self._labels[ancestor]
            ancestor = self.parents.get(ancestor)
        own = task.get_name()
        if own == self.names[task] or _DEFAULT_TASK_NAME.fullmatch(own):
            return None
        return own

    def live(self) -> list[asyncio.Task[Any]]:
        """The simulated tasks not done yet, in creation order."""
        return [task for task in self.tasks if not task.done()]

    def _child_name(self) -> str:
        parent = asyncio.current_task(self._loop)
        assert parent is not None
        count = self._children.get(parent, 0) + 1
        self._children[parent] = count
        parent_name = self.names[parent]
        return f"T{count}" if parent_name == ROOT_NAME else f"{parent_name}.{count}"

    def _unique(self, name: str) -> str:
        seen = self._used_names.get(name, 0) + 1
        self._used_names[name] = seen
        return name if seen == 1 else f"{name}#{seen}"


def label_task(name: str) -> None:
    """Name the current simulated task in reports (``web-1 POST /chat``); a no-op outside one.

    A world helper calls it at the start of the task that runs a request, so
    the interleaving table heads that task's column with what the request is
    instead of its structural name (``T3``, still shown beneath it). Tasks the
    request creates show it too, unless they are labelled themselves. The name
    is display metadata: it never changes a decision, a label or a token.
    """
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return
    if isinstance(loop, ControlledLoop) and loop.director is not None:
        loop.director.label_task(name)


def _is_internal(task: asyncio.Task[Any]) -> bool:
    frame = getattr(task.get_coro(), "cr_frame", None)
    module = frame.f_globals.get("__name__", "") if frame is not None else ""
    return isinstance(module, str) and module.startswith(_INTERNAL_MODULES)
