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
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import re
from collections.abc import Iterator
from typing import Any

ROOT_NAME = "main"
_DEFAULT_TASK_NAME = re.compile(r"Task-\d+")


class TaskRegistry:
    """The simulated tasks of one schedule, in creation order, with structural names."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        # invariant: tasks in creation order; index[t] is t's position in it
        self.tasks: list[asyncio.Task[Any]] = []
        self.index: dict[asyncio.Task[Any], int] = {}
        self.names: dict[asyncio.Task[Any], str] = {}
        # display names for reports ("web-1 POST /chat"), by structural name; never part
        # of a label, a decision or a token (see ``label_task``)
        self.display_names: dict[str, str] = {}
        self._used_names: dict[str, int] = {}
        self._children: dict[asyncio.Task[Any], int] = {}
        self._adopting_root = False
        # the name the app passed to the create_task call running now, if any
        self._creating_name: str | None = None

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
        self.index[task] = len(self.tasks)
        self.tasks.append(task)
        self.names[task] = name
        return name

    def label(self, task: asyncio.Task[Any], name: str) -> None:
        """Record ``name`` as the display name of ``task`` (a simulated task) for reports."""
        self.display_names[self.names[task]] = name

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
