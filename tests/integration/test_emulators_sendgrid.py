"""SendGrid emulator over real loopback HTTP: keys, permissions, mail/send validation, bounces, quotas."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from connectors.emulators import ManualClock, SendGridEmulator

KEY = "SG.demo.key-1234"
GRANT_ERROR = {"errors": [{"message": "The provided authorization grant is invalid, expired, or revoked",
                           "field": None, "help": None}]}
MAIL = {"personalizations": [{"to": [{"email": "ada@example.com", "name": "Ada"}]}],
        "from": {"email": "noreply@example.com"}, "subject": "Hello",
        "content": [{"type": "text/plain", "value": "Hi there"}]}


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(1_700_000_000.0)


@pytest.fixture
async def emu(clock: ManualClock) -> AsyncIterator[SendGridEmulator]:
    emulator = SendGridEmulator(tokens=[KEY], seed=5, clock=clock)
    await emulator.start()
    yield emulator
    await emulator.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def auth(key: str = KEY) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def request(http: aiohttp.ClientSession, verb: str, url: str, **kw: Any) -> tuple[int, Any, Any]:
    async with http.request(verb, url, **kw) as resp:
        text = await resp.text()
        return resp.status, (await resp.json() if text else text), resp.headers


async def test_scopes_with_good_missing_bad_and_revoked_keys(
        emu: SendGridEmulator, http: aiohttp.ClientSession) -> None:
    status, body, headers = await request(http, "GET", emu.base_url + "/scopes", headers=auth())
    assert status == 200 and "mail.send" in body["scopes"]
    assert headers["X-RateLimit-Limit"] == "600" and headers["X-RateLimit-Remaining"] == "599"
    assert headers["X-RateLimit-Reset"] == "1700000040"
    status, body, _ = await request(http, "GET", emu.base_url + "/scopes")
    assert (status, body) == (401, {"errors": [{"field": None, "message": "authorization required"}]})
    status, body, _ = await request(http, "GET", emu.base_url + "/scopes", headers=auth("SG.wrong"))
    assert (status, body) == (401, GRANT_ERROR)
    emu.revoke(KEY)
    assert (await request(http, "GET", emu.base_url + "/scopes", headers=auth()))[:2] == (401, GRANT_ERROR)


async def test_profile_account_and_permissions(emu: SendGridEmulator, http: aiohttp.ClientSession) -> None:
    status, profile, _ = await request(http, "GET", emu.base_url + "/user/profile", headers=auth())
    assert status == 200 and {"first_name", "last_name", "company", "country", "phone", "website"} <= set(profile)
    status, account, _ = await request(http, "GET", emu.base_url + "/user/account", headers=auth())
    assert status == 200 and account["type"] in ("free", "paid") and isinstance(account["reputation"], float)
    emu.add_token("SG.send.only", scopes=["mail.send"])
    status, body, _ = await request(http, "GET", emu.base_url + "/user/profile", headers=auth("SG.send.only"))
    assert status == 403 and body["errors"][0]["message"] == "access forbidden"
    _, scopes, _ = await request(http, "GET", emu.base_url + "/scopes", headers=auth("SG.send.only"))
    assert scopes == {"scopes": ["mail.send"]}
    status, body, _ = await request(http, "GET", emu.base_url + "/nothing/here", headers=auth())
    assert status == 404 and body["errors"][0]["message"] == "resource not found"


@pytest.mark.parametrize(("drop", "field"), [("personalizations", "personalizations"), ("from", "from"),
                                             ("subject", "subject"), ("content", "content")])
async def test_mail_send_names_each_missing_field(
        emu: SendGridEmulator, http: aiohttp.ClientSession, drop: str, field: str) -> None:
    mail = {k: v for k, v in MAIL.items() if k != drop}
    status, body, _ = await request(http, "POST", emu.base_url + "/mail/send", json=mail, headers=auth())
    assert status == 400 and [e["field"] for e in body["errors"]] == [field]
    assert emu.outbox == []


async def test_mail_send_field_details(emu: SendGridEmulator, http: aiohttp.ClientSession) -> None:
    bad = {**MAIL, "personalizations": [{"to": [{"email": "not-an-address"}]}, {"cc": []}],
           "from": {"email": "also bad"}}
    status, body, _ = await request(http, "POST", emu.base_url + "/mail/send", json=bad, headers=auth())
    assert status == 400
    assert [e["field"] for e in body["errors"]] == ["personalizations.0.to.0.email", "personalizations.1.to",
                                                    "from.email"]
    templated = {k: v for k, v in MAIL.items() if k not in ("subject", "content")} | {"template_id": "d-123"}
    assert (await request(http, "POST", emu.base_url + "/mail/send", json=templated, headers=auth()))[0] == 202
    status, body, _ = await request(http, "POST", emu.base_url + "/mail/send", data=b"{nope", headers=auth())
    assert status == 400 and body["errors"][0]["field"] is None


async def test_mail_send_accepts_and_records(emu: SendGridEmulator, http: aiohttp.ClientSession) -> None:
    status, body, headers = await request(http, "POST", emu.base_url + "/mail/send", json=MAIL, headers=auth())
    assert (status, body) == (202, "")
    assert len(headers["X-Message-Id"]) == 22
    assert emu.outbox == [{"message_id": headers["X-Message-Id"], "key": "…1234", "body": MAIL}]
    emu.add_token("SG.read.only", scopes=["user.profile.read"])
    status, _, _ = await request(http, "POST", emu.base_url + "/mail/send", json=MAIL, headers=auth("SG.read.only"))
    assert status == 403 and len(emu.outbox) == 1


async def test_mail_send_refuses_large_bodies(clock: ManualClock, http: aiohttp.ClientSession) -> None:
    emulator = SendGridEmulator(tokens=[KEY], clock=clock, options={"max_mail_bytes": 2048})
    await emulator.start()
    try:
        big = {**MAIL, "content": [{"type": "text/plain", "value": "x" * 4096}]}
        status, body, _ = await request(http, "POST", emulator.base_url + "/mail/send", json=big, headers=auth())
        assert status == 413 and body["errors"][0]["field"] is None

        async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: caught while streaming
            for _ in range(8):
                yield b" " * 512

        status, _, _ = await request(http, "POST", emulator.base_url + "/mail/send", data=chunks(), headers=auth())
        assert status == 413
        assert (await request(http, "POST", emulator.base_url + "/mail/send", json=MAIL, headers=auth()))[0] == 202
    finally:
        await emulator.stop()


async def test_default_limit_is_twenty_megabytes() -> None:
    assert SendGridEmulator().options.max_mail_bytes == 20 * 1024 * 1024


async def test_bounces_offset_walk_and_time_window(emu: SendGridEmulator, http: aiohttp.ClientSession) -> None:
    _, everything, _ = await request(http, "GET", emu.base_url + "/suppression/bounces", headers=auth())
    assert len(everything) == 137 and set(everything[0]) == {"created", "email", "reason", "status"}
    walked, offset = [], 0
    while True:
        _, page, _ = await request(http, "GET", emu.base_url + f"/suppression/bounces?limit=20&offset={offset}",
                                   headers=auth())
        if not page:
            break
        walked += page
        offset += len(page)
    assert walked == everything
    start, end = everything[100]["created"], everything[40]["created"]
    _, window, _ = await request(http, "GET", emu.base_url + "/suppression/bounces",
                                 params={"start_time": str(start), "end_time": str(end)}, headers=auth())
    assert window == everything[40:101]  # both ends inclusive
    status, body, _ = await request(http, "GET", emu.base_url + "/suppression/bounces?limit=many", headers=auth())
    assert status == 400 and body["errors"][0]["field"] == "limit"


async def test_rate_window(emu: SendGridEmulator, http: aiohttp.ClientSession, clock: ManualClock) -> None:
    emu.set_rate_limit(limit=3, window=30.0)
    remaining = []
    for _ in range(3):
        status, _, headers = await request(http, "GET", emu.base_url + "/scopes", headers=auth())
        assert status == 200 and headers["X-RateLimit-Reset"] == "1700000010"
        remaining.append(headers["X-RateLimit-Remaining"])
    assert remaining == ["2", "1", "0"]
    status, body, headers = await request(http, "GET", emu.base_url + "/user/account", headers=auth())
    assert (status, body) == (429, {"errors": [{"field": None, "message": "too many requests"}]})
    assert headers["X-RateLimit-Remaining"] == "0"
    clock.advance(10)
    status, _, headers = await request(http, "GET", emu.base_url + "/scopes", headers=auth())
    assert status == 200 and headers["X-RateLimit-Remaining"] == "2"
