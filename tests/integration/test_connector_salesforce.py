"""Salesforce connector against its emulator over loopback: OAuth (code + PKCE, instance_url as the API base,
rotation), health, the daily allowance learnt from ``Sforce-Limit-Info`` (zero refused calls once learnt), and
each error class from Salesforce's own array bodies. Time: one FakeClock for emulator, gate and connector."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from connectors.base import ApiRequest
from connectors.emulators import EMULATORS
from connectors.http import HttpTransport
from connectors.limits import CallGate, MemoryQuotaStore
from connectors.oauth import oauth_provider
from connectors.oauth.protocol import GrantInvalid
from connectors.salesforce import ALLOWANCE_RECHECK, DATA, SalesforceConnector, api_usage
from domain.clock import FakeClock
from domain.errors import IntegrationError, IntegrationFailure, RateLimitExceededException
from domain.model import ApiCredential
from domain.values import RateLimit, RetryPolicy
from tests.integration.oauth_services import CLIENT, GOOD, REDIRECT, Env, failure_of

AUTH = IntegrationError.AUTHENTICATION_FAILED
RATE = IntegrationError.RATE_LIMIT_EXCEEDED
DOWN = IntegrationError.SERVICE_UNAVAILABLE
QUERY = ApiRequest("GET", f"{DATA}/query", params={"q": "SELECT Id, Name FROM Account"})


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    clock = FakeClock()
    emu = EMULATORS["salesforce"](tokens=[GOOD], seed=1, clock=clock.time, options={"accounts": 450})
    emu.oauth.register_client(CLIENT.client_id, CLIENT.secret, [REDIRECT])
    await emu.start()
    transport = HttpTransport()
    try:
        yield Env("salesforce", emu, transport, clock)
    finally:
        await transport.close()
        await emu.stop()


def connector(env: Env, token: str = GOOD, **kw: Any) -> SalesforceConnector:
    kw.setdefault("base_url", env.emu.base_url)
    kw.setdefault("retry", RetryPolicy(max_retries=2, base_delay=0.01, max_delay=0.02))
    return SalesforceConnector(ApiCredential.from_tokens(token, **kw.pop("attrs", {})), app_id="int_test",
                               transport=env.transport, observer=env.records.append, clock=env.clock,
                               sleep=env.sleep, **kw)


async def attempt(c: SalesforceConnector, request: ApiRequest = QUERY, **kw: Any) -> Any:
    try:
        return await c.send_request(request, **kw)
    except IntegrationFailure as failure:
        return failure


async def test_oauth_code_with_pkce_gives_instance_url_which_becomes_the_api_base(env):
    provider = oauth_provider("salesforce")
    assert provider.pkce and provider.rotates_refresh_tokens and "api" in provider.default_scopes
    env.emu.oauth.options.pkce_required = True
    tokens = await env.consent()
    assert tokens.extra["instance_url"] == env.emu.origin and tokens.expires_at is None   # no expires_in
    assert tokens.extra["id"].startswith(env.emu.origin + "/id/00D")
    # the configured base is the login host; the credential's instance_url wins
    c = connector(env, tokens.access_token, base_url="https://login.salesforce.com",
                  attrs={"instance_url": tokens.extra["instance_url"]})
    identity = await c.authenticate()
    assert c.base_url == env.emu.origin and identity.details["organization_id"] == env.emu.org.id
    assert identity.account_id == f"{env.emu.org.id}/{identity.details['user_id']}"
    assert (await c.validate_connection()).ok


async def test_refresh_keeps_the_token_unless_rotation_is_on_then_the_old_one_dies(env):
    client = env.oauth_client()
    first = await env.consent()
    again = await client.refresh(first.refresh_token)
    assert again.refresh_token is None and again.extra["instance_url"] == env.emu.origin
    env.emu.oauth.options.rotate_refresh_tokens = True
    rotated = await client.refresh(first.refresh_token)
    assert rotated.refresh_token and rotated.refresh_token != first.refresh_token
    with pytest.raises(GrantInvalid, match="expired access/refresh token"):
        await client.refresh(first.refresh_token)


async def test_an_expired_session_is_invalid_session_id_401(env):
    tokens = await env.consent()
    env.clock.advance(7201)                          # the default 120-minute session timeout
    failure = failure_of(await attempt(connector(env, tokens.access_token)))
    assert failure.category is AUTH and failure.status == 401 and failure.provider_code == "INVALID_SESSION_ID"
    assert "Session expired or invalid" in str(failure) and tokens.access_token not in str(failure)
    health = await connector(env, "unknown-token-0000000000").validate_connection()
    assert not health.ok and health.category is AUTH and health.provider_code == "INVALID_SESSION_ID"


async def test_daily_allowance_is_learnt_from_the_usage_header_and_nothing_is_refused(env):
    env.emu.options.daily_api_requests = 12
    gate = CallGate("int_test", RateLimit(per_minute=6000, burst=100), store=MemoryQuotaStore(), clock=env.clock,
                    sleep=env.sleep)
    c = connector(env, gate=gate)
    answers = [await c.send_request(QUERY, interactive=False) for _ in range(12)]
    assert api_usage(answers[-1].headers) == (12, 12)
    with pytest.raises(RateLimitExceededException) as refused:
        await c.send_request(QUERY)                  # interactive: refused by our gate, never sent
    assert refused.value.retry_after == pytest.approx(ALLOWANCE_RECHECK)
    assert [e.status for e in env.emu.request_log] == [200] * 12          # zero 403s
    usage = gate.usage()["provider"]
    assert usage["limit"] == 12 and usage["remaining"] == 0 and usage["resource"] == "api-usage"


async def test_concurrent_callers_cannot_overspend_the_announced_allowance(env):
    env.emu.options.daily_api_requests = 10
    gate = CallGate("int_test", RateLimit(per_minute=6000, burst=100), store=MemoryQuotaStore(), clock=env.clock,
                    sleep=env.sleep)
    c = connector(env, gate=gate)
    await c.send_request(QUERY)                       # learns: 9 left
    results = await asyncio.gather(*(attempt(c, QUERY, interactive=True) for _ in range(15)),
                                   return_exceptions=True)
    sent = [r for r in results if not isinstance(r, Exception)]
    assert len(sent) == 9 and all(isinstance(r, RateLimitExceededException) for r in results if r not in sent)
    assert all(e.status == 200 for e in env.emu.request_log)


async def test_an_exhausted_org_is_request_limit_exceeded_then_the_gate_holds(env):
    env.emu.options.daily_api_requests = 3
    for _ in range(3):
        await connector(env).send_request(QUERY)
    gate = CallGate("int_fresh", RateLimit(per_day=15000), store=MemoryQuotaStore(), clock=env.clock,
                    sleep=env.sleep)
    c = connector(env, gate=gate, retry=RetryPolicy.none())
    failure = failure_of(await attempt(c))
    assert failure.category is RATE and failure.status == 403 and failure.provider_code == "REQUEST_LIMIT_EXCEEDED"
    assert failure.retry_after == ALLOWANCE_RECHECK and "TotalRequests Limit exceeded" in str(failure)
    sent = len(env.emu.request_log)
    with pytest.raises(RateLimitExceededException):
        await c.send_request(QUERY)
    assert len(env.emu.request_log) == sent
    env.clock.advance(86400)                          # the rolling day has passed: calls age out
    assert (await c.send_request(QUERY, interactive=False)).status == 200


async def test_versions_list_is_free_and_carries_no_usage(env):
    c = connector(env)
    answer = await c.send_request(ApiRequest("GET", "/services/data/"))
    assert answer.status == 200 and {"version": "59.0", "label": "Release 59",
                                      "url": "/services/data/v59.0"} in answer.body
    limits = await c.send_request(ApiRequest("GET", f"{DATA}/limits/"))
    assert limits.body["DailyApiRequests"] == {"Max": 15000, "Remaining": 14999}


async def test_concurrent_request_limit_is_retried(env):
    env.emu.faults.rate_limit_burst = 1
    answer = await connector(env).send_request(QUERY, interactive=False)
    assert answer.status == 200 and answer.attempts == 2 and env.sleeps == [20.0]
    assert [r.outcome for r in env.records] == ["rate_limit", "ok"]


async def test_api_disabled_is_an_auth_failure_and_server_errors_are_retried(env):
    env.emu.options.api_enabled = False
    failure = failure_of(await attempt(connector(env)))
    assert failure.category is AUTH and failure.status == 403 and failure.provider_code == "API_DISABLED_FOR_ORG"
    env.emu.options.api_enabled = True
    env.emu.faults.error_rate = 1.0
    failure = failure_of(await attempt(connector(env), interactive=False))
    assert failure.category is DOWN and failure.status in (500, 503) and len(env.sleeps) == 2
    assert failure.provider_code in ("UNKNOWN_EXCEPTION", "SERVER_UNAVAILABLE")


async def test_bad_soql_and_missing_records_are_handed_back(env):
    c = connector(env)
    bad = await c.send_request(ApiRequest("GET", f"{DATA}/query", params={"q": "SELEC nonsense"}))
    assert bad.status == 400 and bad.body[0]["errorCode"] == "MALFORMED_QUERY"
    field = await c.send_request(ApiRequest("GET", f"{DATA}/query", params={"q": "SELECT Nope FROM Account"}))
    assert field.status == 400 and field.body[0]["errorCode"] == "INVALID_FIELD"
    missing = await c.send_request(ApiRequest("GET", f"{DATA}/sobjects/Account/001000000000000AAA"))
    assert missing.status == 404 and missing.body == [{"message": "The requested resource does not exist",
                                                       "errorCode": "NOT_FOUND"}]


async def test_query_pages_follow_next_records_url(env):
    c = connector(env)
    request = ApiRequest("GET", f"{DATA}/query", params={"q": "SELECT Id FROM Account ORDER BY SystemModstamp"},
                         headers={"Sforce-Query-Options": "batchSize=200"})
    pages = [p async for p in c.pages(request)]
    assert [len(p.body["records"]) for p in pages] == [200, 200, 50]
    assert pages[0].body["nextRecordsUrl"].startswith(f"{DATA}/query/01g")
    ids = [r["Id"] for p in pages for r in p.body["records"]]
    assert len(set(ids)) == 450 and pages[-1].body["done"] is True
