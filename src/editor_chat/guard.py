"""The best-effort single-flight guard: one streaming chat request per (user, tool).

It lives in one process and protects UX and load, not correctness: two
processes (or two simulated ones) each have their own guard, and the
thread persistence must stay correct when both let a request through.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import TYPE_CHECKING

from editor_chat.errors import ChatBusy

if TYPE_CHECKING:
    from collections.abc import Iterator
    from uuid import UUID


class SingleFlightGuard:
    """The (user, tool) pairs with a chat request in flight in this process.

    Create one per process and share it between that process's requests.

    >>> guard = SingleFlightGuard()
    >>> with guard.hold(user_id, tool_id):
    ...     ...  # a second hold() of the same pair raises ChatBusy here
    """

    def __init__(self) -> None:
        self._in_flight: set[tuple[UUID, UUID]] = set()

    def is_busy(self, user_id: UUID, tool_id: UUID) -> bool:
        """Whether a request for this pair currently holds the guard."""
        return (user_id, tool_id) in self._in_flight

    @contextmanager
    def hold(self, user_id: UUID, tool_id: UUID) -> Iterator[None]:
        """Hold the pair for the block; raise `ChatBusy` if it is already held.

        Released in `finally`: on success, error, cancellation and generator close.
        """
        pair = (user_id, tool_id)
        # No await between the check and the add: asyncio cannot switch tasks here.
        if pair in self._in_flight:
            raise ChatBusy(user_id=user_id, tool_id=tool_id)
        self._in_flight.add(pair)
        try:
            yield
        finally:
            self._in_flight.discard(pair)
