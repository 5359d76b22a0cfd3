"""Dropbox files and Discord channel messages synchronised by a real daemon against their emulators over loopback:
Dropbox connected by OAuth (paste flow, PKCE, offline refresh token), a full run, a delta with a new file and a
deletion arriving as a tombstone, a local write racing a remote one under each policy; Discord with a bot token,
a full run, a delta with new messages, a full refresh sweeping a deleted message, a local edit racing a remote one."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from connectors.emulators import EMULATORS
from integd.bootstrap import Daemon
from integd.client import IntegdClient
from integd.config import Config, Paths
from tests.conftest import FAST_RETRY
from tests.e2e.test_oauth import browser

CLIENT_ID, SECRET = "dropbox-e2e-app-key", "dropbox-e2e-app-secret"
BOT = "MTE4.e2e-discord-bot-token-000000000001"


@pytest.fixture
async def env(short_dir) -> AsyncIterator[tuple[Daemon, IntegdClient, Any, Any]]:
    dropbox = EMULATORS["dropbox"](seed=6, options={"files_per_user": 12})
    dropbox.oauth.register_client(CLIENT_ID, SECRET, ["http://127.0.0.1/callback"])
    discord = EMULATORS["discord"](tokens=[BOT], seed=6, options={"messages_per_channel": 15, "route_limit": 1000})
    await dropbox.start()
    await discord.start()
    (short_dir / "dropbox.secret").write_text(SECRET + "\n")
    oauth_client = {"client_id": CLIENT_ID, "client_secret_file": str(short_dir / "dropbox.secret"),
                    "auth_base_url": dropbox.origin}
    cfg = Config.model_validate({"services": {"dropbox": {"base_url": dropbox.base_url}},
                                 "oauth": {"clients": {"dropbox": oauth_client}}})
    daemon = Daemon(cfg, Paths(short_dir / "state", short_dir / "d.sock", None), retry=FAST_RETRY)
    await daemon.start()
    try:
        async with IntegdClient(str(daemon.paths.socket)) as c:
            yield daemon, c, dropbox, discord
    finally:
        await daemon.stop()
        await dropbox.stop()
        await discord.stop()


async def run(client: IntegdClient, job_id: str) -> dict:
    return (await client.call("sync.run", {"job_id": job_id, "wait": True}))["job"]


async def live(daemon: Daemon, job_id: str) -> dict[str, dict]:
    rows = await daemon.db.fetchall("SELECT remote_id, data FROM records WHERE job_id = ? AND deleted = 0",
                                    (job_id,))
    return {r["remote_id"]: json.loads(r["data"]) for r in rows}


async def dropbox_job(client: IntegdClient, **extra: Any) -> tuple[str, dict]:
    flow = await client.call("oauth.begin", {"service": "dropbox", "flow": "paste"})
    assert "token_access_type=offline" in flow["authorization_url"]
    done = await client.call("oauth.complete", {"flow_id": flow["flow_id"],
                                                "redirect_url": await browser(flow["authorization_url"])})
    assert done["state"] == "completed", done
    job = await client.call("sync.create", {"app_id": done["app_id"], "stream": "files", "resource": "/",
                                            "batch_size": 5, **extra})
    return done["app_id"], job


async def test_dropbox_full_then_delta_with_a_new_file_and_a_deletion(env):
    daemon, client, dropbox, _ = env
    _, job = await dropbox_job(client)
    first = await run(client, job["id"])
    assert first["state"] == "idle" and first["last_counts"]["created"] == 12, first["last_error"]
    token = next(iter(dropbox.accounts))
    stored = await live(daemon, job["id"])
    victim = sorted(stored)[0]
    dropbox.delete_path(token, victim)
    dropbox.put_file(token, "/Inbox/new.txt", b"fresh")
    delta = await run(client, job["id"])
    assert delta["last_counts"]["deleted"] == 1 and delta["last_counts"]["created"] == 1, delta["last_error"]
    stored = await live(daemon, job["id"])
    assert victim not in stored and stored["/inbox/new.txt"]["size"] == 5 and len(stored) == 12


@pytest.mark.parametrize("policy, expected", [("remote_wins", b"theirs"), ("local_wins", b"ours")])
async def test_dropbox_local_write_racing_a_remote_one(env, policy, expected):
    daemon, client, dropbox, _ = env
    _, job = await dropbox_job(client, direction="bidirectional", conflict_resolution=policy)
    await run(client, job["id"])
    token = next(iter(dropbox.accounts))
    target = sorted(await live(daemon, job["id"]))[3]
    record = await client.call("records.get", {"job_id": job["id"], "remote_id": target})
    await client.call("records.put", {"job_id": job["id"], "remote_id": target, "base_version": record["version"],
                                      "data": {**record["data"], "content": "ours"}})
    dropbox.put_file(token, record["data"]["path_display"], b"theirs")          # upstream moves on meanwhile
    done = await run(client, job["id"])
    assert done["last_counts"]["conflicts"] == 1, done["last_error"]
    assert dropbox.fs_for_token(token).entries[target].content == expected
    final = await client.call("records.get", {"job_id": job["id"], "remote_id": target})
    assert final["sync_state"] == "in_step" and final["data"]["size"] == len(expected)


async def test_discord_messages_full_delta_and_a_refresh_sweeping_a_deletion(env):
    daemon, client, _, discord = env
    app = await client.call("apps.connect", {"service": "discord", "api_key": BOT, "base_url": discord.base_url})
    channel = discord.world.guilds[0].channels[0].id
    job = await client.call("sync.create", {"app_id": app["id"], "stream": "messages", "resource": channel,
                                            "batch_size": 10})
    first = await run(client, job["id"])
    assert first["state"] == "idle" and first["last_counts"]["created"] == 15, first["last_error"]
    new = discord.post_message(channel, "posted after the first run")
    delta = await run(client, job["id"])
    assert delta["last_counts"]["created"] == 1 and new["id"] in await live(daemon, job["id"])
    victim = sorted(await live(daemon, job["id"]), key=int)[2]
    discord.delete_message(channel, victim)
    refreshed = (await client.call("sync.run", {"job_id": job["id"], "wait": True, "full": True}))["job"]
    assert refreshed["last_counts"]["deleted"] == 1, refreshed["last_error"]
    assert victim not in await live(daemon, job["id"])


@pytest.mark.parametrize("policy, expected, patched", [("remote_wins", "theirs", False),
                                                       ("local_wins", "ours", True)])
async def test_discord_local_edit_racing_a_remote_edit(env, policy, expected, patched):
    daemon, client, _, discord = env
    app = await client.call("apps.connect", {"service": "discord", "api_key": BOT, "base_url": discord.base_url})
    channel = discord.world.guilds[0].channels[1].id
    mine = discord.post_message(channel, "the bot's own words", author=discord.users[BOT])
    job = await client.call("sync.create", {"app_id": app["id"], "stream": "messages", "resource": channel,
                                            "direction": "bidirectional", "conflict_resolution": policy})
    await run(client, job["id"])
    record = await client.call("records.get", {"job_id": job["id"], "remote_id": mine["id"]})
    await client.call("records.put", {"job_id": job["id"], "remote_id": mine["id"], "base_version": record["version"],
                                      "data": {**record["data"], "content": "ours"}})
    discord.edit_message(channel, mine["id"], "theirs")
    done = await run(client, job["id"])
    assert done["last_counts"]["conflicts"] == 1, done["last_error"]
    assert discord.world.channels[channel].messages[int(mine["id"])].content == expected
    assert any(e.method == "PATCH" for e in discord.request_log) is patched
