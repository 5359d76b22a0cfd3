"""The Dropbox emulator's own wire shapes, over raw HTTP (no connector): the token endpoint's answers, the
plain-text 400s, the JSON 401/409/429 bodies, Dropbox-API-Arg handling, and the longpoll's refusal of credentials."""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from connectors.emulators import EMULATORS, ManualClock
from connectors.emulators.oauth import s256
from connectors.webhooks import VERIFIERS
from connectors.webhooks.dropbox import changed_accounts

TOKEN = "sl.u.emulator-test-token-000000000000001"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
async def api() -> AsyncIterator[tuple[Any, aiohttp.ClientSession]]:
    emu = EMULATORS["dropbox"](tokens=[TOKEN], seed=5, clock=ManualClock())
    emu.oauth.register_client("app-key", "app-secret", ["http://127.0.0.1:9/cb"])
    await emu.start()
    async with aiohttp.ClientSession() as session:
        yield emu, session
    await emu.stop()


async def post(session: aiohttp.ClientSession, url: str, **kw: Any) -> tuple[int, str, Any]:
    async with session.post(url, **kw) as resp:
        text = await resp.text()
        body = json.loads(text) if resp.content_type == "application/json" else text
        return resp.status, resp.content_type, body


async def test_identity_accepts_no_body_or_null_and_refuses_an_argument(api):
    emu, session = api
    url = emu.base_url + "/users/get_current_account"
    status, _, body = await post(session, url, headers=AUTH)
    assert status == 200 and body["account_id"].startswith("dbid:") and body["name"]["display_name"]
    assert (await post(session, url, headers={**AUTH, "Content-Type": "application/json"}, data=b"null"))[0] == 200
    status, kind, text = await post(session, url, headers=AUTH, json={"x": 1})
    assert status == 400 and kind == "text/plain" and "users/get_current_account" in text


async def test_auth_answers(api):
    emu, session = api
    url = emu.base_url + "/users/get_current_account"
    status, kind, text = await post(session, url)
    assert status == 400 and kind == "text/plain" and 'Must provide HTTP header "Authorization"' in text
    status, _, body = await post(session, url, headers={"Authorization": "Bearer nope-nope"})
    assert status == 401 and body == {"error_summary": "invalid_access_token/..",
                                      "error": {".tag": "invalid_access_token"}}
    emu.add_token("sl.u.short-lived", expires_at=emu.clock() + 10)
    emu.clock.advance(11)
    status, _, body = await post(session, url, headers={"Authorization": "Bearer sl.u.short-lived"})
    assert status == 401 and body["error"][".tag"] == "expired_access_token"


async def test_token_endpoint_answers_in_dropbox_shape_and_keeps_the_refresh_token(api):
    emu, session = api
    verifier = "v" * 50
    query = {"response_type": "code", "client_id": "app-key", "redirect_uri": "http://127.0.0.1:9/cb",
             "token_access_type": "offline", "code_challenge": s256(verifier), "code_challenge_method": "S256"}
    async with session.get(emu.origin + "/oauth2/authorize", params=query, allow_redirects=False) as resp:
        code = urllib.parse.parse_qs(urllib.parse.urlsplit(resp.headers["Location"]).query)["code"][0]
    status, _, issued = await post(session, emu.origin + "/oauth2/token", data={
        "grant_type": "authorization_code", "code": code, "client_id": "app-key", "code_verifier": verifier,
        "redirect_uri": "http://127.0.0.1:9/cb", "client_secret": "app-secret"})
    assert status == 200 and issued["token_type"] == "bearer" and issued["account_id"].startswith("dbid:")
    assert issued["expires_in"] == 14400 and issued["access_token"].startswith("sl.u.") and issued["uid"]
    status, _, refreshed = await post(session, emu.origin + "/oauth2/token", data={
        "grant_type": "refresh_token", "refresh_token": issued["refresh_token"], "client_id": "app-key",
        "client_secret": "app-secret"})
    assert status == 200 and "refresh_token" not in refreshed and refreshed["account_id"] == issued["account_id"]
    status, _, refused = await post(session, emu.origin + "/oauth2/token", data={
        "grant_type": "refresh_token", "refresh_token": "nope", "client_id": "app-key", "client_secret": "app-secret"})
    assert status == 400 and refused["error"] == "invalid_grant"


async def test_route_errors_and_rate_limit_bodies(api):
    emu, session = api
    status, _, body = await post(session, emu.base_url + "/files/get_metadata", headers=AUTH,
                                 json={"path": "/missing.txt"})
    assert status == 409 and body["error"] == {".tag": "path", "path": {".tag": "not_found"}}
    status, _, body = await post(session, emu.base_url + "/files/list_folder/continue", headers=AUTH,
                                 json={"cursor": "garbage"})
    assert status == 400
    emu.set_rate_limit(1, 60)
    await post(session, emu.base_url + "/users/get_current_account", headers=AUTH)
    async with session.post(emu.base_url + "/users/get_current_account", headers=AUTH) as resp:
        body = await resp.json()
        assert resp.status == 429 and resp.headers["Retry-After"] == str(body["error"]["retry_after"])
    assert body["error"]["reason"] == {".tag": "too_many_requests"} and body["error_summary"].startswith("too_many")


async def test_upload_needs_its_arg_header_and_octet_stream(api):
    emu, session = api
    url = emu.base_url + "/files/upload"
    status, _, text = await post(session, url, headers={**AUTH, "Content-Type": "application/octet-stream"},
                                 data=b"x")
    assert status == 400 and "Dropbox-API-Arg" in text
    arg = {"Dropbox-API-Arg": json.dumps({"path": "/a.txt"})}
    status, _, text = await post(session, url, headers={**AUTH, **arg, "Content-Type": "text/plain"}, data=b"x")
    assert status == 400 and "octet-stream" in text
    status, _, meta = await post(session, url, headers={**AUTH, **arg, "Content-Type": "application/octet-stream"},
                                 data=b"x")
    assert status == 200 and meta[".tag"] == "file" and meta["size"] == 1 and len(meta["content_hash"]) == 64


async def test_the_longpoll_refuses_credentials_and_validates_its_timeout(api):
    emu, session = api
    status, _, latest = await post(session, emu.base_url + "/files/list_folder/get_latest_cursor", headers=AUTH,
                                   json={"path": ""})
    url = emu.base_url + "/files/list_folder/longpoll"
    assert (await post(session, url, headers=AUTH, json={"cursor": latest["cursor"]}))[0] == 400
    assert (await post(session, url, json={"cursor": latest["cursor"], "timeout": 5}))[0] == 400
    emu.put_file(TOKEN, "/n.txt", b"n")
    status, _, body = await post(session, url, json={"cursor": latest["cursor"]})
    assert status == 200 and body == {"changes": True}


async def test_a_signed_notification_passes_the_verifier_and_names_the_account(api):
    emu, _ = api
    body, headers = emu.signed_notification(b"app-secret", [TOKEN])
    assert VERIFIERS["dropbox"].verify(headers, body, b"app-secret", 0.0).startswith("sha256:")
    assert changed_accounts(body) == [emu.accounts[TOKEN].account_id]
