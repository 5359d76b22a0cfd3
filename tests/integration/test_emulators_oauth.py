"""The emulators' authorization server over real loopback HTTP: every grant, its errors, the dialects."""

from __future__ import annotations

import base64
import urllib.parse

import aiohttp
import pytest

from connectors.emulators.base import ManualClock
from connectors.emulators.github import GitHubEmulator
from connectors.emulators.oauth import DEVICE_GRANT, redirect_matches, s256
from connectors.emulators.slack import SlackEmulator

VERIFIER = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
REDIRECT = "http://127.0.0.1/callback"


@pytest.fixture
async def gh():
    clock = ManualClock()
    emu = GitHubEmulator(seed=1, clock=clock)
    emu.oauth.register_client("Iv1.client", "s3cret", [REDIRECT])
    emu.oauth.options.pkce_required = True
    await emu.start()
    async with aiohttp.ClientSession(headers={"Accept": "application/json"}) as http:
        yield emu, http, clock
    await emu.stop()


async def authorize(emu, http, **overrides) -> dict:
    params = {"client_id": "Iv1.client", "redirect_uri": "http://127.0.0.1:5555/callback", "response_type": "code",
              "state": "st4te", "scope": "repo read:user", "code_challenge": s256(VERIFIER),
              "code_challenge_method": "S256", **overrides}
    async with http.get(emu.oauth.url(emu.oauth.options.authorize_path), params=params,
                        allow_redirects=False) as resp:
        assert resp.status == 302, await resp.text()
        location = resp.headers["Location"]
    assert location.startswith("http://127.0.0.1:5555/callback?")
    return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(location).query))


async def token(emu, http, form: dict, auth: str | None = None) -> tuple[int, dict]:
    headers = {"Authorization": auth} if auth else {}
    async with http.post(emu.oauth.url(emu.oauth.options.token_path), data=form, headers=headers) as resp:
        return resp.status, await resp.json(content_type=None)


def code_form(code: str, **extra) -> dict:
    return {"grant_type": "authorization_code", "code": code, "redirect_uri": "http://127.0.0.1:5555/callback",
            "client_id": "Iv1.client", "client_secret": "s3cret", "code_verifier": VERIFIER, **extra}


def test_pkce_vector_and_loopback_matching():
    assert s256(VERIFIER) == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    assert redirect_matches(REDIRECT, "http://127.0.0.1:49152/callback")
    assert not redirect_matches(REDIRECT, "http://127.0.0.1:49152/other")
    assert not redirect_matches("https://app.example/cb", "https://app.example:444/cb")
    assert not redirect_matches(REDIRECT, "http://localhost:1234/callback")


async def test_code_grant_then_api_then_rotation(gh):
    emu, http, clock = gh
    back = await authorize(emu, http)
    assert back["state"] == "st4te"
    status, body = await token(emu, http, code_form(back["code"]))
    assert status == 200 and body["access_token"].startswith("ghu_") and body["expires_in"] == 28800
    async with http.get(emu.base_url + "/user", headers={"Authorization": f"Bearer {body['access_token']}"}) as r:
        assert r.status == 200
        login = (await r.json())["login"]
    # single use
    status, again = await token(emu, http, code_form(back["code"]))
    assert again["error"] == "bad_verification_code"
    # rotation: the old refresh token dies at once (GitHub)
    refresh = {"grant_type": "refresh_token", "refresh_token": body["refresh_token"], "client_id": "Iv1.client",
               "client_secret": "s3cret"}
    status, new = await token(emu, http, refresh)
    assert new["refresh_token"] != body["refresh_token"]
    status, dead = await token(emu, http, refresh)
    assert dead["error"] == "bad_refresh_token"
    # the same user behind the refreshed token; the old access token expires with the clock
    async with http.get(emu.base_url + "/user", headers={"Authorization": f"Bearer {new['access_token']}"}) as r:
        assert (await r.json())["login"] == login
    clock.advance(28801)
    async with http.get(emu.base_url + "/user", headers={"Authorization": f"Bearer {new['access_token']}"}) as r:
        assert r.status == 401 and (await r.json())["message"] == "Bad credentials"
    assert emu.oauth.token_requests == 4


async def test_code_grant_refusals(gh):
    emu, http, clock = gh
    back = await authorize(emu, http)
    _, body = await token(emu, http, code_form(back["code"], code_verifier="x" * 43))
    assert body["error"] == "invalid_code_verifier"
    _, body = await token(emu, http, code_form(back["code"], redirect_uri="http://127.0.0.1:1/else"))
    assert body["error"] == "redirect_uri_mismatch"
    _, body = await token(emu, http, code_form(back["code"], client_secret="wrong"))
    assert body["error"] == "incorrect_client_credentials"
    clock.advance(601)
    _, body = await token(emu, http, code_form(back["code"]))
    assert body["error"] == "bad_verification_code" and "expired" in body["error_description"]
    denied = await authorize(emu, http, code_challenge="")
    assert denied["error"] == "invalid_request" and denied["state"] == "st4te"
    emu.oauth.options.deny = True
    assert (await authorize(emu, http))["error"] == "access_denied"
    async with http.get(emu.oauth.url("/login/oauth/authorize"),
                        params={"client_id": "Iv1.client", "redirect_uri": "http://evil.example/cb",
                                "response_type": "code"}, allow_redirects=False) as resp:
        assert resp.status == 400


async def test_basic_auth_is_form_urlencoded_and_unique(gh):
    emu, http, _ = gh
    emu.oauth.register_client("odd:id", "p@ss word", [REDIRECT])
    back = await authorize(emu, http, client_id="odd:id")
    cred = base64.b64encode(b"odd%3Aid:p%40ss+word").decode()
    form = code_form(back["code"])
    del form["client_secret"], form["client_id"]
    status, body = await token(emu, http, form, auth=f"Basic {cred}")
    assert status == 200 and "access_token" in body
    status, body = await token(emu, http, {**form, "client_secret": "x"}, auth=f"Basic {cred}")
    assert body["error"] == "invalid_request"


async def test_github_form_encoded_unless_json(gh):
    emu, _, _ = gh
    async with aiohttp.ClientSession() as plain:
        async with plain.post(emu.oauth.url("/login/oauth/access_token"),
                              data={"grant_type": "refresh_token", "refresh_token": "nope",
                                    "client_id": "Iv1.client", "client_secret": "s3cret"}) as resp:
            assert resp.status == 200 and resp.content_type == "application/x-www-form-urlencoded"
            assert "error=bad_refresh_token" in await resp.text()


async def test_device_flow(gh):
    emu, http, clock = gh
    async with http.post(emu.oauth.url("/login/device/code"), data={"client_id": "Iv1.client",
                                                                     "scope": "repo"}) as resp:
        start = await resp.json()
    assert start["interval"] == 5 and start["verification_uri"] == "https://github.com/login/device"
    poll = {"grant_type": DEVICE_GRANT, "device_code": start["device_code"], "client_id": "Iv1.client"}
    assert (await token(emu, http, poll))[1]["error"] == "authorization_pending"
    assert (await token(emu, http, poll))[1]["error"] == "slow_down"
    clock.advance(10)
    assert (await token(emu, http, poll))[1]["error"] == "authorization_pending"
    async with http.post(emu.origin + "/_emulator/oauth/approve", json={"user_code": start["user_code"]}) as r:
        assert r.status == 200
    clock.advance(10)
    _, body = await token(emu, http, poll)
    assert body["access_token"].startswith("ghu_")
    # refresh of a device grant needs no client secret (GitHub)
    _, again = await token(emu, http, {"grant_type": "refresh_token", "refresh_token": body["refresh_token"],
                                       "client_id": "Iv1.client"})
    assert "access_token" in again
    # expiry and denial
    async with http.post(emu.oauth.url("/login/device/code"), data={"client_id": "Iv1.client"}) as resp:
        late = await resp.json()
    clock.advance(901)
    late_poll = {**poll, "device_code": late["device_code"]}
    assert (await token(emu, http, late_poll))[1]["error"] == "expired_token"
    async with http.post(emu.oauth.url("/login/device/code"), data={"client_id": "Iv1.client"}) as resp:
        no = await resp.json()
    assert emu.oauth.approve(no["user_code"], deny=True)
    assert (await token(emu, http, {**poll, "device_code": no["device_code"]}))[1]["error"] == "access_denied"


async def test_github_revocation_and_faults(gh):
    emu, http, _ = gh
    back = await authorize(emu, http)
    _, body = await token(emu, http, code_form(back["code"]))
    url = emu.oauth.url("/applications/Iv1.client/token")
    auth = {"Authorization": aiohttp.encode_basic_auth("Iv1.client", "s3cret")}
    async with http.delete(url, json={"access_token": body["access_token"]}, headers=auth) as resp:
        assert resp.status == 204
    async with http.get(emu.base_url + "/user", headers={"Authorization": f"Bearer {body['access_token']}"}) as r:
        assert r.status == 401
    _, dead = await token(emu, http, {"grant_type": "refresh_token", "refresh_token": body["refresh_token"],
                                      "client_id": "Iv1.client", "client_secret": "s3cret"})
    assert "error" in dead
    async with http.delete(url, json={"access_token": "unknown"}, headers=auth) as resp:
        assert resp.status == 204
    emu.oauth.options.token_fault = "error_500"
    async with http.post(emu.oauth.url("/login/oauth/access_token"), data={}) as resp:
        assert resp.status == 500
    emu.oauth.options.token_fault = "garbage"
    async with http.post(emu.oauth.url("/login/oauth/access_token"), data={}) as resp:
        assert resp.status == 200 and "html" in await resp.text()
    async with http.get(emu.origin + "/_emulator/oauth/state") as resp:
        state = await resp.json()
    assert state["token_requests"] == 4 and state["revocations"] == 2


async def test_hanging_token_endpoint(gh):
    emu, http, _ = gh
    emu.oauth.options.token_fault = "hang"
    with pytest.raises(TimeoutError):
        async with http.post(emu.oauth.url("/login/oauth/access_token"), data={},
                             timeout=aiohttp.ClientTimeout(total=0.2)):
            pass
    assert emu.oauth.token_requests == 1


async def test_slack_dialect_and_rotation():
    emu = SlackEmulator(seed=1)
    emu.oauth.register_client("111.222", "sl4ck", ["https://example.com/slack/cb"])
    await emu.start()
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(emu.oauth.url("/oauth/v2/authorize"), allow_redirects=False,
                                params={"client_id": "111.222", "redirect_uri": "https://example.com/slack/cb",
                                        "response_type": "code", "scope": "channels:read,chat:write"}) as resp:
                code = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(resp.headers["Location"]).query))["code"]
            form = {"code": code, "redirect_uri": "https://example.com/slack/cb"}
            auth = {"Authorization": aiohttp.encode_basic_auth("111.222", "sl4ck")}
            async with http.post(emu.oauth.url("/api/oauth.v2.access"), data=form, headers=auth) as resp:
                body = await resp.json()
            assert body["ok"] and body["access_token"].startswith("xoxb-") and "refresh_token" not in body
            async with http.post(emu.oauth.url("/api/oauth.v2.access"), data=form, headers=auth) as resp:
                assert await resp.json() == {"ok": False, "error": "invalid_code"}
            async with http.post(emu.base_url + "/auth.test",
                                 headers={"Authorization": f"Bearer {body['access_token']}"}) as resp:
                assert (await resp.json())["ok"] is True
            async with http.post(emu.oauth.url("/api/auth.revoke"),
                                 headers={"Authorization": f"Bearer {body['access_token']}"}) as resp:
                assert await resp.json() == {"ok": True, "revoked": True}
            async with http.post(emu.base_url + "/auth.test",
                                 headers={"Authorization": f"Bearer {body['access_token']}"}) as resp:
                assert (await resp.json())["error"] == "token_revoked"
            emu.enable_token_rotation()
            assert emu.oauth.options.rotate_refresh_tokens
    finally:
        await emu.stop()
