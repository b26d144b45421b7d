"""The unit of work: one transaction, committed or rolled back as a whole.

The chat handler opens a short unit of work for each write (the user message,
then the assistant message) and never keeps one open while the LLM streams.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from editor_chat.repository import ToolSessionRepository

if TYPE_CHECKING:
    from types import TracebackType

    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

RepositoryFactory = Callable[["AsyncSession"], ToolSessionRepository]
"""Builds the repository for a unit of work's session (tests wrap it to inject races)."""


class UnitOfWork:
    """A transaction around a `ToolSessionRepository`.

    Leaving the block normally commits; leaving it with an exception (a
    conflict, a cancellation) rolls back. Either way the session is closed.

    >>> async with UnitOfWork(session_factory) as uow:
    ...     snapshot = await uow.sessions.get_or_create(key)
    """

    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        repository_factory: RepositoryFactory = ToolSessionRepository,
    ) -> None:
        self._session_factory = session_factory
        self._repository_factory = repository_factory
        self._session: AsyncSession | None = None
        self._sessions: ToolSessionRepository | None = None

    @property
    def sessions(self) -> ToolSessionRepository:
        """The repository bound to this unit of work's transaction."""
        if self._sessions is None:
            raise RuntimeError("use the unit of work inside `async with` before reading .sessions")
        return self._sessions

    async def __aenter__(self) -> UnitOfWork:
        if self._session is not None:
            raise RuntimeError("a unit of work is single-use; create a new one per transaction")
        self._session = self._session_factory()
        self._sessions = self._repository_factory(self._session)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        session = self._session
        assert session is not None, "__aexit__ without __aenter__"
        self._sessions = None
        try:
            if exc_type is None:
                await session.commit()
            else:
                await session.rollback()
        finally:
            await session.close()
