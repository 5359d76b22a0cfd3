"""Event sinks against a real aiohttp receiver on 127.0.0.1: down (503, then connection refused) across a
daemon restart, then up; every event arrives, signed, in seq order; replay; status; secrets and errors."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from integd.bootstrap import Daemon
from integd.client import IntegdClient, RpcCallError
from integd.config import Config, ConfigError, SinkConfig
from integd.sink_signature import verify_signature
from integd.sinks import SinkPolicy
from tests.conftest import connect, make_daemon

SECRET = b"sink-secret-0123456789abcdef"
FAST = SinkPolicy(base_delay=0.01, max_delay=0.05, failing_after=0.0, stop_timeout=1.0)


class Receiver:
    """A webhook receiver whose availability the test switches: "503", "down" (refused) or "up"."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.mode = "503"
        self.accepted: list[tuple[dict[str, str], bytes]] = []
        self.attempts = 0
        self.changed = asyncio.Event()
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.attempts += 1
        self.changed.set()
        if self.mode != "up":
            return web.Response(status=503, text="maintenance: token=should-not-leak")
        self.accepted.append((dict(request.headers), body))
        return web.Response(status=204)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hook", self.handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def wait(self, predicate, timeout: float = 10.0) -> None:
        async def loop() -> None:
            while not predicate():
                self.changed.clear()
                await self.changed.wait()
        await asyncio.wait_for(loop(), timeout)

    def events(self) -> list[dict]:
        return [e for _, body in self.accepted for e in json.loads(body)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = Receiver(free_port())
    await r.start()
    yield r
    await r.stop()


def sink_daemon(short_dir: Path, url: str, *, events: list[str] | None = None,
                policy: SinkPolicy = FAST) -> Daemon:
    secret = short_dir / "sink.secret"
    secret.write_bytes(SECRET + b"\n")
    cfg = Config(sinks={"platform": SinkConfig(url=url, events=events or ["*"], secret_file=secret, timeout=2)})
    d = make_daemon(short_dir / "state", short_dir / "d.sock", cfg)
    d.sink_policy = policy
    return d


async def all_events(client: IntegdClient) -> list[dict]:
    return (await client.call("events.list", {"after": 0, "limit": 1000}))["events"]


async def test_down_receiver_across_a_restart_gets_every_event_signed_and_in_order(
        short_dir: Path, receiver: Receiver, emulators: dict) -> None:
    d1 = sink_daemon(short_dir, receiver.url)
    await d1.start()
    try:
        async with IntegdClient(str(d1.paths.socket)) as c:
            app = await connect(c, emulators, "github")
            await c.call("apps.configure", {"app_id": app["id"], "name": "renamed"})
            await receiver.wait(lambda: receiver.attempts >= 3)
            [status] = await c.call("events.sinks")
            assert status["state"] == "failing" and status["last_error"] == "HTTP 503"
            assert status["cursor"] == 0 and status["lag"] >= 2 and status["failures"] >= 3
            assert "should-not-leak" not in json.dumps(status)
    finally:
        await d1.stop()
    failures_before = status["failures"]

    await receiver.stop()   # now the port refuses connections
    d2 = sink_daemon(short_dir, receiver.url)
    await d2.start()
    try:
        async with IntegdClient(str(d2.paths.socket)) as c:
            await connect(c, emulators, "slack")
            await wait_status(c, lambda s: s["failures"] > failures_before and "cannot connect" in s["last_error"])
            receiver.mode = "up"
            await receiver.start()
            expected = await all_events(c)
            want = {e["event_id"] for e in expected}
            await receiver.wait(lambda: want <= {e["event_id"] for e in receiver.events()})
            [status] = await wait_status(c, lambda s: s["lag"] == 0)
            assert status["state"] == "healthy" and status["failures"] == 0 and status["last_error"] is None
            assert status["cursor"] == expected[-1]["seq"]
    finally:
        await d2.stop()

    got = receiver.events()
    assert [e["seq"] for e in got] == sorted(e["seq"] for e in got), "in seq order"
    first_copy = {e["event_id"]: e for e in reversed(got)}
    assert sorted(first_copy) == sorted(want), "none missing, none invented"
    assert {e["type"] for e in got} >= {"app.connected", "app.configured"}
    for headers, body in receiver.accepted:
        assert verify_signature(SECRET, headers["X-Integd-Signature"], body)
        assert not verify_signature(b"another-secret-0123456789", headers["X-Integd-Signature"], body)
        uuid.UUID(headers["X-Integd-Delivery"])
        assert headers["X-Integd-Sink"] == "platform"
        assert headers["Content-Type"] == "application/json"


async def wait_status(c: IntegdClient, predicate, timeout: float = 10.0) -> list[dict]:
    """Poll events.sinks (another component's progress has no event this test can await)."""
    async def loop() -> list[dict]:
        while True:
            statuses = await c.call("events.sinks")
            if predicate(statuses[0]):
                return statuses
            await asyncio.sleep(0.02)
    return await asyncio.wait_for(loop(), timeout)


async def test_replay_filter_and_errors(short_dir: Path, receiver: Receiver, emulators: dict) -> None:
    receiver.mode = "up"
    d = sink_daemon(short_dir, receiver.url, events=["app.configured"])
    await d.start()
    try:
        async with IntegdClient(str(d.paths.socket)) as c:
            app = await connect(c, emulators, "github")
            for name in ("one", "two"):
                await c.call("apps.configure", {"app_id": app["id"], "name": name})
            await receiver.wait(lambda: len(receiver.events()) == 2)
            assert [e["type"] for e in receiver.events()] == ["app.configured", "app.configured"]
            [status] = await wait_status(c, lambda s: s["lag"] == 0)
            cursor = status["cursor"]

            result = await c.call("events.replay", {"sink": "platform", "after": 0})
            assert result == {"sink": "platform", "previous_cursor": cursor, "cursor": 0, "to_deliver": 2}
            await receiver.wait(lambda: len(receiver.events()) == 4)
            ids = [e["event_id"] for e in receiver.events()]
            assert ids[:2] == ids[2:], "the same events, again, in the same order"

            with pytest.raises(RpcCallError) as ahead:
                await c.call("events.replay", {"sink": "platform", "after": cursor + 100})
            assert ahead.value.code == -32012 and ahead.value.data["kind"] == "replay_refused"
            with pytest.raises(RpcCallError) as unknown:
                await c.call("events.replay", {"sink": "nope", "after": 0})
            assert unknown.value.code == -32011 and "platform" in unknown.value.message
            with pytest.raises(RpcCallError) as bad:
                await c.call("events.replay", {"sink": "platform", "after": -1})
            assert bad.value.code == -32602
    finally:
        await d.stop()


async def test_idle_sink_sends_nothing_and_wakes_on_commit(short_dir: Path, receiver: Receiver,
                                                           emulators: dict) -> None:
    receiver.mode = "up"
    d = sink_daemon(short_dir, receiver.url)
    await d.start()
    try:
        async with IntegdClient(str(d.paths.socket)) as c:
            await asyncio.sleep(0.2)   # proving an absence: nothing may arrive while the outbox is empty
            assert receiver.attempts == 0
            await connect(c, emulators, "github")
            committed = [e["event_id"] for e in await all_events(c)]
            await receiver.wait(lambda: len(receiver.events()) == len(committed))
            assert [e["event_id"] for e in receiver.events()] == committed
            [status] = await c.call("events.sinks")
            assert status["url"] == receiver.url and status["events"] == ["*"]
    finally:
        await d.stop()


async def test_a_sink_without_a_secret_stops_the_start_before_binding(short_dir: Path) -> None:
    cfg = Config(sinks={"analytics": SinkConfig(url="https://user:pw@hooks.example/in")})
    d = make_daemon(short_dir / "state", short_dir / "d.sock", cfg)
    with pytest.raises(ConfigError, match="sinks.analytics: no signing secret"):
        await d.start()
    assert not (short_dir / "d.sock").exists()

    weak = short_dir / "weak"
    weak.write_bytes(b"short")
    cfg = Config(sinks={"analytics": SinkConfig(url="https://hooks.example/in", secret_file=weak)})
    d = make_daemon(short_dir / "state", short_dir / "d.sock", cfg)
    with pytest.raises(ConfigError, match="holds 5 bytes") as err:
        await d.start()
    assert "short" not in str(err.value).replace("short_dir", "")


async def test_secret_from_a_systemd_credential(short_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from integd.sinks import load_secret
    creds = short_dir / "creds"
    creds.mkdir()
    (creds / "sink-analytics").write_bytes(SECRET)
    env = {"CREDENTIALS_DIRECTORY": str(creds)}
    assert load_secret("analytics", SinkConfig(url="https://hooks.example/in"), env) == SECRET
    with pytest.raises(ConfigError, match="sink-other"):
        load_secret("other", SinkConfig(url="https://hooks.example/in"), env)


async def test_integctl_sinks_list_and_replay(short_dir: Path, receiver: Receiver, emulators: dict) -> None:
    from tests.e2e.test_integctl import ctl
    receiver.mode = "up"
    d = sink_daemon(short_dir, receiver.url)
    await d.start()
    try:
        async with IntegdClient(str(d.paths.socket)) as c:
            await connect(c, emulators, "github")
            [status] = await wait_status(c, lambda s: s["lag"] == 0)
        code, out, err = await ctl(d, "sinks")
        assert code == 0, err
        assert out.startswith(f"platform  healthy  cursor {status['cursor']}  lag 0  {receiver.url}")
        code, out, _ = await ctl(d, "sinks", "replay", "platform", "--after", "0")
        assert code == 0 and out.strip() == (f"platform: cursor {status['cursor']} -> 0, "
                                             f"{status['cursor']} event(s) to deliver again")
        code, _, err = await ctl(d, "sinks", "replay", "nope", "--after", "0")
        assert code == 1 and "(code -32011)" in err
    finally:
        await d.stop()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to call as another uid")
async def test_ordinary_users_may_neither_list_sinks_nor_replay(short_dir: Path, receiver: Receiver) -> None:
    from integd.config import DaemonConfig
    from tests.peer import call_as
    secret = short_dir / "sink.secret"
    secret.write_bytes(SECRET)
    cfg = Config(daemon=DaemonConfig(socket_mode=0o666),
                 sinks={"platform": SinkConfig(url=receiver.url, secret_file=secret)})
    d = make_daemon(short_dir / "state", short_dir / "d.sock", cfg)
    d.sink_policy = FAST
    await d.start()
    try:
        for method, params in (("events.sinks", {}), ("events.replay", {"sink": "platform", "after": 0})):
            reply = await call_as(65534, 65534, str(d.paths.socket), method, params)
            assert reply["error"]["code"] == -32002, reply
            assert receiver.url not in json.dumps(reply)
    finally:
        await d.stop()
