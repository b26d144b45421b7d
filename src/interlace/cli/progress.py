"""How far a long exploration is, shown while ``interlace run`` works."""

from __future__ import annotations

import time
from typing import TextIO

from interlace.outcome import ScheduleRecord


class Progress:
    """Redrawn in place on a terminal, else a line now and then.

    Wall-clock time here only paces the display; it never reaches a decision.
    """

    def __init__(self, name: str, total: int, out: TextIO, *, every: float = 10.0) -> None:
        self.name = name
        self.total = total
        self.out = out
        self.interactive = out.isatty()
        self.every = 0.2 if self.interactive else every
        self.started = time.monotonic()
        self.last = self.started
        self.shown = False

    def update(self, record: ScheduleRecord) -> None:
        now = time.monotonic()
        if now - self.last < self.every:
            return
        self.last = now
        line = (
            f"  {self.name}: {record.index + 1}/{self.total} schedules ({now - self.started:.0f} s)"
        )
        if self.interactive:
            self.out.write("\r" + line + "\x1b[K")
        else:
            self.out.write(line + "\n")
        self.out.flush()
        self.shown = True

    def clear(self) -> None:
        if self.interactive and self.shown:
            self.out.write("\r\x1b[K")
            self.out.flush()
