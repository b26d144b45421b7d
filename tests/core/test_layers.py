"""The core's layering, pinned: imports point down (see ARCHITECTURE.md, "One way down")."""

from __future__ import annotations

import ast
from pathlib import Path

import interlace

PACKAGE = Path(interlace.__file__).parent


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports, at module level or inside functions."""
    modules: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module is not None:
            modules.add(node.module)
        elif isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
    return modules


def test_strategies_import_only_the_core_face() -> None:
    for path in sorted((PACKAGE / "strategies").glob("*.py")):
        inner = {m for m in _imports(path) if m.startswith("interlace._core.")}
        assert not inner, f"{path.name} imports the core's modules {inner}: use interlace._core"


def test_the_core_imports_nothing_above_it() -> None:
    for path in sorted((PACKAGE / "_core").glob("*.py")):
        above = {
            m
            for m in _imports(path)
            if m.startswith("interlace") and not m.startswith("interlace._core")
        }
        assert not above, f"_core/{path.name} imports {above} from above the core"


def test_the_loop_does_not_import_the_director() -> None:
    # the loop knows the director only as a loop.Controller
    assert "interlace._core.director" not in _imports(PACKAGE / "_core" / "loop.py")
