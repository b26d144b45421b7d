"""``interlace run``: explore the simulations under a path and give one verdict for CI."""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from interlace._core.errors import UsageError
from interlace.cli.errors import BadInput, database_supply
from interlace.cli.progress import Progress
from interlace.cli.summary import explain, summary_table, totals
from interlace.config import Config
from interlace.corpus import Corpus, CorpusError
from interlace.db.supply import DatabaseKind, DatabaseSupply
from interlace.discovery import DiscoveryError, discover
from interlace.outcome import SimulationRun, Verdict
from interlace.report import github
from interlace.report.context import RunInfo
from interlace.report.document import render_json
from interlace.report.html import write_html
from interlace.report.junit import render_junit
from interlace.report.sarif import render_sarif
from interlace.runner import run_simulation
from interlace.simulations import Simulation

DEFAULT_PATH = Path("simulations")
DEFAULT_CORPUS = Path("simulations") / "regressions"
DEFAULT_SCHEDULES = 200


def run_simulations(arguments: argparse.Namespace, out: TextIO) -> int:
    # wall clock for the reports' "started" and "elapsed" only: no decision sees it
    started, clock = datetime.now(UTC), time.monotonic()
    database: DatabaseKind = arguments.db
    simulations = _selected(arguments.path, database, arguments.keyword)
    seed = arguments.seed
    if seed is None:
        # the one place wall-clock randomness enters, and it is printed for the rerun
        seed = random.SystemRandom().randrange(2**31)
        print(f"seed {seed} chosen at random; rerun this run with --seed {seed}", file=out)
    config = _config(arguments.schedules, arguments.strategy, seed)
    corpus = Corpus(arguments.corpus)
    _check_corpus(corpus)
    print(
        f"interlace run: {len(simulations)} simulation(s) under {arguments.path} on {database} "
        f"({config.describe()})",
        file=out,
    )
    runs: list[SimulationRun] = []
    with database_supply(database) as supply:
        for simulation in simulations:
            runs.append(_run_one(simulation, supply, config, corpus, out))
    print("", file=out)
    print(summary_table(runs), file=out)
    _warn_best_effort(runs, out)
    _explain(runs, out, full=arguments.full)
    if not arguments.no_save:
        _save_tokens(runs, corpus, config, database, out)
    info = RunInfo(
        started=started,
        elapsed=time.monotonic() - clock,
        database=database,
        settings=config.describe(),
    )
    _write_reports(arguments, runs, info, config, out)
    print("", file=out)
    print(totals(runs), file=out)
    for run in runs:
        if run.problem is not None:
            print(f"interlace: {run.scenario}: {run.problem.headline()}", file=sys.stderr)
    return max((run.verdict.exit_code for run in runs), default=0)


def _config(schedules: int, strategy: str, seed: int) -> Config:
    try:
        return Config(schedules=schedules, strategy=strategy, seed=seed)
    except UsageError as error:
        raise BadInput(str(error)) from None


def _selected(path: Path, database: DatabaseKind, keyword: str | None) -> list[Simulation]:
    try:
        found = discover(path)
    except DiscoveryError as error:
        raise BadInput(str(error)) from None
    chosen = [
        s
        for s in found
        if (database in s.variants or s.variants == (None,))
        and (keyword is None or keyword in s.name)
    ]
    if not chosen:
        where = f"under {path}"
        if found:
            what = f" for --db {database}" + (f" matching -k {keyword!r}" if keyword else "")
            raise BadInput(f"no simulations found {where}{what} ({len(found)} others found)")
        raise BadInput(
            f"no simulations found {where}: declare them with @interlace.simulation(...) "
            "in .py files there"
        )
    return chosen


def _check_corpus(corpus: Corpus) -> None:
    try:
        corpus.load()
    except CorpusError as error:
        raise BadInput(str(error)) from None


def _run_one(
    simulation: Simulation,
    supply: DatabaseSupply,
    config: Config,
    corpus: Corpus,
    out: TextIO,
) -> SimulationRun:
    chosen = supply if simulation.variants != (None,) else None
    name = simulation.scenario_name(None if chosen is None else chosen.kind)
    progress = Progress(name, config.schedules, out)
    try:
        run = run_simulation(simulation, chosen, config, corpus=corpus, on_schedule=progress.update)
    finally:
        progress.clear()
    for replayed in run.regressions:
        print(f"  regression {replayed.path}: {replayed.state()}", file=out)
    print(f"  {name}: {run.verdict.value} ({run.elapsed:.1f} s)", file=out)
    return run


def _explain(runs: list[SimulationRun], out: TextIO, *, full: bool = False) -> None:
    caught = [r for r in runs if r.verdict is Verdict.CAUGHT]
    failed = [r for r in runs if not r.ok and r.problem is None]
    problems = [r for r in runs if r.problem is not None]
    if caught:
        print("\nExpected violations found (canaries):", file=out)
        for run in caught:
            print(explain(run, full=full), file=out)
            print("", file=out)
    if failed:
        print("\nFailures:", file=out)
        for run in failed:
            print(explain(run, full=full), file=out)
            print("", file=out)
    if problems:
        print("\nErrors (not findings: nothing was shrunk or saved):", file=out)
        for run in problems:
            print(explain(run, full=full), file=out)
            print("", file=out)


def _warn_best_effort(runs: list[SimulationRun], out: TextIO) -> None:
    """Say once when tokens of this run may not replay exactly (lock waits not frozen)."""
    reasons = sorted(
        {run.report.best_effort for run in runs if run.report and run.report.best_effort}
    )
    for reason in reasons:
        print(f"\nnote: determinism is best effort: {reason}", file=out)


def _save_tokens(
    runs: list[SimulationRun], corpus: Corpus, config: Config, database: str, out: TextIO
) -> None:
    for run in runs:
        failure = run.failure
        if failure is None or run.verdict not in (Verdict.VIOLATION, Verdict.CAUGHT):
            continue  # only new findings: a regression's token is in the corpus already
        if run.verdict is Verdict.CAUGHT and any(r.failure for r in run.regressions):
            continue  # a saved token still reproduces it: do not churn the corpus
        found_by = (
            f"interlace run {config.describe()} --db {database} "
            f"(schedule {failure.schedule + 1} of the run)"
        )
        path = corpus.save(failure.token, headline=failure.headline(), found_by=found_by)
        print(f"saved regression token: {path}", file=out)


def _write_reports(
    arguments: argparse.Namespace,
    runs: list[SimulationRun],
    info: RunInfo,
    config: Config,
    out: TextIO,
) -> None:
    """Every report the flags ask for, each from the same outcomes (nothing is rerun)."""
    if arguments.json is not None:
        _write("--json", arguments.json, lambda: render_json(runs, info, config), out)
    if arguments.sarif is not None:
        _write("--sarif", arguments.sarif, lambda: render_sarif(runs, info), out)
    if arguments.junitxml is not None:
        _write("--junitxml", arguments.junitxml, lambda: render_junit(runs, info), out)
    if arguments.html is not None:
        try:
            path = write_html(runs, info, arguments.html)
        except OSError as error:
            raise BadInput(
                f"cannot write --html {arguments.html}: {error.strerror or error}"
            ) from None
        print(f"wrote {path}", file=out)
    use_github = arguments.github if arguments.github is not None else github.in_github_actions()
    if use_github:
        for line in github.workflow_commands(runs, info):
            print(line, file=out)  # the runner reads workflow commands from stdout
        try:
            summary = github.append_summary(runs, info)
        except OSError as error:
            raise BadInput(
                f"cannot append to ${github.SUMMARY_ENV}: {error.strerror or error}"
            ) from None
        if summary is not None:
            print(f"appended the job summary to {summary}", file=out)


def _write(flag: str, path: Path, render: Callable[[], str], out: TextIO) -> None:
    try:
        if path.parent != Path():
            path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render(), encoding="utf-8")
    except OSError as error:
        raise BadInput(f"cannot write {flag} {path}: {error.strerror or error}") from None
    print(f"wrote {path}", file=out)
