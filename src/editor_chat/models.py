"""The `tool_sessions` table: one row of per-tool state for each (tool, user, context).

The editor chat keeps its whole thread in `state["messages"]`, so the
message identity fields of PR-0009 need no migration: they are new keys in
JSON objects that older code ignores.
"""

from __future__ import annotations

# SQLAlchemy resolves the `Mapped[...]` annotations at runtime: these imports must stay.
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, CheckConstraint, DateTime, String, UniqueConstraint, func, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# PostgreSQL gets JSONB (binary, indexable); every other dialect plain JSON.
STATE_JSON = JSON().with_variant(JSONB(), "postgresql")

# The unique triple that get-or-create relies on (`ON CONFLICT` names these columns).
SESSION_KEY_COLUMNS = ("tool_id", "user_id", "context")


class Base(DeclarativeBase):
    """Declarative base of the editor chat's tables."""


class ToolSession(Base):
    """A tool's state for one user in one context, with an optimistic-concurrency counter."""

    __tablename__ = "tool_sessions"
    __table_args__ = (
        UniqueConstraint(*SESSION_KEY_COLUMNS, name="uq_tool_sessions_tool_user_context"),
        CheckConstraint("state_rev >= 0", name="ck_tool_sessions_state_rev_nonnegative"),
    )

    # Ids come from the application (an injectable generator), never from the database.
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    tool_id: Mapped[uuid.UUID] = mapped_column(nullable=False)
    user_id: Mapped[uuid.UUID] = mapped_column(nullable=False, index=True)
    context: Mapped[str] = mapped_column(String(64), nullable=False)
    state: Mapped[dict[str, Any]] = mapped_column(
        STATE_JSON, nullable=False, server_default=text("'{}'")
    )
    # invariant: incremented by exactly one on every successful update, never negative.
    state_rev: Mapped[int] = mapped_column(nullable=False, server_default=text("0"))
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )
