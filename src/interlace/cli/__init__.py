"""The ``interlace`` command: run simulations, replay a token, list what is there.

::

    interlace run [PATH] [--schedules N] [--strategy S] [--seed N|random]
                  [--db sqlite|postgres] [-k TEXT] [--corpus DIR] [--no-save] [--json FILE]
                  [--html DIR] [--sarif FILE] [--junitxml FILE] [--github | --no-github]
                  [--full]
    interlace replay TOKEN [--full]
    interlace list [PATH] [--db sqlite|postgres]
    interlace --version

``run`` discovers the simulations under PATH (default ``simulations/``),
replays their saved regressions (``--corpus``, default
``simulations/regressions``), explores each with the budget, prints a
summary table and saves the token of every new finding to the corpus.
Reports of the same outcomes (``interlace.report``): ``--json`` (versioned
JSON), ``--html`` (one self-contained page with swimlanes), ``--sarif``
(SARIF 2.1.0), ``--junitxml`` (JUnit XML), ``--github`` (annotations and a
job summary; on by itself when ``GITHUB_ACTIONS=true``).

Exit status, the most severe of the run's outcomes (``interlace.outcome``):

- 0: every simulation passed (canaries caught);
- 1: a finding about the code under test (a violation, a scheduler finding,
  a regression, a vacuous run, a missed canary);
- 2: bad input or a setup error (a malformed token, an unknown simulation,
  an unreachable database, a bad invariant return value, a stuck setup),
  with a message saying what is wrong and what to do;
- 3: an internal error of interlace (a bug: the message asks to report it).

Run it from the project root: simulation modules are imported by their
package names, and ``replay`` imports the module its token names.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TextIO

from interlace.cli.errors import EXIT_INTERNAL, EXIT_USAGE, BadInput
from interlace.cli.listing import list_simulations
from interlace.cli.progress import Progress
from interlace.cli.replay import replay_token
from interlace.cli.run import DEFAULT_CORPUS, DEFAULT_PATH, DEFAULT_SCHEDULES, run_simulations
from interlace.db.supply import DATABASE_KINDS
from interlace.outcome import INTERNAL_HEADLINE
from interlace.strategies import NAMES as STRATEGY_NAMES

__all__ = ["Progress", "main"]


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
    except Exception as error:
        # anything that escapes the engine's classification is a bug in interlace
        print(f"interlace: {INTERNAL_HEADLINE}: {type(error).__name__}: {error}", file=sys.stderr)
        traceback.print_exception(error, file=sys.stderr)
        return EXIT_INTERNAL


def _version() -> str:
    try:
        return importlib.metadata.version("interlace")
    except importlib.metadata.PackageNotFoundError:
        return "unknown (not installed)"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="interlace",
        description="Find races in async services backed by SQL databases; replay them by token.",
    )
    parser.add_argument("--version", action="version", version=f"interlace {_version()}")
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
        help=f"{STRATEGY_NAMES} (default: portfolio)",
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
        help="also write the run (verdicts, failures with their traces) as JSON to FILE "
        "(format version 3, documented in the README)",
    )
    run.add_argument(
        "--html",
        type=Path,
        default=None,
        metavar="DIR",
        help="write a self-contained HTML report (summary, coverage, swimlanes) into DIR",
    )
    run.add_argument(
        "--sarif",
        type=Path,
        default=None,
        metavar="FILE",
        help="write the findings as SARIF 2.1.0 to FILE, for code scanning",
    )
    run.add_argument(
        "--junitxml",
        type=Path,
        default=None,
        metavar="FILE",
        help="write one JUnit XML test case per simulation and database to FILE",
    )
    run.add_argument(
        "--github",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="print GitHub Actions annotations and append a job summary to "
        "$GITHUB_STEP_SUMMARY (default: on when GITHUB_ACTIONS=true)",
    )
    run.add_argument(
        "--no-save",
        action="store_true",
        help="do not save the tokens of new failures to the corpus",
    )
    _full_option(run)
    run.set_defaults(command=run_simulations)

    replay_command = commands.add_parser("replay", help="rerun the schedule of a token")
    replay_command.add_argument("token", metavar="TOKEN", help="interlace:v1:... (one line)")
    _full_option(replay_command)
    replay_command.set_defaults(command=replay_token)

    listing = commands.add_parser("list", help="list the simulations under PATH")
    listing.add_argument("path", nargs="?", type=Path, default=DEFAULT_PATH, metavar="PATH")
    listing.add_argument(
        "--db",
        choices=DATABASE_KINDS,
        default=None,
        help="only simulations that run on this database",
    )
    listing.set_defaults(command=list_simulations)
    return parser


def _full_option(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--full",
        action="store_true",
        help="show every row of interleaving tables: setup, the framework's own tasks "
        "(SQLAlchemy closing connections) and the invariants' reads, which are folded by default",
    )


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
