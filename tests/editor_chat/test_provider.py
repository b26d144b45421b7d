from __future__ import annotations

import asyncio

import pytest

from editor_chat import FakeProvider, PromptMessage, ProviderError
from editor_chat.provider import split_evenly

PROMPT = [PromptMessage(role="user", content="Hej")]


async def collect(provider: FakeProvider) -> list[str]:
    return [chunk async for chunk in provider.stream_reply(PROMPT)]


def test_split_evenly_keeps_the_text_and_balances_lengths() -> None:
    assert split_evenly("abcdefg", 3) == ["abc", "de", "fg"]
    assert split_evenly("ab", 4) == ["a", "b", "", ""]
    assert "".join(split_evenly("Hej på dig", 4)) == "Hej på dig"


@pytest.mark.asyncio
async def test_streams_the_reply_in_the_configured_number_of_chunks() -> None:
    provider = FakeProvider(reply="Hej på dig!", chunks=4)
    chunks = await collect(provider)
    assert len(chunks) == 4
    assert "".join(chunks) == "Hej på dig!"
    assert provider.prompts == [tuple(PROMPT)]


@pytest.mark.asyncio
async def test_reply_can_be_computed_from_the_prompt() -> None:
    provider = FakeProvider(reply=lambda prompt: f"Svar på: {prompt[-1].content}", chunks=1)
    assert await collect(provider) == ["Svar på: Hej"]


@pytest.mark.asyncio
async def test_sleeps_the_configured_delay_before_every_chunk(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    delays: list[float] = []
    real_sleep = asyncio.sleep

    async def recording_sleep(delay: float) -> None:
        delays.append(delay)
        await real_sleep(0)

    monkeypatch.setattr(asyncio, "sleep", recording_sleep)
    await collect(FakeProvider(chunks=3, delay=0.25))
    assert delays == [0.25, 0.25, 0.25]


@pytest.mark.asyncio
async def test_error_after_some_chunks() -> None:
    provider = FakeProvider(reply="abcd", chunks=2, failure="error", fail_after_chunks=1)
    received: list[str] = []
    with pytest.raises(ProviderError, match="simulated upstream error"):
        async for chunk in provider.stream_reply(PROMPT):
            received.append(chunk)
    assert received == ["ab"]


@pytest.mark.asyncio
async def test_failure_after_the_last_chunk() -> None:
    provider = FakeProvider(reply="abcd", chunks=2, failure="timeout", fail_after_chunks=2)
    received: list[str] = []
    with pytest.raises(TimeoutError, match="simulated read timeout"):
        async for chunk in provider.stream_reply(PROMPT):
            received.append(chunk)
    assert received == ["ab", "cd"]


@pytest.mark.asyncio
async def test_hang_never_answers() -> None:
    provider = FakeProvider(failure="hang")
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.01):
            await collect(provider)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"chunks": 0}, "chunks"),
        ({"delay": -1.0}, "delay"),
        ({"fail_after_chunks": -1}, "fail_after_chunks"),
    ],
)
def test_rejects_nonsense_settings(settings: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        FakeProvider(**settings)  # type: ignore[arg-type]
