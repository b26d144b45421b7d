"""Renderers of a run's outcomes: one small module each, none of which reruns anything.

- ``table``: a trace as a text table (one column per task, one row per decision);
- ``failure``: a failure as a person reads it (headline, table, token, replay commands);
- ``html``: the self-contained HTML page, with ``swimlanes`` (a failing schedule as an
  SVG), ``coverage`` (coverage growth as an SVG) and ``timeline`` (lanes, transactions and
  lock waits derived from a trace);
- ``markdown``: the summary and failures as Markdown (GitHub's job summary);
- ``github``: GitHub Actions annotations and the job summary;
- ``sarif``: SARIF 2.1.0; ``junit``: JUnit XML; ``document``: the versioned JSON;
- ``locations``: a violation's first application frame, shared by SARIF, GitHub and JSON;
- ``context``: ``RunInfo``, what every renderer knows about the run besides its outcomes.

Only the text table is imported here: ``interlace.outcome`` needs it, and the others are
imported by the front ends that ask for them.
"""

from interlace.report.table import interleaving_table

__all__ = ["interleaving_table"]
