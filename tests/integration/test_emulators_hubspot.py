"""The HubSpot emulator's wire shapes over loopback with a plain aiohttp client: rate-limit headers per token kind,
429 bodies per policy, error bodies, search filters and the result cap, the OAuth token endpoint's legacy error
fields and refresh-token revocation."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from connectors.emulators import EMULATORS, ManualClock

TOKEN = "pat-na1-emulator-test-token-000000001"
C = "/crm/v3/objects/contacts"


@pytest.fixture
async def emu() -> AsyncIterator[Any]:
    clock = ManualClock(1_800_000_001.0)
    emu = EMULATORS["hubspot"](tokens=[TOKEN], seed=8, clock=clock, options={"contacts": 12})
    emu.test_clock = clock
    await emu.start()
    try:
        yield emu
    finally:
        await emu.stop()


async def call(emu: Any, method: str, path: str, token: str | None = TOKEN, **kw: Any) -> tuple[int, Any, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession() as session:
        async with session.request(method, emu.origin + path, headers=headers, **kw) as resp:
            text = await resp.text()
            body = await resp.json(content_type=None) if text and text.lstrip()[:1] in "[{" else text
            return resp.status, body, resp.headers


async def test_private_app_answers_carry_burst_and_daily_headers(emu):
    status, body, headers = await call(emu, "GET", "/account-info/v3/details")
    assert status == 200 and body["portalId"] == emu.portal_id and body["accountType"] == "STANDARD"
    assert headers["X-HubSpot-RateLimit-Max"] == "100" and headers["X-HubSpot-RateLimit-Remaining"] == "99"
    assert headers["X-HubSpot-RateLimit-Interval-Milliseconds"] == "10000"
    assert headers["X-HubSpot-RateLimit-Daily"] == "250000"
    assert headers["X-HubSpot-RateLimit-Daily-Remaining"] == "249999"
    assert "x-hubspot-correlation-id" in headers


async def test_burst_then_daily_429_bodies(emu):
    emu.options.burst_per_10s = 2
    for _ in range(2):
        await call(emu, "GET", C)
    status, body, headers = await call(emu, "GET", C)
    assert status == 429 and body["policyName"] == "TEN_SECONDLY_ROLLING" and body["errorType"] == "RATE_LIMIT"
    assert body["status"] == "error" and "Retry-After" not in headers
    emu.options.send_retry_after = True
    status, _, headers = await call(emu, "GET", C)
    assert status == 429 and headers["Retry-After"] == "9"
    emu.options.burst_per_10s = 100
    emu.options.daily = 2
    status, body, _ = await call(emu, "GET", C)
    assert status == 429 and body["policyName"] == "DAILY" and body["message"] == "You have reached your daily limit."


async def test_auth_and_scope_errors(emu):
    status, body, _ = await call(emu, "GET", C, token=None)
    assert status == 401 and body["category"] == "INVALID_AUTHENTICATION"
    emu.add_token("pat-na1-narrow-000000001", ["oauth"])
    status, body, _ = await call(emu, "GET", C, token="pat-na1-narrow-000000001")
    assert status == 403 and body["category"] == "MISSING_SCOPES"
    assert body["errors"][0]["context"]["requiredGranularScopes"] == ["crm.objects.contacts.read"]


async def test_search_filters_sort_and_cap(emu):
    target = emu.contacts["1005"]
    query = {"filterGroups": [{"filters": [{"propertyName": "email", "operator": "EQ",
                                            "value": target.props["email"]}]}]}
    status, body, headers = await call(emu, "POST", C + "/search", json=query)
    assert status == 200 and body["total"] == 1 and body["results"][0]["id"] == "1005"
    assert "X-HubSpot-RateLimit-Remaining" not in headers
    since = {"filterGroups": [{"filters": [{"propertyName": "lastmodifieddate", "operator": "GTE",
                                            "value": str(target.updated)}]}],
             "sorts": [{"propertyName": "lastmodifieddate", "direction": "ASCENDING"}], "limit": 3}
    status, body, _ = await call(emu, "POST", C + "/search", json=since)
    stamps = [emu.contacts[r["id"]].updated for r in body["results"]]
    assert stamps == sorted(stamps) and all(s >= target.updated for s in stamps)
    emu.options.search_cap = 5
    status, body, _ = await call(emu, "POST", C + "/search", json={"limit": 3, "after": "3"})
    assert status == 400 and body["category"] == "VALIDATION_ERROR" and "Cannot page beyond 5" in body["message"]
    status, body, _ = await call(emu, "POST", C + "/search", json={"filterGroups": [{"filters": [
        {"propertyName": "shoe_size", "operator": "EQ", "value": "9"}]}]})
    assert status == 400 and body["category"] == "VALIDATION_ERROR"


async def test_archived_contacts_leave_search_and_list_with_archived_true(emu):
    emu.archive_contact("1003")
    status, body, _ = await call(emu, "GET", C, params={"archived": "true"})
    assert status == 200 and [r["id"] for r in body["results"]] == ["1003"] and body["results"][0]["archived"]
    assert "archivedAt" in body["results"][0]
    status, body, _ = await call(emu, "GET", C + "/1003")
    assert status == 404 and body["category"] == "OBJECT_NOT_FOUND"
    status, body, _ = await call(emu, "GET", C, params={"limit": 100})
    assert "1003" not in [r["id"] for r in body["results"]] and "paging" not in body


async def test_oauth_token_errors_and_refresh_token_revocation(emu):
    emu.oauth.register_client("hs-client", "hs-secret", ["http://127.0.0.1:9/cb"])
    async with aiohttp.ClientSession() as session:
        form = {"grant_type": "refresh_token", "refresh_token": "na1-nope", "client_id": "hs-client",
                "client_secret": "hs-secret"}
        async with session.post(emu.origin + "/oauth/v1/token", data=form) as resp:
            body = await resp.json()
        assert resp.status == 400 and body == {"error": "invalid_grant", "status": "BAD_REFRESH_TOKEN",
                                               "error_description": "refresh token is invalid, expired or revoked",
                                               "message": "refresh token is invalid, expired or revoked"}
        async with session.get(emu.origin + "/oauth/authorize", allow_redirects=False,
                               params={"client_id": "hs-client", "redirect_uri": "http://127.0.0.1:9/cb",
                                       "response_type": "code", "scope": "crm.objects.contacts.read oauth"}) as r:
            code = r.headers["Location"].split("code=")[1].split("&")[0]
        form = {"grant_type": "authorization_code", "code": code, "client_id": "hs-client",
                "client_secret": "hs-secret", "redirect_uri": "http://127.0.0.1:9/cb"}
        async with session.post(emu.origin + "/oauth/v1/token", data=form) as resp:
            tokens = await resp.json()
        assert tokens["expires_in"] == 1800
        async with session.get(f"{emu.origin}/oauth/v1/access-tokens/{tokens['access_token']}") as resp:
            info = await resp.json()
        assert info["hub_id"] == emu.portal_id and "crm.objects.contacts.read" in info["scopes"]
        async with session.delete(f"{emu.origin}/oauth/v1/refresh-tokens/{tokens['refresh_token']}") as resp:
            assert resp.status == 204
        async with session.delete(f"{emu.origin}/oauth/v1/refresh-tokens/{tokens['refresh_token']}") as resp:
            assert resp.status == 404
    status, _, headers = await call(emu, "GET", C, token=tokens["access_token"])
    assert status == 200 and "X-HubSpot-RateLimit-Daily" not in headers          # access token still works
    emu.test_clock.advance(1801)
    status, body, _ = await call(emu, "GET", C, token=tokens["access_token"])
    assert status == 401 and body["category"] == "EXPIRED_AUTHENTICATION"
    assert body["context"]["expire time"] == ["2027-01-15T08:30:01.000Z"]
