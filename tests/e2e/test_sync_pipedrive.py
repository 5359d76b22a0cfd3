"""Pipedrive deals synchronised by a real daemon against the emulator over loopback: a full and a delta run (an
upstream edit and a deletion arriving as a tombstone), then a local write racing a remote edit under each policy."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from connectors.emulators import ManualClock, PipedriveEmulator

TOKEN = "pd-e2e-token-0000000000000000000000000001"


@pytest.fixture
async def pipedrive() -> AsyncIterator[tuple[PipedriveEmulator, ManualClock]]:
    clock = ManualClock(1_800_000_000.0)
    emu = PipedriveEmulator(tokens=[TOKEN], seed=4, clock=clock, options={"deals": 30})
    await emu.start()
    yield emu, clock
    await emu.stop()


async def deals_job(client: Any, emu: PipedriveEmulator, **extra: Any) -> dict:
    app = await client.call("apps.connect", {"service": "pipedrive", "api_key": TOKEN, "base_url": emu.base_url})
    assert app["service"] == "pipedrive"
    return await client.call("sync.create", {"app_id": app["id"], "stream": "deals", "resource": "all",
                                             "batch_size": 10, **extra})


async def run(client: Any, job_id: str) -> dict:
    return (await client.call("sync.run", {"job_id": job_id, "wait": True}))["job"]


async def test_full_then_delta_with_an_edit_and_a_deletion(client, pipedrive):
    emu, clock = pipedrive
    job = await deals_job(client, emu)
    first = await run(client, job["id"])
    assert first["state"] == "idle", first["last_error"]
    assert first["last_counts"]["created"] == 30
    clock.advance(60)
    emu.edit_deal(12, title="Renamed upstream")
    emu.delete_deal(13)
    delta = await run(client, job["id"])
    assert delta["last_counts"]["updated"] == 1 and delta["last_counts"]["deleted"] == 1
    assert delta["last_counts"]["created"] == 0
    feed = await client.call("records.changes", {"after": 0, "job_id": job["id"], "limit": 1000})
    ops = [(c["op"], c["remote_id"]) for c in feed["changes"][-2:]]
    assert sorted(ops) == [("deleted", "13"), ("updated", "12")]
    assert emu.rejected == 0


@pytest.mark.parametrize("policy, expected, patched", [
    ("remote_wins", "Remote edit", False), ("local_wins", "Local edit", True)])
async def test_a_local_write_racing_a_remote_edit(client, pipedrive, policy, expected, patched):
    emu, clock = pipedrive
    job = await deals_job(client, emu, direction="bidirectional", conflict_resolution=policy)
    await run(client, job["id"])
    clock.advance(30)
    emu.edit_deal(7, title="Remote edit")                         # upstream moves on ...
    record = await client.call("records.get", {"job_id": job["id"], "remote_id": "7"})
    put = await client.call("records.put", {"job_id": job["id"], "remote_id": "7", "base_version": record["version"],
                                            "data": {**record["data"], "title": "Local edit"}})
    assert put["sync_state"] == "to_push"                         # ... while we edit the version we had
    await run(client, job["id"])
    assert bool([e for e in emu.request_log if e.method == "PATCH"]) is patched
    assert emu.deals[7].title == expected
    final = await client.call("records.get", {"job_id": job["id"], "remote_id": "7"})
    assert final["data"]["title"] == expected and final["sync_state"] == "in_step"
    history = await client.call("sync.conflicts", {"job_id": job["id"], "include_resolved": True})
    assert len(history) == 1
