"""HubSpot contacts synchronised by a real daemon against the emulator over loopback: a full run (list API) and a
delta run (search API) with an upstream edit and an archived contact arriving as a tombstone, then a local write
racing a remote edit under each policy (the stream's conflict check and the runner's must agree)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from connectors.emulators import HubSpotEmulator, ManualClock

TOKEN = "pat-na1-e2e-token-00000000000000000000001"


@pytest.fixture
async def hubspot() -> AsyncIterator[tuple[HubSpotEmulator, ManualClock]]:
    clock = ManualClock(1_800_000_000.0)
    emu = HubSpotEmulator(tokens=[TOKEN], seed=6, clock=clock, options={"contacts": 30})
    await emu.start()
    yield emu, clock
    await emu.stop()


async def contacts_job(client: Any, emu: HubSpotEmulator, **extra: Any) -> dict:
    app = await client.call("apps.connect", {"service": "hubspot", "api_key": TOKEN, "base_url": emu.base_url})
    assert app["service"] == "hubspot"
    return await client.call("sync.create", {"app_id": app["id"], "stream": "contacts", "resource": "default",
                                             "batch_size": 10, **extra})


async def run(client: Any, job_id: str) -> dict:
    return (await client.call("sync.run", {"job_id": job_id, "wait": True}))["job"]


def statuses(emu: HubSpotEmulator) -> set[int]:
    return {e.status for e in emu.request_log}


async def test_full_then_delta_with_an_edit_and_an_archived_contact(client, hubspot):
    emu, clock = hubspot
    job = await contacts_job(client, emu)
    first = await run(client, job["id"])
    assert first["state"] == "idle", first["last_error"]
    assert first["last_counts"]["created"] == 30
    clock.advance(60)
    emu.update_contact("1012", firstname="Renamed upstream")
    emu.archive_contact("1013")
    delta = await run(client, job["id"])
    assert delta["state"] == "idle", delta["last_error"]
    assert delta["last_counts"]["updated"] == 1 and delta["last_counts"]["deleted"] == 1
    assert delta["last_counts"]["created"] == 0
    feed = await client.call("records.changes", {"after": 0, "job_id": job["id"], "limit": 1000})
    assert sorted((c["op"], c["remote_id"]) for c in feed["changes"][-2:]) == [("deleted", "1013"),
                                                                               ("updated", "1012")]
    assert emu.hits("/crm/v3/objects/contacts/search") >= 1 and 429 not in statuses(emu)


@pytest.mark.parametrize("policy, expected, patched", [
    ("remote_wins", "Remote edit", False), ("local_wins", "Local edit", True)])
async def test_a_local_write_racing_a_remote_edit(client, hubspot, policy, expected, patched):
    emu, clock = hubspot
    job = await contacts_job(client, emu, direction="bidirectional", conflict_resolution=policy)
    await run(client, job["id"])
    clock.advance(30)
    emu.update_contact("1007", jobtitle="Remote edit")           # upstream moves on ...
    record = await client.call("records.get", {"job_id": job["id"], "remote_id": "1007"})
    put = await client.call("records.put", {"job_id": job["id"], "remote_id": "1007",
                                            "base_version": record["version"],
                                            "data": {**record["data"], "jobtitle": "Local edit"}})
    assert put["sync_state"] == "to_push"                         # ... while we edit the version we had
    done = await run(client, job["id"])
    assert done["state"] == "idle", done["last_error"]
    assert bool([e for e in emu.request_log if e.method == "PATCH"]) is patched
    assert emu.contacts["1007"].props["jobtitle"] == expected
    final = await client.call("records.get", {"job_id": job["id"], "remote_id": "1007"})
    assert final["data"]["jobtitle"] == expected and final["sync_state"] == "in_step"
    history = await client.call("sync.conflicts", {"job_id": job["id"], "include_resolved": True})
    assert len(history) == 1
