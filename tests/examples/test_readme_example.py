"""The README's "Test your own service": its files are these, and they pass on both databases.

The example lives in ``examples/reserve/`` (``app.py``, ``test_reserve.py``). The
README shows both files whole, each after an ``<!-- examples/reserve/NAME -->``
line; this test fails when a block and its file differ, so neither can drift. The
example's own tests run in a pytest of their own (as a user runs them), on SQLite,
and on PostgreSQL from the plugin's provider chain.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from interlace.cli import main

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "reserve"
_BLOCK = re.compile(r"<!-- (examples/reserve/[\w.]+) -->\n```python\n(.*?)```\n", re.S)
#: the test itself may use at most this many lines (the README's promise)
LINES_BEYOND_THE_APP = 60


def _blocks() -> dict[str, str]:
    return dict(_BLOCK.findall((ROOT / "README.md").read_text(encoding="utf-8")))


def test_the_readme_shows_the_example_files_as_they_are() -> None:
    blocks = _blocks()
    assert sorted(blocks) == ["examples/reserve/app.py", "examples/reserve/test_reserve.py"]
    for name, text in blocks.items():
        assert text == (ROOT / name).read_text(encoding="utf-8"), f"README's {name} differs"
    lines = (EXAMPLE / "test_reserve.py").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= LINES_BEYOND_THE_APP


def _pytest(selection: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}  # app.py: pytest puts its dir on the path
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs", "-k", selection],
        cwd=EXAMPLE,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
    )


def _passed(result: subprocess.CompletedProcess[str]) -> int:
    summary = result.stdout.strip().splitlines()
    match = re.search(r"(\d+) passed", "\n".join(summary[-3:]))
    assert result.returncode == 0 and match is not None, result.stdout + result.stderr
    assert "skipped" not in summary[-1], result.stdout
    return int(match.group(1))


def test_the_example_passes_on_sqlite_and_its_canaries_are_caught() -> None:
    # test_two_buyers, test_two_buyers_pre_fix (simulations), test_reserve, _pre_fix (marker)
    assert _passed(_pytest("sqlite")) == 4


@pytest.mark.postgres
def test_the_example_passes_on_postgres_and_its_canaries_are_caught(
    interlace_postgres: object,
) -> None:
    # the marker style's engine is made inside the schedule: the lock watch
    # (interlace.db.lock_watch) sees its row-lock waits all the same
    assert _passed(_pytest("postgres")) == 4


def test_interlace_run_explores_the_example(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(ROOT)
    monkeypatch.setattr(sys, "path", list(sys.path))
    path = "examples/reserve/test_reserve.py"
    assert main(["run", path, "--db", "sqlite", "--schedules", "10", "--no-save"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^test_reserve:test_two_buyers\[sqlite\] +10 +\d+ +passed", out, re.M), out
    assert re.search(r"^test_reserve:test_two_buyers_pre_fix\[sqlite\] .* caught", out, re.M)
    assert "1 buyers were told" not in out and "2 buyers were told they got the item" in out
