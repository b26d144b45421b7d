"""Deterministic ids per simulated request: the ``uuid4`` a token can replay.

An id drawn from ``uuid4`` differs in every run, so an invariant message that
names one, or code that branches on one, makes a replay diverge. Inside a
world, ids come from a ``RequestIds`` instead: request ``n``'s ``k``-th id is
``UUID(int=n << 64 | k)``, where ``n`` is the request's number in its
schedule (1, 2, ... in arrival order) and ids drawn outside any request are
request 0's. Two ways to hand them to the code under test:

- an id factory the app takes (``ChatService(new_id=world.ids.new_id)``);
- the hook for apps that call ``uuid4`` themselves: ``replacing(...)`` puts
  ``ids.uuid4`` in place of module attributes while the world is open
  (``World.factory(replace_uuid4=("uuid.uuid4", "shop.models.uuid4"))``).
  ``"uuid.uuid4"`` covers code that calls ``uuid.uuid4()``; a module that did
  ``from uuid import uuid4`` holds its own reference: name it too. Outside a
  simulated request ``ids.uuid4`` is the real ``uuid.uuid4``.

>>> ids = RequestIds()
>>> with ids.drawing_for(2):
...     ids.new_id(), ids.new_id()
(UUID('00000000-0000-0002-0000-000000000001'), UUID('00000000-0000-0002-0000-000000000002'))
>>> ids.first_of(2)
UUID('00000000-0000-0002-0000-000000000001')
"""

from __future__ import annotations

import contextlib
import importlib
import uuid
from collections.abc import Iterator
from contextvars import ContextVar

_REQUEST_NUMBER: ContextVar[int] = ContextVar("interlace_testing_request_number", default=0)
_real_uuid4 = uuid.uuid4


class RequestIds:
    """Deterministic UUIDs, attributed to the simulated request whose task drew them."""

    def __init__(self) -> None:
        self._drawn: dict[int, int] = {}

    def new_id(self) -> uuid.UUID:
        """The next id of the current request: ``UUID(int=number << 64 | k)``."""
        number = _REQUEST_NUMBER.get()
        count = self._drawn.get(number, 0) + 1
        self._drawn[number] = count
        return uuid.UUID(int=(number << 64) | count)

    def uuid4(self) -> uuid.UUID:
        """``new_id()`` inside a simulated request, the real ``uuid.uuid4()`` elsewhere."""
        if _REQUEST_NUMBER.get() == 0:
            return _real_uuid4()
        return self.new_id()

    def first_of(self, number: int) -> uuid.UUID | None:
        """The first id request ``number`` drew, if it drew any."""
        return uuid.UUID(int=(number << 64) | 1) if self._drawn.get(number) else None

    def drawn_by(self, number: int) -> int:
        """How many ids request ``number`` drew."""
        return self._drawn.get(number, 0)

    def reset(self) -> None:
        """Forget every drawn id (the world's reset does this before each schedule)."""
        self._drawn.clear()

    @contextlib.contextmanager
    def drawing_for(self, number: int) -> Iterator[None]:
        """Draw ids as request ``number`` inside the block (``Process.call`` sets it itself)."""
        token = _REQUEST_NUMBER.set(number)
        try:
            yield
        finally:
            _REQUEST_NUMBER.reset(token)

    @contextlib.contextmanager
    def replacing(self, *targets: str) -> Iterator[None]:
        """Put ``self.uuid4`` in place of each ``"module.attribute"`` inside the block."""
        saved: list[tuple[object, str, object]] = []
        try:
            for target in targets:
                module_name, _, attribute = target.rpartition(".")
                if not module_name:
                    raise ValueError(f"{target!r} is not 'module.attribute' (e.g. 'uuid.uuid4')")
                module = importlib.import_module(module_name)
                saved.append((module, attribute, getattr(module, attribute)))
                setattr(module, attribute, self.uuid4)
            yield
        finally:
            for owner, name, original in reversed(saved):
                setattr(owner, name, original)


def enter_request(number: int) -> None:
    """Make ``number`` the current request of the running task's context (ids drawn are its)."""
    _REQUEST_NUMBER.set(number)
