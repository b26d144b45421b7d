"""Reads and writes of `tool_sessions` rows, inside a caller's transaction.

The repository never commits: a unit of work (`editor_chat.unit_of_work`)
owns the transaction. Rows come back as immutable snapshots, so no ORM
identity map can hand out stale state from an earlier read.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects import postgresql, sqlite

from editor_chat.errors import SessionNotFound, StateConflict
from editor_chat.models import SESSION_KEY_COLUMNS, ToolSession

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession
    from sqlalchemy.sql import Executable
    from sqlalchemy.sql.elements import ColumnElement

IdFactory = Callable[[], uuid.UUID]
"""Returns a fresh id; `uuid.uuid4` in production, a counter in simulations."""


@dataclass(frozen=True)
class ToolSessionKey:
    """The unique triple that identifies a tool session row."""

    tool_id: uuid.UUID
    user_id: uuid.UUID
    context: str


@dataclass(frozen=True)
class ToolSessionSnapshot:
    """A tool session row as read (or as written) in one transaction."""

    id: uuid.UUID
    key: ToolSessionKey
    state: Mapping[str, Any]
    state_rev: int


class ToolSessionRepository:
    """`tool_sessions` access for one `AsyncSession` (one transaction).

    `new_id` makes the primary keys of created rows come from the caller, so
    simulations can make them deterministic.
    """

    def __init__(self, session: AsyncSession, *, new_id: IdFactory = uuid.uuid4) -> None:
        self._session = session
        self._new_id = new_id

    async def get_or_create(self, key: ToolSessionKey) -> ToolSessionSnapshot:
        """Return the row for `key`, inserting an empty one first if there is none.

        `INSERT ... ON CONFLICT DO NOTHING` on the unique triple, then a select:
        two requests creating the same row at once both end up reading the one
        that won, instead of one of them failing on the unique constraint.
        """
        values = {
            "id": self._new_id(),
            "tool_id": key.tool_id,
            "user_id": key.user_id,
            "context": key.context,
        }
        await self._session.execute(self._insert_if_absent(values))
        snapshot = await self.get(key)
        if snapshot is None:
            # Only possible if someone deleted the row between our two statements.
            raise SessionNotFound(
                f"tool session {key} vanished right after get-or-create; retry the request"
            )
        return snapshot

    async def get(self, key: ToolSessionKey) -> ToolSessionSnapshot | None:
        """Return the row for `key`, or None if there is none."""
        result = await self._session.execute(
            select(ToolSession.id, ToolSession.state, ToolSession.state_rev).where(_matches(key))
        )
        row = result.one_or_none()
        if row is None:
            return None
        return ToolSessionSnapshot(id=row.id, key=key, state=row.state, state_rev=row.state_rev)

    async def update_state(
        self, key: ToolSessionKey, state: Mapping[str, Any], *, expected_state_rev: int
    ) -> ToolSessionSnapshot:
        """Replace the state if the row is still at `expected_state_rev`; bump the revision.

        Raises `StateConflict` (with the expected and current revisions) when
        the row has moved on, and `SessionNotFound` when there is no row.
        """
        result = await self._session.execute(
            update(ToolSession)
            .where(_matches(key), ToolSession.state_rev == expected_state_rev)
            .values(state=dict(state), state_rev=ToolSession.state_rev + 1, updated_at=func.now())
            .returning(ToolSession.id, ToolSession.state_rev)
            .execution_options(synchronize_session=False)
        )
        row = result.one_or_none()
        if row is not None:
            return ToolSessionSnapshot(id=row.id, key=key, state=state, state_rev=row.state_rev)
        current = await self.get(key)
        if current is None:
            raise SessionNotFound(f"no tool session {key} to update; create it first")
        raise StateConflict(expected_rev=expected_state_rev, current_rev=current.state_rev)

    def _insert_if_absent(self, values: dict[str, Any]) -> Executable:
        # ON CONFLICT is dialect-specific in SQLAlchemy, though both dialects spell it alike.
        conflict_columns = list(SESSION_KEY_COLUMNS)
        dialect = self._session.get_bind().dialect.name
        if dialect == "postgresql":
            return (
                postgresql.insert(ToolSession)
                .values(values)
                .on_conflict_do_nothing(index_elements=conflict_columns)
            )
        if dialect == "sqlite":
            return (
                sqlite.insert(ToolSession)
                .values(values)
                .on_conflict_do_nothing(index_elements=conflict_columns)
            )
        raise RuntimeError(f"editor_chat cannot write to a {dialect!r} database")


def _matches(key: ToolSessionKey) -> ColumnElement[bool]:
    return (
        (ToolSession.tool_id == key.tool_id)
        & (ToolSession.user_id == key.user_id)
        & (ToolSession.context == key.context)
    )
