"""Slack emulator over real loopback HTTP: auth errors, cursors, history windows, posting, tier limits."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from connectors.emulators import ManualClock, SlackEmulator

BOT = "xoxb-demo-1"
USER = "xoxp-demo-2"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(1_700_000_000.0)


@pytest.fixture
async def emu(clock: ManualClock) -> AsyncIterator[SlackEmulator]:
    emulator = SlackEmulator(tokens=[BOT, USER], seed=3, clock=clock)
    await emulator.start()
    yield emulator
    await emulator.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def call(http: aiohttp.ClientSession, emu: SlackEmulator, method: str, token: str | None = BOT,
               **kw: Any) -> tuple[int, dict[str, Any], Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    verb = "GET" if "params" in kw else "POST"
    async with http.request(verb, f"{emu.base_url}/{method}", headers=headers, **kw) as resp:
        return resp.status, await resp.json(), resp.headers


async def test_auth_test_identities_and_token_locations(emu: SlackEmulator, http: aiohttp.ClientSession) -> None:
    status, bot, _ = await call(http, emu, "auth.test")
    assert status == 200 and bot["ok"] is True and bot["bot_id"].startswith("B")
    assert bot["team_id"] == emu.team_id and bot["url"].startswith("https://") and bot["user_id"].startswith("U")
    _, user, _ = await call(http, emu, "auth.test", token=USER)
    assert "bot_id" not in user and user["user_id"] != bot["user_id"]
    _, form, _ = await call(http, emu, "auth.test", token=None, data={"token": BOT})
    _, query, _ = await call(http, emu, "auth.test", token=None, params={"token": BOT})
    assert form["user_id"] == query["user_id"] == bot["user_id"]
    _, in_json, _ = await call(http, emu, "auth.test", token=None, json={"token": BOT})
    assert in_json == {"ok": False, "error": "not_authed"}  # Slack wants the header with JSON bodies


async def test_auth_errors_come_with_http_200(emu: SlackEmulator, http: aiohttp.ClientSession) -> None:
    assert (await call(http, emu, "auth.test", token=None))[:2] == (200, {"ok": False, "error": "not_authed"})
    assert (await call(http, emu, "auth.test", token="xoxb-bogus"))[:2] == (200, {"ok": False, "error": "invalid_auth"})
    emu.revoke(BOT)
    assert (await call(http, emu, "auth.test"))[:2] == (200, {"ok": False, "error": "token_revoked"})
    status, body, _ = await call(http, emu, "no.such.method")
    assert status == 404 and body["error"] == "unknown_method"


async def test_conversations_list_cursor_walk(emu: SlackEmulator, http: aiohttp.ClientSession) -> None:
    async def walk(**extra: str) -> list[dict[str, Any]]:
        seen, cursor = [], ""
        while True:
            _, body, _ = await call(http, emu, "conversations.list", data={"limit": "7", "cursor": cursor, **extra})
            assert body["ok"], body
            seen += body["channels"]
            cursor = body["response_metadata"]["next_cursor"]
            if not cursor:
                return seen

    public = await walk()
    everything = await walk(types="public_channel,private_channel")
    assert len(everything) == 40 and len({c["id"] for c in everything}) == 40
    assert [c for c in everything if not c["is_private"]] == public
    live = await walk(types="public_channel,private_channel", exclude_archived="true")
    assert len(live) == len([c for c in everything if not c["is_archived"]]) < 40
    _, bad, _ = await call(http, emu, "conversations.list", data={"cursor": "not-a-cursor"})
    assert bad == {"ok": False, "error": "invalid_cursor"}


async def test_history_newest_first_with_cursor(emu: SlackEmulator, http: aiohttp.ClientSession) -> None:
    general = emu.channels[0].id
    messages, cursor, pages = [], None, 0
    while True:
        payload = {"channel": general, "limit": 25, **({"cursor": cursor} if cursor else {})}
        _, body, _ = await call(http, emu, "conversations.history", json=payload)
        pages += 1
        messages += body["messages"]
        if not body["has_more"]:
            assert "response_metadata" not in body
            break
        cursor = body["response_metadata"]["next_cursor"]
    stamps = [m["ts"] for m in messages]
    assert pages == 5 and len(stamps) == 120 and len(set(stamps)) == 120
    assert stamps == sorted(stamps, key=float, reverse=True)
    oldest, latest = stamps[50], stamps[10]  # newest first: stamps[10] is newer
    _, window, _ = await call(http, emu, "conversations.history", params={"channel": general, "oldest": oldest,
                                                                             "latest": latest})
    assert [m["ts"] for m in window["messages"]] == stamps[11:50]
    _, inclusive, _ = await call(http, emu, "conversations.history",
                                 params={"channel": general, "oldest": oldest, "latest": latest, "inclusive": "1"})
    assert [m["ts"] for m in inclusive["messages"]] == stamps[10:51]


async def test_replies_parent_first_then_oldest_first_with_window_and_cursor(
        emu: SlackEmulator, http: aiohttp.ClientSession) -> None:
    general = emu.channels[0]
    _, history, _ = await call(http, emu, "conversations.history", params={"channel": general.id, "limit": 999})
    parents = [m for m in history["messages"] if m.get("reply_count")]
    assert len(parents) == 12 and all(m["thread_ts"] == m["ts"] for m in parents)   # every 10th of 120
    assert not any(m.get("parent_user_id") for m in history["messages"])            # replies are not history rows
    parent = parents[0]
    _, thread, _ = await call(http, emu, "conversations.replies", params={"channel": general.id, "ts": parent["ts"]})
    first, *replies = thread["messages"]
    assert first["ts"] == parent["ts"] and thread["has_more"] is False and len(replies) == parent["reply_count"]
    assert [r["ts"] for r in replies] == sorted((r["ts"] for r in replies), key=float)
    assert all(r["thread_ts"] == parent["ts"] and r["parent_user_id"] == parent["user"] for r in replies)
    for n in range(4):
        await call(http, emu, "chat.postMessage", json={"channel": general.id, "thread_ts": parent["ts"],
                                                         "text": f"more {n}"})
        emu.clock.advance(1.0)
    seen, cursor = [], None
    while True:
        params = {"channel": general.id, "ts": parent["ts"], "limit": 2, **({"cursor": cursor} if cursor else {})}
        _, page, _ = await call(http, emu, "conversations.replies", params=params)
        seen += [m["ts"] for m in page["messages"]]
        if not page["has_more"]:
            break
        cursor = page["response_metadata"]["next_cursor"]
    assert seen[0] == parent["ts"] and len(seen) == 1 + len(replies) + 4 and len(set(seen)) == len(seen)
    _, window, _ = await call(http, emu, "conversations.replies",
                              params={"channel": general.id, "ts": parent["ts"], "oldest": seen[-2]})
    assert [m["ts"] for m in window["messages"]] == [parent["ts"], seen[-1]]
    plain = next(m for m in history["messages"] if not m.get("reply_count"))
    _, alone, _ = await call(http, emu, "conversations.replies", params={"channel": general.id, "ts": plain["ts"]})
    assert [m["ts"] for m in alone["messages"]] == [plain["ts"]]
    for bad, code in (({"ts": "1.000001"}, "thread_not_found"), ({"ts": "soon"}, "thread_not_found"),
                      ({"ts": parent["ts"], "cursor": "bm9wZQ=="}, "invalid_cursor"),
                      ({"ts": parent["ts"], "oldest": "x"}, "invalid_ts_oldest")):
        assert (await call(http, emu, "conversations.replies", params={"channel": general.id, **bad}))[1]["error"] \
            == code, bad


async def test_history_errors(emu: SlackEmulator, http: aiohttp.ClientSession) -> None:
    assert (await call(http, emu, "conversations.history", data={"channel": "C0NOPE"}))[1]["error"] == \
        "channel_not_found"
    assert (await call(http, emu, "conversations.history", data={}))[1]["error"] == "channel_not_found"
    general = emu.channels[0].id
    body = (await call(http, emu, "conversations.history", data={"channel": general, "oldest": "soon"}))[1]
    assert body["error"] == "invalid_ts_oldest"
    body = (await call(http, emu, "conversations.history", data={"channel": general, "cursor": "bm9wZQ=="}))[1]
    assert body["error"] == "invalid_cursor"
    async with http.post(f"{emu.base_url}/conversations.history", data=b"{oops",
                         headers={"Authorization": f"Bearer {BOT}", "Content-Type": "application/json"}) as resp:
        assert (await resp.json())["error"] == "invalid_json"


async def test_post_message_and_read_it_back(
        emu: SlackEmulator, http: aiohttp.ClientSession, clock: ManualClock) -> None:
    status, posted, _ = await call(http, emu, "chat.postMessage", json={"channel": "#general", "text": "hello"})
    assert status == 200 and posted["ok"] and posted["channel"] == emu.channels[0].id
    assert posted["message"]["text"] == "hello" and posted["message"]["bot_id"]
    _, history, _ = await call(http, emu, "conversations.history", data={"channel": posted["channel"], "limit": "1"})
    assert history["messages"][0]["ts"] == posted["ts"]
    clock.advance(1)
    _, reply, _ = await call(http, emu, "chat.postMessage",
                             data={"channel": posted["channel"], "text": "in thread", "thread_ts": posted["ts"]})
    assert reply["ok"] and reply["message"]["thread_ts"] == posted["ts"]
    _, history, _ = await call(http, emu, "conversations.history", data={"channel": posted["channel"], "limit": "1"})
    assert history["messages"][0]["ts"] == posted["ts"] and history["messages"][0]["reply_count"] == 1


async def test_post_message_errors(emu: SlackEmulator, http: aiohttp.ClientSession) -> None:
    assert (await call(http, emu, "chat.postMessage", json={"channel": "general"}))[1]["error"] == "no_text"
    assert (await call(http, emu, "chat.postMessage", json={"channel": "nowhere", "text": "x"}))[1]["error"] == \
        "channel_not_found"
    archived = next(c for c in emu.channels if c.archived)
    assert (await call(http, emu, "chat.postMessage", json={"channel": archived.id, "text": "x"}))[1]["error"] == \
        "is_archived"
    assert (await call(http, emu, "chat.postMessage", json={"channel": "random", "blocks": "[{"}))[1]["error"] == \
        "invalid_blocks"
    emu.add_token("xoxb-reader", scopes=["users:read"])
    _, body, _ = await call(http, emu, "chat.postMessage", token="xoxb-reader", json={"channel": "random", "text": "x"})
    assert body["error"] == "missing_scope" and body["needed"] == "chat:write"


async def test_post_message_is_limited_per_channel_per_second(
        emu: SlackEmulator, http: aiohttp.ClientSession, clock: ManualClock) -> None:
    first = await call(http, emu, "chat.postMessage", json={"channel": "general", "text": "1"})
    other = await call(http, emu, "chat.postMessage", json={"channel": "random", "text": "1"})
    status, body, headers = await call(http, emu, "chat.postMessage", json={"channel": "general", "text": "2"})
    assert first[1]["ok"] and other[1]["ok"]
    assert (status, body, headers["Retry-After"]) == (429, {"ok": False, "error": "ratelimited"}, "1")
    clock.advance(1)
    assert (await call(http, emu, "chat.postMessage", json={"channel": "general", "text": "2"}))[1]["ok"]


async def test_method_tier_limit_and_override(
        emu: SlackEmulator, http: aiohttp.ClientSession, clock: ManualClock) -> None:
    answers = [await call(http, emu, "conversations.list") for _ in range(21)]  # Tier 2: 20 per minute
    assert [a[0] for a in answers] == [200] * 20 + [429]
    assert answers[-1][2]["Retry-After"] == "40"
    assert not any(name.lower().startswith("x-ratelimit") for name in answers[-1][2])
    assert (await call(http, emu, "auth.test"))[0] == 200  # another method, another tier
    assert (await call(http, emu, "conversations.list", token=USER))[0] == 200  # another token
    emu.set_rate_limit(limit=3, window=10.0)
    statuses = [(await call(http, emu, method))[0] for method in ("auth.test", "users.list", "auth.test", "auth.test")]
    assert statuses == [200, 200, 200, 429]
    clock.advance(10)
    assert (await call(http, emu, "auth.test"))[0] == 200


async def test_users_list_pagination(emu: SlackEmulator, http: aiohttp.ClientSession) -> None:
    _, everyone, _ = await call(http, emu, "users.list")
    assert len(everyone["members"]) == 27 and everyone["response_metadata"]["next_cursor"] == ""
    seen, cursor = [], ""
    while True:
        _, page, _ = await call(http, emu, "users.list", params={"limit": "10", "cursor": cursor})
        seen += [m["id"] for m in page["members"]]
        cursor = page["response_metadata"]["next_cursor"]
        if not cursor:
            break
    assert seen == [m["id"] for m in everyone["members"]]
    me = (await call(http, emu, "auth.test"))[1]["user_id"]
    assert me in seen
