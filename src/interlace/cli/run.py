"""``interlace run``: explore the simulations under a path and give one verdict for CI.

Each simulation runs on every database it declares (``databases=``), narrowed
by ``--db`` or by ``databases`` of ``[tool.interlace]``; the summary has one
row per simulation and database, SQLite's first. The budget is ``--schedules``,
else ``schedules`` of ``[tool.interlace]``, else 200; the first line says
which, and where it came from.
"""

from __future__ import annotations

import argparse
import contextlib
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
from interlace.cli.project import Project, activate, load_project
from interlace.cli.summary import explain, summary_table, totals
from interlace.config import Config
from interlace.corpus import Corpus, CorpusError
from interlace.db.supply import DATABASE_KINDS, DatabaseKind, DatabaseSupply
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

DEFAULT_SCHEDULES = 200
DEFAULT_STRATEGY = "portfolio"

# one simulation on one database kind (None: a simulation that needs no database)
Variant = tuple[Simulation, DatabaseKind | None]


def run_simulations(arguments: argparse.Namespace, out: TextIO) -> int:
    # wall clock for the reports' "started" and "elapsed" only: no decision sees it
    started, clock = datetime.now(UTC), time.monotonic()
    project = load_project()
    activate(project)
    paths = tuple(arguments.paths) or project.paths
    variants = _selected(paths, _databases(arguments.db, project), arguments.keyword)
    seed = arguments.seed if arguments.seed is not None else project.seed
    if seed == "random":
        # the one place wall-clock randomness enters, and it is printed for the rerun
        seed = random.SystemRandom().randrange(2**31)
        print(f"seed {seed} chosen at random; rerun this run with --seed {seed}", file=out)
    schedules = arguments.schedules or project.schedules or DEFAULT_SCHEDULES
    strategy = arguments.strategy or project.strategy or DEFAULT_STRATEGY
    config = _config(schedules, strategy, 0 if seed is None else int(seed))
    corpus = Corpus(arguments.corpus if arguments.corpus is not None else project.corpus)
    _check_corpus(corpus)
    kinds = [k for k in DATABASE_KINDS if any(database == k for _, database in variants)]
    where = ", ".join(_shown(p) for p in paths)
    print(
        f"interlace run: {len({s.name for s, _ in variants})} simulation(s) under {where} "
        f"on {', '.join(kinds) or 'no database'}",
        file=out,
    )
    print(f"budget: {_budget(config, arguments, project)}", file=out)
    runs: list[SimulationRun] = []
    with contextlib.ExitStack() as stack:
        supplies = {kind: stack.enter_context(database_supply(kind)) for kind in kinds}
        for simulation, database in variants:
            supply = None if database is None else supplies[database]
            runs.append(_run_one(simulation, supply, config, corpus, out))
    print("", file=out)
    print(summary_table(runs), file=out)
    _warn_best_effort(runs, out)
    _explain(runs, out, full=arguments.full)
    if not arguments.no_save:
        _save_tokens(runs, corpus, config, out)
    info = RunInfo(
        started=started,
        elapsed=time.monotonic() - clock,
        database=kinds[0] if len(kinds) == 1 else None,  # None: the run used several
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


def _databases(flag: DatabaseKind | None, project: Project) -> tuple[DatabaseKind, ...] | None:
    """The kinds to run on: ``--db``, else the project's ``databases``; None for all declared."""
    return (flag,) if flag is not None else project.databases


def _budget(config: Config, arguments: argparse.Namespace, project: Project) -> str:
    if arguments.schedules is not None:
        source = "--schedules"
    elif project.schedules is not None:
        source = project.source()
    else:
        source = "the default; set schedules in [tool.interlace] or pass --schedules"
    return (
        f"{config.schedules} schedules per simulation and database ({source}); "
        f"strategy {config.strategy_name}, seed {config.seed}"
    )


def _shown(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def discover_all(paths: tuple[Path, ...]) -> list[Simulation]:
    """The simulations under every path, each once, in path order; ``BadInput`` on failure."""
    found: dict[str, Simulation] = {}
    for path in paths:
        try:
            for simulation in discover(path):
                found.setdefault(simulation.name, simulation)
        except DiscoveryError as error:
            raise BadInput(str(error)) from None
    return list(found.values())


def _selected(
    paths: tuple[Path, ...], databases: tuple[DatabaseKind, ...] | None, keyword: str | None
) -> list[Variant]:
    """(simulation, database) pairs to run, SQLite's first, then PostgreSQL's."""
    found = discover_all(paths)
    matching = [s for s in found if keyword is None or keyword in s.name]
    chosen: list[Variant] = [(s, None) for s in matching if s.variants == (None,)]
    for kind in DATABASE_KINDS:
        if databases is None or kind in databases:
            chosen.extend((s, kind) for s in matching if kind in s.variants)
    if not chosen:
        where = "under " + ", ".join(_shown(p) for p in paths)
        if found:
            what = (f" for {'/'.join(databases)}" if databases else "") + (
                f" matching -k {keyword!r}" if keyword else ""
            )
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
    supply: DatabaseSupply | None,
    config: Config,
    corpus: Corpus,
    out: TextIO,
) -> SimulationRun:
    name = simulation.scenario_name(None if supply is None else supply.kind)
    progress = Progress(name, config.schedules, out)
    try:
        run = run_simulation(simulation, supply, config, corpus=corpus, on_schedule=progress.update)
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


def _save_tokens(runs: list[SimulationRun], corpus: Corpus, config: Config, out: TextIO) -> None:
    for run in runs:
        failure = run.failure
        if failure is None or run.verdict not in (Verdict.VIOLATION, Verdict.CAUGHT):
            continue  # only new findings: a regression's token is in the corpus already
        if run.verdict is Verdict.CAUGHT and any(r.failure for r in run.regressions):
            continue  # a saved token still reproduces it: do not churn the corpus
        database = f" --db {run.database}" if run.database else ""
        found_by = (
            f"interlace run {config.describe()}{database} "
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
