"""Pipedrive emulator over real loopback HTTP: both auth forms, the token-budget rate model (burst, daily budget,
write fair-use), v2 deals with cursor, updated_since and deletions, write validation, OAuth with api_domain."""

from __future__ import annotations

import asyncio
import base64
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from connectors.emulators import EMULATORS, ManualClock, PipedriveEmulator
from connectors.webhooks import VERIFIERS, WebhookRejected

TOKEN = "pd-api-token-0000000000000000000000000001"
OTHER = "pd-api-token-0000000000000000000000000002"
START = 1_700_000_000.0          # 2023-11-14T22:13:20Z: 6,400 s before UTC midnight


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
async def emu(clock: ManualClock) -> AsyncIterator[PipedriveEmulator]:
    emulator = PipedriveEmulator(tokens=[TOKEN], seed=1, clock=clock, options={"deals": 25})
    await emulator.start()
    yield emulator
    await emulator.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def call(http: aiohttp.ClientSession, method: str, url: str, token: str | None = TOKEN, *,
               bearer: bool = False, **kw: Any) -> tuple[int, Any, Any]:
    headers = {} if token is None else ({"Authorization": f"Bearer {token}"} if bearer else {"x-api-token": token})
    async with http.request(method, url, headers=headers, **kw) as resp:
        body = await resp.json() if resp.content_type == "application/json" else await resp.text()
        return resp.status, body, resp.headers


async def test_identity_with_the_header_the_legacy_query_and_the_v1_prefixes(emu, http) -> None:
    status, body, headers = await call(http, "GET", emu.base_url + "/api/v1/users/me")
    assert status == 200 and body["success"] is True
    user = body["data"]
    assert user["is_you"] is True and user["company_domain"] == "emulated-co" and "@" in user["email"]
    assert headers["x-ratelimit-limit"] == "20" and headers["x-ratelimit-remaining"] == "19"
    assert headers["x-daily-ratelimit-token-remaining"] == "29998" and headers["x-daily-requests-left"] == "10000"
    status, again, _ = await call(http, "GET", emu.base_url + "/v1/users/me", None, params={"api_token": TOKEN})
    assert status == 200 and again["data"]["id"] == user["id"]
    emu.options.accept_query_token = False
    status, refused, _ = await call(http, "GET", emu.base_url + "/v1/users/me", None, params={"api_token": TOKEN})
    assert status == 401 and refused["error"] == "You need to be authorized to make this request."


async def test_auth_errors_have_pipedrives_bodies(emu, http) -> None:
    status, body, headers = await call(http, "GET", emu.base_url + "/api/v1/users/me", OTHER)
    assert status == 401 and body == {"success": False, "error": "unauthorized access", "errorCode": 401,
                                      "error_info": body["error_info"], "data": None, "additional_data": None}
    assert "x-ratelimit-limit" not in headers
    status, body, _ = await call(http, "GET", emu.base_url + "/api/v2/nothing")
    assert status == 404 and body["success"] is False


async def test_burst_is_a_rolling_two_second_window_per_token(emu, http, clock) -> None:
    url = emu.base_url + "/api/v2/deals/1"
    for n in range(20):
        status, _, headers = await call(http, "GET", url)
        assert status == 200 and headers["x-ratelimit-remaining"] == str(19 - n)
        clock.advance(0.0625)
    assert headers["x-ratelimit-reset"] == "1"             # ceil(2 s - 1.1875 s): the oldest call leaves then
    status, body, headers = await call(http, "GET", url)
    assert status == 429 and body["success"] is False and body["errorCode"] == 429
    assert headers["Retry-After"] == "1" and headers["x-ratelimit-remaining"] == "0"
    emu.add_token(OTHER)
    status, _, _ = await call(http, "GET", url, OTHER)
    assert status == 200                                       # another token has its own window
    clock.advance(0.75)
    assert (await call(http, "GET", url))[0] == 200
    assert emu.rejected == 1


async def test_oauth_tokens_have_the_higher_burst(emu, http) -> None:
    emu.options.burst_oauth = 3
    statuses = [(await call(http, "GET", emu.base_url + "/api/v1/users/me", bearer=True))[0] for _ in range(4)]
    assert statuses == [200, 200, 200, 429]


async def test_the_daily_token_budget_is_shared_and_priced_per_endpoint(emu, http, clock) -> None:
    emu.options.daily_budget = 30
    emu.add_token(OTHER)
    _, _, h = await call(http, "GET", emu.base_url + "/api/v1/users/me")           # v1 GET: 2
    assert h["x-daily-ratelimit-token-remaining"] == "28"
    _, _, h = await call(http, "GET", emu.base_url + "/api/v2/deals", OTHER)       # v2 list: 10
    assert h["x-daily-ratelimit-token-remaining"] == "18"
    _, _, h = await call(http, "GET", emu.base_url + "/api/v2/deals/2")            # v2 GET: 1
    assert h["x-daily-ratelimit-token-remaining"] == "17"
    await call(http, "GET", emu.base_url + "/api/v2/deals")
    status, body, h = await call(http, "GET", emu.base_url + "/api/v2/deals")
    assert status == 429 and "budget" in body["error"] and h["Retry-After"] == "6400"
    assert h["x-daily-ratelimit-token-remaining"] == "7"
    assert (await call(http, "GET", emu.base_url + "/api/v2/deals/2"))[0] == 200   # cheap calls still fit
    clock.advance(6400)
    _, _, h = await call(http, "GET", emu.base_url + "/api/v2/deals")
    assert h["x-daily-ratelimit-token-remaining"] == "20"                          # a new UTC day


async def test_api_token_writes_have_the_legacy_daily_count(emu, http) -> None:
    emu.options.daily_write_limit = 1
    status, _, h = await call(http, "PATCH", emu.base_url + "/api/v2/deals/3", json={"title": "Renamed"})
    assert status == 200 and h["x-daily-requests-left"] == "0"
    status, body, h = await call(http, "PATCH", emu.base_url + "/api/v2/deals/3", json={"title": "Again"})
    assert status == 429 and "Daily request limit" in body["error"] and int(h["Retry-After"]) > 0


async def test_deals_walk_with_the_cursor_and_filter_by_update_time_and_status(emu, http, clock) -> None:
    seen, cursor = [], None
    while True:
        params = {"limit": 7, "sort_by": "update_time", **({"cursor": cursor} if cursor else {})}
        status, body, _ = await call(http, "GET", emu.base_url + "/api/v2/deals", params=params)
        assert status == 200
        seen += body["data"]
        cursor = body["additional_data"]["next_cursor"]
        if cursor is None:
            break
        clock.advance(1)
    assert [d["id"] for d in seen] and len({d["id"] for d in seen}) == len(seen) == 25
    times = [d["update_time"] for d in seen]
    assert times == sorted(times)
    emu.delete_deal(4)
    emu.edit_deal(5, title="Edited elsewhere")
    since = seen[-1]["update_time"]
    _, body, _ = await call(http, "GET", emu.base_url + "/api/v2/deals", params={"updated_since": since})
    assert {d["id"] for d in body["data"]} == {5, seen[-1]["id"]}                 # inclusive
    _, body, _ = await call(http, "GET", emu.base_url + "/api/v2/deals", params={"status": "deleted"})
    assert [(d["id"], d["is_deleted"], d["status"]) for d in body["data"]] == [(4, True, "deleted")]
    for bad in ({"updated_since": "yesterday"}, {"sort_by": "title"}, {"cursor": "garbage"}, {"status": "x"}):
        status, body, _ = await call(http, "GET", emu.base_url + "/api/v2/deals", params=bad)
        assert status == 400 and body["error"].startswith("Validation failed")


async def test_writes_validate_like_pipedrive(emu, http) -> None:
    url = emu.base_url + "/api/v2/deals"
    status, body, _ = await call(http, "POST", url, json={"value": 10})
    assert status == 400 and "title" in body["error"]
    status, body, _ = await call(http, "POST", url, json={"title": "Deal A", "value": 1000, "currency": "EUR"})
    assert status == 201 and body["data"]["title"] == "Deal A" and body["data"]["id"] == 26
    status, body, _ = await call(http, "PATCH", url + "/26", json={"update_time": "2025-01-01T00:00:00Z"})
    assert status == 400 and "update_time is not accepted" in body["error"]
    status, body, _ = await call(http, "DELETE", url + "/26")
    assert status == 200 and body == {"success": True, "data": {"id": 26}}
    status, body, _ = await call(http, "PATCH", url + "/26", json={"title": "Too late"})
    assert status == 410
    status, body, _ = await call(http, "GET", url + "/999")
    assert status == 404 and body["error"] == "Deal not found"


async def test_oauth_token_answer_carries_api_domain_and_scopes_are_enforced(emu, http) -> None:
    emu.oauth.register_client("pd-client", "pd-secret", ["http://127.0.0.1/cb"])
    async with http.get(emu.origin + "/oauth/authorize", allow_redirects=False,
                        params={"client_id": "pd-client", "redirect_uri": "http://127.0.0.1/cb",
                                "response_type": "code", "state": "s1", "scope": "users:read"}) as resp:
        code = dict(p.split("=", 1) for p in resp.headers["Location"].split("?", 1)[1].split("&"))["code"]
    basic = "Basic " + base64.b64encode(b"pd-client:pd-secret").decode()
    async with http.post(emu.origin + "/oauth/token", headers={"Authorization": basic},
                         data={"grant_type": "authorization_code", "code": code,
                               "redirect_uri": "http://127.0.0.1/cb"}) as resp:
        tokens = await resp.json()
    assert resp.status == 200 and tokens["api_domain"] == emu.origin and tokens["token_type"] == "Bearer"
    access = tokens["access_token"]
    assert (await call(http, "GET", emu.base_url + "/api/v1/users/me", access, bearer=True))[0] == 200
    status, body, _ = await call(http, "GET", emu.base_url + "/api/v2/deals", access, bearer=True)
    assert status == 403 and "Scope" in body["error"]


def test_registered_and_validated() -> None:
    assert EMULATORS["pipedrive"] is PipedriveEmulator
    with pytest.raises(ValueError, match="burst_api_token"):
        PipedriveEmulator(options={"burst_api_token": 0})


async def test_runs_standalone_from_the_command_line(http) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "connectors.emulators", "pipedrive", "--port", "0", "--token", TOKEN,
        cwd=Path(__file__).resolve().parents[2], stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    assert proc.stdout is not None
    try:
        line = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode()
        assert line.startswith("pipedrive emulator listening: http://127.0.0.1:")
        status, body, _ = await call(http, "GET", line.split(": ", 1)[1].strip() + "/api/v1/users/me")
        assert status == 200 and body["success"] is True
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 0 and TOKEN.encode() not in out + err


def test_a_webhook_delivery_passes_the_verifier_and_a_retry_keeps_its_id() -> None:
    emu = PipedriveEmulator(tokens=[TOKEN], seed=1, options={"deals": 3})
    headers, body = emu.webhook_delivery(2, "hook-user", "hook-pass")
    retry_headers, retry = emu.webhook_delivery(2, "hook-user", "hook-pass", attempt=2)
    verifier = VERIFIERS["pipedrive"]
    first = verifier.verify(headers, body, b"hook-user:hook-pass", 0.0)
    assert first == verifier.verify(retry_headers, retry, b"hook-user:hook-pass", 0.0) and retry != body
    with pytest.raises(WebhookRejected):
        verifier.verify(headers, body, b"hook-user:other", 0.0)
    _, deleted = emu.webhook_delivery(2, "hook-user", "hook-pass", action="delete")
    assert b'"data": null' in deleted and verifier.verify(headers, deleted, b"hook-user:hook-pass", 0.0) != first
