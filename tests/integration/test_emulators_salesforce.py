"""The Salesforce emulator's wire shapes over loopback with a plain aiohttp client: token answers, the usage
header and the rolling allowance, error arrays, SOQL, query locators, getDeleted/getUpdated windows and the
conditional PATCH."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from connectors.emulators import EMULATORS, ManualClock
from connectors.emulators.salesforce import sf_time

TOKEN = "00D5g000004Xyz!AR.emulator-test-token-01"
V = "/services/data/v59.0"


@pytest.fixture
async def emu() -> AsyncIterator[Any]:
    clock = ManualClock(1_800_000_000.0)
    emu = EMULATORS["salesforce"](tokens=[TOKEN], seed=5, clock=clock, options={"accounts": 5, "contacts": 3})
    emu.test_clock = clock
    await emu.start()
    try:
        yield emu
    finally:
        await emu.stop()


async def call(emu: Any, method: str, path: str, token: str | None = TOKEN, **kw: Any) -> tuple[int, Any, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    headers.update(kw.pop("headers", {}))
    async with aiohttp.ClientSession() as session:
        async with session.request(method, emu.origin + path, headers=headers, **kw) as resp:
            body = await resp.json(content_type=None) if resp.status != 204 else None
            return resp.status, body, resp.headers


async def test_usage_header_counts_rest_calls_but_not_versions_or_userinfo(emu):
    status, body, headers = await call(emu, "GET", "/services/data/")
    assert status == 200 and body[-1]["version"] == "60.0" and headers["Sforce-Limit-Info"] == "api-usage=0/15000"
    status, body, headers = await call(emu, "GET", "/services/oauth2/userinfo")
    assert status == 200 and body["organization_id"] == emu.org.id and "Sforce-Limit-Info" not in headers
    _, _, headers = await call(emu, "GET", V + "/limits/")
    assert headers["Sforce-Limit-Info"] == "api-usage=1/15000"


async def test_rolling_day_allowance_refuses_with_request_limit_exceeded(emu):
    emu.options.daily_api_requests = 2
    for _ in range(2):
        assert (await call(emu, "GET", V + "/limits/"))[0] == 200
    status, body, headers = await call(emu, "GET", V + "/limits/")
    assert status == 403 and body == [{"message": "TotalRequests Limit exceeded.",
                                       "errorCode": "REQUEST_LIMIT_EXCEEDED"}]
    assert headers["Sforce-Limit-Info"] == "api-usage=2/2" and "Retry-After" not in headers
    emu.test_clock.advance(86400)
    assert (await call(emu, "GET", V + "/limits/"))[0] == 200


async def test_auth_errors_are_arrays(emu):
    status, body, _ = await call(emu, "GET", V + "/limits/", token=None)
    assert status == 401 and body == [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]
    status, body, _ = await call(emu, "GET", V + "/limits/", token="nope")
    assert status == 401 and body[0]["errorCode"] == "INVALID_SESSION_ID"


async def test_soql_filters_sorts_and_rejects(emu):
    newest = max(r.modified for r in emu.org.records["Account"].values())
    literal = sf_time(newest)[:19] + "Z"
    q = f"SELECT Id, SystemModstamp FROM Account WHERE SystemModstamp >= {literal} ORDER BY SystemModstamp"
    status, body, _ = await call(emu, "GET", V + "/query", params={"q": q})
    assert status == 200 and body["totalSize"] == 1 and body["done"] is True
    assert body["records"][0]["attributes"]["type"] == "Account"
    quoted = q.replace(literal, f"'{literal}'")
    status, body, _ = await call(emu, "GET", V + "/query", params={"q": quoted})
    assert status == 400 and body[0]["errorCode"] == "INVALID_FIELD"
    status, body, _ = await call(emu, "GET", V + "/query", params={"q": "SELECT Id FROM Widget"})
    assert status == 400 and body[0]["errorCode"] == "INVALID_TYPE"
    status, body, _ = await call(emu, "GET", V + "/query/01gNOPE-200")
    assert status == 400 and body[0]["errorCode"] == "INVALID_QUERY_LOCATOR"


async def test_get_deleted_and_updated_windows(emu):
    target = sorted(emu.org.records["Account"])[0]
    emu.delete_record("Account", target)
    params = {"start": "2027-01-14T00:00:00Z", "end": "2027-01-16T00:00:00Z"}
    status, body, _ = await call(emu, "GET", V + "/sobjects/Account/deleted/", params=params)
    assert status == 200 and body["deletedRecords"] == [{"id": target, "deletedDate": "2027-01-15T08:00:00.000+0000"}]
    assert body["latestDateCovered"] == "2027-01-15T08:00:00.000+0000"
    assert body["earliestDateAvailable"] == "2026-12-31T08:00:00.000+0000"
    status, body, _ = await call(emu, "GET", V + "/sobjects/Account/deleted/",
                                 params={"start": "2026-11-01T00:00:00Z", "end": "2027-01-16T00:00:00Z"})
    assert status == 400 and body[0]["errorCode"] == "INVALID_REPLICATION_DATE"
    other = sorted(emu.org.records["Account"])[0]
    emu.update_record("Account", other, Name="Touched")
    status, body, _ = await call(emu, "GET", V + "/sobjects/Account/updated/", params=params)
    assert status == 200 and body["ids"] == [other]


async def test_create_update_with_precondition_and_delete(emu):
    status, body, _ = await call(emu, "POST", V + "/sobjects/Contact/", json={"FirstName": "Grace"})
    assert status == 400 and body[0]["errorCode"] == "REQUIRED_FIELD_MISSING" and body[0]["fields"] == ["LastName"]
    status, body, _ = await call(emu, "POST", V + "/sobjects/Contact/", json={"LastName": "Hopper"})
    assert status == 201 and body["success"] is True and body["errors"] == []
    new_id = body["id"]
    status, body, _ = await call(emu, "PATCH", f"{V}/sobjects/Contact/{new_id}", json={"Id": "x"})
    assert status == 400 and body[0]["errorCode"] == "INVALID_FIELD_FOR_INSERT_UPDATE"
    emu.test_clock.advance(10)
    emu.update_record("Contact", new_id, Title="Admiral")
    stale = {"If-Unmodified-Since": "Fri, 15 Jan 2027 08:00:00 GMT"}
    status, body, _ = await call(emu, "PATCH", f"{V}/sobjects/Contact/{new_id}", json={"Title": "x"}, headers=stale)
    assert status == 412 and body[0]["errorCode"] == "PRECONDITION_FAILED"
    fresh = {"If-Unmodified-Since": "Fri, 15 Jan 2027 08:00:10 GMT"}
    status, _, _ = await call(emu, "PATCH", f"{V}/sobjects/Contact/{new_id}", json={"Title": "y"}, headers=fresh)
    assert status == 204 and emu.org.records["Contact"][new_id].fields["Title"] == "y"
    assert (await call(emu, "DELETE", f"{V}/sobjects/Contact/{new_id}"))[0] == 204
    status, body, _ = await call(emu, "GET", f"{V}/sobjects/Contact/{new_id}")
    assert status == 404 and body[0]["errorCode"] == "NOT_FOUND"


async def test_token_endpoint_speaks_salesforce(emu):
    emu.oauth.register_client("cid", "csecret", ["http://127.0.0.1:9/cb"])
    async with aiohttp.ClientSession() as session:
        async with session.get(emu.origin + "/services/oauth2/authorize", allow_redirects=False,
                               params={"client_id": "cid", "redirect_uri": "http://127.0.0.1:9/cb",
                                       "response_type": "code", "scope": "api refresh_token"}) as resp:
            code = resp.headers["Location"].split("code=")[1].split("&")[0]
        form = {"grant_type": "authorization_code", "code": code, "client_id": "cid", "client_secret": "csecret",
                "redirect_uri": "http://127.0.0.1:9/cb"}
        async with session.post(emu.origin + "/services/oauth2/token", data=form) as resp:
            body = await resp.json()
        assert resp.status == 200 and "expires_in" not in body and body["token_type"] == "Bearer"
        assert body["instance_url"] == emu.origin and body["issued_at"] == "1800000000000"
        assert {"access_token", "refresh_token", "id", "signature", "scope"} <= set(body)
        async with session.post(emu.origin + "/services/oauth2/revoke", data={"token": body["refresh_token"]}) as r:
            assert r.status == 200
        async with session.post(emu.origin + "/services/oauth2/revoke", data={"token": "unknown"}) as r:
            assert r.status == 400 and (await r.json())["error"] == "invalid_token"
    assert (await call(emu, "GET", V + "/limits/", token=body["access_token"]))[0] == 401
