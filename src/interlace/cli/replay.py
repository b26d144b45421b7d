"""``interlace replay TOKEN``: rerun the one schedule of a token and say what it does now."""

from __future__ import annotations

import argparse
import sys
from typing import TextIO

from interlace._core.errors import TokenError
from interlace._core.trace import Token
from interlace.cli.errors import EXIT_FAILED, EXIT_INTERNAL, EXIT_OK, BadInput, database_supply
from interlace.config import Config
from interlace.db.supply import DatabaseSupply
from interlace.discovery import DiscoveryError, Resolved, resolve
from interlace.explore import replay_report
from interlace.outcome import Outcome, ReplayReport
from interlace.report.failure import failure_report, interlace_replay_command
from interlace.report.table import interleaving_table
from interlace.scenario import Scenario


def replay_token(arguments: argparse.Namespace, out: TextIO) -> int:
    token = arguments.token.strip()
    try:
        scenario_name = Token.decode(token).scenario
        target = resolve(scenario_name)
    except (TokenError, DiscoveryError) as error:
        raise BadInput(str(error)) from None
    print(f"replaying {scenario_name}", file=out)
    full = bool(getattr(arguments, "full", False))
    if target.database is None:
        return _show(replay_report(_scenario_of(target, None), token, Config()), out, full)
    with database_supply(target.database) as supply:
        return _show(replay_report(_scenario_of(target, supply), token, Config()), out, full)


def _scenario_of(target: Resolved, supply: DatabaseSupply | None) -> Scenario:
    if target.simulation is not None:
        return target.simulation.scenario(supply)
    assert target.scenario is not None  # resolve() returns one or the other
    return target.scenario


def _show(report: ReplayReport, out: TextIO, full: bool) -> int:
    problem = report.problem
    if problem is not None:
        if problem.outcome is Outcome.INTERNAL_ERROR:
            print(problem.describe(), file=sys.stderr)
            return EXIT_INTERNAL
        raise BadInput(problem.message)
    failure = report.failure
    if failure is not None:
        commands = [("replay", interlace_replay_command(failure.token))]
        print(failure_report(failure, commands, full=full), file=out)
        print("\nthe violation is reproduced: the schedule of this token still fails", file=out)
        return EXIT_FAILED
    assert report.trace is not None
    print(interleaving_table(report.trace, full=full), file=out)
    print("\npassed: the schedule of this token no longer fails", file=out)
    return EXIT_OK
