"""A run as one self-contained HTML page: ``interlace run --html DIR``, ``--interlace-html DIR``.

The page has no external resource at all (styles, script and pictures are
inline; SVG is drawn here), so it opens from a CI artifact with no network.
It shows:

- the run: command, start time, interlace version, database, budget;
- a summary of every simulation and database: verdict, schedules, distinct
  interleavings, time; and the coverage growth of each (distinct
  interleavings against schedules run, ``interlace.report.coverage``);
- for each failure: its headline with the invariant's message, where it is in
  the source, the token with a copy button and the exact replay command, what
  shrinking did, where the nearest passing schedule parts from it, and the
  swimlanes (``interlace.report.swimlanes``); clicking a decision shows its
  full label and SQL; the text table is one click away.

    >>> page = render_html(runs, info)
    >>> (Path("report") / HTML_FILE).write_text(page)
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from pathlib import Path

from interlace.outcome import Failure, SimulationRun
from interlace.report.context import RunInfo
from interlace.report.coverage import colour, coverage_svg
from interlace.report.locations import failure_locations
from interlace.report.swimlanes import swimlanes_svg
from interlace.report.table import interleaving_table
from interlace.report.timeline import Timeline, parting

HTML_FILE = "interlace-report.html"

_STYLE = """
:root { --ok: #1a7f37; --bad: #cf222e; --warn: #bf8700; --ink: #1f2328; --muted: #59636e;
  --line: #d1d9e0; --soft: #f6f8fa; font-family: system-ui, -apple-system, "Segoe UI",
  sans-serif; color: var(--ink); }
body { margin: 0 auto; max-width: 1200px; padding: 16px 24px 48px; }
h1 { font-size: 1.5rem; margin: 0.2em 0; } h2 { font-size: 1.2rem; margin-top: 2em; }
.meta { color: var(--muted); margin: 0 0 1em; }
.verdict-ok { color: var(--ok); font-weight: 600; } .verdict-bad { color: var(--bad);
  font-weight: 600; }
table.summary { border-collapse: collapse; width: 100%; margin: 1em 0; }
table.summary th, table.summary td { border-bottom: 1px solid var(--line); padding: 6px 8px;
  text-align: left; } table.summary td.number { text-align: right;
  font-variant-numeric: tabular-nums; }
.swatch { display: inline-block; width: 10px; height: 10px; border-radius: 2px;
  margin-right: 6px; }
code, pre, .swimlanes text { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas,
  monospace; font-size: 12px; }
pre { background: var(--soft); padding: 8px 10px; border-radius: 6px; overflow-x: auto; }
pre.headline { background: #ffebe9; border-left: 4px solid var(--bad); white-space: pre-wrap; }
section.failure { border-top: 2px solid var(--line); margin-top: 2em; }
.command { display: flex; gap: 8px; align-items: center; margin: 4px 0; }
.command code { background: var(--soft); padding: 4px 6px; border-radius: 4px;
  word-break: break-all; }
button.copy { font: inherit; font-size: 0.85rem; padding: 2px 10px; cursor: pointer; }
.lanes-scroll { overflow: auto; max-height: 80vh; border: 1px solid var(--line);
  border-radius: 6px; }
.legend { color: var(--muted); font-size: 0.9rem; }
.legend span { margin-right: 14px; white-space: nowrap; }
.coverage .plot-area { fill: #fff; stroke: var(--line); }
.coverage .diagonal { stroke: var(--line); stroke-dasharray: 4 4; }
.coverage .curve { stroke-width: 2; } .coverage text { font-size: 11px; fill: var(--muted); }
.swimlanes .lane-0 { fill: #fff; } .swimlanes .lane-1 { fill: #f6f8fa; }
.swimlanes .lane-name { font-weight: 700; fill: var(--ink); }
.swimlanes .lane-task, .swimlanes .lane-quiet .lane-name { fill: var(--muted); }
.swimlanes .decision.folded { opacity: 0.45; }
.swimlanes .gutter-head, .swimlanes .step-number, .swimlanes .step-time { fill: var(--muted); }
.swimlanes .decision rect { fill: #ddf4ff; stroke: #54aeff; }
.swimlanes .decision.kind-statement rect { fill: #fff8c5; stroke: #d4a72c; }
.swimlanes .decision.kind-end rect { fill: #dafbe1; stroke: #4ac26b; }
.swimlanes .decision.preemption rect { stroke: #fb8500; stroke-width: 2.5; }
.swimlanes .decision.failing rect { fill: #ffcecb; stroke: var(--bad); stroke-width: 2.5; }
.swimlanes .decision.selected rect { stroke: #000; stroke-width: 2.5; }
.swimlanes .decision { cursor: pointer; } .swimlanes .decision text { fill: var(--ink); }
.swimlanes .span-commit { fill: var(--ok); } .swimlanes .span-rollback { fill: #fb8500; }
.swimlanes .span-open { fill: #8c959f; }
.swimlanes .wait-line, .swimlanes .wait-arrow { stroke: #8250df; stroke-width: 1.5;
  stroke-dasharray: 5 3; fill: none; }
.swimlanes .arrow-head { fill: #8250df; } .swimlanes .wait-kind { fill: #8250df;
  font-size: 11px; paint-order: stroke; stroke: #fff; stroke-width: 3px; }
.swimlanes .parting line { stroke: #0969da; stroke-width: 2; stroke-dasharray: 8 4; }
.swimlanes .violation-row rect { fill: #ffebe9; stroke: var(--bad); }
.swimlanes .violation-row text { fill: var(--bad); font-weight: 700; }
pre.step-details { min-height: 3em; white-space: pre-wrap; }
"""

_SCRIPT = """
(function () {
  "use strict";
  document.querySelectorAll("section.failure").forEach(function (section) {
    var panel = section.querySelector(".step-details");
    section.querySelectorAll(".decision").forEach(function (node) {
      function show() {
        section.querySelectorAll(".decision.selected").forEach(function (other) {
          other.classList.remove("selected");
        });
        node.classList.add("selected");
        if (panel) { panel.textContent = node.getAttribute("data-detail"); }
      }
      node.addEventListener("click", show);
      node.addEventListener("keydown", function (event) {
        if (event.key === "Enter" || event.key === " ") { event.preventDefault(); show(); }
      });
    });
  });
  function said(button, text) {
    button.textContent = text;
    window.setTimeout(function () { button.textContent = "copy"; }, 1500);
  }
  function selectAndCopy(button, node) {
    // file:// pages may have no clipboard API: select the text, try the old command
    var range = document.createRange();
    range.selectNodeContents(node);
    var selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
    var copied = false;
    try { copied = document.execCommand("copy"); } catch (error) { copied = false; }
    said(button, copied ? "copied" : "selected: press Ctrl+C");
  }
  document.querySelectorAll("button.copy").forEach(function (button) {
    button.addEventListener("click", function () {
      var node = document.getElementById(button.getAttribute("data-target"));
      if (!node) { return; }
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(node.textContent).then(
          function () { said(button, "copied"); },
          function () { selectAndCopy(button, node); }
        );
      } else {
        selectAndCopy(button, node);
      }
    });
  });
})();
"""


def render_html(runs: Sequence[SimulationRun], info: RunInfo) -> str:
    """The whole page (see the module docstring)."""
    ok = all(run.ok for run in runs)
    failed = sum(1 for run in runs if not run.ok)
    verdict = "passed" if ok else f"{failed} of {len(runs)} failed"
    body = [
        f'<h1>{escape(info.command)}: <span class="{_verdict_class(ok)}">'
        f"{escape(verdict)}</span></h1>",
        f'<p class="meta">started {escape(info.started_text)} · {info.elapsed:.1f} s · '
        f"interlace {escape(info.version)} · {escape(info.database or 'no database')} · "
        f"<code>{escape(info.settings)}</code></p>",
        _summary(runs),
        "<h2>Coverage growth</h2>",
        '<p class="legend">distinct interleavings after each schedule; a flat line means '
        "the strategy stopped finding new interleavings</p>",
        coverage_svg(
            [(run.scenario, run.report.coverage_curve if run.report else ()) for run in runs]
        ),
    ]
    for number, run in enumerate(runs):
        if run.failure is not None:
            body.append(_failure_section(number, run, run.failure, info))
        elif not run.ok:
            body.append(_problem_section(number, run))
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        # no network, ever: the page must open from an artifact anywhere
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:\">"
        f"<title>{escape(info.command)}: {escape(verdict)}</title>"
        f"<style>{_STYLE}</style></head>\n<body>\n"
        + "\n".join(body)
        + f"\n<script>{_SCRIPT}</script>\n</body></html>\n"
    )


def write_html(runs: Sequence[SimulationRun], info: RunInfo, directory: Path) -> Path:
    """Write the page into ``directory`` (made if missing) as ``HTML_FILE``; its path."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / HTML_FILE
    path.write_text(render_html(runs, info), encoding="utf-8")
    return path


def _verdict_class(ok: bool) -> str:
    return "verdict-ok" if ok else "verdict-bad"


def _summary(runs: Sequence[SimulationRun]) -> str:
    rows = []
    for number, run in enumerate(runs):
        report = run.report
        name = escape(run.scenario)
        if run.failure is not None or not run.ok:
            name = f'<a href="#run-{number}">{name}</a>'
        rows.append(
            "<tr>"
            f'<td><span class="swatch" style="background:{colour(number)}"></span>{name}</td>'
            f"<td>{escape(run.database or '-')}</td>"
            f'<td class="{_verdict_class(run.ok)}">{escape(run.verdict.value)}</td>'
            f'<td class="number">{"-" if report is None else report.schedules_run}</td>'
            f'<td class="number">{"-" if report is None else report.distinct_interleavings}</td>'
            f'<td class="number">{run.elapsed:.1f} s</td>'
            "</tr>"
        )
    return (
        '<table class="summary"><thead><tr><th>simulation</th><th>database</th>'
        "<th>verdict</th><th>schedules</th><th>distinct interleavings</th><th>time</th>"
        "</tr></thead><tbody>" + "".join(rows) + "</tbody></table>"
    )


def _failure_section(number: int, run: SimulationRun, failure: Failure, info: RunInfo) -> str:
    timeline = Timeline.of(failure.trace, run.database)
    nearest = failure.shrinking.nearest_passing if failure.shrinking else None
    parted = parting(failure.trace, nearest) if nearest is not None else None
    failing_step = failure.trace.decisions[-1].step if failure.trace.decisions else None
    expected = " (expected: a canary)" if run.ok else ""
    parts = [
        f'<section class="failure" id="run-{number}">',
        f'<h2>{escape(run.scenario)}: <span class="{_verdict_class(run.ok)}">'
        f"{escape(run.verdict.value)}</span>{escape(expected)}</h2>",
        f"<p>{escape(run.message)}</p>",
        f'<pre class="headline">{escape(failure.headline())}</pre>',
    ]
    where = [
        f"<li><code>{escape(item.location.relative(info.root))}:{item.location.line}</code> "
        f"in {escape(item.location.function)}</li>"
        for item in failure_locations(failure)
        if item.location is not None
    ]
    if where:
        parts.append("<p>where:</p><ul>" + "".join(where) + "</ul>")
    parts.append(_copyable(f"token-{number}", "token", failure.token))
    parts.append(_copyable(f"replay-{number}", "replay", info.replay(run, failure)))
    note = failure.shrink_note()
    if note:
        parts.append(f"<p>{escape(note)}</p>")
    if parted is not None:
        parts.append(
            f'<p class="nearest">nearest passing schedule: {escape(parted.describe())} '
            "(the dashed blue rule)</p>"
        )
    elif failure.shrinking is None:
        parts.append('<p class="nearest">nearest passing schedule: not known (not shrunk)</p>')
    else:
        parts.append(
            '<p class="nearest">nearest passing schedule: none of the schedules run while '
            "shrinking passed</p>"
        )
    parts.append(
        '<p class="legend">'
        + " ".join(f"<span>{escape(item)}</span>" for item in _legend(timeline))
        + "</p>"
    )
    parts.append(
        '<div class="lanes-scroll">'
        + swimlanes_svg(
            timeline,
            failing_step=failing_step,
            message=failure.headline(),
            parting_step=None if parted is None else parted.step,
            ident=f"run-{number}",
        )
        + "</div>"
    )
    parts.append(
        '<pre class="step-details" aria-live="polite">click a decision for its full label '
        "and SQL</pre>"
    )
    parts.append(
        "<details><summary>the interleaving as a text table</summary>"
        # every row, as wide as it needs: the page scrolls, a terminal would not
        f"<pre>{escape(interleaving_table(failure.trace, full=True, width=400))}</pre>"
        "</details>"
    )
    parts.append("</section>")
    return "\n".join(parts)


def _legend(timeline: Timeline) -> list[str]:
    items = [
        "yellow: a SQL statement",
        "green: COMMIT or ROLLBACK",
        "orange outline and *: a preemption",
        "bars: transactions (green committed, orange rolled back, grey still open)",
        "purple dashes: a lock wait, from waiter to holder",
        "red: the failing step",
        "dimmed: rows the text table folds (setup, framework-internal, invariant checks)",
    ]
    if not timeline.timed:
        items.append("virtual time: not recorded in this trace")
    return items


def _problem_section(number: int, run: SimulationRun) -> str:
    text = run.problem.describe() if run.problem is not None else run.message
    return (
        f'<section class="problem" id="run-{number}"><h2>{escape(run.scenario)}: '
        f'<span class="verdict-bad">{escape(run.verdict.value)}</span></h2>'
        f'<pre class="headline">{escape(text)}</pre></section>'
    )


def _copyable(identifier: str, name: str, text: str) -> str:
    return (
        f'<div class="command">{escape(name)}: <code id="{identifier}">{escape(text)}</code>'
        f'<button class="copy" type="button" data-target="{identifier}">copy</button></div>'
    )


__all__ = ["HTML_FILE", "render_html", "write_html"]
