"""The token lifecycle against a real daemon and the emulators: single flight, proactive refresh, dead grants,
outages, the write-ahead marker, and kill -9 between the token response and the commit."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import sys
import time
from pathlib import Path

import pytest

from connectors.emulators.base import ManualClock
from connectors.emulators.github import GitHubEmulator
from domain import FakeClock
from integd.bootstrap import Daemon
from integd.client import IntegdClient, RpcCallError
from integd.config import Config, Paths, load_config
from integd.oauth_tokens import LOST_ROTATION
from tests.conftest import FAST_RETRY
from tests.e2e.test_oauth import browser

CLIENT_ID, SECRET = "acme-client", "acme-client-secret-0001"
LIFETIME = 3600.0


def acme_config(emu: GitHubEmulator, **oauth) -> dict:
    """A generic provider defined only in config, served by the GitHub emulator's authorization server."""
    return {"oauth": {"providers": {"acme": {
        "authorize_url": emu.origin + "/login/oauth/authorize", "token_url": emu.origin + "/login/oauth/access_token",
        "api_base_url": emu.base_url, "identity_endpoint": "/user", "category": "development",
        "scopes": ["repo"], "rate_limit": {"per_minute": 100000, "burst": 1000}}},
        "clients": {"acme": {"client_id": CLIENT_ID, "client_secret_credential": "acme-secret"}}, **oauth}}


def emulator(clock: ManualClock, *, survives: bool = True) -> GitHubEmulator:
    emu = GitHubEmulator(seed=1, clock=clock)
    emu.oauth.register_client(CLIENT_ID, SECRET, ["http://127.0.0.1/callback"])
    o = emu.oauth.options
    o.access_token_lifetime, o.rotate_refresh_tokens, o.old_refresh_token_survives_rotation = LIFETIME, True, survives
    return emu


@pytest.fixture
async def world(short_dir):
    start = time.time()
    emu_clock, clock = ManualClock(start), FakeClock(start)
    emu = emulator(emu_clock)
    await emu.start()
    creds = short_dir / "creds"
    creds.mkdir()
    (creds / "acme-secret").write_text(SECRET)
    config = Config.model_validate(acme_config(emu, refresh_margin=300))
    daemon = Daemon(config, Paths(short_dir / "state", short_dir / "d.sock", None), clock=clock,
                    credentials_dir=creds, retry=FAST_RETRY)
    await daemon.start()
    async with IntegdClient(str(daemon.paths.socket)) as client:
        flow = await client.call("oauth.begin", {"service": "acme", "flow": "paste"})
        done = await client.call("oauth.complete", {"flow_id": flow["flow_id"],
                                                    "redirect_url": await browser(flow["authorization_url"])})
        yield daemon, client, emu, done["app_id"], (clock, emu_clock)
    await daemon.stop()
    await emu.stop()


def advance(clocks, seconds: float) -> None:
    for c in clocks:
        c.advance(seconds)


async def call(client: IntegdClient, app_id: str) -> dict:
    return await client.call("apps.request", {"app_id": app_id, "method": "GET", "path": "/user"})


async def test_generic_provider_is_listed_and_connected(world):
    daemon, client, emu, app_id, _ = world
    services = {s["name"]: s for s in await client.call("services.list")}
    assert services["acme"]["implemented"] and services["acme"]["auth_modes"] == ["oauth2"]
    app = await client.call("apps.get", {"app_id": app_id})
    assert app["status"] == "connected" and app["service"] == "acme"
    assert (await client.call("apps.check", {"app_id": app_id}))["ok"]


async def test_200_concurrent_calls_with_an_expired_token_make_one_refresh(world):
    daemon, client, emu, app_id, clocks = world
    before = emu.oauth.token_requests
    advance(clocks, LIFETIME + 1)
    results = await asyncio.gather(*(call(client, app_id) for _ in range(200)))
    assert all(r["status"] == 200 for r in results)
    assert emu.oauth.token_requests - before == 1
    assert daemon.oauth.tokens.get(app_id).refreshes == 1
    # the rotated refresh token was committed: the stored credential is the new one
    stored = await daemon.store.find_by_id(app_id, with_credentials=True)
    assert stored.credential.bearer == daemon.oauth.tokens.get(app_id).credential.bearer


async def test_proactive_refresh_inside_the_margin_does_not_block_calls(world):
    daemon, client, emu, app_id, clocks = world
    tokens = daemon.oauth.tokens.get(app_id) or await daemon.oauth.tokens.source_for(
        await daemon.store.find_by_id(app_id, with_credentials=True))
    old = tokens.credential.bearer
    advance(clocks, LIFETIME - 120)        # inside the 300 s margin, still valid
    assert (await call(client, app_id))["status"] == 200
    task = tokens._task
    if task is not None:
        await asyncio.shield(task)
    assert tokens.refreshes == 1 and tokens.credential.bearer != old
    assert (await call(client, app_id))["status"] == 200 and tokens.refreshes == 1


async def test_invalid_grant_marks_unauthorized_once_and_stops_refreshing(world):
    daemon, client, emu, app_id, clocks = world
    for grant in list(emu.oauth.grants.values()):
        emu.oauth.revoke_grant(grant)      # the user revoked the app at the provider
    advance(clocks, LIFETIME + 1)
    before = emu.oauth.token_requests
    for _ in range(3):
        with pytest.raises(RpcCallError) as info:
            await call(client, app_id)
        assert info.value.code == -32008 and "reconnect" in info.value.message
    assert emu.oauth.token_requests - before == 1          # no more refresh attempts after invalid_grant
    assert (await client.call("apps.get", {"app_id": app_id}))["status"] == "unauthorized"
    failed = await client.call("events.list", {"types": ["integration.failed"]})
    assert [e["payload"]["category"] for e in failed["events"]] == ["auth_failed"]
    rows = await daemon.db.fetchall("SELECT state FROM oauth_grants WHERE app_id = ?", (app_id,))
    assert rows[0]["state"] == "dead"


async def test_outage_backs_off_and_keeps_the_grant(world):
    daemon, client, emu, app_id, clocks = world
    advance(clocks, LIFETIME + 1)
    emu.oauth.options.token_fault = "error_500"
    before = emu.oauth.token_requests
    for _ in range(2):
        with pytest.raises(RpcCallError) as info:
            await call(client, app_id)
        assert info.value.code == -32007 and info.value.data["category"] == "service_down"
    assert emu.oauth.token_requests - before == 1          # the second call was held back by the back-off
    assert (await client.call("apps.get", {"app_id": app_id}))["status"] == "error"
    emu.oauth.options.token_fault = "none"
    advance(clocks, 2)
    assert (await call(client, app_id))["status"] == 200
    assert (await client.call("apps.get", {"app_id": app_id}))["status"] == "connected"
    rows = await daemon.db.fetchall("SELECT state FROM oauth_grants WHERE app_id = ?", (app_id,))
    assert rows[0]["state"] == "ok"


async def test_lost_rotation_on_a_revoking_provider_names_the_cause(world):
    daemon, client, emu, app_id, clocks = world
    emu.oauth.options.old_refresh_token_survives_rotation = False
    stored = await daemon.store.find_by_id(app_id, with_credentials=True)
    refresh = stored.credential.secrets["refresh_token"]
    # a refresh whose answer never reached the store: the marker was written, the provider rotated
    await daemon.oauth.oauth_store.set_grant(app_id, "refreshing", now=0.0)
    grant = emu.oauth.grants[refresh]     # the provider's side of that lost exchange: the old token is gone
    grant.refresh_tokens.discard(refresh)
    advance(clocks, LIFETIME + 1)
    with pytest.raises(RpcCallError) as info:
        await call(client, app_id)
    assert LOST_ROTATION.split(";")[0] in info.value.message


# ---- kill -9 between the token response and the commit -------------------------------------------------
async def run_daemon(state: Path, sock: Path, config: Path, creds: Path, *, crash: bool):
    env = {**os.environ, "INTEGD_LOG_FORMAT": "json", "CREDENTIALS_DIRECTORY": str(creds)}
    env.pop("NOTIFY_SOCKET", None)
    if crash:
        env["INTEGD_TEST_CRASH_AFTER_TOKEN_RESPONSE"] = "1"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "integd.cli", "--config", str(config), "--state-dir", str(state), "--socket",
        str(sock), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env)

    async def ready() -> None:
        assert proc.stdout is not None
        while line := await proc.stdout.readline():
            if b'"daemon.started"' in line:
                return
        raise AssertionError(f"daemon exited: {(await proc.stderr.read())[-2000:]!r}")
    await asyncio.wait_for(ready(), 30)
    return proc


def toml(config: dict) -> str:
    lines = []

    def emit(prefix: str, table: dict) -> None:
        scalars = {k: v for k, v in table.items() if not isinstance(v, dict)}
        if scalars:
            lines.append(f"[{prefix}]")
            lines.extend(f"{k} = {json.dumps(v)}" for k, v in scalars.items())
        for k, v in table.items():
            if isinstance(v, dict):
                emit(f"{prefix}.{k}" if prefix else k, v)
    emit("", config)
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("survives", [True, False], ids=["microsoft-like", "github-like"])
async def test_kill_9_between_token_response_and_commit(short_dir, survives):
    """Microsoft-like (the old refresh token survives rotation): the app works after the restart, no consent.
    GitHub-like (the old one dies at once): the loss is unavoidable, and the error names its precise cause."""
    emu = emulator(ManualClock(time.time()), survives=survives)
    await emu.start()
    creds = short_dir / "creds"
    creds.mkdir()
    (creds / "acme-secret").write_text(SECRET)
    config = short_dir / "config.toml"
    config.write_text(toml(acme_config(emu)))
    state, sock = short_dir / "state", short_dir / "k.sock"
    proc = None

    def in_process() -> Daemon:     # the phases around the crash need no process of their own
        return Daemon(load_config(config, env={}), Paths(state, sock, config), credentials_dir=creds, retry=FAST_RETRY)
    try:
        daemon = in_process()
        await daemon.start()
        async with IntegdClient(str(sock)) as client:
            flow = await client.call("oauth.begin", {"service": "acme", "flow": "paste"})
            done = await client.call("oauth.complete", {"flow_id": flow["flow_id"],
                                                        "redirect_url": await browser(flow["authorization_url"])})
        app_id = done["app_id"]
        await daemon.stop()
        db = sqlite3.connect(state / "integd.db")          # the token is now past its expiry (non-secret column)
        attrs = json.loads(db.execute("SELECT credential_attrs FROM apps WHERE id = ?", (app_id,)).fetchone()[0])
        before = db.execute("SELECT credential FROM apps WHERE id = ?", (app_id,)).fetchone()[0]
        attrs["expires_at"] = time.time() - 10
        db.execute("UPDATE apps SET credential_attrs = ? WHERE id = ?", (json.dumps(attrs), app_id))
        db.commit()
        db.close()

        proc = await run_daemon(state, sock, config, creds, crash=True)
        requests = emu.oauth.token_requests
        async with IntegdClient(str(sock)) as client:
            with pytest.raises(Exception):
                await call(client, app_id)                   # the daemon dies mid-call
        assert await asyncio.wait_for(proc.wait(), 20) == 137
        assert emu.oauth.token_requests == requests + 1      # the provider answered (and rotated)
        db = sqlite3.connect(state / "integd.db")
        assert db.execute("SELECT credential FROM apps WHERE id = ?", (app_id,)).fetchone()[0] == before
        db.close()

        daemon = in_process()
        await daemon.start()
        async with IntegdClient(str(sock)) as client:
            if survives:
                assert (await call(client, app_id))["status"] == 200          # no new consent needed
                assert (await client.call("apps.get", {"app_id": app_id}))["status"] == "connected"
            else:
                with pytest.raises(RpcCallError) as info:
                    await call(client, app_id)
                assert info.value.code == -32008 and "lost before it could be stored" in info.value.message
                assert (await client.call("apps.get", {"app_id": app_id}))["status"] == "unauthorized"
        await daemon.stop()
    finally:
        if proc is not None and proc.returncode is None:
            proc.kill()
            await proc.wait()
        await emu.stop()
