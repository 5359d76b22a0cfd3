"""HubSpot connector against its emulator over loopback: private-app token and OAuth (code + PKCE, 30-minute
tokens, a non-rotating refresh token), health, the burst and daily limits learnt from the X-HubSpot-RateLimit-*
headers (zero 429s once learnt), the 429 bodies with their policyName, and each error class from HubSpot's own
bodies. Time: one FakeClock for emulator, gate and connector."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from connectors.base import ApiRequest
from connectors.emulators import EMULATORS
from connectors.factory import build_connector
from connectors.hubspot import HubSpotConnector, next_utc_midnight
from connectors.http import HttpTransport
from connectors.limits import CallGate, MemoryQuotaStore
from connectors.oauth import oauth_provider
from connectors.oauth.protocol import GrantInvalid
from domain.clock import FakeClock
from domain.errors import IntegrationError, IntegrationFailure, RateLimitExceededException
from domain.model import ApiCredential
from domain.values import ApiKey, RateLimit, RetryPolicy
from tests.integration.oauth_services import CLIENT, GOOD, REDIRECT, Env, failure_of

AUTH = IntegrationError.AUTHENTICATION_FAILED
RATE = IntegrationError.RATE_LIMIT_EXCEEDED
DOWN = IntegrationError.SERVICE_UNAVAILABLE
LIST = ApiRequest("GET", "/crm/v3/objects/contacts", params={"limit": 10})


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    clock = FakeClock(1_800_000_000.0 + 3)     # 3 s into a 10-second window
    emu = EMULATORS["hubspot"](tokens=[GOOD], seed=1, clock=clock.time, options={"contacts": 35})
    emu.oauth.register_client(CLIENT.client_id, CLIENT.secret, [REDIRECT])
    await emu.start()
    transport = HttpTransport()
    try:
        yield Env("hubspot", emu, transport, clock)
    finally:
        await transport.close()
        await emu.stop()


def connector(env: Env, token: str = GOOD, *, oauth: bool = False, **kw: Any) -> HubSpotConnector:
    credential = ApiCredential.from_tokens(token) if oauth else ApiCredential.from_api_key(ApiKey(token))
    kw.setdefault("retry", RetryPolicy(max_retries=2, base_delay=0.01, max_delay=0.02))
    return build_connector("hubspot", credential, app_id="int_test", base_url=env.emu.base_url,
                           transport=env.transport, observer=env.records.append, clock=env.clock, sleep=env.sleep,
                           **kw)


async def attempt(c: HubSpotConnector, request: ApiRequest = LIST, **kw: Any) -> Any:
    try:
        return await c.send_request(request, **kw)
    except IntegrationFailure as failure:
        return failure


def gate(env: Env) -> CallGate:
    return CallGate("int_test", RateLimit(per_minute=6000, burst=100), store=MemoryQuotaStore(), clock=env.clock,
                    sleep=env.sleep)


async def test_private_app_token_connects_and_names_the_portal(env):
    c = connector(env)
    identity = await c.authenticate()
    assert identity.account_id == str(env.emu.portal_id) and identity.details["timeZone"] == "US/Eastern"
    assert (await c.validate_connection()).ok


async def test_oauth_tokens_expire_after_30_minutes_and_refresh_keeps_the_refresh_token(env):
    provider = oauth_provider("hubspot")
    assert provider.pkce and not provider.rotates_refresh_tokens and "oauth" in provider.default_scopes
    tokens = await env.consent()
    assert tokens.expires_at == pytest.approx(env.clock.time() + 1800)
    assert (await connector(env, tokens.access_token, oauth=True).authenticate()).account_id == str(env.emu.portal_id)
    env.clock.advance(1801)
    failure = failure_of(await attempt(connector(env, tokens.access_token, oauth=True)))
    assert failure.category is AUTH and failure.provider_code == "EXPIRED_AUTHENTICATION"
    assert "expired 1 second(s) ago" in str(failure)
    fresh = await env.oauth_client().refresh(tokens.refresh_token)
    assert fresh.refresh_token == tokens.refresh_token
    assert (await connector(env, fresh.access_token, oauth=True).send_request(LIST)).status == 200


async def test_a_dead_refresh_token_is_bad_refresh_token(env):
    with pytest.raises(GrantInvalid, match="invalid, expired or revoked"):
        await env.oauth_client().refresh("na1-not-a-refresh-token")


async def test_unknown_token_and_missing_scope_are_auth_failures(env):
    failure = failure_of(await attempt(connector(env, "pat-na1-unknown-000000000")))
    assert failure.category is AUTH and failure.status == 401 and failure.provider_code == "INVALID_AUTHENTICATION"
    env.emu.add_token("pat-na1-narrow-0000000001", ["oauth"])
    failure = failure_of(await attempt(connector(env, "pat-na1-narrow-0000000001")))
    assert failure.category is AUTH and failure.status == 403 and failure.provider_code == "MISSING_SCOPES"


async def test_burst_limit_is_learnt_from_the_headers_with_zero_429s(env):
    env.emu.options.burst_per_10s = 6
    c = connector(env, gate=gate(env))
    for _ in range(14):
        assert (await c.send_request(LIST, interactive=False)).status == 200
    assert [e.status for e in env.emu.request_log] == [200] * 14                 # zero 429s
    assert env.sleeps and all(s == pytest.approx(10.0) for s in env.sleeps)     # waited one interval each time
    with pytest.raises(RateLimitExceededException):
        for _ in range(7):
            await c.send_request(LIST)              # interactive: refused locally, not by HubSpot


async def test_concurrent_callers_stay_within_the_announced_burst(env):
    env.emu.options.burst_per_10s = 8
    c = connector(env, gate=gate(env))
    await c.send_request(LIST)                       # learns: 7 left in this window
    results = await asyncio.gather(*(attempt(c) for _ in range(12)), return_exceptions=True)
    assert sum(1 for r in results if getattr(r, "status", None) == 200) == 7
    assert all(isinstance(r, RateLimitExceededException) for r in results if getattr(r, "status", None) != 200)
    assert all(e.status == 200 for e in env.emu.request_log)


async def test_daily_limit_is_learnt_and_waits_until_midnight(env):
    env.emu.options.daily = 4
    g = gate(env)
    c = connector(env, gate=g)
    for _ in range(4):
        answer = await c.send_request(LIST)
    assert answer.headers["x-hubspot-ratelimit-daily-remaining"] == "0"
    with pytest.raises(RateLimitExceededException) as refused:
        await c.send_request(LIST)
    assert refused.value.retry_after == pytest.approx(next_utc_midnight(env.clock.time()) - env.clock.time())
    assert g.usage()["provider"]["resource"] == "daily" and len(env.emu.request_log) == 4


async def test_429_bodies_are_classified_by_policy(env):
    env.emu.options.daily = 2
    for _ in range(2):
        await connector(env).send_request(LIST)
    failure = failure_of(await attempt(connector(env, retry=RetryPolicy.none())))
    assert failure.category is RATE and failure.status == 429 and failure.provider_code == "DAILY"
    assert failure.retry_after == pytest.approx(next_utc_midnight(env.clock.time()) - env.clock.time())
    env.emu.options.daily = 250_000
    env.emu.options.burst_per_10s = 1000
    env.emu.faults.rate_limit_burst = 1
    env.emu.faults.burst_retry_after = 3
    answer = await connector(env).send_request(LIST, interactive=False)
    assert answer.status == 200 and answer.attempts == 2 and env.sleeps[-1] == 3.0
    assert env.records[-2].outcome == "rate_limit" and "ten_secondly_rolling" in env.records[-2].error


async def test_search_has_its_own_secondly_limit_and_no_headers(env):
    env.emu.options.search_per_second = 2
    search = ApiRequest("POST", "/crm/v3/objects/contacts/search", json={"limit": 5})
    c = connector(env, retry=RetryPolicy.none())
    first = await c.send_request(search)
    assert first.status == 200 and "x-hubspot-ratelimit-remaining" not in first.headers
    await c.send_request(search)
    failure = failure_of(await attempt(c, search))
    assert failure.category is RATE and failure.provider_code == "SECONDLY" and failure.retry_after == 1.0


async def test_server_errors_are_retried_then_service_unavailable(env):
    env.emu.faults.error_rate = 1.0
    failure = failure_of(await attempt(connector(env), interactive=False))
    assert failure.category is DOWN and failure.status in (500, 502) and len(env.sleeps) == 2


async def test_validation_and_missing_objects_are_handed_back(env):
    c = connector(env)
    missing = await c.send_request(ApiRequest("GET", "/crm/v3/objects/contacts/999999"))
    assert missing.status == 404 and missing.body["category"] == "OBJECT_NOT_FOUND"
    bad = await c.send_request(ApiRequest("PATCH", "/crm/v3/objects/contacts/1001",
                                          json={"properties": {"shoe_size": "9"}}))
    assert bad.status == 400 and bad.body["category"] == "VALIDATION_ERROR"
    assert "PROPERTY_DOESNT_EXIST" in bad.body["message"]
    taken = next(iter(env.emu.contacts.values())).props["email"]
    dup = await c.send_request(ApiRequest("POST", "/crm/v3/objects/contacts", json={"properties": {"email": taken}}))
    assert dup.status == 409 and dup.body["category"] == "CONFLICT"


async def test_list_and_search_pages_walk_every_contact(env):
    c = connector(env)
    listed = [r["id"] async for page in c.pages(LIST) for r in page.body["results"]]
    search = ApiRequest("POST", "/crm/v3/objects/contacts/search",
                        json={"limit": 10, "sorts": [{"propertyName": "lastmodifieddate", "direction": "ASCENDING"}]})
    found = [r["id"] async for page in c.pages(search) for r in page.body["results"]]
    assert len(listed) == 35 and sorted(listed) == sorted(found) and len(set(found)) == 35


async def test_disconnect_revokes_the_refresh_token_only(env):
    tokens = await env.consent()
    client = env.oauth_client()
    assert await client.revoke(tokens.access_token, "access_token") is None     # HubSpot cannot revoke those
    assert await client.revoke(tokens.refresh_token, "refresh_token") is True
    with pytest.raises(GrantInvalid):
        await client.refresh(tokens.refresh_token)
    assert (await connector(env, tokens.access_token, oauth=True).send_request(LIST)).status == 200


async def test_the_search_limit_is_kept_by_the_gate_without_headers_and_holds_back_searches_only(env):
    env.emu.options.search_per_second = 4
    g = gate(env)
    g.max_interactive_wait = 0.5
    c = connector(env, gate=g)
    search = ApiRequest("POST", "/crm/v3/objects/contacts/search", json={"limit": 5})
    for _ in range(10):
        assert (await c.send_request(search, interactive=False)).status == 200
    assert all(e.status == 200 for e in env.emu.request_log) and env.sleeps == [1.0, 1.0]   # zero 429s
    for _ in range(2):                                # two of this second's four are left
        assert (await c.send_request(search)).status == 200
    with pytest.raises(RateLimitExceededException):
        await c.send_request(search)
    assert (await c.send_request(LIST)).status == 200                 # other calls are not held back
    assert all(e.status == 200 for e in env.emu.request_log)
