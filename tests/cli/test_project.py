"""``[tool.interlace]``: run and replay from anywhere in a project, with the table and without."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from interlace.cli import main
from interlace.cli.project import load_project

ROOT = Path(__file__).resolve().parents[2]

# a helper library on the project's python path (not importable without it)
LIBRARY = """
import asyncio


async def increments(world, lock=None):
    async def increment():
        if lock is not None:
            await lock.acquire()
        value = world["count"]
        await asyncio.sleep(0)
        world["count"] = value + 1
        if lock is not None:
            lock.release()

    await asyncio.gather(increment(), increment())
"""

SIMULATIONS = """
import asyncio
import contextlib

import interlace
from interlace import invariants
from {library} import increments


@invariants.final("the counter counts every increment")
def counted(world):
    assert world["count"] == 2, f"count is {{world['count']}}, expected 2"


@contextlib.asynccontextmanager
async def counter():
    yield {{"count": 0}}


async def reset(world):
    world["count"] = 0


@interlace.simulation(world=counter, reset=reset, invariants=(counted,), databases=())
async def locked(world):
    await increments(world, asyncio.Lock())


@interlace.simulation(world=counter, reset=reset, invariants=(counted,), databases=())
async def racy(world):
    await increments(world)
"""


@pytest.fixture
def names(request: pytest.FixtureRequest) -> tuple[str, str]:
    """Module names unique to the test: sys.modules keeps what earlier tests imported."""
    suffix = re.sub(r"\W", "_", request.node.name)
    return f"lib_{suffix}", f"sims_{suffix}"


def _project(root: Path, names: tuple[str, str], table: str | None) -> None:
    library, package = names
    (root / "src").mkdir()
    (root / "src" / f"{library}.py").write_text(LIBRARY)
    sims = root / "checks" / package
    sims.mkdir(parents=True)
    (sims / "__init__.py").write_text("")
    (sims / "counters.py").write_text(SIMULATIONS.format(library=library))
    if table is not None:
        (root / "pyproject.toml").write_text(f"[project]\nname = 'shop'\n\n{table}")


def _token(output: str) -> str:
    match = re.search(r"(interlace:v1:\S+?)'?$", output, re.M)
    assert match is not None, output
    return match.group(1)


def test_run_and_replay_anywhere_in_a_project_with_tool_interlace(
    tmp_path: Path,
    names: tuple[str, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    table = """
[tool.interlace]
paths = ["checks"]
pythonpath = ["src"]
schedules = 7
corpus = "checks/regressions"
"""
    _project(tmp_path, names, table)
    deep = tmp_path / "docs" / "deep"
    deep.mkdir(parents=True)
    monkeypatch.chdir(deep)  # the project is found upward, like pytest's rootdir
    monkeypatch.setattr(sys, "path", list(sys.path))
    status = main(["run"])
    out = capsys.readouterr().out
    assert status == 1, out
    assert "budget: 7 schedules per simulation and database ([tool.interlace] in " in out
    assert re.search(rf"^{names[1]}.counters:locked +7 +\d+ +passed", out, re.M), out
    assert re.search(rf"^{names[1]}.counters:racy +\d+ +\d+ +VIOLATION", out, re.M), out
    saved = list((tmp_path / "checks" / "regressions").glob("*.token"))
    assert len(saved) == 1  # the corpus of [tool.interlace]
    token = saved[0].read_text().splitlines()[-1]
    monkeypatch.chdir(tmp_path)
    assert main(["replay", token]) == 1
    assert "the violation is reproduced" in capsys.readouterr().out
    assert main(["list"]) == 0
    assert f"{names[1]}.counters:racy" in capsys.readouterr().out


def test_run_without_tool_interlace_uses_the_defaults_and_the_current_directory(
    tmp_path: Path,
    names: tuple[str, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _project(tmp_path, names, None)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    # no pythonpath: the helper library is not importable
    assert main(["run", "checks", "--no-save"]) == 2
    assert f"No module named '{names[0]}'" in capsys.readouterr().err
    monkeypatch.syspath_prepend(str(tmp_path / "src"))
    assert main(["run", "checks", "-k", "locked", "--no-save"]) == 0
    out = capsys.readouterr().out
    assert "budget: 200 schedules per simulation and database (the default; " in out
    assert re.search(rf"^{names[1]}.counters:locked +200 ", out, re.M), out
    assert load_project().pyproject is None


def test_tool_interlace_errors_are_one_line_and_status_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    for table, said in [
        ("schedules = 0", "schedules must be an integer of at least 1"),
        ("databases = ['mysql']", "unknown database 'mysql'"),
        ("budget = 3", "unknown key 'budget'"),
    ]:
        (tmp_path / "pyproject.toml").write_text(f"[tool.interlace]\n{table}\n")
        assert main(["run"]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("interlace: error: [tool.interlace] in ") and said in err, err
        assert len(err.splitlines()) == 1


POSTGRES_AND_SQLITE = """
import interlace


@interlace.simulation(databases=("sqlite", "postgres"))
async def on_both(database):
    assert database.url


@interlace.simulation(databases=("postgres",))
async def postgres_only(database):
    assert database.kind == "postgres"
"""


def test_run_explores_every_declared_database_unless_db_narrows_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    package = tmp_path / "dbsims_every_declared"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "sims.py").write_text(POSTGRES_AND_SQLITE)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    assert main(["run", "--db", "sqlite", str(package), "--no-save"]) == 0
    out = capsys.readouterr().out
    assert "on_both[sqlite]" in out and "[postgres]" not in out
    # without --db the PostgreSQL variants run too: a server is needed (here: none)
    monkeypatch.setenv("INTERLACE_POSTGRES", "url")
    monkeypatch.setenv("INTERLACE_POSTGRES_URL", "postgresql://nobody@127.0.0.1:1/nothing")
    assert main(["run", str(package), "--no-save"]) == 2
    assert "no PostgreSQL server available" in capsys.readouterr().err
    (tmp_path / "pyproject.toml").write_text("[tool.interlace]\ndatabases = ['sqlite']\n")
    assert main(["run", str(package), "--no-save"]) == 0
    out = capsys.readouterr().out
    assert "on sqlite\n" in out and "postgres_only" not in out


PYTEST_MADE = """
import asyncio

import interlace
import pytest
from interlace import invariants

from {library} import increments

STATE = {{"count": 0}}


@invariants.final("the counter counts every increment")
def counted(world):
    assert world["count"] == 2, f"count is {{world['count']}}"


async def reset(world):
    world["count"] = 0


async def _world():
    yield STATE


@interlace.simulation(
    world=__import__("contextlib").asynccontextmanager(_world),
    reset=reset,
    invariants=(counted,),
    databases=(),
)
async def test_racy_simulation(world):
    await increments(world)


@pytest.mark.interlace(schedules=50)
async def test_racy_marker():
    world = {{"count": 0}}
    await increments(world)
    assert world["count"] == 2, "lost update"
"""


def test_replay_from_the_project_root_of_tokens_a_pytest_run_printed(
    tmp_path: Path,
    names: tuple[str, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    library, _ = names
    _project(tmp_path, names, '[tool.interlace]\npythonpath = ["src"]\n')
    tests = tmp_path / "tests"
    tests.mkdir()
    module = f"test_made_{library}"
    (tests / f"{module}.py").write_text(PYTEST_MADE.format(library=library))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(tmp_path / "src")])}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"tests/{module}.py"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    tokens = sorted(set(re.findall(r"interlace:v1:[^\s']+", result.stdout)))
    simulation = next(t for t in tokens if ":test_racy_simulation:" in t)
    marker = next(t for t in tokens if ":test_racy_marker:" in t)
    assert simulation.startswith(f"interlace:v1:{module}:")  # pytest named it by its file
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    for token in (simulation, marker):
        assert main(["replay", token]) == 1, token
        out = capsys.readouterr().out
        assert "the violation is reproduced" in out
