"""The ``interlace`` command: run, replay, list, the regression corpus, and bad input."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from interlace import Outcome, Trace
from interlace.cli import Progress, main
from interlace.explore import ScheduleRecord

ROOT = Path(__file__).resolve().parents[2]

SIMULATIONS = """
import asyncio
import contextlib

import interlace
from interlace import invariants


@invariants.final("the counter counts every increment")
def counted(world):
    assert world["count"] == 2, f"count is {world['count']}, expected 2"


@contextlib.asynccontextmanager
async def counter():
    yield {"count": 0}


async def reset(world):
    world["count"] = 0


async def increments(world, lock=None):
    async def increment():
        async with lock or contextlib.nullcontext():
            value = world["count"]
            await asyncio.sleep(0)
            world["count"] = value + 1

    await asyncio.gather(increment(), increment())


@interlace.simulation(world=counter, reset=reset, invariants=(counted,), databases=())
async def locked(world):
    '''Two increments under one lock.'''
    await increments(world, asyncio.Lock())


@interlace.simulation(
    world=counter, reset=reset, invariants=(counted,), databases=(), expect_violation=True
)
async def racy_canary(world):
    '''Canary: two increments without a lock.'''
    await increments(world)
"""

RACY = """
import asyncio

import interlace
from {package}.counters import counted, counter, increments, reset


@interlace.simulation(world=counter, reset=reset, invariants=(counted,), databases=())
async def racy(world):
    await increments(world)
"""


@pytest.fixture
def project(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> Path:
    """A project directory with a package of simulations, as the current directory.

    The package name is unique per test: modules imported by one test are cached
    in ``sys.modules`` and must not stand in for another test's.
    """
    package = "sims_" + re.sub(r"\W", "_", request.node.name)
    sims = tmp_path / package
    sims.mkdir()
    (sims / "__init__.py").write_text("")
    (sims / "counters.py").write_text(SIMULATIONS)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    return sims


def _add_racy(sims: Path) -> None:
    (sims / "racy.py").write_text(RACY.format(package=sims.name))


def _token(output: str, scenario: str) -> str:
    match = re.search(rf"token: (interlace:v1:{re.escape(scenario)}:\S+)", output)
    assert match is not None, output
    return match.group(1)


def test_run_prints_a_summary_and_exits_0_when_canaries_are_caught(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(["run", str(project), "--schedules", "30"])
    out = capsys.readouterr().out
    assert status == 0, out
    name = project.name
    assert re.search(rf"^{name}.counters:locked +30 +\d+ +passed +\d+\.\d s$", out, re.M), out
    assert re.search(rf"^{name}.counters:racy_canary +\d+ +\d+ +caught \(expected\)", out, re.M)
    assert "simulation  " in out and "schedules  interleavings  verdict" in out
    assert "Expected violations found (canaries):" in out
    _token(out, f"{name}.counters:racy_canary")
    assert out.rstrip().endswith("2 simulation runs: 1 passed, 1 caught as expected, 0 failed")


def test_run_exits_1_on_a_violation_and_saves_its_token_which_is_replayed_first(
    project: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    _add_racy(project)
    corpus = tmp_path / "regressions"
    status = main(["run", str(project), "--schedules", "30", "--corpus", str(corpus)])
    out = capsys.readouterr().out
    assert status == 1
    racy = f"{project.name}.racy:racy"
    token = _token(out, racy)
    assert "InvariantViolation: final invariant violated: the counter counts every increment" in out
    assert f"replay: interlace replay '{token}'" in out
    saved = {p.read_text().splitlines()[-1] for p in corpus.glob("*.token")}
    assert token in saved  # the failure's token, reviewable in the repository
    assert len(saved) == 2  # and the canary's, its first reproducer

    status = main(["run", str(project), "--schedules", "30", "--corpus", str(corpus)])
    again = capsys.readouterr().out
    assert status == 1
    assert re.search(r"regression \S+racy\S+\.token: still fails", again)
    assert re.search(rf"^{re.escape(racy)} +- +- +REGRESSION", again, re.M)
    assert len(list(corpus.glob("*.token"))) == 2  # nothing new to save


def test_run_writes_its_verdicts_and_failures_as_json(
    project: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    _add_racy(project)
    report = tmp_path / "run.json"
    status = main(["run", str(project), "--schedules", "30", "--no-save", "--json", str(report)])
    assert status == 1
    assert f"wrote {report}" in capsys.readouterr().out
    document = json.loads(report.read_text())
    assert document["version"] == 3 and document["ok"] is False
    assert document["exit_status"] == 1 and document["interlace"]
    assert document["budget"] == {"schedules": 30, "strategy": "portfolio", "seed": 0}
    by_name = {s["scenario"].split(":")[1]: s for s in document["simulations"]}
    assert by_name["locked"]["verdict"] == "passed" and by_name["locked"]["failure"] is None
    racy = by_name["racy"]
    assert racy["verdict"] == "VIOLATION" and racy["ok"] is False
    failure = racy["failure"]
    assert failure["kind"] == "invariant" and failure["exception"] == "InvariantViolation"
    assert failure["outcome"] == "violation" and racy["outcome"] == "violation"
    assert failure["replay"] == f"interlace replay '{failure['token']}'"
    assert failure["decisions"][0] == {
        "step": 0,
        "task": "main",
        "label": "start racy",
        "runnable": ["main"],
        "preemption": False,
    }
    assert by_name["racy_canary"]["verdict"] == "caught (expected)"


def test_replay_reruns_a_token_and_prints_table_and_violation(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _add_racy(project)
    main(["run", str(project), "--schedules", "30", "--no-save"])
    token = _token(capsys.readouterr().out, f"{project.name}.racy:racy")
    status = main(["replay", token])
    out = capsys.readouterr().out
    assert status == 1
    assert out.startswith(f"replaying {project.name}.racy:racy\n")
    assert "InvariantViolation: final invariant violated: the counter counts every increment" in out
    assert "step | main" in out and "* = preemption)" in out
    assert "the violation is reproduced" in out


def test_list_names_the_simulations(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", str(project)]) == 0
    out = capsys.readouterr().out
    name = project.name
    assert re.search(
        rf"^{name}.counters:locked +\[-\] +Two increments under one lock\.$", out, re.M
    )
    assert re.search(rf"^{name}.counters:racy_canary +\[-\] +canary +Canary: two", out, re.M)


# ---- bad input: one line on stderr, exit status 2 ------------------------------------


def _one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("interlace: error: ")
    return lines[0]


def test_a_malformed_token_is_one_line_and_status_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["replay", "interlace:v1:nope"]) == 2
    assert "malformed interlace token 'interlace:v1:nope'" in _one_line_error(capsys)


def test_an_unknown_simulation_is_one_line_and_status_2(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    token = "interlace:v1:no_such_package.mod:sim[sqlite]:random:1:eJwDAAAAAAE"
    assert main(["replay", token]) == 2
    assert "unknown simulation no_such_package.mod:sim[sqlite]: no module" in _one_line_error(
        capsys
    )
    token = f"interlace:v1:{project.name}.counters:missing:random:1:eJwDAAAAAAE"
    assert main(["replay", token]) == 2
    assert f"module {project.name}.counters has no 'missing'" in _one_line_error(capsys)
    token = f"interlace:v1:{project.name}.counters:locked[postgres]:random:1:eJwDAAAAAAE"
    assert main(["replay", token]) == 2
    assert "runs on no database, not postgres" in _one_line_error(capsys)


def test_a_token_that_no_longer_fits_is_one_line_and_status_2(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    main(["run", str(project), "--schedules", "30", "--no-save"])
    token = _token(capsys.readouterr().out, f"{project.name}.counters:racy_canary")
    other = token.replace(":racy_canary:", ":locked:")
    assert main(["replay", other]) == 2
    assert "interlace: error: " in _one_line_error(capsys)


def test_no_simulations_found_is_one_line_and_status_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["run", str(empty)]) == 2
    assert "no simulations found under" in _one_line_error(capsys)
    assert main(["run", str(tmp_path / "absent")]) == 2
    assert "no such file or directory" in _one_line_error(capsys)
    assert main(["list", str(empty)]) == 2
    assert "no simulations found under" in _one_line_error(capsys)


def test_an_unreachable_database_is_one_line_and_status_2(
    project: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (project / "on_postgres.py").write_text(
        "import interlace\n\n"
        "@interlace.simulation(databases=('postgres',))\n"
        "async def needs_postgres(database):\n"
        "    pass\n"
    )
    monkeypatch.setenv("INTERLACE_POSTGRES", "url")
    monkeypatch.setenv("INTERLACE_POSTGRES_URL", "postgresql://nobody@127.0.0.1:1/nothing")
    assert main(["run", str(project), "--db", "postgres"]) == 2
    line = _one_line_error(capsys)
    assert "no PostgreSQL server available (INTERLACE_POSTGRES_URL: cannot connect" in line


def test_a_bad_corpus_file_is_one_line_and_status_2(
    project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "broken.token").write_text("# no token here\n")
    assert main(["run", str(project), "--corpus", str(corpus)]) == 2
    assert "broken.token must hold exactly one token line" in _one_line_error(capsys)


def _console_script() -> list[str]:
    # the installed `interlace` script next to this interpreter, else the module behind it
    script = Path(sys.executable).with_name("interlace")
    return [str(script)] if script.exists() else [sys.executable, "-m", "interlace.cli"]


def test_the_console_script_runs_in_a_subprocess_with_its_exit_status(project: Path) -> None:
    command = [*_console_script(), "replay", "not-a-token"]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.strip() == (
        "interlace: error: malformed interlace token 'not-a-token': expected "
        "interlace:v1:<module>:<qualname>:<strategy>:<seed>:<decisions>"
    )


# ---- the editor-chat simulations ------------------------------------------------------


def test_run_on_the_editor_chat_simulations_finds_the_pre_fix_race(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(ROOT)
    status = main(["run", "simulations/editor_chat/identical.py", "--schedules", "5", "--no-save"])
    out = capsys.readouterr().out
    assert status == 0, out
    assert re.search(r"identical:two_processes\[sqlite\] +5 +\d+ +passed", out)
    assert re.search(r"identical:two_processes_pre_fix\[sqlite\] +\d+ +\d+ +caught", out)
    assert (
        "token: interlace:v1:simulations.editor_chat.identical:two_processes_pre_fix[sqlite]" in out
    )


def test_replay_of_a_committed_token_reproduces_the_pre_fix_race(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(ROOT)
    regressions = sorted(
        (ROOT / "simulations" / "regressions").glob("*two_processes_pre_fix-sqlite*")
    )
    assert regressions, "the SQLite canary's token is committed"
    token = regressions[0].read_text().splitlines()[-1]
    assert main(["replay", token]) == 1
    out = capsys.readouterr().out
    assert "InvariantViolation: final invariant violated: each assistant message's" in out
    assert re.search(r"^ +\d+ \| +\| +\| UPDATE tool_sessions", out, re.M), out
    assert f"replay: interlace replay '{token}'" in out


def test_an_unknown_strategy_is_one_line_and_status_2(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", str(project), "--strategy", "clever"]) == 2
    assert "unknown strategy 'clever'" in _one_line_error(capsys)


def test_progress_is_a_line_now_and_then_off_a_terminal() -> None:
    stream = io.StringIO()
    progress = Progress("sims.chat:race[sqlite]", 200, stream, every=0.0)
    trace = Trace(())
    progress.update(
        ScheduleRecord(index=41, seed=1, trace=trace, outcome=Outcome.PASSED, error=None)
    )
    progress.clear()
    assert stream.getvalue().startswith("  sims.chat:race[sqlite]: 42/200 schedules, ")
    assert stream.getvalue().endswith(" s)\n") and stream.getvalue().count("\n") == 1


def test_help_lists_the_commands() -> None:
    result = subprocess.run(
        [*_console_script(), "--help"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0
    for command in ("run", "replay", "list"):
        assert re.search(rf"^    {command} +\S", result.stdout, re.M), result.stdout
    assert result.stderr == ""


BROKEN = """
import asyncio
import json

import interlace
from {package}.counters import counted, counter, reset


def parse_settings(text):
    return json.loads(text)  # the application's line; the error is raised inside json


@interlace.simulation(world=counter, reset=reset, invariants=(counted,), databases=())
async def broken(world):
    async def request():
        await asyncio.sleep(0)
        parse_settings("{{")

    await asyncio.gather(request(), request())
"""


def _section(out: str, title: str, end: str) -> str:
    start = out.index(title)
    return out[start : out.index(end, start + len(title))]


def test_run_says_each_headline_once_and_shows_the_canary_s_table(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _add_racy(project)
    assert main(["run", str(project), "--schedules", "30", "--no-save"]) == 1
    out = capsys.readouterr().out
    headline = "InvariantViolation: final invariant violated: the counter counts every increment"
    failures = _section(out, "\nFailures:", "simulation runs:")
    assert failures.count(headline) == 1, failures
    assert failures.count("count is") == 1  # the headline's second line, once too
    canaries = _section(out, "Expected violations found (canaries):", "\nFailures:")
    assert canaries.count(headline) == 1, canaries
    assert "  step | main" in canaries and "* = preemption)" in canaries
    assert "  (1 row hidden: 1 setup; --full shows them)" in canaries
    assert "start racy_canary" not in canaries  # the setup row is folded
    assert re.search(r"^  token: interlace:v1:\S+racy_canary", canaries, re.M)


def test_run_full_shows_the_folded_rows(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", str(project), "--schedules", "30", "--no-save", "--full"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^     0 \| start racy_canary", out, re.M), out
    assert "shows them)" not in out


def test_replay_full_shows_the_folded_rows(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _add_racy(project)
    main(["run", str(project), "--schedules", "30", "--no-save"])
    token = _token(capsys.readouterr().out, f"{project.name}.racy:racy")
    assert main(["replay", token]) == 1
    folded = capsys.readouterr().out
    assert "(1 row hidden: 1 setup; --full shows them)" in folded
    assert "start racy" not in folded
    assert main(["replay", token, "--full"]) == 1
    full = capsys.readouterr().out
    assert re.search(r"^   0 \| start racy", full, re.M) and "hidden" not in full


def test_an_application_error_is_raised_at_the_application_s_frame(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (project / "broken.py").write_text(BROKEN.format(package=project.name))
    assert main(["run", str(project), "--schedules", "5", "--no-save", "-k", "broken"]) == 1
    out = capsys.readouterr().out
    assert out.count("JSONDecodeError: Expecting property name") == 1, out
    lines = out.splitlines()
    where = lines.index("  raised at:")
    assert lines[where + 1].endswith("in parse_settings"), out
    assert str(project / "broken.py") in lines[where + 1]
    assert "  then, in libraries (innermost last):" in lines[where + 2 : where + 5]
