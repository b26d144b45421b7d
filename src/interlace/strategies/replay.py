"""Replay: follow the decisions of a token, and say exactly where the code stops fitting it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from interlace._core import Candidate, Decision, Token, TokenError, describe_runnable

if TYPE_CHECKING:
    from interlace._core import Trace

_CHANGED = "the scenario or the code under test changed since the token was made"


class ReplayStrategy:
    """Runs the recorded choices of ``token`` once."""

    def __init__(self, token: Token) -> None:
        self.token = token
        self._begun = False

    @property
    def name(self) -> str:
        return self.token.strategy

    def begin(self, seed: int) -> bool:
        if self._begun:
            return False  # a token is one schedule
        self._begun = True
        return True

    def choose(
        self, step: int, runnable: Sequence[Candidate], previous: Candidate | None
    ) -> Candidate:
        choices = self.token.choices
        where = describe_runnable([c.name for c in runnable], [c.label for c in runnable])
        if step >= len(choices):
            raise TokenError(
                f"token does not fit the code: it has {len(choices)} decisions but the run "
                f"needs a decision at step {step} (runnable: {where}); {_CHANGED}"
            )
        recorded = choices[step]
        chosen = next((c for c in runnable if c.index == recorded.task_index), None)
        if chosen is None:
            raise TokenError(
                f"token does not fit the code: at step {step} it runs task "
                f"#{recorded.task_index}, which is not runnable now (runnable: {where}); "
                f"{_CHANGED}"
            )
        decision = Decision(
            step=step,
            task=chosen.name,
            task_index=chosen.index,
            label=chosen.label,
            runnable=tuple(c.name for c in runnable),
            preemption=False,
        )
        if decision.check_byte() != recorded.check:
            raise TokenError(
                f"token does not fit the code: at step {step} the runnable tasks or the "
                f"label of {chosen.name} differ from the recorded run (now: {where}); {_CHANGED}"
            )
        return chosen

    def end(self, trace: Trace) -> None:
        made = len(trace.decisions)
        recorded = len(self.token.choices)
        if made < recorded:
            raise TokenError(
                f"token does not fit the code: the run ended after {made} decisions but the "
                f"token has {recorded}; {_CHANGED}"
            )
