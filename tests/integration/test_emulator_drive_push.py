"""Drive push channels in the Google emulator on the wire: changes.watch, the deliveries a loopback receiver gets
(sync, then change with increasing numbers and Google's X-Goog-* headers), channels.stop, expiry, refusals and
failed deliveries."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime

import aiohttp
import pytest
from aiohttp import web
from structlog.testing import capture_logs

from connectors.emulators import ManualClock
from connectors.emulators.google import GoogleDriveEmulator

TOKEN = "ya29.push-test-token-0001"
OTHER = "ya29.push-test-token-0002"
BEARER = {"Authorization": f"Bearer {TOKEN}"}
NOW = 1_700_000_000.0
WEEK_MS = 604_800_000


@dataclass
class Receiver:
    """A loopback HTTP endpoint that records every notification and answers with `status`."""

    url: str = ""
    status: int = 200
    got: asyncio.Queue[dict[str, str]] = field(default_factory=asyncio.Queue)
    bodies: list[bytes] = field(default_factory=list)
    agents: set[str] = field(default_factory=set)
    hold: asyncio.Event | None = None            # when set to an unset Event: answer only once it is set

    async def handle(self, request: web.Request) -> web.Response:
        self.bodies.append(await request.read())
        self.agents.add(request.headers.get("User-Agent", ""))
        self.got.put_nowait({k: v for k, v in request.headers.items() if k.lower().startswith("x-goog-")})
        if self.hold is not None:
            await self.hold.wait()
        return web.Response(status=self.status)

    def all(self) -> list[dict[str, str]]:
        out = []
        while not self.got.empty():
            out.append(self.got.get_nowait())
        return out


@dataclass
class Env:
    emu: GoogleDriveEmulator
    http: aiohttp.ClientSession
    clock: ManualClock
    hook: Receiver

    async def watch(self, body: dict, page_token: str | None = None, token: str = TOKEN) -> tuple[int, dict]:
        if page_token is None:
            page_token = await self.start_token(token)
        async with self.http.post("/drive/v3/changes/watch", params={"pageToken": page_token}, json=body,
                                  headers={"Authorization": f"Bearer {token}"}) as resp:
            return resp.status, await resp.json(content_type=None)

    async def start_token(self, token: str = TOKEN) -> str:
        async with self.http.get("/drive/v3/changes/startPageToken",
                                 headers={"Authorization": f"Bearer {token}"}) as resp:
            return (await resp.json())["startPageToken"]

    async def stop(self, body: dict, token: str = TOKEN) -> tuple[int, dict | None]:
        async with self.http.post("/drive/v3/channels/stop", json=body,
                                  headers={"Authorization": f"Bearer {token}"}) as resp:
            return resp.status, (await resp.json(content_type=None)) if resp.status != 204 else None

    def email(self, token: str = TOKEN) -> str:
        return self.emu.accounts[token].email

    def channel_body(self, channel_id: str = "sync_job1", **extra: object) -> dict:
        return {"id": channel_id, "type": "web_hook", "address": self.hook.url, "token": "chan-secret", **extra}


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    hook = Receiver()
    app = web.Application()
    app.router.add_post("/webhooks/google", hook.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    hook.url = f"http://127.0.0.1:{runner.addresses[0][1]}/webhooks/google"
    clock = ManualClock(NOW)
    emu = GoogleDriveEmulator(tokens=[TOKEN, OTHER], seed=5, clock=clock, options={"files_per_user": 12})
    emu.push.retry_delays = (0.001, 0.002)
    await emu.start()
    try:
        async with aiohttp.ClientSession(base_url=emu.origin) as http:
            yield Env(emu, http, clock, hook)
    finally:
        await emu.stop()
        await runner.cleanup()


def reason(body: dict) -> tuple[str, str | None]:
    item = body["error"]["errors"][0]
    return item["reason"], item.get("location")


def some_file(env: Env, token: str = TOKEN) -> str:
    return next(iter(env.emu.drives[env.email(token)].files))


async def test_watch_delivers_sync_then_numbered_changes_until_stopped(env: Env) -> None:
    status, channel = await env.watch(env.channel_body(expiration=int(NOW * 1000) + 3600_000))
    assert status == 200
    assert channel["kind"] == "api#channel" and channel["id"] == "sync_job1" and channel["token"] == "chan-secret"
    assert channel["expiration"] == str(int(NOW * 1000) + 3600_000) and channel["resourceId"]
    assert channel["resourceUri"].startswith(env.emu.origin + "/drive/v3/changes?")
    await env.emu.push.drain()
    [sync] = env.hook.all()
    assert sync == {"X-Goog-Channel-ID": "sync_job1", "X-Goog-Channel-Token": "chan-secret",
                    "X-Goog-Channel-Expiration": "Tue, 14 Nov 2023 23:13:20 GMT",
                    "X-Goog-Resource-ID": channel["resourceId"], "X-Goog-Resource-URI": channel["resourceUri"],
                    "X-Goog-Resource-State": "sync", "X-Goog-Message-Number": "1"}
    assert parsedate_to_datetime(sync["X-Goog-Channel-Expiration"]).timestamp() == NOW + 3600

    file_id, email = some_file(env), env.email()
    await env.start_token(OTHER)                 # the other account's Drive exists too
    async with env.http.patch(f"/drive/v3/files/{file_id}", json={"name": "renamed.txt"}, headers=BEARER) as r:
        assert r.status == 200
    env.emu.rename_file(email, file_id, "again.txt")
    env.emu.remove_file(email, file_id)
    env.emu.rename_file(env.email(OTHER), some_file(env, OTHER), "not-watched.txt")   # another account
    await env.emu.push.drain()
    changes = env.hook.all()
    assert [(h["X-Goog-Resource-State"], h["X-Goog-Message-Number"]) for h in changes] == \
        [("change", "2"), ("change", "3"), ("change", "4")]
    assert all(h["X-Goog-Channel-Token"] == "chan-secret" and h["X-Goog-Resource-ID"] == channel["resourceId"]
               for h in changes)
    assert env.hook.bodies == [b""] * 4 and env.hook.agents == {
        "APIs-Google (+https://developers.google.com/webmasters/APIs-Google.html)"}
    assert [(d["number"], d["state"], d["status"]) for d in env.emu.push.delivered] == \
        [(1, "sync", 200), (2, "change", 200), (3, "change", 200), (4, "change", 200)]

    status, _ = await env.stop({"id": "sync_job1", "resourceId": channel["resourceId"]})
    assert status == 204
    env.emu.rename_file(email, some_file(env), "after-stop.txt")
    await env.emu.push.drain()
    assert env.hook.all() == [] and len(env.emu.push.delivered) == 4
    status, body = await env.stop({"id": "sync_job1", "resourceId": channel["resourceId"]})
    assert status == 404 and reason(body)[0] == "notFound"


async def test_many_changes_arrive_in_order_on_every_channel_without_token(env: Env) -> None:
    body = {"id": "plain", "type": "web_hook", "address": env.hook.url.replace("127.0.0.1", "localhost")}
    status, plain = await env.watch(body)
    assert status == 200 and "token" not in plain
    assert plain["expiration"] == str(int(NOW * 1000) + WEEK_MS)       # none asked: one week
    assert (await env.watch(env.channel_body("second", expiration=str(int(NOW * 1000) + 10 * WEEK_MS))))[1][
        "expiration"] == str(int(NOW * 1000) + WEEK_MS)                # capped
    for n in range(15):
        env.emu.rename_file(env.email(), some_file(env), f"name-{n}")
    await env.emu.push.drain()
    got = env.hook.all()
    for channel_id in ("plain", "second"):
        mine = [h for h in got if h["X-Goog-Channel-ID"] == channel_id]
        assert [int(h["X-Goog-Message-Number"]) for h in mine] == list(range(1, 17))
    assert all("X-Goog-Channel-Token" not in h for h in got if h["X-Goog-Channel-ID"] == "plain")


async def test_expired_channel_delivers_nothing_and_frees_its_id(env: Env) -> None:
    status, channel = await env.watch(env.channel_body(expiration=int(NOW * 1000) + 60_000))
    assert status == 200
    await env.emu.push.drain()
    assert len(env.hook.all()) == 1
    env.clock.advance(61)
    env.emu.rename_file(env.email(), some_file(env), "late.txt")
    await env.emu.push.drain()
    assert env.hook.all() == [] and env.emu.push.channels(env.email()) == []
    status, _ = await env.stop({"id": "sync_job1", "resourceId": channel["resourceId"]})
    assert status == 404
    status, again = await env.watch(env.channel_body())           # renewal under the same id
    assert status == 200 and again["resourceId"] == channel["resourceId"]


async def test_duplicate_id_and_bad_watch_requests_are_400_naming_the_field(env: Env) -> None:
    assert (await env.watch(env.channel_body()))[0] == 200
    status, body = await env.watch(env.channel_body(), token=OTHER)
    assert status == 400 and reason(body) == ("channelIdNotUnique", "id")
    cases = [
        ({"type": "web_hook", "address": env.hook.url}, ("required", "id")),
        ({"id": "x" * 65, "type": "web_hook", "address": env.hook.url}, ("invalid", "id")),
        ({"id": "a b", "type": "web_hook", "address": env.hook.url}, ("invalid", "id")),
        ({"id": "c1", "address": env.hook.url}, ("required", "type")),
        ({"id": "c1", "type": "email", "address": env.hook.url}, ("invalid", "type")),
        ({"id": "c1", "type": "web_hook"}, ("required", "address")),
        ({"id": "c1", "type": "web_hook", "address": "http://192.0.2.7/hook"}, ("webhookUrlNotHttps", "address")),
        ({"id": "c1", "type": "web_hook", "address": "http://example.org/hook"},
         ("webhookUrlNotHttps", "address")),
        ({"id": "c1", "type": "web_hook", "address": "ftp://127.0.0.1/x"}, ("invalid", "address")),
        ({"id": "c1", "type": "web_hook", "address": "/relative"}, ("invalid", "address")),
        ({**env.channel_body("c1"), "token": 7}, ("invalid", "token")),
        ({**env.channel_body("c1"), "expiration": "soon"}, ("invalid", "expiration")),
        ({**env.channel_body("c1"), "expiration": int(NOW * 1000) - 1}, ("invalid", "expiration")),
    ]
    for body_in, expected in cases:
        status, body = await env.watch(body_in)
        assert (status, reason(body)) == (400, expected), body_in
    status, body = await env.watch(env.channel_body("c2"), page_token="999999")
    assert status == 400 and reason(body) == ("invalid", "pageToken")
    async with env.http.post("/drive/v3/changes/watch", json=env.channel_body("c2"), headers=BEARER) as resp:
        assert resp.status == 400 and reason(await resp.json())[1] == "pageToken"
    async with env.http.post("/drive/v3/changes/watch", params={"pageToken": "1"}, data=b"[]",
                             headers=BEARER) as resp:
        assert resp.status == 400 and reason(await resp.json())[0] == "parseError"
    await env.emu.push.drain()
    assert len(env.hook.all()) == 1          # only the first channel's sync


async def test_stop_refuses_wrong_resource_another_account_and_missing_fields(env: Env) -> None:
    status, channel = await env.watch(env.channel_body())
    assert status == 200
    status, body = await env.stop({"id": "sync_job1", "resourceId": "nope"})
    assert status == 404 and reason(body)[0] == "notFound"
    status, _ = await env.stop({"id": "sync_job1", "resourceId": channel["resourceId"]}, token=OTHER)
    assert status == 404
    status, body = await env.stop({"id": "sync_job1"})
    assert status == 400 and reason(body) == ("required", "resourceId")
    status, body = await env.stop({"resourceId": channel["resourceId"]})
    assert status == 400 and reason(body) == ("required", "id")
    async with env.http.post("/drive/v3/channels/stop", json={"id": "sync_job1"}) as resp:
        assert resp.status == 401                # no token
    await env.emu.push.drain()
    env.hook.all()
    env.hook.hold = asyncio.Event()               # message 1 is in flight while 2 and 3 wait in the queue
    status, held = await env.watch(env.channel_body("held"))
    assert status == 200 and (await env.hook.got.get())["X-Goog-Channel-ID"] == "held"
    env.emu.rename_file(env.email(), some_file(env), "queued-1")
    env.emu.rename_file(env.email(), some_file(env), "queued-2")
    assert (await env.stop({"id": "held", "resourceId": held["resourceId"]}))[0] == 204
    assert (await env.stop({"id": "sync_job1", "resourceId": channel["resourceId"]}))[0] == 204
    env.hook.hold.set()
    await env.emu.push.drain()
    assert [(d["channel"], d["number"]) for d in env.emu.push.delivered if d["channel"] == "held"] == [("held", 1)]


async def test_watch_and_stop_need_a_drive_scope_and_spend_drive_quota(env: Env) -> None:
    env.emu.add_token("ya29.gmail-only", scopes=["https://www.googleapis.com/auth/gmail.readonly"])
    async with env.http.post("/drive/v3/changes/watch", params={"pageToken": "1"}, json=env.channel_body(),
                             headers={"Authorization": "Bearer ya29.gmail-only"}) as resp:
        assert resp.status == 403 and reason(await resp.json())[0] == "insufficientPermissions"
    env.clock.advance(60 - NOW % 60)             # the start of a minute window
    env.emu.options.drive_queries_per_user_minute = 2
    start = await env.start_token()              # unit 1
    assert (await env.watch(env.channel_body(), page_token=start))[0] == 200        # unit 2
    status, body = await env.stop({"id": "sync_job1", "resourceId": "x"})
    assert status == 403 and reason(body)[0] == "userRateLimitExceeded"
    assert env.emu.hits("/drive/v3/changes/watch") == 2 and env.emu.hits("/drive/v3/channels/stop") == 1


async def test_failed_deliveries_are_retried_logged_and_dropped(env: Env) -> None:
    env.hook.status = 503
    with capture_logs() as logs:
        assert (await env.watch(env.channel_body()))[0] == 200
        await env.emu.push.drain()
    assert env.emu.push.delivered[-1] == {"channel": "sync_job1", "number": 1, "state": "sync", "status": 503,
                                          "attempts": 3}
    assert len(env.hook.all()) == 3
    env.hook.status = 410                         # not retryable: one attempt
    env.emu.rename_file(env.email(), some_file(env), "gone.txt")
    await env.emu.push.drain()
    assert env.emu.push.delivered[-1]["attempts"] == 1 and env.emu.push.delivered[-1]["status"] == 410
    env.hook.status = 200                         # the channel lives on: the next message gets through
    env.emu.rename_file(env.email(), some_file(env), "back.txt")
    await env.emu.push.drain()
    assert [h["X-Goog-Message-Number"] for h in env.hook.all()] == ["2", "3"]
    warning = next(e for e in logs if e["event"] == "push.delivery_failed")
    assert warning["log_level"] == "warning" and warning["address"] == "http://127.0.0.1"
    assert "chan-secret" not in repr(logs)


async def test_unreachable_or_silent_address_is_logged_with_status_0(env: Env) -> None:
    with socket.socket() as sock:                 # a loopback port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with capture_logs() as logs:
        status, _ = await env.watch({"id": "dead", "type": "web_hook", "address": f"http://127.0.0.1:{port}/x"})
        assert status == 200
        await env.emu.push.drain()
    assert env.emu.push.delivered == [{"channel": "dead", "number": 1, "state": "sync", "status": 0,
                                       "attempts": 3}]
    assert any(e["event"] == "push.delivery_failed" and e["error"] for e in logs)
    env.hook.hold, env.emu.push.timeout, env.emu.push.retry_delays = asyncio.Event(), 0.05, ()
    with capture_logs() as logs:
        assert (await env.watch(env.channel_body("silent")))[0] == 200
        await env.emu.push.drain()
    env.hook.hold.set()
    assert env.emu.push.delivered[-1] == {"channel": "silent", "number": 1, "state": "sync", "status": 0,
                                          "attempts": 1}
    assert [e["error"] for e in logs if e["event"] == "push.delivery_failed"] in (["ServerTimeoutError"],
                                                                                  ["TimeoutError"])


async def test_emulator_stop_closes_push_and_drops_channels(env: Env) -> None:
    assert (await env.watch(env.channel_body()))[0] == 200
    await env.emu.push.drain()
    assert env.emu.push._session is not None
    await env.emu.stop()
    assert env.emu.push._session is None and env.emu.push.channels(env.email()) == []
    env.emu.rename_file(env.email(), some_file(env), "after-close.txt")   # no channel: nothing scheduled
    await env.emu.push.drain()
