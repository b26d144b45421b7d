"""A failure as a person reads it: what failed, how the tasks interleaved, how to replay it.

    InvariantViolation: final invariant violated: every message_id is unique
      T2's question (position 3) shares its message_id with 1 other message(s) ...

    step | main          | web-1 send           | web-2 send
         |               | T1                   | T2
    -----+---------------+----------------------+---------------------
       1 |               | start Process.send   |
       ...
    (82 decisions, 1 preemptions; * = preemption)
    (6 rows hidden: 1 setup, 5 invariant checks; --full shows them)

    token: interlace:v1:...
    replay: interlace replay 'interlace:v1:...'
    replay with pytest: pytest 'tests/test_chat.py::test_identical' --interlace-replay '...'

An error that is not an invariant (an exception the application raised) also
shows where it was raised: the application's own frame first, then the
library frames below it (``report.frames``).
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from typing import TYPE_CHECKING

from interlace.report.frames import raised_at
from interlace.report.table import interleaving_table

if TYPE_CHECKING:
    from interlace.outcome import Failure


def failure_report(
    failure: Failure,
    commands: Sequence[tuple[str, str]],
    *,
    headline_shown: bool = False,
    full: bool = False,
    width: int | None = None,
    full_hint: str = "--full",
) -> str:
    """``failure`` with its table, its token and the ``(label, command)`` lines that replay it.

    ``headline_shown``: the caller has printed the headline's first line
    already (in its own title); the report starts with the headline's further
    lines, if any, and the caller puts it right after that title.
    ``full``, ``width`` and ``full_hint`` are the table's (``interleaving_table``).
    """
    headline = failure.headline().splitlines()
    lines = headline[1:] if headline_shown else headline
    if failure.kind == "error":
        lines += ["", "raised at:", *raised_at(failure.exception)]
    table = interleaving_table(failure.trace, full=full, width=width, full_hint=full_hint)
    lines += ["", table]
    note = failure.shrink_note()
    if note:
        lines.append(note)
    lines += ["", f"token: {failure.token}"]
    lines += [f"{label}: {command}" for label, command in commands]
    return "\n".join(lines)


def interlace_replay_command(token: str) -> str:
    """``interlace replay '<token>'``: rerun from the project root."""
    return f"interlace replay '{token}'"  # tokens are base64url and colons: no quote inside


def pytest_replay_command(nodeid: str, token: str) -> str:
    """``pytest '<nodeid>' --interlace-replay '<token>'``."""
    return f"pytest {shlex.quote(nodeid)} --interlace-replay '{token}'"
