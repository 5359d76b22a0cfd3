"""The Connector's TokenSource contract against the GitHub emulator: refresh before, one refresh + one retry on a
refused token, then the failure; a fake TokenSource stands in for integd's token manager."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from connectors.base import ApiRequest
from connectors.emulators.github import GitHubEmulator
from connectors.github import GitHubConnector
from connectors.http import HttpTransport
from domain import ApiCredential, IntegrationError, IntegrationFailure, RetryPolicy

GOOD, NEXT, BAD = "ghu_" + "a" * 36, "ghu_" + "b" * 36, "ghu_" + "c" * 36


@dataclass
class FakeTokens:
    """Hands out tokens in order; ``on_unauthorized`` moves to the next one (a refresh)."""

    tokens: list[str]
    generation: int = 0
    calls: list[str] = field(default_factory=list)

    @property
    def credential(self) -> ApiCredential:
        return ApiCredential.from_tokens(self.tokens[self.generation])

    async def ensure_fresh(self) -> None:
        self.calls.append("ensure_fresh")

    async def on_unauthorized(self, generation: int) -> bool:
        self.calls.append(f"on_unauthorized:{generation}")
        if generation != self.generation:
            return True
        if self.generation + 1 >= len(self.tokens):
            return False
        self.generation += 1
        return True


@pytest.fixture
async def emu():
    emulator = GitHubEmulator(tokens=[GOOD, NEXT], seed=1)
    await emulator.start()
    yield emulator
    await emulator.stop()


def connector(emu: GitHubEmulator, source: FakeTokens, transport: HttpTransport) -> GitHubConnector:
    return GitHubConnector(ApiCredential.from_tokens(source.tokens[0]), app_id="int_" + "0" * 32,
                           base_url=emu.base_url, transport=transport, token_source=source,
                           retry=RetryPolicy(max_retries=0, base_delay=0.01, max_delay=0.01, backoff_multiplier=2.0))


async def test_refused_token_gets_one_refresh_and_one_retry(emu):
    source = FakeTokens([BAD, NEXT])
    transport = HttpTransport()
    try:
        resp = await connector(emu, source, transport).send_request(ApiRequest("GET", "/user"))
        assert resp.status == 200 and source.generation == 1
        assert source.calls == ["ensure_fresh", "on_unauthorized:0"]
        assert emu.hits("/user") == 2
    finally:
        await transport.close()


async def test_a_second_refusal_is_the_failure(emu):
    source = FakeTokens([BAD, "ghu_" + "d" * 36, "ghu_" + "e" * 36])
    transport = HttpTransport()
    try:
        with pytest.raises(IntegrationFailure) as info:
            await connector(emu, source, transport).send_request(ApiRequest("GET", "/user"))
        assert info.value.category is IntegrationError.AUTHENTICATION_FAILED
        assert source.calls == ["ensure_fresh", "on_unauthorized:0"] and emu.hits("/user") == 2
        health = await connector(emu, FakeTokens([BAD]), transport).validate_connection()
        assert not health.ok and health.category is IntegrationError.AUTHENTICATION_FAILED
        assert GOOD not in str(info.value) and "ghu_" not in str(info.value)
    finally:
        await transport.close()
