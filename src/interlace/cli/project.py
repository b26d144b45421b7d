"""``[tool.interlace]`` in ``pyproject.toml``: a project's simulations, python path and budget.

::

    [tool.interlace]
    paths = ["simulations"]              # what `interlace run` and `interlace list` explore
    pythonpath = ["src", "tests"]        # put on sys.path first, like pytest's pythonpath
    databases = ["sqlite", "postgres"]   # default: every database each simulation declares
    schedules = 25                       # schedules per simulation and database (default 200)
    strategy = "portfolio"               # default portfolio
    seed = 0                             # default 0
    corpus = "simulations/regressions"   # regression tokens, replayed first

The file is the first ``pyproject.toml`` found from the current directory
upward; its directory is the project root, and every path in the table is
relative to it. Without one, the current directory is the root and the
defaults apply. A flag on the command line wins over the table.

Before any simulation is imported, the root and the ``pythonpath`` entries go
on ``sys.path`` (``activate``): ``interlace run`` needs no ``PYTHONPATH=.``, and
``interlace replay TOKEN`` imports the module its token names from the
project root, for a token printed by ``interlace run`` and one printed by a
pytest run alike (``interlace.discovery.resolve`` also finds a test module by
its file under the root, as pytest named it).
"""

from __future__ import annotations

import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from interlace.cli.errors import BadInput
from interlace.db.supply import DATABASE_KINDS, DatabaseKind

PYPROJECT = "pyproject.toml"
DEFAULT_PATHS = ("simulations",)
DEFAULT_CORPUS = Path("simulations") / "regressions"
_KEYS = ("paths", "pythonpath", "databases", "schedules", "strategy", "seed", "corpus")


@dataclass(frozen=True)
class Project:
    """What ``[tool.interlace]`` says, with paths made absolute against the root."""

    root: Path
    """The directory of ``pyproject.toml``, or the current directory when there is none."""
    pyproject: Path | None
    configured: bool
    """Whether the file has a ``[tool.interlace]`` table."""
    paths: tuple[Path, ...]
    pythonpath: tuple[Path, ...]
    databases: tuple[DatabaseKind, ...] | None
    """None: every database each simulation declares."""
    schedules: int | None
    strategy: str | None
    seed: int | None
    corpus: Path

    def source(self) -> str:
        """``[tool.interlace] in /repo/pyproject.toml``, for messages."""
        return f"[tool.interlace] in {_near(self.pyproject) if self.pyproject else PYPROJECT}"


def find_pyproject(start: Path) -> Path | None:
    """The first ``pyproject.toml`` in ``start`` or a directory above it."""
    for directory in (start, *start.parents):
        candidate = directory / PYPROJECT
        if candidate.is_file():
            return candidate
    return None


def load_project(start: Path | None = None) -> Project:
    """The project around ``start`` (default: the current directory); ``BadInput`` if malformed."""
    here = (start or Path.cwd()).resolve()
    pyproject = find_pyproject(here)
    if pyproject is None:
        return _project(here, None, None)
    try:
        document = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise BadInput(f"cannot read {pyproject}: {error}") from None
    table = document.get("tool", {}).get("interlace")
    if table is not None and not isinstance(table, dict):
        raise BadInput(f"{pyproject}: [tool.interlace] must be a table")
    return _project(pyproject.parent, pyproject, table)


def activate(project: Project) -> None:
    """Put the ``pythonpath`` entries, then the root, at the front of ``sys.path`` (once each)."""
    for entry in reversed((*project.pythonpath, project.root)):
        text = str(entry)
        if text not in sys.path:
            sys.path.insert(0, text)


def _project(root: Path, pyproject: Path | None, table: dict[str, Any] | None) -> Project:
    where = f"[tool.interlace] in {pyproject}"
    options = table or {}
    unknown = sorted(set(options) - set(_KEYS))
    if unknown:
        raise BadInput(
            f"{where}: unknown key {', '.join(map(repr, unknown))}; known: {', '.join(_KEYS)}"
        )
    return Project(
        root=root,
        pyproject=pyproject,
        configured=table is not None,
        paths=tuple(_near(root / p) for p in _strings(options, "paths", DEFAULT_PATHS, where)),
        pythonpath=tuple(root / p for p in _strings(options, "pythonpath", (), where)),
        databases=_databases(options, where),
        schedules=_integer(options, "schedules", where, minimum=1),
        strategy=_string(options, "strategy", where),
        seed=_integer(options, "seed", where, minimum=0),
        corpus=_near(root / _string_or(options, "corpus", str(DEFAULT_CORPUS), where)),
    )


def _near(path: Path) -> Path:
    """``path`` relative to the current directory when it is below it (shorter messages)."""
    try:
        return path.relative_to(Path.cwd().resolve())
    except ValueError:
        return path


def _strings(
    options: dict[str, Any], key: str, default: tuple[str, ...], where: str
) -> tuple[str, ...]:
    value = options.get(key, default)
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise BadInput(f"{where}: {key} must be a list of strings, got {value!r}")
    return tuple(value)


def _databases(options: dict[str, Any], where: str) -> tuple[DatabaseKind, ...] | None:
    if "databases" not in options:
        return None
    names = _strings(options, "databases", (), where)
    kinds: list[DatabaseKind] = []
    for name in names:
        kind = next((k for k in DATABASE_KINDS if k == name), None)
        if kind is None:
            raise BadInput(
                f"{where}: unknown database {name!r} in databases; "
                f"use {' or '.join(DATABASE_KINDS)}"
            )
        kinds.append(kind)
    if not kinds:
        raise BadInput(f"{where}: databases is empty; leave it out to run every declared one")
    return tuple(kinds)


def _integer(options: dict[str, Any], key: str, where: str, *, minimum: int) -> int | None:
    value = options.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise BadInput(f"{where}: {key} must be an integer of at least {minimum}, got {value!r}")
    return value


def _string(options: dict[str, Any], key: str, where: str) -> str | None:
    value = options.get(key)
    if value is not None and not isinstance(value, str):
        raise BadInput(f"{where}: {key} must be a string, got {value!r}")
    return value


def _string_or(options: dict[str, Any], key: str, default: str, where: str) -> str:
    value = _string(options, key, where)
    return default if value is None else value
