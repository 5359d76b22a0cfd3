"""Drive push channels end to end: integd registers changes.watch at the Google emulator, the emulator delivers
real notifications to integd's webhook listener, a change runs a delta sync; renewal, pause, delete, refusals."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import aiohttp
import pytest
from structlog.testing import capture_logs

from connectors.emulators import EMULATORS
from integd.bootstrap import Daemon
from integd.client import IntegdClient
from tests.conftest import FAST_RETRY
from tests.e2e.test_sync_google import CHANNEL_TOKEN, connect_oauth, google_daemon, live, run


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def drive_env(short_dir, public_url: str | None = None) -> tuple[Daemon, object]:
    emu = EMULATORS["google_drive"](seed=4, options={"files_per_user": 12})
    await emu.start()
    port = free_port()
    daemon = await google_daemon(short_dir, emu, {"bind": f"127.0.0.1:{port}",
                                                  "public_url": public_url or f"http://127.0.0.1:{port}"})
    return daemon, emu


@pytest.fixture
async def env(short_dir) -> AsyncIterator[tuple[Daemon, IntegdClient, object]]:
    daemon, emu = await drive_env(short_dir)
    try:
        async with IntegdClient(str(daemon.paths.socket)) as c:
            yield daemon, c, emu
    finally:
        await daemon.stop()
        await emu.stop()


async def realtime_job(client: IntegdClient) -> dict:
    app_id = await connect_oauth(client, "google_drive")
    return await client.call("sync.create", {"app_id": app_id, "stream": "files", "resource": "me",
                                             "frequency": {"kind": "realtime"}})


async def test_a_change_at_google_reaches_integd_through_its_channel_and_syncs(env):
    daemon, client, emu = env
    channels = daemon.sync.channels
    job = await realtime_job(client)
    await run(client, job["id"])                                   # the initial sync: the cursor holds a token
    await channels.reconcile()
    [row] = await channels.rows()
    assert row.job_id == job["id"] and row.id.startswith("ch_") and row.resource_id
    assert row.expires_at > daemon.clock.time() + 100 * 3600
    await emu.push.drain()
    assert [(d["channel"], d["state"], d["status"]) for d in emu.push.delivered] == [(row.id, "sync", 200)]

    synced: asyncio.Queue[str] = asyncio.Queue()
    daemon.bus.subscribe("test", lambda e: synced.put_nowait(e.payload["job_id"]) if e.type == "data.synced"
                         else None)
    before = await live(daemon, job["id"])
    file_id = sorted(before)[3]
    emu.rename_file(next(iter(emu.drives)), file_id, "renamed at Google")
    await emu.push.drain()
    assert emu.push.delivered[-1]["state"] == "change" and emu.push.delivered[-1]["status"] == 200
    assert await asyncio.wait_for(synced.get(), 10) == job["id"]
    after = await live(daemon, job["id"])
    assert after[file_id]["name"] == "renamed at Google"
    assert (await client.call("sync.get", {"job_id": job["id"]}))["runs"] == 2


async def test_forged_unknown_and_replayed_notifications_start_nothing(env):
    daemon, client, _ = env
    job = await realtime_job(client)
    await daemon.sync.channels.reconcile()
    [row] = await daemon.sync.channels.rows()
    url = f"http://127.0.0.1:{daemon.webhooks.port}/webhooks/google"

    def headers(**extra: str) -> dict[str, str]:
        return {"X-Goog-Channel-ID": row.id, "X-Goog-Channel-Token": CHANNEL_TOKEN.decode(),
                "X-Goog-Resource-ID": row.resource_id, "X-Goog-Resource-State": "change",
                "X-Goog-Message-Number": "900", **extra}
    async with aiohttp.ClientSession() as http:
        with capture_logs() as logs:
            for bad in ({"X-Goog-Channel-Token": "guessed"}, {"X-Goog-Channel-ID": job["id"]},
                        {"X-Goog-Resource-ID": "another-resource"}):
                async with http.post(url, headers=headers(**bad)) as refused:
                    assert refused.status == 401, bad
        assert [r["event"] for r in logs if r["log_level"] == "warning"] == ["webhook.refused"] * 3
        assert not any(CHANNEL_TOKEN.decode() in str(r) for r in logs)
        async with http.post(url, headers=headers()) as valid:
            assert (await valid.json())["started"] == [job["id"]]
        async with http.post(url, headers=headers()) as again:
            assert (await again.json())["replayed"] is True


async def test_renewal_pause_resume_and_delete_keep_exactly_the_wanted_channels(env):
    daemon, client, emu = env
    channels = daemon.sync.channels
    job = await realtime_job(client)
    await channels.reconcile()
    [first] = await channels.rows()
    shown = (await client.call("sync.get", {"job_id": job["id"]}))["push_channel"]
    assert shown == {"id": first.id, "expires_at": first.expires_at}

    async with daemon.db.write() as conn:                          # five and a half days later, as far as we know
        await conn.execute("UPDATE push_channels SET expires_at = ? WHERE id = ?",
                           (daemon.clock.time() + 3600, first.id))
    await channels.reconcile()
    [second] = await channels.rows()
    assert second.id != first.id
    assert await stop_at_google(emu, first) == 404, "the renewed channel was stopped at Google"

    await client.call("sync.pause", {"job_id": job["id"]})
    await channels.reconcile()
    assert await channels.rows() == []
    assert (await client.call("sync.get", {"job_id": job["id"]}))["push_channel"] is None
    assert await stop_at_google(emu, second) == 404

    await client.call("sync.resume", {"job_id": job["id"]})
    await channels.reconcile()
    [third] = await channels.rows()
    await client.call("sync.delete", {"job_id": job["id"]})
    await channels.reconcile()
    assert await channels.rows() == []
    assert await stop_at_google(emu, third) == 404
    await emu.push.drain()
    assert {d["channel"] for d in emu.push.delivered} == {first.id, second.id, third.id}   # each one's "sync"


async def stop_at_google(emu, row) -> int:
    token = next(iter(emu.accounts))
    async with aiohttp.ClientSession() as http, http.post(
            emu.origin + "/drive/v3/channels/stop", json={"id": row.id, "resourceId": row.resource_id},
            headers={"Authorization": f"Bearer {token}"}) as r:
        return r.status


async def test_a_refused_watch_is_logged_retried_and_leaves_no_channel(short_dir):
    daemon, emu = await drive_env(short_dir, public_url="http://integd.example.com")   # Google wants https
    try:
        async with IntegdClient(str(daemon.paths.socket)) as client:
            job = await realtime_job(client)
            with capture_logs() as logs:
                failed = await daemon.sync.channels.reconcile()
            assert failed is True and await daemon.sync.channels.rows() == []
            warnings = [r for r in logs if r["event"] == "sync.channel_failed"]    # the loop's pass may log too
            assert warnings and all(w["job_id"] == job["id"] and "changes.watch: 400" in w["reason"]
                                    for w in warnings)
            assert CHANNEL_TOKEN.decode() not in str(logs)
            assert (await client.call("sync.get", {"job_id": job["id"]}))["state"] == "idle"
    finally:
        await daemon.stop()
        await emu.stop()


async def test_a_restarted_daemon_keeps_its_channel_and_still_hears_it(short_dir):
    daemon, emu = await drive_env(short_dir)
    try:
        async with IntegdClient(str(daemon.paths.socket)) as client:
            job = await realtime_job(client)
            await run(client, job["id"])
        await daemon.sync.channels.reconcile()
        [before] = await daemon.sync.channels.rows()
        await daemon.stop()
        daemon = Daemon(daemon.config, daemon.paths, retry=FAST_RETRY)      # same state, same listener address
        await daemon.start()
        await daemon.sync.channels.reconcile()
        assert await daemon.sync.channels.rows() == [before], "kept, not registered again"
        synced: asyncio.Queue[str] = asyncio.Queue()
        daemon.bus.subscribe("test", lambda e: synced.put_nowait(e.payload["job_id"]) if e.type == "data.synced"
                             else None)
        file_id = sorted(await live(daemon, job["id"]))[0]
        emu.rename_file(next(iter(emu.drives)), file_id, "renamed while we restarted")
        await emu.push.drain()
        assert emu.push.delivered[-1]["status"] == 200
        assert await asyncio.wait_for(synced.get(), 10) == job["id"]
        assert (await live(daemon, job["id"]))[file_id]["name"] == "renamed while we restarted"
    finally:
        await daemon.stop()
        await emu.stop()
