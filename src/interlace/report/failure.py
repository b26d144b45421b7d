"""A failure as a person reads it: what failed, how the tasks interleaved, how to replay it.

    InvariantViolation: final invariant violated: every message_id is unique
      T2's question (position 3) shares its message_id with 1 other message(s) ...

    step | main            | T1                   | T2
    -----+-----------------+----------------------+---------------------
       0 | start scenario  |                      |
       1 |                 | start Process.send   |
       ...
    (82 decisions, 1 preemptions; * = preemption)

    token: interlace:v1:...
    replay: interlace replay 'interlace:v1:...'
    replay with pytest: pytest 'tests/test_chat.py::test_identical' --interlace-replay '...'

An error that is not an invariant (an exception the application raised) also
shows where it was raised.
"""

from __future__ import annotations

import shlex
import traceback
from collections.abc import Sequence

from interlace.outcome import Failure
from interlace.report.table import interleaving_table

_TRACEBACK_FRAMES = 12


def failure_report(failure: Failure, commands: Sequence[tuple[str, str]]) -> str:
    """``failure`` with its table, its token and the ``(label, command)`` lines that replay it."""
    lines = [failure.headline()]
    if failure.kind == "error":
        lines += ["", "raised at:", *_where(failure.exception)]
    lines += ["", interleaving_table(failure.trace)]
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


def _where(error: BaseException) -> list[str]:
    frames = traceback.extract_tb(error.__traceback__)[-_TRACEBACK_FRAMES:]
    return [line.rstrip() for entry in traceback.format_list(frames) for line in entry.splitlines()]
