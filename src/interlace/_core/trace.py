"""Decisions, traces and the replay token.

A trace is the list of decisions one schedule made: at each step, which tasks
were runnable, which one ran, and the label of the point it ran from. A token
is that trace reduced to one printable line:

    interlace:v1:<scenario>:<strategy>:<seed>:<payload>

``<scenario>`` is ``module:qualname``; ``<payload>`` is URL-safe base64 of the
zlib-compressed decision list, where each decision is the chosen task's
creation index and one check byte over the runnable set and the chosen label.
The check byte lets a replay say at which step the code stopped fitting the
token instead of silently running another interleaving.
"""

from __future__ import annotations

import base64
import binascii
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from interlace._core.errors import TokenError

TOKEN_PREFIX = "interlace"
TOKEN_VERSION = "v1"
_TOKEN_SHAPE = "interlace:v1:<module>:<qualname>:<strategy>:<seed>:<decisions>"


@dataclass(frozen=True)
class Decision:
    """One scheduling decision: ``task`` ran from the point ``label``.

    ``runnable`` lists the names of the tasks that could have run, in task
    creation order; ``task_index`` is the chosen task's creation index in the
    schedule. ``preemption`` is true when the task that ran before this step
    could have continued but another one was chosen.
    """

    step: int
    task: str
    task_index: int
    label: str
    runnable: tuple[str, ...]
    preemption: bool

    def check_byte(self) -> int:
        """A byte that changes when the runnable set or the chosen label changes."""
        text = "\x1f".join((*self.runnable, self.task, self.label))
        return zlib.crc32(text.encode()) & 0xFF


@dataclass(frozen=True)
class Trace:
    """The decisions of one schedule, in order, and what reports need to show them.

    Only ``decisions`` identify a trace: the other fields are display
    metadata for renderers. They are never part of the token nor of a
    decision's check byte, and they take no part in equality: two runs of the
    same interleaving are the same trace whatever their tasks were called.
    """

    decisions: tuple[Decision, ...]
    #: structural name -> display name (``T1`` -> ``web-1 POST /chat``), for tasks that
    #: have one: given with ``interlace.lowlevel.label_task``, inherited from the task's
    #: nearest labelled ancestor, or the app's own task name (``create_task(name=...)``)
    display_names: Mapping[str, str] = field(default_factory=dict, compare=False)
    #: structural names of framework-internal tasks: tasks whose coroutine is the
    #: ORM's or a driver's own (SQLAlchemy closing a connection under asyncio.shield)
    internal_tasks: frozenset[str] = field(default_factory=frozenset, compare=False)
    #: structural names of tasks created by the final invariant checks
    invariant_tasks: frozenset[str] = field(default_factory=frozenset, compare=False)
    #: phase name -> the step at which it began (``{"invariants": 33}``: the final
    #: invariant checks began at step 33; the root's decisions from then on are theirs)
    marks: Mapping[str, int] = field(default_factory=dict, compare=False)

    @property
    def preemptions(self) -> int:
        return sum(1 for d in self.decisions if d.preemption)

    def interleaving(self) -> tuple[tuple[str, str], ...]:
        """What identifies the interleaving: the (task, label) of each decision."""
        return tuple((d.task, d.label) for d in self.decisions)

    def tasks(self) -> list[str]:
        """Task names in the order they first appear."""
        seen: dict[str, None] = {}
        for decision in self.decisions:
            for name in decision.runnable:
                seen.setdefault(name, None)
        return list(seen)

    def display_name(self, task: str) -> str:
        """The task's display name (``web-1 POST /chat``), else its structural name."""
        return self.display_names.get(task, task)


@dataclass(frozen=True)
class RecordedChoice:
    """What a token remembers of one decision."""

    task_index: int
    check: int


@dataclass(frozen=True)
class Token:
    """A decoded replay token."""

    scenario: str
    strategy: str
    seed: int
    choices: tuple[RecordedChoice, ...]

    def encode(self) -> str:
        raw = bytearray()
        for choice in self.choices:
            _put_varint(raw, choice.task_index)
            raw.append(choice.check)
        payload = base64.urlsafe_b64encode(zlib.compress(bytes(raw), 9)).decode().rstrip("=")
        return ":".join(
            (TOKEN_PREFIX, TOKEN_VERSION, self.scenario, self.strategy, str(self.seed), payload)
        )

    @staticmethod
    def from_trace(scenario: str, strategy: str, seed: int, trace: Trace) -> Token:
        choices = tuple(RecordedChoice(d.task_index, d.check_byte()) for d in trace.decisions)
        return Token(scenario, strategy, seed, choices)

    @staticmethod
    def decode(text: str) -> Token:
        """Parse a token; a malformed one raises TokenError saying what is wrong."""
        token = text.strip()
        parts = token.split(":")
        if len(parts) < 7 or parts[0] != TOKEN_PREFIX:
            raise TokenError(
                f"malformed interlace token {_shorten(token)!r}: expected {_TOKEN_SHAPE}"
            )
        if parts[1] != TOKEN_VERSION:
            raise TokenError(
                f"unsupported interlace token version {parts[1]!r}: this interlace reads "
                f"{TOKEN_VERSION} tokens; replay it with the interlace version that printed it"
            )
        payload, seed_text, strategy = parts[-1], parts[-2], parts[-3]
        scenario = ":".join(parts[2:-3])
        if not seed_text.isdigit():
            raise TokenError(
                f"malformed interlace token: seed {seed_text!r} is not a non-negative integer"
            )
        if not strategy or not scenario:
            raise TokenError(
                f"malformed interlace token {_shorten(token)!r}: expected {_TOKEN_SHAPE}"
            )
        return Token(scenario, strategy, int(seed_text), _decode_choices(payload))


def _decode_choices(payload: str) -> tuple[RecordedChoice, ...]:
    try:
        padded = payload + "=" * (-len(payload) % 4)
        raw = zlib.decompress(base64.urlsafe_b64decode(padded.encode("ascii")))
    except (binascii.Error, zlib.error, ValueError, UnicodeEncodeError) as error:
        raise TokenError(
            "malformed interlace token: its decisions do not decode "
            f"({error}); copy the whole token, it is one line"
        ) from None
    choices: list[RecordedChoice] = []
    position = 0
    while position < len(raw):
        index, position = _get_varint(raw, position)
        if position >= len(raw):
            raise TokenError("malformed interlace token: its decisions are truncated")
        choices.append(RecordedChoice(index, raw[position]))
        position += 1
    return tuple(choices)


def _put_varint(out: bytearray, value: int) -> None:
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)


def _get_varint(raw: bytes, position: int) -> tuple[int, int]:
    value = 0
    shift = 0
    while position < len(raw):
        byte = raw[position]
        position += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, position
        shift += 7
    raise TokenError("malformed interlace token: its decisions are truncated")


def _shorten(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def describe_runnable(names: Sequence[str], labels: Sequence[str]) -> str:
    """``T1 at 'SELECT tool_sessions', T2 at 'COMMIT'`` for divergence messages."""
    return ", ".join(f"{name} at {label!r}" for name, label in zip(names, labels, strict=True))
