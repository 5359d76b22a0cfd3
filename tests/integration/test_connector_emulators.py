"""The three connectors against the real emulators over loopback HTTP: auth, health, pagination, faults.

Time: the emulator and the connector share one FakeClock, and the connector's sleep moves it, so Retry-After
and backoff waits cost nothing and windows and reset headers agree on what "now" is.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from connectors.base import ApiRequest, CallRecord, Connector
from connectors.emulators import EMULATORS
from connectors.factory import build_connector
from connectors.http import HttpTransport
from domain.clock import FakeClock
from domain.errors import IntegrationError, IntegrationFailure
from domain.model import ApiCredential
from domain.values import ApiKey, RetryPolicy

TOKENS = {"github": "ghp_good0000000000000000000000000000001",
          "slack": "xoxb-good-000000000000-0000000000001",
          "sendgrid": "SG.goodKeyId.goodSecret0000000000000000001"}
OTHER = {"github": "ghp_revoke000000000000000000000000000002",
         "slack": "xoxb-revoke-00000000000-0000000000002",
         "sendgrid": "SG.revokedId.revokedSecret00000000000000002"}
IDENTITY_PATH = {"github": "/user", "slack": "/auth.test", "sendgrid": "/scopes"}
LISTS = {   # a paginated list request, how to count its items, and how many items the emulator (seed 1) has
    "github": (ApiRequest("GET", "/user/repos", params={"per_page": 10}), len, 45),
    "slack": (ApiRequest("GET", "/conversations.list", params={"limit": 15, "types": "public_channel,private_channel"}),
              lambda b: len(b["channels"]), 40),
    "sendgrid": (ApiRequest("GET", "/suppression/bounces", params={"limit": 50}), len, 137),
}
UNKNOWN_REASON = {"github": "GitHub: Bad credentials (401)", "slack": "Slack: invalid_auth (the token is not valid)",
                  "sendgrid": "SendGrid: The provided authorization grant is invalid, expired, or revoked (401)"}
REVOKED_REASON = {"github": "Bad credentials", "slack": "token_revoked",
                  "sendgrid": "invalid, expired, or revoked"}
SERVICES = sorted(TOKENS)


@dataclass
class Env:
    service: str
    emu: object
    base_url: str
    transport: HttpTransport
    clock: FakeClock
    sleeps: list[float] = field(default_factory=list)
    records: list[CallRecord] = field(default_factory=list)

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.clock.advance(seconds)
        await asyncio.sleep(0)

    def connector(self, token: str | None = None, **kw) -> Connector:
        cred = ApiCredential.from_api_key(ApiKey(token or TOKENS[self.service]))
        kw.setdefault("base_url", self.base_url)
        return build_connector(self.service, cred, app_id="int_test", transport=self.transport,
                               observer=self.records.append, clock=self.clock, sleep=self.sleep, **kw)


@pytest.fixture(params=SERVICES)
async def env(request) -> AsyncIterator[Env]:
    service = request.param
    clock = FakeClock()
    emu = EMULATORS[service](tokens=[TOKENS[service]], seed=1, clock=clock.time)
    base_url = await emu.start(host="127.0.0.1", port=0)
    transport = HttpTransport()
    try:
        yield Env(service, emu, base_url, transport, clock)
    finally:
        await transport.close()
        await emu.stop()


def assert_no_secret(env: Env, exc: BaseException) -> None:
    for token in (TOKENS[env.service], OTHER[env.service]):
        assert token not in str(exc) and token not in repr(exc)


# ---- authenticate and validate_connection ------------------------------------------------------------------

async def test_authenticate_with_a_good_key_returns_the_identity(env):
    identity = await env.connector().authenticate()
    assert identity.account_id and identity.display
    assert TOKENS[env.service] not in repr(identity)
    if env.service == "github":
        assert identity.details["login"] in identity.display and "repo" in identity.details["scopes"]
    elif env.service == "slack":
        assert identity.details["bot_id"].startswith("B") and identity.account_id.startswith("T")
    else:
        assert "mail.send" in identity.details["scopes"] and identity.details["username"] in identity.display


async def test_authenticate_with_an_unknown_key_fails_with_the_providers_reason(env):
    with pytest.raises(IntegrationFailure) as info:
        await env.connector(OTHER[env.service]).authenticate()
    assert info.value.category is IntegrationError.AUTHENTICATION_FAILED
    assert str(info.value) == UNKNOWN_REASON[env.service]
    assert env.emu.hits(IDENTITY_PATH[env.service]) == 1          # never retried
    assert_no_secret(env, info.value)


async def test_authenticate_with_a_revoked_key_fails(env):
    env.emu.add_token(OTHER[env.service])
    connector = env.connector(OTHER[env.service])
    await connector.authenticate()
    env.emu.revoke(OTHER[env.service])
    with pytest.raises(IntegrationFailure) as info:
        await connector.authenticate()
    assert info.value.category is IntegrationError.AUTHENTICATION_FAILED
    assert REVOKED_REASON[env.service] in str(info.value)
    assert_no_secret(env, info.value)


async def test_validate_connection_ok_and_failing(env):
    ok = await env.connector().validate_connection()
    assert ok.ok and ok.status == 200 and ok.category is None and ok.latency >= 0
    bad = await env.connector(OTHER[env.service]).validate_connection()
    assert not bad.ok and bad.category is IntegrationError.AUTHENTICATION_FAILED
    assert bad.message == UNKNOWN_REASON[env.service]
    env.emu.faults.error_rate = 1.0
    before = env.emu.hits(IDENTITY_PATH[env.service])
    down = await env.connector().validate_connection()
    assert not down.ok and down.category is IntegrationError.SERVICE_UNAVAILABLE
    assert env.emu.hits(IDENTITY_PATH[env.service]) == before + 1   # one check, no retries
    assert env.sleeps == []


async def test_validate_connection_against_something_that_is_not_the_provider(env):
    wrong = env.connector(base_url=env.emu.origin + "/nothing-here")
    result = await wrong.validate_connection()
    assert not result.ok and result.category is IntegrationError.INVALID_CONFIGURATION
    assert "check the base URL" in result.message


# ---- send_request ------------------------------------------------------------------------------------------

async def test_next_page_walk_collects_every_item(env):
    request, count, total = LISTS[env.service]
    connector = env.connector()
    pages = [page async for page in connector.pages(request)]
    assert sum(count(p.body) for p in pages) == total
    assert len(pages) == -(-total // int(next(iter(request.params.values()))))
    assert pages[-1].next_page() is None
    assert all(p.status == 200 and p.attempts == 1 for p in pages)


async def test_error_rate_one_gives_service_unavailable_after_one_plus_three_attempts(env):
    request = LISTS[env.service][0]
    env.emu.faults.error_rate = 1.0
    with pytest.raises(IntegrationFailure) as info:
        await env.connector().send_request(request, interactive=False)
    assert info.value.category is IntegrationError.SERVICE_UNAVAILABLE
    assert env.emu.hits(request.path) == 4
    assert len(env.sleeps) == 3 and all(1 <= w <= 5 for w in env.sleeps)
    assert [(r.attempt, r.outcome) for r in env.records] == [(n, "service_down") for n in (1, 2, 3, 4)]


async def test_connection_resets_give_network_error(env):
    request = LISTS[env.service][0]
    env.emu.faults.reset_rate = 1.0
    with pytest.raises(IntegrationFailure) as info:
        await env.connector(retry=RetryPolicy(max_retries=1)).send_request(request, interactive=False)
    assert info.value.category is IntegrationError.NETWORK_ERROR
    assert "127.0.0.1" in str(info.value) and request.path in str(info.value)
    assert [r.status for r in env.records] == [None, None]
    # aiohttp itself resends an idempotent request once when the server drops the connection (RFC 9112
    # §9.3.1, ClientSession._retry_connection), so each of our two attempts reaches the emulator twice
    assert env.emu.hits(request.path) == 4


async def test_rate_limit_burst_is_retried_then_succeeds(env):
    request = LISTS[env.service][0]
    env.emu.faults.rate_limit_burst = 2
    resp = await env.connector().send_request(request, interactive=False)
    assert resp.status == 200 and resp.attempts == 3
    assert [r.outcome for r in env.records] == ["rate_limit", "rate_limit", "ok"]
    if env.service in ("github", "slack"):
        assert env.sleeps == [1.0, 1.0]                      # the emulator's Retry-After: 1
    else:
        assert len(env.sleeps) == 2 and all(0 < w <= 60 for w in env.sleeps)   # until X-RateLimit-Reset


async def test_a_call_record_per_attempt_with_secret_query_values_removed(env):
    request = LISTS[env.service][0].with_params(access_token="plain-secret-value")
    env.emu.faults.rate_limit_burst = 1
    await env.connector().send_request(request, interactive=False)
    assert len(env.records) == 2
    for n, record in enumerate(env.records, start=1):
        assert record.attempt == n and record.service == env.service and record.app_id == "int_test"
        assert "access_token=[redacted]" in record.path and "plain-secret-value" not in record.path
        assert record.method == request.method and record.latency >= 0
    assert env.records[0].status in (403, 429) and env.records[0].error
    assert env.records[1].status == 200 and env.records[1].error is None


async def test_interactive_call_does_not_wait_out_a_long_provider_block(env):
    request = LISTS[env.service][0]
    env.emu.faults.rate_limit_burst = 1
    env.emu.faults.burst_retry_after = 120
    with pytest.raises(IntegrationFailure) as info:
        await env.connector().send_request(request, interactive=True)
    assert info.value.category is IntegrationError.RATE_LIMIT_EXCEEDED
    assert info.value.retry_after > 5
    assert env.sleeps == [] and env.emu.hits(request.path) == 1


async def test_timeouts_are_network_errors(env):
    env.emu.faults.latency = 0.3
    with pytest.raises(IntegrationFailure) as info:
        await env.connector(timeout=0.05, retry=RetryPolicy.none()).authenticate()
    assert info.value.category is IntegrationError.NETWORK_ERROR
    assert "timed out after 0.05s" in str(info.value)
