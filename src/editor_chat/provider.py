"""The LLM provider protocol and a deterministic fake that implements it.

A provider streams the assistant's reply to a prompt as text chunks. It
signals failures the user should see as an error reply by raising
`ProviderError` (an upstream HTTP error, a refused request) or `TimeoutError`
(a read timeout); anything else is a bug and propagates.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol

if TYPE_CHECKING:
    from editor_chat.messages import Role

FailureMode = Literal["error", "timeout", "hang"]
"""How `FakeProvider` fails: raise `ProviderError`, raise `TimeoutError`, or never answer."""

DEFAULT_REPLY = "Här är ett förslag på hur du kan skriva skriptet."


@dataclass(frozen=True)
class PromptMessage:
    """One message of the conversation the provider answers."""

    role: Role
    content: str


class ProviderError(Exception):
    """The provider could not produce a reply (upstream error, refused request)."""


class ChatProvider(Protocol):
    """Something that streams an assistant reply, chunk by chunk."""

    def stream_reply(self, prompt: Sequence[PromptMessage]) -> AsyncIterator[str]:
        """Stream the reply to `prompt` (oldest message first, the question last)."""
        ...


ReplyText = str | Callable[[Sequence[PromptMessage]], str]


class FakeProvider:
    """A deterministic `ChatProvider`: a fixed (or computed) reply in equal chunks.

    - `reply`: the reply text, or a function of the prompt returning it.
    - `chunks`: into how many pieces the reply is split (at least 1).
    - `delay`: seconds awaited with `asyncio.sleep` before each chunk; the
      sleep happens even at 0, so every chunk is a point where other tasks run.
    - `failure`, `fail_after_chunks`: fail after that many chunks were sent.
      "error" raises `ProviderError`, "timeout" raises `TimeoutError`, "hang"
      waits forever (until the caller times out or cancels).

    `prompts` records every prompt it was asked to answer.

    >>> provider = FakeProvider(reply="Hej!", chunks=2, delay=0.1)
    """

    def __init__(
        self,
        *,
        reply: ReplyText = DEFAULT_REPLY,
        chunks: int = 3,
        delay: float = 0.0,
        failure: FailureMode | None = None,
        fail_after_chunks: int = 0,
    ) -> None:
        if chunks < 1:
            raise ValueError(f"chunks must be at least 1, got {chunks}")
        if delay < 0:
            raise ValueError(f"delay must not be negative, got {delay}")
        if fail_after_chunks < 0:
            raise ValueError(f"fail_after_chunks must not be negative, got {fail_after_chunks}")
        self.reply = reply
        self.chunks = chunks
        self.delay = delay
        self.failure = failure
        self.fail_after_chunks = fail_after_chunks
        self.prompts: list[tuple[PromptMessage, ...]] = []

    async def stream_reply(self, prompt: Sequence[PromptMessage]) -> AsyncIterator[str]:
        self.prompts.append(tuple(prompt))
        text = self.reply(prompt) if callable(self.reply) else self.reply
        for sent, piece in enumerate(split_evenly(text, self.chunks)):
            if self.failure is not None and sent == self.fail_after_chunks:
                await self._fail(self.failure)
            await asyncio.sleep(self.delay)
            yield piece
        if self.failure is not None and self.fail_after_chunks >= self.chunks:
            await self._fail(self.failure)

    @staticmethod
    async def _fail(failure: FailureMode) -> None:
        if failure == "error":
            raise ProviderError("fake provider: simulated upstream error (HTTP 502)")
        if failure == "timeout":
            raise TimeoutError("fake provider: simulated read timeout")
        await asyncio.Event().wait()  # "hang": nothing ever sets this event


def split_evenly(text: str, pieces: int) -> list[str]:
    """Split `text` into `pieces` consecutive parts whose lengths differ by at most one.

    >>> split_evenly("abcde", 2)
    ['abc', 'de']
    """
    size, longer = divmod(len(text), pieces)
    parts: list[str] = []
    start = 0
    for index in range(pieces):
        end = start + size + (1 if index < longer else 0)
        parts.append(text[start:end])
        start = end
    return parts
