"""The Microsoft Graph emulator on the wire (raw HTTP, no connector): Graph shapes, paging, throttling, error
bodies, the identity platform's endpoint shapes (tenant paths, AADSTS errors, rotation, device code)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from connectors.emulators import EMULATORS, ManualClock
from connectors.emulators.__main__ import configure, parser
from connectors.emulators.microsoft import GraphEmulator, OneDriveEmulator, OutlookEmulator, TeamsEmulator

TOKEN = "eyJ0eXAi.emulator-test-token-0001"
BEARER = {"Authorization": f"Bearer {TOKEN}"}
CLIENT_ID, SECRET, REDIRECT = "11111111-2222-3333-4444-555555555555", "csecret~x", "http://127.0.0.1/cb"
DEVICE = "urn:ietf:params:oauth:grant-type:device_code"


@pytest.fixture
async def graph() -> AsyncIterator[tuple[GraphEmulator, aiohttp.ClientSession, ManualClock]]:
    clock = ManualClock(1_700_000_000.0)
    emu = OutlookEmulator(tokens=[TOKEN], seed=3, clock=clock)
    emu.oauth.register_client(CLIENT_ID, SECRET, [REDIRECT])
    await emu.start()
    async with aiohttp.ClientSession(base_url=emu.origin) as http:
        yield emu, http, clock
    await emu.stop()


async def get(http: aiohttp.ClientSession, path: str, **kw) -> tuple[int, dict, dict]:
    async with http.get(path, headers=kw.pop("headers", BEARER), **kw) as resp:
        return resp.status, dict(resp.headers), await resp.json(content_type=None)


async def token(http: aiohttp.ClientSession, tenant: str, form: dict) -> tuple[int, dict]:
    async with http.post(f"/{tenant}/oauth2/v2.0/token", data=form) as resp:
        return resp.status, await resp.json()


def test_registry_keys_and_their_default_limits() -> None:
    assert (EMULATORS["outlook"], EMULATORS["onedrive"], EMULATORS["teams"]) == (
        OutlookEmulator, OneDriveEmulator, TeamsEmulator)
    assert OutlookEmulator.default_rate == (10000, 600.0) and TeamsEmulator.default_rate == (30, 1.0)
    emu = configure(parser().parse_args(["teams", "--token", "eyJ0.cli-token-1", "--rate-limit", "4",
                                         "--rate-window", "1"]))
    assert isinstance(emu, TeamsEmulator) and emu.rate_limit.limit == 4 and emu.tokens.counts()["active"] == 1


async def test_me_and_collections_page_by_absolute_next_links(graph) -> None:
    emu, http, _ = graph
    status, _, me = await get(http, "/v1.0/me")
    assert status == 200 and me["@odata.context"].endswith("$metadata#users/$entity") and me["mail"]
    seen, url = [], "/v1.0/me/messages?$top=25"
    while url:
        status, _, page = await get(http, url)
        assert status == 200
        seen += [m["id"] for m in page["value"]]
        nxt = page.get("@odata.nextLink")
        assert nxt is None or (nxt.startswith("http://127.0.0.1:") and "$skiptoken=" in nxt)
        url = nxt[len(emu.origin):] if nxt else None
    assert len(seen) == len(set(seen)) == 60
    status, _, bad = await get(http, "/v1.0/me/messages", params={"$skiptoken": "garbage"})
    assert status == 400 and bad["error"]["code"] == "BadRequest"
    status, _, folders = await get(http, "/v1.0/me/mailFolders")
    assert {f["id"] for f in folders["value"]} >= {"inbox", "sentitems"}
    status, _, nope = await get(http, "/v1.0/me/mailFolders/nofolder/messages")
    assert status == 404 and nope["error"]["code"] == "ErrorItemNotFound"


async def test_graph_error_envelope_and_auth_challenge(graph) -> None:
    emu, http, clock = graph
    status, headers, empty = await get(http, "/v1.0/me", headers={})
    assert status == 401 and empty["error"]["code"] == "InvalidAuthenticationToken"
    assert empty["error"]["message"] == "Access token is empty."
    assert set(empty["error"]["innerError"]) == {"date", "request-id", "client-request-id"}
    assert "authorization_uri=" in headers["WWW-Authenticate"] and headers["request-id"]
    emu.add_token("eyJ0.short", expires_at=clock() + 10)
    clock.advance(11)
    status, _, expired = await get(http, "/v1.0/me", headers={"Authorization": "Bearer eyJ0.short"})
    assert status == 401 and "expired" in expired["error"]["message"]
    status, _, segment = await get(http, "/v1.0/nothing/here")
    assert status == 400 and segment["error"]["message"] == "Resource not found for the segment 'nothing'."


async def test_throttling_is_429_with_retry_after_per_user_not_per_token(graph) -> None:
    emu, http, clock = graph
    emu.set_rate_limit(3, 60)
    clock.advance(60 - clock() % 60)
    form = {"grant_type": "authorization_code", "client_id": CLIENT_ID, "client_secret": SECRET,
            "redirect_uri": REDIRECT}
    grant_tokens = []
    for _ in range(2):      # two consents of the same user: two tokens, one mailbox
        async with http.get("/common/oauth2/v2.0/authorize", allow_redirects=False, params={
                "client_id": CLIENT_ID, "redirect_uri": REDIRECT, "response_type": "code",
                "scope": "User.Read Mail.Read offline_access"}) as resp:
            code = resp.headers["Location"].split("code=")[1].split("&")[0]
        grant_tokens.append((await token(http, "common", {**form, "code": code}))[1]["access_token"])
    statuses = [(await get(http, "/v1.0/me", headers={"Authorization": f"Bearer {t}"}))[0]
                for t in grant_tokens + grant_tokens]
    assert statuses == [200, 200, 200, 429]
    status, headers, body = await get(http, "/v1.0/me", headers={"Authorization": f"Bearer {grant_tokens[0]}"})
    assert status == 429 and headers["Retry-After"] == "60"
    assert body["error"]["code"] == "TooManyRequests" and body["error"]["innerError"]["code"] == "429"
    emu.faults.error_rate = 1.0
    kinds = set()
    for _ in range(20):
        status, headers, body = await get(http, "/v1.0/me")
        kinds.add((status, body["error"]["code"], headers.get("Retry-After")))
    assert kinds == {(500, "generalException", None), (503, "serviceNotAvailable", "1"), (504, "UnknownError", None)}


async def test_identity_platform_errors_rotation_and_tenants(graph) -> None:
    emu, http, _ = graph
    for tenant in ("organizations", "9188040d-6c67-4c5b-b112-36a304b66dad"):
        async with http.get(f"/{tenant}/oauth2/v2.0/authorize", allow_redirects=False, params={
                "client_id": CLIENT_ID, "redirect_uri": REDIRECT, "response_type": "code", "state": "x",
                "scope": "Files.Read offline_access"}) as resp:
            assert resp.status == 302 and "code=" in resp.headers["Location"]
    code = resp.headers["Location"].split("code=")[1].split("&")[0]
    form = {"grant_type": "authorization_code", "client_id": CLIENT_ID, "client_secret": SECRET,
            "redirect_uri": REDIRECT, "code": code}
    status, first = await token(http, "common", form)
    assert status == 200 and first["token_type"] == "Bearer" and first["ext_expires_in"] == first["expires_in"]
    status, reused = await token(http, "common", form)
    assert status == 400 and reused["error"] == "invalid_grant" and reused["error_codes"] == [70008]
    assert reused["error_description"].startswith("AADSTS70008: ") and "\r\nTrace ID: " in reused["error_description"]
    assert {"timestamp", "trace_id", "correlation_id"} <= set(reused)
    refresh = {"grant_type": "refresh_token", "client_id": CLIENT_ID, "client_secret": SECRET,
               "refresh_token": first["refresh_token"]}
    status, second = await token(http, "common", refresh)
    assert status == 200 and second["refresh_token"] != first["refresh_token"]          # rotated
    status, third = await token(http, "common", refresh)                                 # the old one survives
    assert status == 200 and third["access_token"]
    status, bad = await token(http, "common", {**refresh, "refresh_token": "0.AXkAforged"})
    assert status == 400 and bad["error_codes"] == [700082]
    async with http.post("/common/oauth2/v2.0/revoke", data={"token": first["refresh_token"]}) as resp:
        assert resp.status == 404                                                        # no RFC 7009 endpoint


async def test_device_code_flow_at_the_tenant_path(graph) -> None:
    emu, http, clock = graph
    async with http.post("/consumers/oauth2/v2.0/devicecode",
                         data={"client_id": CLIENT_ID, "scope": "User.Read offline_access"}) as resp:
        device = await resp.json()
    assert device["verification_uri"] == "https://microsoft.com/devicelogin" and device["expires_in"] == 900
    poll = {"grant_type": DEVICE, "client_id": CLIENT_ID, "device_code": device["device_code"]}
    status, pending = await token(http, "consumers", poll)
    assert status == 400 and pending["error"] == "authorization_pending" and pending["error_codes"] == [70016]
    assert emu.oauth.approve(device["user_code"])
    clock.advance(device["interval"])
    status, granted = await token(http, "consumers", poll)
    assert status == 200 and granted["refresh_token"]
    status, _, me = await get(http, "/v1.0/me", headers={"Authorization": f"Bearer {granted['access_token']}"})
    assert status == 200 and me["id"]


async def test_teams_and_drive_permissions_and_shapes(graph) -> None:
    emu, http, _ = graph
    emu.add_token("eyJ0.user-read-only", scopes=["User.Read"])
    narrow = {"Authorization": "Bearer eyJ0.user-read-only"}
    status, _, denied = await get(http, "/v1.0/me/joinedTeams", headers=narrow)
    assert status == 403 and denied["error"]["code"] == "Forbidden"
    assert "Team.ReadBasic.All" in denied["error"]["message"]
    status, _, denied = await get(http, "/v1.0/me/drive", headers=narrow)
    assert status == 403 and denied["error"]["code"] == "accessDenied"
    status, _, drive = await get(http, "/v1.0/me/drive")
    assert status == 200 and drive["owner"]["user"]["id"] and drive["quota"]["used"] > 0
    status, _, teams = await get(http, "/v1.0/me/joinedTeams")
    team = teams["value"][0]["id"]
    status, _, channels = await get(http, f"/v1.0/teams/{team}/channels")
    assert all(c["id"].startswith("19:") and c["id"].endswith("@thread.tacv2") for c in channels["value"])
    status, _, missing = await get(http, f"/v1.0/teams/{team}/channels/19:nope@thread.tacv2/messages")
    assert status == 404 and missing["error"]["code"] == "NotFound"
