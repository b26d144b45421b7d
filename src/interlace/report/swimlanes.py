"""A failing schedule as swimlanes: an inline SVG, one lane per task, one row per decision.

Lanes are named and ordered as the text table's columns: the task's display
name (the request it runs, ``web-1 POST /chat``) over its structural name
(``T1``); time runs down, one row per decision. Every task has its lane and
every decision its row; the rows the text table folds by default (setup,
framework-internal tasks, invariant checks) are drawn dimmed. Each decision is a box in
its task's lane with its label; a preemption is marked (``*`` and an
accent); each transaction is a bar along its lane from its first statement
to its COMMIT (green), ROLLBACK (orange) or the end of the trace (grey); a
lock wait is a dashed arrow from the waiter to the holder, labelled with the
lock's kind; the failing step is red and the invariant's message stands in a
red row under the last decision. The row where the nearest passing schedule
parts from this one is marked with a dashed rule. The virtual time of each
decision is shown in a column of its own when the trace records it.

Every decision carries its full label (and SQL, when recorded) in
``data-detail``: the page's script shows it on click, the SVG ``<title>`` on
hover.

    >>> svg = swimlanes_svg(Timeline.of(trace), failing_step=29, message="...")
"""

from __future__ import annotations

from collections.abc import Callable
from html import escape

from interlace.report.timeline import Step, Timeline

ROW = 24
_HEADER = 40
_STEP_COLUMN = 44
_TIME_COLUMN = 70
_SPAN_BAR = 6
_CHAR = 7.4  # px per character of the 12 px monospace font, with a margin
_MIN_LANE, _MAX_LANE = 120, 300
_MAX_LABEL = 38


def lane_widths(timeline: Timeline) -> list[int]:
    """Each lane wide enough for its name and its labels (clipped at ``_MAX_LABEL``)."""
    titles = timeline.titles or timeline.lanes
    longest = [
        max(len(title), len(name)) for title, name in zip(titles, timeline.lanes, strict=True)
    ]
    for step in timeline.steps:
        longest[step.lane] = max(longest[step.lane], min(len(step.label) + 2, _MAX_LABEL))
    return [int(min(_MAX_LANE, max(_MIN_LANE, 24 + n * _CHAR))) for n in longest]


def swimlanes_svg(
    timeline: Timeline,
    *,
    failing_step: int | None,
    message: str,
    parting_step: int | None = None,
    ident: str = "lanes",
) -> str:
    """The swimlanes of ``timeline`` (see the module docstring).

    ``ident`` keeps the SVG's ids unique among several on one page.
    """
    widths = lane_widths(timeline)
    gutter = _STEP_COLUMN + (_TIME_COLUMN if timeline.timed else 0)
    lefts = [gutter + sum(widths[:i]) for i in range(len(widths))]
    width = gutter + sum(widths) + 8
    rows = len(timeline.steps) + 1  # and the violation's row
    height = _HEADER + rows * ROW + 8

    def top(step: int) -> int:
        return _HEADER + step * ROW

    parts = [
        f'<svg class="swimlanes" xmlns="http://www.w3.org/2000/svg" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="swimlanes: one lane per task, one row per decision">',
        f'<defs><marker id="arrow-{ident}" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" '
        'class="arrow-head"/></marker></defs>',
    ]
    titles = timeline.titles or timeline.lanes
    for lane, name in enumerate(timeline.lanes):
        middle = f"{lefts[lane] + widths[lane] / 2:.0f}"
        quiet = " lane-quiet" if name in timeline.quiet else ""
        beneath = (
            f'<text class="lane-task" x="{middle}" y="33" text-anchor="middle">'
            f"{escape(name)}</text>"
            if titles[lane] != name
            else ""
        )
        parts.append(
            f'<g class="lane{quiet}" data-task="{escape(name)}" '
            f'data-title="{escape(titles[lane])}">'
            f'<rect class="lane-bg lane-{lane % 2}" x="{lefts[lane]}" y="0" '
            f'width="{widths[lane]}" height="{height}"/>'
            f'<text class="lane-name" x="{middle}" y="17" '
            f'text-anchor="middle">{escape(titles[lane])}</text>{beneath}</g>'
        )
    parts.append('<text class="gutter-head" x="6" y="20">step</text>')
    if timeline.timed:
        parts.append(f'<text class="gutter-head" x="{_STEP_COLUMN + 4}" y="20">time</text>')
    if parting_step is not None:
        y = top(parting_step) + 1
        parts.append(
            f'<g class="parting" data-step="{parting_step}"><line x1="0" y1="{y}" x2="{width}" '
            f'y2="{y}"/><title>the nearest passing schedule parts from this one here '
            f"(step {parting_step})</title></g>"
        )
    for span in timeline.spans:
        x = lefts[span.lane] + 3
        y = top(span.first) + 3
        span_height = (span.last - span.first + 1) * ROW - 6
        ends = (
            "still open at the end" if span.end == "open" else f"to {span.end} at step {span.last}"
        )
        parts.append(
            f'<rect class="span span-{span.end.lower()}" data-task="{escape(span.task)}" '
            f'data-first="{span.first}" data-last="{span.last}" x="{x}" y="{y}" '
            f'width="{_SPAN_BAR}" height="{span_height}" rx="2"><title>{escape(span.task)}: '
            f"transaction from step {span.first} {ends}</title></rect>"
        )
    for step in timeline.steps:
        parts.append(
            _decision(
                step,
                lefts=lefts,
                widths=widths,
                top=top,
                timed=timeline.timed,
                failing_step=failing_step,
            )
        )
    for wait in timeline.waits:
        if wait.waiter not in timeline.lanes or wait.holder not in timeline.lanes:
            continue
        waiter = timeline.lanes.index(wait.waiter)
        holder = timeline.lanes.index(wait.holder)
        # a dashed line down the waiter's lane while it waits, then an arrow to the
        # holder's lane at the step that ended the wait (its COMMIT or ROLLBACK)
        x1 = lefts[waiter] + _SPAN_BAR + 10
        y1 = top(wait.since) + ROW // 2
        y2 = top(wait.until) + ROW // 2
        x2 = lefts[holder] + (widths[holder] - 6 if holder < waiter else _SPAN_BAR + 8)
        how = "inferred from the trace" if wait.inferred else "recorded"
        parts.append(
            f'<g class="lock-wait" data-waiter="{escape(wait.waiter)}" '
            f'data-holder="{escape(wait.holder)}" data-kind="{escape(wait.kind)}">'
            f'<path d="M{x1},{y1} L{x1},{y2}" class="wait-line"/>'
            f'<path d="M{x1},{y2} L{x2},{y2}" class="wait-arrow" marker-end="url(#arrow-{ident})"/>'
            f'<text class="wait-kind" x="{(x1 + x2) / 2:.0f}" y="{y2 - 5}" '
            f'text-anchor="middle">waits for {escape(wait.kind)}</text>'
            f"<title>{escape(wait.waiter)} waits for a {escape(wait.kind)} held by "
            f"{escape(wait.holder)}, from step {wait.since} to step {wait.until} ({how})"
            "</title></g>"
        )
    y = top(len(timeline.steps))
    parts.append(
        f'<g class="violation-row"><rect x="0" y="{y + 2}" width="{width}" '
        f'height="{ROW - 4}"/><text x="8" y="{y + 16}">✗ {escape(_first_line(message))}'
        "</text></g>"
    )
    parts.append("</svg>")
    return "".join(parts)


def _decision(
    step: Step,
    *,
    lefts: list[int],
    widths: list[int],
    top: Callable[[int], int],
    timed: bool,
    failing_step: int | None,
) -> str:
    y = top(step.step)
    x = lefts[step.lane] + _SPAN_BAR + 6
    box_width = widths[step.lane] - _SPAN_BAR - 10
    classes = ["decision", f"kind-{step.kind}"]
    if step.preemption:
        classes.append("preemption")
    if step.step == failing_step:
        classes.append("failing")
    elif step.folded is not None:
        classes.append("folded")
    label = step.label + (" *" if step.preemption else "")
    limit = int((box_width - 8) / _CHAR)
    shown = label if len(label) <= limit else label[: max(limit - 1, 1)] + "…"
    detail = _detail(step)
    gutter = (
        f'<text class="step-number" x="{_STEP_COLUMN - 8}" y="{y + 16}" '
        f'text-anchor="end">{step.step}</text>'
    )
    if timed and step.time is not None:
        gutter += (
            f'<text class="step-time" x="{_STEP_COLUMN + 4}" y="{y + 16}">{step.time:.3f}s</text>'
        )
    return (
        f"{gutter}"
        f'<g class="{" ".join(classes)}" data-step="{step.step}" data-task="{escape(step.task)}" '
        f'data-detail="{escape(detail)}" tabindex="0">'
        f'<rect x="{x}" y="{y + 2}" width="{box_width}" height="{ROW - 4}" rx="3"/>'
        f'<text x="{x + 5}" y="{y + 16}">{escape(shown)}</text>'
        f"<title>{escape(detail)}</title></g>"
    )


def _detail(step: Step) -> str:
    lines = [f"step {step.step}: {step.task} ran from {step.label!r}"]
    if step.folded is not None:
        lines.append(f"({step.folded}: a row the text table folds by default)")
    if step.preemption:
        lines.append("a preemption: the task that ran before could have gone on")
    if step.time is not None:
        lines.append(f"virtual time: {step.time:.6f} s")
    if step.sql is not None:
        lines += ["", step.sql]
    elif step.kind == "statement":
        lines += ["", "(the full SQL is not recorded in this trace: only its label)"]
    return "\n".join(lines)


def _first_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[0] if lines else ""


__all__ = ["ROW", "lane_widths", "swimlanes_svg"]
