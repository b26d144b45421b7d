"""Exit statuses of the ``interlace`` command, and the error for input it cannot work with."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from interlace.db.provider import PostgresUnavailable
from interlace.db.supply import DatabaseKind, DatabaseSupply, one_line, open_supply

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERNAL = 3


class BadInput(Exception):
    """Input the command cannot work with; the message is the one line to print."""


@contextlib.contextmanager
def database_supply(kind: DatabaseKind) -> Iterator[DatabaseSupply]:
    """``open_supply``, where failing to get a database is bad input (one line, exit 2)."""
    with contextlib.ExitStack() as stack:
        try:
            supply = stack.enter_context(open_supply(kind))
        except PostgresUnavailable as error:
            raise BadInput(one_line(error)) from None
        except ValueError as error:  # INTERLACE_POSTGRES names no source
            raise BadInput(str(error)) from None
        yield supply
