"""How far a long exploration is, shown while ``interlace run`` works.

On a terminal (and not in CI), a live display drawn by ``rich``: one bar per
simulation with its schedules, distinct interleavings, rate and time left,
redrawn in place and gone when the simulation ends (its verdict line stays).
Elsewhere (a pipe, a CI log), a plain line every ``every`` seconds::

      sims.chat:race[sqlite]: 42/200 schedules, 37 distinct interleavings, 8.4/s, ~19 s left

Never both: a CI log gets no escape codes, a terminal no extra lines.
Wall-clock time here only paces the display; it never reaches a decision.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, TextIO

from interlace.outcome import ScheduleRecord

if TYPE_CHECKING:
    import rich.progress


def in_ci(environ: Mapping[str, str] | None = None) -> bool:
    """Whether this runs in CI (``CI`` set and not false, as CI systems set it)."""
    value = (os.environ if environ is None else environ).get("CI", "")
    return value.strip().lower() not in ("", "0", "false", "no")


class Progress:
    """The progress of one simulation's exploration (see the module docstring).

    ``live`` forces the display: True for rich's, False for plain lines; by
    default it is live on a terminal outside CI.
    """

    def __init__(
        self,
        name: str,
        total: int,
        out: TextIO,
        *,
        every: float = 10.0,
        live: bool | None = None,
    ) -> None:
        self.name = name
        self.total = total
        self.out = out
        self.live = (out.isatty() and not in_ci()) if live is None else live
        self.every = every
        self.started = time.monotonic()
        self.last = self.started
        self._display: rich.progress.Progress | None = None
        self._task: rich.progress.TaskID | None = None

    def update(self, record: ScheduleRecord) -> None:
        done = record.index + 1
        now = time.monotonic()
        elapsed = now - self.started
        rate = done / elapsed if elapsed > 0 else 0.0
        if self.live:
            self._draw(done, record.interleavings, rate)
            return
        if now - self.last < self.every:
            return
        self.last = now
        left = f", ~{(self.total - done) / rate:.0f} s left" if rate > 0 else ""
        self.out.write(
            f"  {self.name}: {done}/{self.total} schedules, {record.interleavings} distinct "
            f"interleavings, {rate:.1f}/s{left} ({elapsed:.0f} s)\n"
        )
        self.out.flush()

    def clear(self) -> None:
        """End the display (a live one disappears; the caller prints the verdict)."""
        if self._display is not None:
            self._display.stop()
            self._display = None

    def _draw(self, done: int, distinct: int, rate: float) -> None:
        if self._display is None:
            self._start()
        assert self._display is not None and self._task is not None
        self._display.update(self._task, completed=done, distinct=distinct, rate=f"{rate:.1f}/s")

    def _start(self) -> None:
        # rich is imported only for a live display: plain runs and CI never load it
        from rich.console import Console  # noqa: PLC0415
        from rich.progress import (  # noqa: PLC0415
            BarColumn,
            MofNCompleteColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )
        from rich.progress import Progress as RichProgress  # noqa: PLC0415

        self._display = RichProgress(
            # a scenario name is not markup: "[sqlite]" would read as a style
            TextColumn("  {task.description}", markup=False),
            BarColumn(bar_width=24),
            MofNCompleteColumn(),
            TextColumn("schedules,"),
            TextColumn("{task.fields[distinct]} distinct interleavings,"),
            TextColumn("{task.fields[rate]}"),
            TimeRemainingColumn(),
            TextColumn("left,"),
            TimeElapsedColumn(),
            console=Console(file=self.out),
            transient=True,
        )
        self._task = self._display.add_task(self.name, total=self.total, distinct=0, rate="")
        self._display.start()


__all__ = ["Progress", "in_ci"]
