"""The regression corpus: tokens of past failures, kept in the repository and replayed first.

One failure, one small text file (reviewable in a pull request)::

    # interlace regression: simulations.editor_chat.identical:two_processes_pre_fix[sqlite]
    # violation: InvariantViolation: final invariant violated: each assistant message ...
    # found by: interlace run --strategy random --seed 0 (schedule 1 of the run)
    interlace:v1:simulations.editor_chat.identical:two_processes_pre_fix[sqlite]:random:...

Lines starting with ``#`` are for people; the one other line is the token. The
file name is derived from the scenario and a hash of the token, so saving the
same failure twice writes the same file.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from interlace._core import InterlaceError, Token, TokenError

SUFFIX = ".token"
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


class CorpusError(InterlaceError):
    """A corpus file cannot be read as a regression; the message names the file."""


@dataclass(frozen=True)
class Regression:
    """A saved token and the file it came from."""

    path: Path
    token: str
    scenario: str


class Corpus:
    """The regression files in one directory (created when the first one is saved)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def load(self) -> list[Regression]:
        """Every regression, ordered by file name; raises ``CorpusError`` on a bad file."""
        if not self.directory.is_dir():
            return []
        return [_read(path) for path in sorted(self.directory.glob(f"*{SUFFIX}"))]

    def for_scenario(self, scenario: str) -> list[Regression]:
        """The regressions of one scenario (``module:attribute[db]``)."""
        return [r for r in self.load() if r.scenario == scenario]

    def save(self, token: str, *, headline: str, found_by: str) -> Path:
        """Write ``token`` as a regression file (idempotent); return its path."""
        scenario = Token.decode(token).scenario
        path = self.directory / file_name(scenario, token)
        if path.exists():
            return path
        self.directory.mkdir(parents=True, exist_ok=True)
        lines = [
            f"# interlace regression: {scenario}",
            *_comment("violation: ", headline),
            f"# found by: {found_by}",
            token,
            "",
        ]
        path.write_text("\n".join(lines), encoding="utf-8")
        return path


def file_name(scenario: str, token: str) -> str:
    """``pkg.mod.attribute-sqlite-<hash>.token`` for scenario ``pkg.mod:attribute[sqlite]``."""
    readable = scenario.replace(":", ".").replace("[", "-").replace("]", "")
    digest = hashlib.sha256(token.encode()).hexdigest()[:10]
    return f"{_UNSAFE.sub('_', readable)}-{digest}{SUFFIX}"


def _read(path: Path) -> Regression:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise CorpusError(f"cannot read regression file {path}: {error}") from None
    tokens = [
        line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")
    ]
    if len(tokens) != 1:
        raise CorpusError(
            f"regression file {path} must hold exactly one token line (others start with #), "
            f"found {len(tokens)}"
        )
    try:
        scenario = Token.decode(tokens[0]).scenario
    except TokenError as error:
        raise CorpusError(f"regression file {path}: {error}") from None
    return Regression(path, tokens[0], scenario)


def _comment(prefix: str, text: str, width: int = 200, lines: int = 3) -> list[str]:
    """The first ``lines`` lines of ``text`` as comments (a headline and its detail)."""
    kept = [line.strip() for line in text.strip().splitlines() if line.strip()][:lines]
    if not kept:
        kept = ["(no message)"]
    clipped = [line if len(line) <= width else line[: width - 3] + "..." for line in kept]
    return [f"# {prefix}{clipped[0]}", *(f"#   {line}" for line in clipped[1:])]
