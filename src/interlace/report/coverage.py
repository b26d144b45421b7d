"""Coverage growth as an inline SVG plot: distinct interleavings against schedules run.

One line per simulation run, from ``ExploreReport.coverage_curve``, over a
dashed diagonal where every schedule would be a new interleaving. A line
that bends flat says the strategy has stopped finding new interleavings of
that simulation: more schedules of the same strategy would add little.

    >>> svg = coverage_svg([("sims.bank:transfer[sqlite]", ((1, 1), (50, 31), (100, 44)))])
    >>> svg.startswith("<svg")
    True

Drawn by hand (no plotting library, no script): the report must open from a
CI artifact with no network.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

#: colour of the n-th line (Okabe-Ito, readable by colour-blind people)
PALETTE = ("#0072b2", "#d55e00", "#009e73", "#cc79a7", "#e69f00", "#56b4e9", "#000000")

_WIDTH, _HEIGHT = 640, 260
_LEFT, _RIGHT, _TOP, _BOTTOM = 56, 16, 12, 40

Curve = tuple[str, Sequence[tuple[int, int]]]


def colour(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


def coverage_svg(curves: Sequence[Curve]) -> str:
    """The plot of ``(name, points)`` curves; an empty plot says there is nothing to draw."""
    drawn = [(name, list(points)) for name, points in curves if points]
    max_x = max((p[0] for _, points in drawn for p in points), default=1)
    max_y = max((p[1] for _, points in drawn for p in points), default=1)
    max_x, max_y = max(max_x, 1), max(max_y, 1)
    plot_w, plot_h = _WIDTH - _LEFT - _RIGHT, _HEIGHT - _TOP - _BOTTOM

    def x(value: float) -> float:
        return _LEFT + plot_w * value / max_x

    def y(value: float) -> float:
        return _TOP + plot_h * (1 - value / max_y)

    parts = [
        f'<svg class="coverage" xmlns="http://www.w3.org/2000/svg" width="{_WIDTH}" '
        f'height="{_HEIGHT}" viewBox="0 0 {_WIDTH} {_HEIGHT}" role="img" '
        'aria-label="distinct interleavings against schedules run">',
        f'<rect class="plot-area" x="{_LEFT}" y="{_TOP}" width="{plot_w}" height="{plot_h}"/>',
    ]
    diagonal_end = min(max_x, max_y)
    parts.append(
        f'<line class="diagonal" x1="{x(0):.1f}" y1="{y(0):.1f}" x2="{x(diagonal_end):.1f}" '
        f'y2="{y(diagonal_end):.1f}"><title>every schedule a new interleaving</title></line>'
    )
    for fraction in (0, 0.5, 1):
        tick_x, tick_y = round(max_x * fraction), round(max_y * fraction)
        parts.append(
            f'<text class="tick" x="{x(tick_x):.1f}" y="{_HEIGHT - _BOTTOM + 16}" '
            f'text-anchor="middle">{tick_x}</text>'
        )
        parts.append(
            f'<text class="tick" x="{_LEFT - 6}" y="{y(tick_y) + 4:.1f}" '
            f'text-anchor="end">{tick_y}</text>'
        )
    parts.append(
        f'<text class="axis" x="{_LEFT + plot_w / 2:.1f}" y="{_HEIGHT - 6}" '
        'text-anchor="middle">schedules run</text>'
    )
    parts.append(
        f'<text class="axis" transform="translate(14 {_TOP + plot_h / 2:.1f}) rotate(-90)" '
        'text-anchor="middle">distinct interleavings</text>'
    )
    for index, (name, points) in enumerate(drawn):
        path = " ".join(f"{x(px):.1f},{y(py):.1f}" for px, py in [(0, 0), *points])
        last_x, last_y = points[-1]
        parts.append(
            f'<polyline class="curve" data-simulation="{escape(name)}" fill="none" '
            f'stroke="{colour(index)}" points="{path}"><title>{escape(name)}: '
            f"{last_y} distinct in {last_x} schedules</title></polyline>"
        )
    if not drawn:
        parts.append(
            f'<text class="axis" x="{_WIDTH / 2}" y="{_HEIGHT / 2}" text-anchor="middle">'
            "no schedules were explored</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


__all__ = ["PALETTE", "colour", "coverage_svg"]
