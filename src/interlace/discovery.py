"""Finding simulations: in the files under a path, and by the name a token carries.

``discover(path)`` imports every ``.py`` file under ``path`` (or the file
itself) and returns the simulations defined there, in file order, then
definition order. A file is imported under its package name: the first
directory above it without an ``__init__.py`` goes on ``sys.path``, so
``simulations/editor_chat/identical.py`` in a project with
``simulations/__init__.py`` and ``simulations/editor_chat/__init__.py`` is
the module ``simulations.editor_chat.identical`` — the name its tokens carry.

``resolve(scenario_name)`` does the reverse for ``interlace replay``: it
imports ``module`` from ``module:attribute[db]`` (with the current directory
on ``sys.path``, so run it from the project root) and returns what is there:
a simulation and its database kind, or a plain scenario.
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from interlace._core import InterlaceError
from interlace.db.supply import DatabaseKind
from interlace.scenario import Scenario, as_scenario
from interlace.simulations import Simulation, split_scenario_name

_SKIPPED_DIRECTORIES = ("__pycache__", "node_modules")


class DiscoveryError(InterlaceError):
    """Simulations cannot be found or imported; the message says where and why."""


@dataclass(frozen=True)
class Resolved:
    """What a token's scenario name designates: a simulation variant or a plain scenario."""

    simulation: Simulation | None
    database: DatabaseKind | None
    scenario: Scenario | None


def discover(path: Path) -> list[Simulation]:
    """The simulations defined in the ``.py`` files under ``path``; raises ``DiscoveryError``."""
    if not path.exists():
        raise DiscoveryError(f"no such file or directory: {path}")
    if path.is_file():
        if path.suffix != ".py":
            raise DiscoveryError(f"{path} is not a Python file; give a .py file or a directory")
        files = [path]
    else:
        files = sorted(_python_files(path))
    found: list[Simulation] = []
    for file in files:
        found.extend(simulations_in(import_file(file)))
    return found


def _python_files(directory: Path) -> list[Path]:
    files: list[Path] = []
    for root, directories, names in os.walk(directory):
        # prune in place: os.walk then skips them; sorted for a stable order
        directories[:] = sorted(
            d for d in directories if not d.startswith(".") and d not in _SKIPPED_DIRECTORIES
        )
        files.extend(Path(root) / name for name in names if name.endswith(".py"))
    return files


def simulations_in(module: ModuleType) -> list[Simulation]:
    """The simulations a module defines (not those it imports), in definition order."""
    found = []
    for attribute, value in vars(module).items():
        if not isinstance(value, Simulation) or value.module != module.__name__:
            continue
        if value.attribute != attribute:
            if getattr(module, value.attribute, None) is value:
                continue  # an alias of a simulation found under its own name
            raise DiscoveryError(
                f"simulation {value.name} is assigned to {module.__name__}.{attribute}, so "
                f"interlace replay would not find it; declare it with name={attribute!r}"
            )
        found.append(value)
    return found


def import_file(path: Path) -> ModuleType:
    """Import a ``.py`` file under its package name; raises ``DiscoveryError`` if it fails."""
    root, name = module_name(path.resolve())
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    try:
        return importlib.import_module(name)
    except Exception as error:
        raise DiscoveryError(
            f"cannot import {path} (as {name}): {type(error).__name__}: {_first_line(error)}"
        ) from error


def module_name(path: Path) -> tuple[Path, str]:
    """``(sys.path root, dotted module name)`` of a file, from the ``__init__.py`` above it."""
    parts = [] if path.name == "__init__.py" else [path.stem]
    directory = path.parent
    while (directory / "__init__.py").exists():
        parts.insert(0, directory.name)
        directory = directory.parent
    if not parts:
        raise DiscoveryError(f"cannot name a module for {path}")
    return directory, ".".join(parts)


def resolve(scenario_name: str) -> Resolved:
    """Import what ``module:attribute[db]`` names; raises ``DiscoveryError`` if there is none."""
    try:
        module_path, attribute, database = split_scenario_name(scenario_name)
    except ValueError as error:
        raise DiscoveryError(f"unknown simulation: {error}") from None
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(module_path)
    except ModuleNotFoundError as error:
        raise DiscoveryError(
            f"unknown simulation {scenario_name}: no module {error.name!r} "
            f"(run interlace from the project root, where {module_path} is importable)"
        ) from None
    except Exception as error:
        raise DiscoveryError(
            f"cannot import {module_path} for {scenario_name}: "
            f"{type(error).__name__}: {_first_line(error)}"
        ) from error
    target: object = module
    for part in attribute.split("."):
        target = getattr(target, part, None)
        if target is None:
            raise DiscoveryError(
                f"unknown simulation {scenario_name}: module {module_path} has no {attribute!r}"
            )
    if isinstance(target, Simulation):
        if database not in target.variants:
            runs_on = ", ".join(str(v) for v in target.variants if v is not None)
            raise DiscoveryError(
                f"unknown simulation {scenario_name}: {target.name} runs on "
                f"{runs_on or 'no database'}, not {database or 'without one'}"
            )
        return Resolved(target, database, None)
    if database is None and (isinstance(target, Scenario) or inspect.iscoroutinefunction(target)):
        return Resolved(None, None, as_scenario(target))
    raise DiscoveryError(
        f"unknown simulation {scenario_name}: {module_path}.{attribute} is not a simulation "
        "or a scenario"
    )


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else "(no message)"
