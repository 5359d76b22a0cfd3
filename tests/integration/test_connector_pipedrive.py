"""Pipedrive connector against its emulator over loopback: both auth modes (API token in x-api-token, OAuth with
api_domain from the token answer as the API host), health, the token-budget rate model learnt by the gate (burst
headers, the company's daily token budget, 429 with Retry-After), each error class from Pipedrive's bodies.

Time: emulator, gate and connector share one FakeClock; sleeps move it, so nothing waits.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from connectors.base import ApiRequest, Connector
from connectors.emulators import PipedriveEmulator
from connectors.factory import build_connector
from connectors.http import HttpTransport
from connectors.limits import CallGate, MemoryQuotaStore
from connectors.oauth import oauth_provider, protocol
from connectors.oauth.client import OAuthClient
from connectors.oauth.protocol import ClientCredentials, GrantInvalid
from connectors.pipedrive import split_base
from domain.clock import FakeClock
from domain.errors import IntegrationError, IntegrationFailure, RateLimitExceededException
from domain.model import ApiCredential
from domain.values import ApiKey, RateLimit, RetryPolicy
from tests.integration.connector_env import ConnectorEnv

TOKEN = "pd-api-token-0000000000000000000000000001"
OTHER = "pd-api-token-0000000000000000000000000002"
CLIENT = ClientCredentials("pd-client-id", "pd-client-secret")
REDIRECT = "http://127.0.0.1:47123/callback"
AUTH, RATE = IntegrationError.AUTHENTICATION_FAILED, IntegrationError.RATE_LIMIT_EXCEEDED
ME = ApiRequest("GET", "/api/v1/users/me")


class Env(ConnectorEnv):
    service = "pipedrive"

    def connector(self, credential: ApiCredential | None = None, **kw: Any) -> Connector:
        kw.setdefault("base_url", self.emu.base_url)
        return self.build(credential or ApiCredential.from_api_key(ApiKey(TOKEN)), app_id="int_pd", **kw)

    def gate(self) -> CallGate:
        # far looser than Pipedrive: whatever holds calls back was learnt from the provider
        return CallGate("int_pd", RateLimit(per_minute=60000, burst=1000), store=MemoryQuotaStore(),
                        clock=self.clock, sleep=self.sleep)


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    clock = FakeClock(1_700_000_000.0)        # 6,400 s before UTC midnight
    emu = PipedriveEmulator(tokens=[TOKEN], seed=1, clock=clock.time, options={"deals": 20})
    emu.oauth.register_client(CLIENT.client_id, CLIENT.secret, [REDIRECT])
    await emu.start()
    transport = HttpTransport()
    try:
        yield Env(emu, transport, clock)
    finally:
        await transport.close()
        await emu.stop()


async def failure(coro: Any) -> IntegrationFailure:
    with pytest.raises(IntegrationFailure) as info:
        await coro
    return info.value


# ---- auth modes and health ----------------------------------------------------------------------------------

async def test_api_token_connects_and_health_is_ok(env: Env) -> None:
    connector = env.connector()
    identity = await connector.authenticate()
    assert identity.details["company_domain"] == "emulated-co" and "@" in identity.display
    assert TOKEN not in repr(identity)
    health = await connector.validate_connection()
    assert health.ok and health.status == 200
    assert env.emu.hits("/api/v1/users/me") == 2


async def test_oauth_token_and_api_domain_become_the_api_host(env: Env) -> None:
    provider = oauth_provider("pipedrive")
    assert provider.token_url == "https://oauth.pipedrive.com/oauth/token" and not provider.pkce
    provider = provider.with_auth_base(env.emu.origin)
    state = protocol.new_state()
    url = protocol.authorization_url(provider, CLIENT.client_id, REDIRECT, provider.default_scopes, state, None)
    async with aiohttp.ClientSession() as browser, browser.get(url, allow_redirects=False) as answer:
        location = answer.headers["Location"]
    client = OAuthClient(provider, CLIENT, env.transport, clock=env.clock)
    tokens = await client.exchange_code(protocol.code_from_redirect(location, state, REDIRECT), REDIRECT, None)
    assert tokens.extra["api_domain"] == env.emu.origin and tokens.refresh_token
    credential = ApiCredential.from_tokens(tokens.access_token, tokens.refresh_token,
                                           api_domain=tokens.extra["api_domain"])
    connector = env.connector(credential, base_url=None)
    assert connector.base_url == env.emu.origin and connector.v1("/users/me") == "/api/v1/users/me"
    assert (await connector.validate_connection()).ok
    deals = await connector.send_request(ApiRequest("GET", "/api/v2/deals", params={"limit": 5}))
    assert deals.status == 200 and len(deals.body["data"]) == 5
    fresh = await client.refresh(tokens.refresh_token)
    assert fresh.refresh_token == tokens.refresh_token and fresh.extra["api_domain"] == env.emu.origin
    assert (await env.connector(ApiCredential.from_tokens(fresh.access_token)).authenticate()).account_id
    assert await client.revoke(tokens.refresh_token, "refresh_token") is True      # the app is uninstalled
    with pytest.raises(GrantInvalid):
        await client.refresh(tokens.refresh_token)


def test_base_urls_of_every_documented_form() -> None:
    assert split_base("https://api.pipedrive.com/v1") == ("https://api.pipedrive.com", "/v1")
    assert split_base("https://acme.pipedrive.com/api/v2/") == ("https://acme.pipedrive.com", "/api/v1")
    assert split_base("https://acme.pipedrive.com") == ("https://acme.pipedrive.com", "/api/v1")


async def test_the_legacy_v1_base_url_reaches_v1_paths(env: Env) -> None:
    connector = env.connector(base_url=env.emu.origin + "/v1")
    assert (await connector.authenticate()).account_id and env.emu.hits("/v1/users/me") == 1


# ---- the token-budget rate model ----------------------------------------------------------------------------

async def test_burst_headers_are_learnt_before_any_429(env: Env) -> None:
    env.emu.options.burst_api_token = 5
    connector = env.connector(gate=env.gate())
    for _ in range(17):
        assert (await connector.send_request(ME, interactive=False)).status == 200
    assert env.emu.rejected == 0 and [e.status for e in env.emu.request_log] == [200] * 17
    assert len(env.sleeps) == 3 and all(0 < s <= 2 for s in env.sleeps)      # one wait per spent window


async def test_the_daily_budget_stops_the_gate_until_utc_midnight(env: Env) -> None:
    env.emu.options.daily_budget = 100
    connector = env.connector(gate=env.gate())
    sent = 0
    with pytest.raises(RateLimitExceededException) as info:
        while True:
            await connector.send_request(ME, interactive=True)
            sent += 1
    assert sent == 31 and info.value.window == "provider"                     # 38 tokens left < one search
    midnight = 1_700_006_400                                                    # the burst waits moved the clock
    assert info.value.retry_after == pytest.approx(midnight - env.clock.time()) and env.emu.rejected == 0
    answer = await connector.send_request(ME, interactive=False)               # background: waits for the day
    assert answer.status == 200 and env.sleeps and env.clock.time() >= midnight
    assert env.emu.budget_left() == 98 and env.emu.rejected == 0


async def test_a_budget_spent_by_another_client_is_one_429_then_learnt(env: Env) -> None:
    env.emu.options.daily_budget = 21
    env.emu.add_token(OTHER)
    other = env.connector(ApiCredential.from_api_key(ApiKey(OTHER)))
    await other.send_request(ApiRequest("GET", "/api/v2/deals"))              # 10 tokens
    await other.send_request(ApiRequest("GET", "/api/v2/deals"))              # 20: one left, a v1 GET costs 2
    gate = env.gate()
    mine = env.connector(gate=gate, retry=RetryPolicy.none())
    refused = await failure(mine.send_request(ME))
    assert refused.category is RATE and refused.status == 429 and refused.retry_after == 6400
    assert "budget" in str(refused) and TOKEN not in str(refused)
    with pytest.raises(RateLimitExceededException):
        await mine.send_request(ME)                                             # not sent: the gate knows
    assert env.emu.rejected == 1 and env.emu.hits("/api/v1/users/me") == 1


async def test_a_burst_429_is_retried_after_its_retry_after(env: Env) -> None:
    env.emu.faults.rate_limit_burst = 2
    env.emu.faults.burst_retry_after = 3
    answer = await env.connector().send_request(ME, interactive=False)
    assert answer.status == 200 and answer.attempts == 3 and env.sleeps == [3.0, 3.0]
    assert [r.outcome for r in env.records] == ["rate_limit", "rate_limit", "ok"]


# ---- error classes ------------------------------------------------------------------------------------------

async def test_unknown_expired_and_revoked_tokens_are_auth_failures(env: Env) -> None:
    unknown = await failure(env.connector(ApiCredential.from_api_key(ApiKey(OTHER))).authenticate())
    assert unknown.category is AUTH and unknown.status == 401 and "unauthorized access" in str(unknown)
    assert OTHER not in str(unknown)
    env.emu.add_token(OTHER, subject="oauth-user", expires_at=env.clock.time() + 60)
    oauth = env.connector(ApiCredential.from_tokens(OTHER))
    await oauth.authenticate()
    env.clock.advance(61)
    expired = await failure(oauth.authenticate())
    assert expired.category is AUTH and "Access token expired" in str(expired)
    env.emu.revoke(TOKEN)
    health = await env.connector().validate_connection()
    assert not health.ok and health.category is AUTH and health.status == 401


async def test_a_missing_scope_is_an_auth_failure(env: Env) -> None:
    env.emu.add_token(OTHER, scopes=["users:read"], subject="narrow-grant")
    narrow = env.connector(ApiCredential.from_tokens(OTHER))
    assert (await narrow.authenticate()).account_id
    refused = await failure(narrow.send_request(ApiRequest("GET", "/api/v2/deals")))
    assert refused.category is AUTH and refused.status == 403 and "Scope" in str(refused)


async def test_server_errors_are_retried_then_service_unavailable(env: Env) -> None:
    env.emu.faults.error_rate = 1.0
    down = await failure(env.connector().send_request(ME, interactive=False))
    assert down.category is IntegrationError.SERVICE_UNAVAILABLE and down.status in (500, 502, 503)
    assert env.emu.hits("/api/v1/users/me") == 4 and len(env.sleeps) == 3


async def test_caller_errors_are_handed_back(env: Env) -> None:
    connector = env.connector()
    missing = await connector.send_request(ApiRequest("GET", "/api/v2/deals/999"))
    assert missing.status == 404 and missing.body["error"] == "Deal not found"
    bad = await connector.send_request(ApiRequest("POST", "/api/v2/deals", json={"value": 1}))
    assert bad.status == 400 and "title" in bad.body["error"]
    assert [r.outcome for r in env.records] == ["ok", "ok"]


def test_classification_of_answers_the_emulator_does_not_give() -> None:
    clock = FakeClock(1_700_000_000.0)
    connector = build_connector("pipedrive", ApiCredential.from_api_key(ApiKey(TOKEN)), app_id="int_pd",
                                base_url=None, transport=HttpTransport(), clock=clock)
    body = {"success": False, "error": "Company account is not open", "error_info": "…"}
    unpaid = connector.classify(402, {}, body)
    assert unpaid is not None and unpaid.category is IntegrationError.INVALID_CONFIGURATION
    abuse = connector.classify(403, {"retry-after": "30"}, {"success": False, "error": "Forbidden"})
    assert abuse is not None and abuse.category is RATE and abuse.retry_after == 30
    assert connector.classify(422, {}, body) is None and connector.classify(410, {}, body) is None
    low = connector.rate_signal(200, {"x-daily-ratelimit-token-remaining": "39", "x-ratelimit-remaining": "5"}, {})
    assert low.remaining == 0 and low.reset_at == 1_700_006_400 and low.resource == "daily_token_budget"
    fine = connector.rate_signal(200, {"x-daily-ratelimit-token-remaining": "40", "x-ratelimit-limit": "20",
                                       "x-ratelimit-remaining": "0", "x-ratelimit-reset": "2"}, {})
    assert (fine.limit, fine.remaining, fine.reset_at, fine.resource) == (20, 0, 1_700_000_002, "burst")
    tight = connector.rate_signal(200, {"x-daily-ratelimit-token-remaining": "200", "x-ratelimit-remaining": "9"}, {})
    assert (tight.remaining, tight.resource) == (5, "daily_token_budget")       # 5 searches' worth < 9
    assert connector.base_url == "https://api.pipedrive.com" and connector.identity_request().path == "/v1/users/me"
    assert connector.auth_headers() == {"x-api-token": TOKEN}
