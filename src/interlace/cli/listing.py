"""``interlace list``: the simulations found under a path."""

from __future__ import annotations

import argparse
from typing import TextIO

from interlace.cli.errors import EXIT_OK, BadInput
from interlace.cli.project import activate, load_project
from interlace.cli.run import discover_all


def list_simulations(arguments: argparse.Namespace, out: TextIO) -> int:
    project = load_project()
    activate(project)
    paths = tuple(arguments.paths) or project.paths
    found = discover_all(paths)
    if arguments.db is not None:
        found = [s for s in found if arguments.db in s.variants or s.variants == (None,)]
    if not found:
        raise BadInput(
            f"no simulations found under {', '.join(map(str, paths))}"
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
