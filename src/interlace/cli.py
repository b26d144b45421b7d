"""The ``interlace`` command: run simulations, replay a token, list what is there.

::

    interlace run [PATH] [--schedules N] [--strategy S] [--seed N|random]
                  [--db sqlite|postgres] [-k TEXT] [--corpus DIR] [--no-save] [--json FILE]
    interlace replay TOKEN
    interlace list [PATH] [--db sqlite|postgres]

``run`` discovers the simulations under PATH (default ``simulations/``),
replays their saved regressions (``--corpus``, default
``simulations/regressions``), explores each with the budget, prints a
summary table and saves the token of every new failure to the corpus.

Exit status: 0 when every simulation passed (canaries caught), 1 when any
failed (a violation, a regression, a vacuous run, a missed canary), 2 on
bad input (malformed token, unknown simulation, unreachable database, no
simulations found), with one line saying what is wrong.

Run it from the project root: simulation modules are imported by their
package names, and ``replay`` imports the module its token names.
"""

from __future__ import annotations

import argparse
import contextlib
import random
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TextIO

from interlace._core.errors import InterlaceError, TokenError
from interlace._core.trace import Token
from interlace.corpus import Corpus, CorpusError
from interlace.db.provider import PostgresUnavailable
from interlace.db.supply import DATABASE_KINDS, DatabaseKind, DatabaseSupply, one_line, open_supply
from interlace.discovery import DiscoveryError, Resolved, discover, resolve
from interlace.explore import Failure, ScheduleRecord, replay
from interlace.report.json import dumps, run_document
from interlace.report.summary import explain, summary_table, totals
from interlace.report.table import interleaving_table
from interlace.runner import Budget, SimulationRun, Verdict, run_simulation
from interlace.scenario import Scenario
from interlace.simulations import Simulation

DEFAULT_PATH = Path("simulations")
DEFAULT_CORPUS = Path("simulations") / "regressions"
DEFAULT_SCHEDULES = 200

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


class BadInput(Exception):
    """Input the command cannot work with; the message is the one line to print."""


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``interlace`` console script; returns the exit status."""
    parser = _parser()
    arguments = parser.parse_args(argv)
    out = sys.stdout
    try:
        command: Callable[[argparse.Namespace, TextIO], int] = arguments.command
        return command(arguments, out)
    except BadInput as error:
        print(f"interlace: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interlace: interrupted", file=sys.stderr)
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="interlace",
        description="Find races in async services backed by SQL databases; replay them by token.",
    )
    commands = parser.add_subparsers(title="commands", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="explore the simulations under PATH")
    run.add_argument(
        "path",
        nargs="?",
        type=Path,
        default=DEFAULT_PATH,
        metavar="PATH",
        help=f"a directory or .py file of simulations (default: {DEFAULT_PATH}/)",
    )
    run.add_argument(
        "--schedules",
        type=_positive,
        default=DEFAULT_SCHEDULES,
        metavar="N",
        help=f"schedules per simulation (default: {DEFAULT_SCHEDULES})",
    )
    run.add_argument(
        "--strategy",
        default="portfolio",
        metavar="NAME",
        help="random, pct, pct<depth>, dfs, dfs<bound>, portfolio (default: portfolio)",
    )
    run.add_argument(
        "--seed",
        type=_seed,
        default=0,
        metavar="N|random",
        help="seed of the run (default: 0; 'random' picks one and prints it)",
    )
    run.add_argument(
        "--db",
        choices=DATABASE_KINDS,
        default="sqlite",
        help="database of the simulations (default: sqlite, nothing to start)",
    )
    run.add_argument(
        "-k",
        dest="keyword",
        default=None,
        metavar="TEXT",
        help="only simulations whose name contains TEXT",
    )
    run.add_argument(
        "--corpus",
        type=Path,
        default=DEFAULT_CORPUS,
        metavar="DIR",
        help=f"regression tokens, replayed first (default: {DEFAULT_CORPUS}/)",
    )
    run.add_argument(
        "--json",
        type=Path,
        default=None,
        metavar="FILE",
        help="also write the run (verdicts, failures with their traces) as JSON to FILE",
    )
    run.add_argument(
        "--no-save",
        action="store_true",
        help="do not save the tokens of new failures to the corpus",
    )
    run.set_defaults(command=_run)

    replay_command = commands.add_parser("replay", help="rerun the schedule of a token")
    replay_command.add_argument("token", metavar="TOKEN", help="interlace:v1:... (one line)")
    replay_command.set_defaults(command=_replay)

    listing = commands.add_parser("list", help="list the simulations under PATH")
    listing.add_argument("path", nargs="?", type=Path, default=DEFAULT_PATH, metavar="PATH")
    listing.add_argument(
        "--db",
        choices=DATABASE_KINDS,
        default=None,
        help="only simulations that run on this database",
    )
    listing.set_defaults(command=_list)
    return parser


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return int(text)


def _seed(text: str) -> int | None:
    if text == "random":
        return None
    if not text.isdigit():
        raise argparse.ArgumentTypeError(
            f"must be a non-negative integer or 'random', got {text!r}"
        )
    return int(text)


# ---- interlace run ------------------------------------------------------------------


def _run(arguments: argparse.Namespace, out: TextIO) -> int:
    database: DatabaseKind = arguments.db
    simulations = _selected(arguments.path, database, arguments.keyword)
    seed = arguments.seed
    if seed is None:
        # the one place wall-clock randomness enters, and it is printed for the rerun
        seed = random.SystemRandom().randrange(2**31)
        print(f"seed {seed} chosen at random; rerun this run with --seed {seed}", file=out)
    budget = Budget(schedules=arguments.schedules, strategy=arguments.strategy, seed=seed)
    _check_strategy(budget.strategy)
    corpus = Corpus(arguments.corpus)
    _check_corpus(corpus)
    variants = sum(1 for _ in simulations)
    print(
        f"interlace run: {variants} simulation(s) under {arguments.path} on {database} "
        f"({budget.describe()})",
        file=out,
    )
    runs: list[SimulationRun] = []
    with _supply(database) as supply:
        for simulation in simulations:
            runs.append(_run_one(simulation, supply, budget, corpus, out))
    print("", file=out)
    print(summary_table(runs), file=out)
    _warn_best_effort(runs, out)
    _explain(runs, out)
    if not arguments.no_save:
        _save_tokens(runs, corpus, budget, database, out)
    if arguments.json is not None:
        _write_json(arguments.json, run_document(runs, budget, database), out)
    print("", file=out)
    print(totals(runs), file=out)
    return EXIT_OK if all(run.ok for run in runs) else EXIT_FAILED


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


def _check_strategy(name: str) -> None:
    from interlace.strategies import by_name  # noqa: PLC0415 (only to validate early)

    try:
        by_name(name)
    except ValueError as error:
        raise BadInput(str(error)) from None


def _check_corpus(corpus: Corpus) -> None:
    try:
        corpus.load()
    except CorpusError as error:
        raise BadInput(str(error)) from None


@contextlib.contextmanager
def _supply(kind: DatabaseKind) -> Iterator[DatabaseSupply]:
    """``open_supply``, where failing to get a database is bad input (one line, exit 2)."""
    with contextlib.ExitStack() as stack:
        try:
            supply = stack.enter_context(open_supply(kind))
        except PostgresUnavailable as error:
            raise BadInput(one_line(error)) from None
        except ValueError as error:  # INTERLACE_POSTGRES names no source
            raise BadInput(str(error)) from None
        yield supply


def _run_one(
    simulation: Simulation,
    supply: DatabaseSupply,
    budget: Budget,
    corpus: Corpus,
    out: TextIO,
) -> SimulationRun:
    chosen = supply if simulation.variants != (None,) else None
    name = simulation.scenario_name(None if chosen is None else chosen.kind)
    progress = Progress(name, budget.schedules, out)
    try:
        run = run_simulation(simulation, chosen, budget, corpus=corpus, on_schedule=progress.update)
    except InterlaceError as error:
        progress.clear()
        raise BadInput(f"{name}: {error}") from None
    progress.clear()
    for replayed in run.regressions:
        state = (
            f"stale, delete it ({replayed.stale})"
            if replayed.stale
            else "still fails"
            if replayed.failure is not None
            else "passes"
        )
        print(f"  regression {replayed.regression.path}: {state}", file=out)
    print(f"  {name}: {run.verdict.value} ({run.elapsed:.1f} s)", file=out)
    return run


def _explain(runs: list[SimulationRun], out: TextIO) -> None:
    caught = [r for r in runs if r.verdict is Verdict.CAUGHT]
    failed = [r for r in runs if not r.ok]
    if caught:
        print("\nExpected violations found (canaries):", file=out)
        for run in caught:
            print(explain(run), file=out)
    if failed:
        print("\nFailures:", file=out)
        for run in failed:
            print(explain(run), file=out)
            print("", file=out)


def _warn_best_effort(runs: list[SimulationRun], out: TextIO) -> None:
    """Say once when tokens of this run may not replay exactly (lock waits not frozen)."""
    reasons = sorted(
        {run.report.best_effort for run in runs if run.report and run.report.best_effort}
    )
    for reason in reasons:
        print(f"\nnote: determinism is best effort: {reason}", file=out)


def _save_tokens(
    runs: list[SimulationRun], corpus: Corpus, budget: Budget, database: str, out: TextIO
) -> None:
    for run in runs:
        failure = run.failure
        if failure is None or run.verdict is Verdict.REGRESSION:
            continue  # nothing new: a regression's token is in the corpus already
        if run.verdict is Verdict.CAUGHT and any(r.failure for r in run.regressions):
            continue  # a saved token still reproduces it: do not churn the corpus
        found_by = (
            f"interlace run {budget.describe()} --db {database} "
            f"(schedule {failure.schedule + 1} of the run)"
        )
        path = corpus.save(failure.token, headline=failure.headline(), found_by=found_by)
        print(f"saved regression token: {path}", file=out)


def _write_json(path: Path, document: dict[str, object], out: TextIO) -> None:
    try:
        path.write_text(dumps(document), encoding="utf-8")
    except OSError as error:
        raise BadInput(f"cannot write --json {path}: {error.strerror or error}") from None
    print(f"wrote {path}", file=out)


class Progress:
    """How far a long exploration is: redrawn in place on a terminal, else a line now and then.

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


# ---- interlace replay ---------------------------------------------------------------


def _replay(arguments: argparse.Namespace, out: TextIO) -> int:
    token = arguments.token.strip()
    try:
        scenario_name = Token.decode(token).scenario
        target = resolve(scenario_name)
    except (TokenError, DiscoveryError) as error:
        raise BadInput(str(error)) from None
    print(f"replaying {scenario_name}", file=out)
    if target.database is None:
        return _replay_on(_scenario_of(target, None), token, out)
    with _supply(target.database) as supply:
        return _replay_on(_scenario_of(target, supply), token, out)


def _scenario_of(target: Resolved, supply: DatabaseSupply | None) -> Scenario:
    if target.simulation is not None:
        return target.simulation.scenario(supply)
    assert target.scenario is not None  # resolve() returns one or the other
    return target.scenario


def _replay_on(scenario: Scenario, token: str, out: TextIO) -> int:
    try:
        trace = replay(scenario, token)
    except TokenError as error:
        raise BadInput(str(error)) from None
    except Exception as error:
        failure = getattr(error, "interlace_failure", None)
        if not isinstance(failure, Failure):
            raise BadInput(f"the replay could not run: {type(error).__name__}: {error}") from None
        print(failure.describe(), file=out)
        print("\nthe violation is reproduced: the schedule of this token still fails", file=out)
        return EXIT_FAILED
    print(interleaving_table(trace), file=out)
    print("\npassed: the schedule of this token no longer fails", file=out)
    return EXIT_OK


# ---- interlace list -----------------------------------------------------------------


def _list(arguments: argparse.Namespace, out: TextIO) -> int:
    try:
        found = discover(arguments.path)
    except DiscoveryError as error:
        raise BadInput(str(error)) from None
    if arguments.db is not None:
        found = [s for s in found if arguments.db in s.variants or s.variants == (None,)]
    if not found:
        raise BadInput(
            f"no simulations found under {arguments.path}"
            + (f" for --db {arguments.db}" if arguments.db else "")
        )
    rows = [
        (s.name, "[" + (", ".join(str(v) for v in s.variants if v is not None) or "-") + "]", s)
        for s in found
    ]
    name_width = max(len(name) for name, _, _ in rows)
    databases_width = max(len(databases) for _, databases, _ in rows)
    for name, databases, simulation in rows:
        canary = "canary" if simulation.canary else ""
        line = (
            f"{name.ljust(name_width)}  {databases.ljust(databases_width)}  "
            f"{canary.ljust(6)}  {simulation.description}"
        )
        print(line.rstrip(), file=out)
    print(f"\n{len(found)} simulation(s)", file=out)
    return EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
