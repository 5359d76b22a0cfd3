"""The listener's generic route: every provider in connectors.webhooks.VERIFIERS, verified, de-duplicated, and
turned into delta runs; the Dropbox challenge and Discord's PING answered."""

from __future__ import annotations

import asyncio
import json
import time

import aiohttp
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from connectors.emulators import EMULATORS
from connectors.webhooks.discord import public_key_hex, sign
from connectors.webhooks.pipedrive import basic_header
from integd.client import IntegdClient
from integd.config import Config, WebhooksConfig
from tests.conftest import make_daemon

GITLAB = "glpat-e2e-hook-token-00000000000001"
GITLAB_SECRET = "gitlab-hook-secret-for-tests"
DISCORD_KEY = Ed25519PrivateKey.generate()


@pytest.fixture
async def listener(short_dir):
    files = {"gitlab": GITLAB_SECRET.encode(), "pipedrive": b"hook-user:hook-password-for-tests",
             "dropbox": b"dropbox-app-secret-for-tests", "discord": public_key_hex(DISCORD_KEY).encode()}
    for name, secret in files.items():
        (short_dir / f"{name}.secret").write_bytes(secret)
    cfg = Config(webhooks=WebhooksConfig(bind="127.0.0.1:0", secret_files={
        name: short_dir / f"{name}.secret" for name in files}))
    emu = EMULATORS["gitlab"](tokens=[GITLAB], seed=5, options={"issues_per_project": 5})
    await emu.start()
    daemon = make_daemon(short_dir / "state", short_dir / "d.sock", cfg)
    await daemon.start()
    synced: asyncio.Queue[str] = asyncio.Queue()
    daemon.bus.subscribe("test", lambda e: synced.put_nowait(e.payload["job_id"]) if e.type == "data.synced"
                         else None)
    try:
        async with IntegdClient(str(daemon.paths.socket)) as client, aiohttp.ClientSession() as http:
            yield client, http, emu, synced, f"http://127.0.0.1:{daemon.webhooks.port}"
    finally:
        await daemon.stop()
        await emu.stop()


async def test_gitlab_delivery_starts_the_services_jobs_once(listener):
    client, http, emu, synced, base = listener
    app = await client.call("apps.connect", {"service": "gitlab", "api_key": GITLAB, "base_url": emu.base_url})
    project = emu.project_of(GITLAB)
    job = await client.call("sync.create", {"app_id": app["id"], "stream": "issues", "resource": project.path})
    headers, body = emu.hook_delivery(project.id, 1, GITLAB_SECRET)
    forged = await http.post(base + "/webhooks/gitlab", data=body, headers={**headers, "X-Gitlab-Token": "nope"})
    assert forged.status == 401
    valid = await http.post(base + "/webhooks/gitlab", data=body, headers=headers)
    assert valid.status == 200 and (await valid.json())["started"] == [job["id"]]
    assert await asyncio.wait_for(synced.get(), 20) == job["id"]
    again = await http.post(base + "/webhooks/gitlab", data=body, headers=headers)
    assert (await again.json())["replayed"] is True


async def test_basic_auth_challenge_and_ping_handshakes(listener):
    _client, http, _emu, _synced, base = listener
    body = json.dumps({"meta": {"action": "change", "entity": "deal", "id": 7}, "data": {"id": 7}}).encode()
    ok = await http.post(base + "/webhooks/pipedrive", data=body,
                         headers={"Authorization": basic_header("hook-user", "hook-password-for-tests")})
    assert ok.status == 200 and (await ok.json())["started"] == []
    bad = await http.post(base + "/webhooks/pipedrive", data=body,
                          headers={"Authorization": basic_header("hook-user", "wrong")})
    assert bad.status == 401
    challenge = await http.get(base + "/webhooks/dropbox", params={"challenge": "abc123"})
    assert challenge.status == 200 and await challenge.text() == "abc123"
    ping = b'{"type": 1, "version": 1, "token": "t"}'
    stamp = str(int(time.time()))
    signed = await http.post(base + "/webhooks/discord", data=ping, headers=sign(DISCORD_KEY, ping, stamp))
    assert signed.status == 200 and await signed.json() == {"type": 1}, "PONG"
    forged = await http.post(base + "/webhooks/discord", data=ping,
                             headers=sign(Ed25519PrivateKey.generate(), ping, stamp))
    assert forged.status == 401
    stale = await http.post(base + "/webhooks/discord", data=ping, headers=sign(DISCORD_KEY, ping, "1000"))
    assert stale.status == 401
    unknown = await http.post(base + "/webhooks/myspace", data=b"{}")
    assert unknown.status == 404
