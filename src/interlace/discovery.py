"""Finding simulations: in the files under a path, and by the name a token carries.

``discover(path)`` imports every ``.py`` file under ``path`` (or the file
itself) and returns the simulations defined there, in file order, then
definition order. A file is imported under its package name: the first
directory above it without an ``__init__.py`` goes on ``sys.path``, so
``simulations/editor_chat/identical.py`` in a project with
``simulations/__init__.py`` and ``simulations/editor_chat/__init__.py`` is
the module ``simulations.editor_chat.identical`` — the name its tokens carry.

``resolve(scenario_name, root=...)`` does the reverse for ``interlace
replay``: it imports ``module`` from ``module:attribute[db]`` and returns
what is there: a simulation and its database kind, or a plain scenario. The
root (the project's, else the current directory) is on ``sys.path``. A
module that is not importable from there, such as a test module that pytest
imported by its file (``tests/test_shop.py`` as ``test_shop``, with
``tests/`` on its path), is looked for as a file under the root and imported
the way pytest did: under the package name of the first directory above it
without an ``__init__.py`` (pytest's ``prepend`` mode), or under its
root-relative dotted path (``importlib`` mode).
"""

from __future__ import annotations

import importlib
import importlib.util
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


def resolve(scenario_name: str, *, root: Path | None = None) -> Resolved:
    """Import what ``module:attribute[db]`` names; raises ``DiscoveryError`` if there is none."""
    try:
        module_path, attribute, database = split_scenario_name(scenario_name)
    except ValueError as error:
        raise DiscoveryError(f"unknown simulation: {error}") from None
    base = str(root) if root is not None else os.getcwd()
    if base not in sys.path:
        sys.path.insert(0, base)
    try:
        module = _import_named(module_path, Path(base))
    except ModuleNotFoundError as error:
        raise DiscoveryError(
            f"unknown simulation {scenario_name}: no module {error.name!r} "
            f"importable from {base}, nor a file of it there (run interlace in the project, "
            "or put its directory in pythonpath of [tool.interlace])"
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
    if database is None and inspect.iscoroutinefunction(target):
        required = [
            p.name
            for p in inspect.signature(target).parameters.values()
            if p.default is p.empty and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        ]
        if required:
            raise DiscoveryError(
                f"{scenario_name} takes {', '.join(required)} (pytest fixtures?), which "
                "interlace replay cannot provide: replay it with pytest, "
                "pytest PATH --interlace-replay TOKEN"
            )
    if database is None and (isinstance(target, Scenario) or inspect.iscoroutinefunction(target)):
        return Resolved(None, None, as_scenario(target))
    raise DiscoveryError(
        f"unknown simulation {scenario_name}: {module_path}.{attribute} is not a simulation "
        "or a scenario"
    )


def _import_named(module_path: str, root: Path) -> ModuleType:
    """``import module_path``; failing that, the file of that name under ``root``."""
    try:
        return importlib.import_module(module_path)
    except ModuleNotFoundError as error:
        if error.name is None or not module_path.startswith(error.name):
            raise  # the module was found; something it imports is missing
        found = _module_file(module_path, root)
        if found is None:
            raise
    file, by_package = found
    if by_package:
        return import_file(file)
    # importlib mode: the root-relative dotted path, imported from the file itself
    spec = importlib.util.spec_from_file_location(module_path, file)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_path] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[module_path]
        raise
    return module


def _module_file(module_path: str, root: Path) -> tuple[Path, bool] | None:
    """The file under ``root`` that pytest would have imported as ``module_path``.

    ``(file, True)`` when its package name is ``module_path`` (import it with
    ``import_file``), ``(file, False)`` when its root-relative dotted path is.
    """
    parts = module_path.split(".")
    tails = (Path(*parts).with_suffix(".py"), Path(*parts, "__init__.py"))
    for directory, _ in _walk(root):
        for tail in tails:
            candidate = directory / tail
            if not candidate.is_file():
                continue
            resolved = candidate.resolve()
            if module_name(resolved)[1] == module_path:
                return resolved, True
            relative = resolved.relative_to(root.resolve()).with_suffix("")
            dotted = ".".join(
                relative.parts[:-1] if relative.name == "__init__" else relative.parts
            )
            if dotted == module_path:
                return resolved, False
    return None


def _walk(root: Path) -> list[tuple[Path, list[str]]]:
    skipped = {*_SKIPPED_DIRECTORIES, "venv", "site-packages", "build", "dist"}
    found: list[tuple[Path, list[str]]] = []
    for directory, directories, names in os.walk(root):
        directories[:] = sorted(
            d for d in directories if not d.startswith(".") and d not in skipped
        )
        found.append((Path(directory), names))
    return found


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else "(no message)"
