"""The Discord emulator's own wire shapes, over raw HTTP (no connector): auth schemes, bucket headers and the
two 429 shapes, Discord error codes, snowflake paging anchors, the token endpoint's answers, signed interactions."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from connectors.emulators import EMULATORS, ManualClock
from connectors.emulators.discord_data import snowflake_ms
from connectors.webhooks import VERIFIERS

BOT = "MTE4.emulator-bot-token-000000000000001"
HEADERS = {"Authorization": f"Bot {BOT}", "User-Agent": "DiscordBot (https://example.com, 1)"}


@pytest.fixture
async def api() -> AsyncIterator[tuple[Any, aiohttp.ClientSession]]:
    emu = EMULATORS["discord"](tokens=[BOT], seed=7, clock=ManualClock())
    await emu.start()
    async with aiohttp.ClientSession() as session:
        yield emu, session
    await emu.stop()


async def call(session: aiohttp.ClientSession, method: str, url: str, **kw: Any) -> tuple[int, Any, Any]:
    async with session.request(method, url, **kw) as resp:
        text = await resp.text()
        body = json.loads(text) if resp.content_type == "application/json" else text
        return resp.status, resp.headers, body


async def test_bot_scheme_required_and_unauthorized_shape(api):
    emu, session = api
    status, _, body = await call(session, "GET", emu.base_url + "/users/@me", headers=HEADERS)
    assert status == 200 and body["bot"] is True and int(body["id"]) > 0
    for header in ({"Authorization": f"Bearer {BOT}"}, {"Authorization": "Bot nope"}, {}):
        status, _, body = await call(session, "GET", emu.base_url + "/users/@me", headers=header)
        assert status == 401 and body == {"message": "401: Unauthorized", "code": 0}


async def test_bucket_headers_and_the_route_429(api):
    emu, session = api
    emu.options.route_limit = 2
    channel = emu.world.guilds[0].channels[0].id
    url = f"{emu.base_url}/channels/{channel}/messages"
    _, first, _ = await call(session, "GET", url, headers=HEADERS)
    assert first["X-RateLimit-Limit"] == "2" and first["X-RateLimit-Remaining"] == "1"
    assert float(first["X-RateLimit-Reset-After"]) == 5.0 and len(first["X-RateLimit-Bucket"]) == 32
    other = emu.world.guilds[0].channels[1].id
    _, elsewhere, _ = await call(session, "GET", f"{emu.base_url}/channels/{other}/messages", headers=HEADERS)
    assert elsewhere["X-RateLimit-Bucket"] == first["X-RateLimit-Bucket"]         # same route, same bucket id
    assert elsewhere["X-RateLimit-Remaining"] == "1"                                # but its own count
    await call(session, "GET", url, headers=HEADERS)
    emu.clock.advance(1.5)
    status, headers, body = await call(session, "GET", url, headers=HEADERS)
    assert status == 429 and headers["X-RateLimit-Scope"] == "user" and "X-RateLimit-Global" not in headers
    assert body == {"message": "You are being rate limited.", "retry_after": 3.5, "global": False}
    assert headers["Retry-After"] == "4"
    emu.clock.advance(3.5)
    assert (await call(session, "GET", url, headers=HEADERS))[0] == 200


async def test_the_global_429(api):
    emu, session = api
    emu.set_rate_limit(1, 1)
    await call(session, "GET", emu.base_url + "/users/@me", headers=HEADERS)
    status, headers, body = await call(session, "GET", emu.base_url + "/users/@me", headers=HEADERS)
    assert status == 429 and headers["X-RateLimit-Global"] == "true" and headers["X-RateLimit-Scope"] == "global"
    assert body["global"] is True and 0 < body["retry_after"] <= 1


async def test_paging_anchors_and_form_errors(api):
    emu, session = api
    channel = emu.world.guilds[1].channels[2]
    url = f"{emu.base_url}/channels/{channel.id}/messages"
    _, _, newest = await call(session, "GET", url, headers=HEADERS, params={"limit": "5"})
    assert [m["id"] for m in newest] == [str(i) for i in reversed(channel.ids[-5:])]
    _, _, after = await call(session, "GET", url, headers=HEADERS, params={"after": str(channel.ids[9]), "limit": "3"})
    assert [m["id"] for m in after] == [str(i) for i in reversed(channel.ids[10:13])]
    assert after[0]["timestamp"].startswith("2023-") and snowflake_ms(int(after[0]["id"])) > 0
    status, _, body = await call(session, "GET", url, headers=HEADERS, params={"after": "1", "before": "9"})
    assert status == 400 and body["code"] == 50035 and "errors" in body
    status, _, body = await call(session, "GET", f"{emu.base_url}/channels/42/messages", headers=HEADERS)
    assert status == 404 and body == {"message": "Unknown Channel", "code": 10003}
    status, _, body = await call(session, "POST", url, headers=HEADERS, data=b"content=hi")
    assert status == 400 and body["code"] == 50035
    status, _, body = await call(session, "POST", url, headers=HEADERS, json={"content": "x" * 2001})
    assert status == 400 and body["errors"]["content"]["_errors"][0]["code"] == "BASE_TYPE_MAX_LENGTH"
    status, _, posted = await call(session, "POST", url, headers=HEADERS, json={"content": "hi"})
    assert status == 200 and int(posted["id"]) > channel.ids[-2] and posted["author"]["bot"] is True


async def test_user_agent_knob_and_unknown_routes(api):
    emu, session = api
    emu.options.require_user_agent = True
    status, _, _ = await call(session, "GET", emu.base_url + "/users/@me", headers={"Authorization": f"Bot {BOT}"})
    assert status == 403
    status, _, body = await call(session, "GET", emu.base_url + "/nothing/here", headers=HEADERS)
    assert status == 404 and body["message"] == "404: Not Found"


async def test_signed_interactions_verify_with_the_application_key(api):
    emu, _ = api
    body = b'{"id":"1190000000000000001","type":1,"version":1,"token":"tok"}'
    headers = emu.sign_interaction(body)
    assert VERIFIERS["discord"].verify(headers, body, emu.public_key_hex.encode(), emu.clock()) == \
        "1190000000000000001"


async def test_oauth_token_answers_say_bearer_and_device_flow_is_mounted(api):
    emu, session = api
    emu.oauth.register_client("cid", "secret", ["http://127.0.0.1:9/cb"])
    status, _, device = await call(session, "POST", emu.origin + "/api/v10/oauth2/device/authorize",
                                   data={"client_id": "cid", "client_secret": "secret", "scope": "identify"})
    assert status == 200 and device["verification_uri"] == "https://discord.com/activate"
    assert device["expires_in"] == 300 and device["interval"] == 5
    assert emu.oauth.approve(device["user_code"])
    status, _, tokens = await call(session, "POST", emu.origin + "/api/oauth2/token", data={
        "grant_type": "urn:ietf:params:oauth:grant-type:device_code", "device_code": device["device_code"],
        "client_id": "cid", "client_secret": "secret"})
    assert status == 200 and tokens["token_type"] == "Bearer" and tokens["expires_in"] == 604800
    bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
    status, _, me = await call(session, "GET", emu.base_url + "/oauth2/@me", headers=bearer)
    assert status == 200 and me["scopes"] == ["identify"] and me["user"]["id"]
