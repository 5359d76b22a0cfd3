"""The Google emulator on the wire (raw HTTP, no connector): Gmail and Drive shapes, unit quotas, error bodies,
Google's OAuth endpoint shapes, and the standalone CLI."""

from __future__ import annotations

import asyncio
import base64
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from connectors.emulators import EMULATORS, ManualClock
from connectors.emulators.google import GmailEmulator, GoogleDriveEmulator

TOKEN = "ya29.emulator-test-token-0001"
BEARER = {"Authorization": f"Bearer {TOKEN}"}
CLIENT_ID, SECRET, REDIRECT = "cid.apps.example", "csecret", "http://127.0.0.1/cb"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
async def google() -> AsyncIterator[tuple[GmailEmulator, aiohttp.ClientSession, ManualClock]]:
    clock = ManualClock(1_700_000_000.0)
    emu = GmailEmulator(tokens=[TOKEN], seed=3, clock=clock)
    emu.oauth.register_client(CLIENT_ID, SECRET, [REDIRECT])
    await emu.start()
    async with aiohttp.ClientSession(base_url=emu.origin) as http:
        yield emu, http, clock
    await emu.stop()


async def get(http: aiohttp.ClientSession, path: str, **kw) -> tuple[int, dict, dict]:
    async with http.get(path, headers=kw.pop("headers", BEARER), **kw) as resp:
        return resp.status, dict(resp.headers), await resp.json(content_type=None)


def reason(body: dict) -> str:
    return body["error"]["errors"][0]["reason"]


async def test_registry_keys_advertise_their_api_and_serve_both(google) -> None:
    assert EMULATORS["gmail"] is GmailEmulator and EMULATORS["google_drive"] is GoogleDriveEmulator
    emu, http, _ = google
    assert emu.base_url == emu.origin + "/gmail/v1"
    drive = GoogleDriveEmulator(tokens=[TOKEN], seed=3)
    try:
        assert (await drive.start()) == drive.origin + "/drive/v3"
    finally:
        await drive.stop()
    status, _, about = await get(http, "/drive/v3/about", params={"fields": "user"})
    status2, _, profile = await get(http, "/gmail/v1/users/me/profile")
    assert status == status2 == 200 and set(about) == {"user"}
    assert about["user"]["emailAddress"] == profile["emailAddress"]
    assert emu.hits("/drive/v3/about") == 1 and emu.hits("/gmail/v1/users/me/profile") == 1


async def test_gmail_lists_page_with_next_page_token_and_get_has_formats(google) -> None:
    _, http, _ = google
    ids, token = [], None
    while True:
        params = {"maxResults": "50", **({"pageToken": token} if token else {})}
        status, _, body = await get(http, "/gmail/v1/users/me/messages", params=params)
        assert status == 200 and body["resultSizeEstimate"] == 120
        ids += [m["id"] for m in body["messages"]]
        token = body.get("nextPageToken")
        if token is None:
            break
    assert len(ids) == len(set(ids)) == 120
    _, _, minimal = await get(http, f"/gmail/v1/users/me/messages/{ids[0]}", params={"format": "minimal"})
    assert "payload" not in minimal and minimal["internalDate"].isdigit()
    _, _, raw = await get(http, f"/gmail/v1/users/me/messages/{ids[0]}", params={"format": "raw"})
    assert b"Subject: " in base64.urlsafe_b64decode(raw["raw"])
    status, _, bad = await get(http, f"/gmail/v1/users/me/messages/{ids[0]}", params={"format": "pretty"})
    assert status == 400 and reason(bad) == "invalid"
    _, _, labels = await get(http, "/gmail/v1/users/me/labels")
    assert {"INBOX", "SENT", "UNREAD"} <= {label["id"] for label in labels["labels"]}


async def test_auth_and_permission_answers_are_googles(google) -> None:
    emu, http, _ = google
    status, headers, missing = await get(http, "/gmail/v1/users/me/profile", headers={})
    assert status == 401 and missing["error"]["status"] == "UNAUTHENTICATED" and reason(missing) == "required"
    assert headers["WWW-Authenticate"].startswith("Bearer realm=")
    status, headers, bad = await get(http, "/gmail/v1/users/me/profile", headers={"Authorization": "Bearer nope"})
    assert status == 401 and bad["error"]["message"] == "Invalid Credentials" and reason(bad) == "authError"
    assert 'error="invalid_token"' in headers["WWW-Authenticate"]
    emu.add_token("ya29.drive-only", scopes=["https://www.googleapis.com/auth/drive.file"])
    status, _, narrow = await get(http, "/gmail/v1/users/me/messages",
                                  headers={"Authorization": "Bearer ya29.drive-only"})
    assert status == 403 and reason(narrow) == "insufficientPermissions"
    assert narrow["error"]["status"] == "PERMISSION_DENIED"
    status, _, other = await get(http, "/gmail/v1/users/someone@else.example/profile")
    assert status == 403 and reason(other) == "forbidden" and "Delegation denied" in other["error"]["message"]
    status, _, unknown = await get(http, "/gmail/v1/users/me/nothing")
    assert status == 404 and reason(unknown) == "notFound"


async def test_units_per_user_minute_with_method_costs(google) -> None:
    emu, http, clock = google
    emu.options.gmail_units_per_user_minute = 120
    clock.advance(60 - clock() % 60)             # the start of a minute window
    raw = base64.urlsafe_b64encode(b"To: a@b.example\r\nSubject: x\r\n\r\nhi").decode()
    async with http.post("/gmail/v1/users/me/messages/send", json={"raw": raw}, headers=BEARER) as resp:
        assert resp.status == 200                                     # 100 units
    statuses = [(await get(http, "/gmail/v1/users/me/messages"))[0] for _ in range(5)]   # 5 units each
    assert statuses == [200, 200, 200, 200, 403]
    status, headers, body = await get(http, "/gmail/v1/users/me/messages")
    assert reason(body) == "userRateLimitExceeded" and body["error"]["errors"][0]["domain"] == "usageLimits"
    assert "Retry-After" not in headers                              # none is documented
    emu.options.rate_limit_status = 429
    emu.options.send_retry_after = True
    status, headers, body = await get(http, "/gmail/v1/users/me/messages")
    assert status == 429 and body["error"]["status"] == "RESOURCE_EXHAUSTED" and headers["Retry-After"] == "60"
    clock.advance(60)
    assert (await get(http, "/gmail/v1/users/me/messages"))[0] == 200


async def test_drive_files_query_order_and_errors(google) -> None:
    _, http, _ = google
    status, _, body = await get(http, "/drive/v3/files", params={"orderBy": "name", "pageSize": "1000"})
    names = [f["name"] for f in body["files"]]
    assert status == 200 and names == sorted(names) and len(names) == 150 and "nextPageToken" not in body
    status, _, body = await get(http, "/drive/v3/files", params={"orderBy": "size"})
    assert status == 400 and body["error"]["errors"][0]["location"] == "orderBy"
    status, _, body = await get(http, "/drive/v3/files", params={"q": "name contains 'otter'"})
    assert all("otter" in f["name"] for f in body["files"])
    status, _, body = await get(http, "/drive/v3/files/nope")
    assert status == 404 and body["error"]["message"] == "File not found: nope."
    status, _, body = await get(http, "/drive/v3/about", params={"fields": "*"})
    assert {"user", "storageQuota", "kind"} <= set(body)


async def test_server_errors_have_googles_shapes(google) -> None:
    emu, http, _ = google
    emu.faults.error_rate = 1.0
    seen = {}
    for _ in range(30):
        async with http.get("/gmail/v1/users/me/profile", headers=BEARER) as resp:
            seen[resp.status] = (resp.content_type, await resp.text())
    assert set(seen) == {500, 502, 503}
    assert seen[502][0] == "text/html" and "That's an error" in seen[502][1]
    assert "backendError" in seen[500][1] and '"status":"UNAVAILABLE"' in seen[503][1]


async def test_oauth_endpoints_have_googles_shapes(google) -> None:
    emu, http, _ = google
    query = {"client_id": CLIENT_ID, "redirect_uri": REDIRECT, "response_type": "code", "state": "s1",
             "scope": "https://www.googleapis.com/auth/gmail.readonly openid email", "access_type": "offline",
             "prompt": "consent"}
    async with http.get("/o/oauth2/v2/auth", params=query, allow_redirects=False) as resp:
        assert resp.status == 302
        code = resp.headers["Location"].split("code=")[1].split("&")[0]
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT, "client_id": CLIENT_ID,
            "client_secret": SECRET}
    async with http.post("/token", data=form) as resp:
        tokens = await resp.json()
    assert tokens["token_type"] == "Bearer" and tokens["expires_in"] == 3599
    assert tokens["access_token"].startswith("ya29.") and tokens["refresh_token"].startswith("1//")
    refresh = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"], "client_id": CLIENT_ID,
               "client_secret": SECRET}
    async with http.post("/token", data=refresh) as resp:
        refreshed = await resp.json()
    assert "refresh_token" not in refreshed and refreshed["access_token"] != tokens["access_token"]
    user = {"Authorization": f"Bearer {refreshed['access_token']}"}
    _, _, info = await get(http, "/v1/userinfo", headers=user)
    _, _, profile = await get(http, "/gmail/v1/users/me/profile", headers=user)
    assert info["email"] == profile["emailAddress"] and info["email_verified"] is True
    _, _, tokeninfo = await get(http, "/tokeninfo", params={"access_token": refreshed["access_token"]}, headers={})
    assert "gmail.readonly" in tokeninfo["scope"] and int(tokeninfo["expires_in"]) == 3599
    async with http.post("/revoke", params={"token": tokens["refresh_token"]}) as resp:     # no client auth
        assert resp.status == 200
    async with http.post("/revoke", params={"token": tokens["refresh_token"]}) as resp:
        assert resp.status == 400 and (await resp.json())["error"] == "invalid_token"
    async with http.post("/token", data=refresh) as resp:
        dead = await resp.json()
    assert resp.status == 400 and dead == {"error": "invalid_grant",
                                           "error_description": "Token has been expired or revoked."}
    status, _, _ = await get(http, "/tokeninfo", params={"access_token": refreshed["access_token"]}, headers={})
    assert status == 400


async def test_standalone_gmail_emulator_from_the_command_line() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "connectors.emulators", "gmail", "--port", "0", "--token", "ya29.cli-token-4242",
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    assert proc.stdout is not None
    try:
        line = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode()
        assert line.startswith("gmail emulator listening: http://127.0.0.1:") and line.endswith("/gmail/v1\n")
        base = line.split(": ", 1)[1].strip()
        async with aiohttp.ClientSession(headers={"Authorization": "Bearer ya29.cli-token-4242"}) as http:
            async with http.get(base + "/users/me/profile") as resp:
                assert resp.status == 200 and "emailAddress" in await resp.json()
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 0, err
    assert b"ya29.cli-token-4242" not in out + err
