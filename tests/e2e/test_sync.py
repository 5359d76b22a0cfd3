"""Data synchronisation against a real daemon and the GitHub and Slack emulators over loopback.

Initial and delta runs with ETag, deletions found by a full refresh, an expired delta token falling back to a
full resync, each conflict policy when a push races a remote edit, stall, cancel, progress notifications.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest

from connectors.emulators import EMULATORS
from connectors.emulators.base import ManualClock, encode_cursor
from integd.client import RpcCallError, IntegdSession
from integd.config import Config, SyncConfig
from tests.conftest import TOKENS, connect, make_daemon


def github_repo(emu: Any) -> tuple[str, str]:
    login = emu.users[TOKENS["github"]].login
    name = next(r.name for (o, _), r in emu.repos.items() if o == login.lower() and not r.private)
    return login, name


async def records_of(daemon: Any, job_id: str) -> dict[str, dict]:
    async with daemon.db.read() as conn:
        rows = await conn.execute_fetchall("SELECT remote_id, data, deleted, dirty FROM records WHERE job_id = ?",
                                           (job_id,))
    return {r[0]: {"data": json.loads(r[1]), "deleted": bool(r[2]), "dirty": r[3]} for r in rows}


async def github_job(client: Any, emulators: dict, **extra: Any) -> tuple[dict, tuple[str, str]]:
    app = await connect(client, emulators, "github")
    owner, name = github_repo(emulators["github"])
    job = await client.call("sync.create", {"app_id": app["id"], "stream": "issues", "resource": f"{owner}/{name}",
                                            **extra})
    return job, (owner, name)


async def run(client: Any, job_id: str, **extra: Any) -> dict:
    return (await client.call("sync.run", {"job_id": job_id, "wait": True, **extra}))["job"]


async def test_initial_then_delta_then_304_costs_no_quota(client, emulators, daemon):
    emu = emulators["github"]
    job, (owner, name) = await github_job(client, emulators, batch_size=20)
    done = await run(client, job["id"])
    assert done["state"] == "idle" and done["last_counts"]["created"] == 57 and done["last_counts"]["pages"] == 3
    stored = await records_of(daemon, job["id"])
    assert len(stored) == 57
    emu.edit_issue(owner, name, 3, title="renamed upstream")
    delta = await run(client, job["id"])
    assert delta["last_counts"]["updated"] == 1 and delta["last_counts"]["created"] == 0
    assert (await records_of(daemon, job["id"]))["3"]["data"]["title"] == "renamed upstream"
    await run(client, job["id"])                      # stores the ETag of the now-quiet first page
    before = len([e for e in emu.request_log if e.status == 200])
    quiet = await run(client, job["id"])
    assert emu.request_log[-1].status == 304 and len([e for e in emu.request_log if e.status == 200]) == before
    assert quiet["last_counts"] == {**quiet["last_counts"], "created": 0, "updated": 0, "deleted": 0}
    feed = await client.call("records.changes", {"after": 0, "job_id": job["id"], "limit": 1000})
    assert [c["op"] for c in feed["changes"]].count("created") == 57
    assert feed["changes"][-1]["remote_id"] == "3" and feed["changes"][-1]["op"] == "updated"
    events = await client.call("events.list", {"types": ["data.synced"], "limit": 100})
    assert len(events["events"]) == 4 and events["events"][0]["payload"]["created"] == 57


async def test_deletions_are_found_by_a_full_refresh(client, emulators, daemon):
    emu = emulators["github"]
    job, (owner, name) = await github_job(client, emulators)
    await run(client, job["id"])
    emu.delete_issue(owner, name, 5)
    delta = await run(client, job["id"])
    assert delta["last_counts"]["deleted"] == 0, "GitHub's delta cannot see a deletion"
    full = await run(client, job["id"], full=True)
    assert full["last_counts"]["deleted"] == 1 and full["last_counts"]["created"] == 0
    stored = await records_of(daemon, job["id"])
    assert stored["5"]["deleted"] and sum(not r["deleted"] for r in stored.values()) == 56
    feed = await client.call("records.changes", {"after": 0, "job_id": job["id"], "limit": 1000})
    assert feed["changes"][-1]["op"] == "deleted" and feed["changes"][-1]["remote_id"] == "5"


async def test_expired_delta_token_falls_back_to_a_full_resync(client, daemon):
    clock = ManualClock(1_800_000_000.0)
    emu = EMULATORS["slack"](tokens=[TOKENS["slack"]], seed=3, clock=clock,
                             options={"cursor_ttl": 60.0, "messages_per_channel": 50, "channels": 3, "thread_every": 0})
    await emu.start()
    try:
        app = await connect(client, {"slack": emu}, "slack")
        channel = emu.channels[0]
        job = await client.call("sync.create", {"app_id": app["id"], "stream": "messages", "resource": channel.id,
                                                "batch_size": 20})
        first = await run(client, job["id"])
        assert first["last_counts"]["created"] == 50 and first["last_counts"]["pages"] == 3
        victim = f"{channel.messages[10].ts // 1_000_000}.{channel.messages[10].ts % 1_000_000:06d}"
        emu.delete_message(channel.id, victim)
        # a run cut short long ago left a page cursor that Slack has since forgotten
        stale = encode_cursor(f"next_ts:{victim}|{int(clock()) - 3600}")
        async with daemon.db.write() as conn:
            await conn.execute("UPDATE sync_jobs SET cursor = ? WHERE id = ?",
                               (json.dumps({"oldest": "0", "next": stale, "high": None}), job["id"]))
        again = await run(client, job["id"])
        assert again["state"] == "idle", again["last_error"]
        assert again["last_counts"]["deleted"] == 1 and again["last_counts"]["created"] == 0
        stored = await records_of(daemon, job["id"])
        assert stored[victim]["deleted"] and sum(not r["deleted"] for r in stored.values()) == 49
        assert again["cursor"]["next"] is None and float(again["cursor"]["oldest"]) > 0
    finally:
        await emu.stop()


async def test_slack_threads_come_with_their_parents_and_long_ones_page(client, daemon):
    emu = EMULATORS["slack"](tokens=[TOKENS["slack"]], seed=5, clock=ManualClock(1_800_000_000.0),
                             options={"messages_per_channel": 30, "channels": 2, "post_message_limit": 1000})
    await emu.start()
    try:
        app = await connect(client, {"slack": emu}, "slack")
        channel = emu.channels[0]
        parent = channel.messages[4]
        parent_ts = f"{parent.ts // 1_000_000}.{parent.ts % 1_000_000:06d}"
        async with aiohttp.ClientSession() as http:
            for n in range(205):                                 # more than one conversations.replies page (200)
                async with http.post(emu.base_url + "/chat.postMessage", headers={
                        "Authorization": f"Bearer {TOKENS['slack']}"},
                        json={"channel": channel.id, "thread_ts": parent_ts, "text": f"reply {n}"}) as r:
                    assert (await r.json())["ok"] is True
        job = await client.call("sync.create", {"app_id": app["id"], "stream": "messages", "resource": channel.id})
        done = await run(client, job["id"])
        assert done["state"] == "idle", done["last_error"]
        stored = await records_of(daemon, job["id"])
        replies = [r for rid, r in stored.items() if r["data"]["thread_ts"] not in (None, rid)]
        assert len(stored) == 30 + len(channel.replies) and len(replies) == len(channel.replies)
        long_thread = sorted(r["data"]["text"] for r in replies if r["data"]["thread_ts"] == parent_ts)
        assert len(long_thread) == 205 and "reply 204" in long_thread
        assert stored[parent_ts]["data"]["reply_count"] == 205
        calls = [e.path for e in emu.request_log if e.path.endswith("/conversations.replies")]
        assert len(calls) == 2 + sum(1 for m in channel.messages if m.reply_count and m is not parent)
    finally:
        await emu.stop()


@pytest.mark.parametrize("policy, winner, pushed", [
    ("remote_wins", "remote", False), ("local_wins", "local", True), ("latest_wins", "local", True)])
async def test_push_racing_a_remote_edit(client, emulators, daemon, policy, winner, pushed):
    emu = emulators["github"]
    job, (owner, name) = await github_job(client, emulators, direction="bidirectional", conflict_resolution=policy)
    await run(client, job["id"])
    emu.edit_issue(owner, name, 7, title="remote edit")       # someone edits it upstream ...
    record = await client.call("records.get", {"job_id": job["id"], "remote_id": "7"})
    put = await client.call("records.put", {"job_id": job["id"], "remote_id": "7", "base_version": record["version"],
                                            "data": {**record["data"], "title": "local edit"}})
    assert put["sync_state"] == "to_push"                        # ... while we change the version we had
    await run(client, job["id"])
    patches = [e for e in emu.request_log if e.method == "PATCH"]
    assert bool(patches) is pushed
    expected = "remote edit" if winner == "remote" else "local edit"
    upstream = emu._issues(emu.repos[(owner.lower(), name.lower())])[6]
    assert upstream.number == 7 and upstream.title == expected
    final = await client.call("records.get", {"job_id": job["id"], "remote_id": "7"})
    assert final["data"]["title"] == expected and final["sync_state"] == "in_step"
    history = await client.call("sync.conflicts", {"job_id": job["id"], "include_resolved": True})
    assert len(history) == 1 and history[0]["resolution"] == ("take_remote" if winner == "remote" else "keep_local")


async def test_latest_wins_takes_a_later_remote_edit(client, daemon, short_dir):
    clock = ManualClock(2_000_000_000.0)                       # the provider's clock is ahead of ours
    emu = EMULATORS["github"](tokens=[TOKENS["github"]], seed=1, clock=clock)
    await emu.start()
    try:
        job, (owner, name) = await github_job(client, {"github": emu}, direction="bidirectional")
        await run(client, job["id"])
        record = await client.call("records.get", {"job_id": job["id"], "remote_id": "2"})
        await client.call("records.put", {"job_id": job["id"], "remote_id": "2",
                                          "data": {**record["data"], "title": "older local edit"}})
        emu.edit_issue(owner, name, 2, title="newer remote edit")
        await run(client, job["id"])
        final = await client.call("records.get", {"job_id": job["id"], "remote_id": "2"})
        assert final["data"]["title"] == "newer remote edit"
        assert not [e for e in emu.request_log if e.method == "PATCH"]
    finally:
        await emu.stop()


async def test_manual_policy_parks_the_conflict_until_resolved(client, emulators, daemon):
    emu = emulators["github"]
    job, (owner, name) = await github_job(client, emulators, direction="bidirectional",
                                          conflict_resolution="manual")
    await run(client, job["id"])
    emu.edit_issue(owner, name, 4, title="theirs")
    record = await client.call("records.get", {"job_id": job["id"], "remote_id": "4"})
    await client.call("records.put", {"job_id": job["id"], "remote_id": "4",
                                      "data": {**record["data"], "title": "ours"}})
    done = await run(client, job["id"])
    assert done["last_counts"]["conflicts"] == 1 and done["last_counts"]["pushed"] == 0
    parked = await client.call("sync.conflicts", {"job_id": job["id"]})
    assert len(parked) == 1 and parked[0]["local"]["title"] == "ours" and parked[0]["remote"]["title"] == "theirs"
    with pytest.raises(RpcCallError) as refused:
        await client.call("records.put", {"job_id": job["id"], "remote_id": "4", "data": {"title": "x"}})
    assert refused.value.code == -32003
    resolved = await client.call("sync.resolve", {"job_id": job["id"], "conflict_id": parked[0]["id"],
                                                  "keep": "local"})
    assert resolved["resolution"] == "keep_local"
    await run(client, job["id"])
    upstream = next(i for i in emu._issues(emu.repos[(owner.lower(), name.lower())]) if i.number == 4)
    assert upstream.title == "ours" and await client.call("sync.conflicts", {"job_id": job["id"]}) == []


async def test_stale_base_version_is_refused_and_local_create_is_pushed(client, emulators, daemon):
    emu = emulators["github"]
    job, (owner, name) = await github_job(client, emulators, direction="bidirectional")
    await run(client, job["id"])
    record = await client.call("records.get", {"job_id": job["id"], "remote_id": "1"})
    with pytest.raises(RpcCallError) as stale:
        await client.call("records.put", {"job_id": job["id"], "remote_id": "1", "base_version": record["version"] + 5,
                                          "data": {"title": "x"}})
    assert stale.value.code == -32025 and stale.value.data["current_version"] == record["version"]
    created = await client.call("records.put", {"job_id": job["id"], "data": {"title": "made here", "body": "hi"}})
    assert created["remote_id"].startswith("local-")
    await run(client, job["id"])
    feed = await client.call("records.changes", {"after": 0, "job_id": job["id"], "limit": 1000})
    named = [c for c in feed["changes"] if c["previous_id"] == created["remote_id"]]
    assert len(named) == 1 and named[0]["remote_id"] == "58"
    assert any(i.title == "made here" for i in emu._issues(emu.repos[(owner.lower(), name.lower())]))


async def test_stall_is_failure_never_success(short_dir, emulators):
    daemon = make_daemon(short_dir / "state", short_dir / "d.sock", Config(sync=SyncConfig(stall_timeout=0.2)))
    await daemon.start()
    try:
        from integd.client import IntegdClient
        async with IntegdClient(str(daemon.paths.socket)) as client:
            job, _ = await github_job(client, emulators)
            emulators["github"].faults.latency = 1.5
            done = await run(client, job["id"])
            assert done["state"] == "stalled" and "stalled" in done["last_error"]
            failed = await client.call("events.list", {"types": ["integration.failed", "data.synced"]})
            assert [e["type"] for e in failed["events"]] == ["integration.failed"]
            emulators["github"].faults.latency = 0.0
            daemon.sync.runner.stall_timeout = 60.0     # a loaded test machine must not stall the healthy run
            assert (await run(client, job["id"]))["state"] == "idle", "a stalled job can run again"
    finally:
        await daemon.stop()


async def test_cancel_and_pause(client, emulators, daemon):
    job, _ = await github_job(client, emulators)
    emulators["github"].faults.latency = 1.0
    started = await client.call("sync.run", {"job_id": job["id"]})
    assert started["started"] is True
    again = await client.call("sync.run", {"job_id": job["id"]})
    assert again["started"] is False, "one run per job at a time"
    cancelled = await client.call("sync.cancel", {"job_id": job["id"]})
    assert cancelled["state"] == "cancelled"
    emulators["github"].faults.latency = 0.0
    paused = await client.call("sync.pause", {"job_id": job["id"]})
    assert paused["state"] == "paused"
    with pytest.raises(RpcCallError) as refused:
        await client.call("sync.run", {"job_id": job["id"]})
    assert refused.value.code == -32003
    assert (await client.call("sync.resume", {"job_id": job["id"]}))["state"] == "idle"
    assert (await client.call("sync.delete", {"job_id": job["id"]}))["deleted"] is True
    assert await client.call("sync.list", {}) == []


async def test_progress_reaches_websocket_subscribers(client, emulators, daemon):
    job, _ = await github_job(client, emulators, batch_size=25)
    async with await IntegdSession.connect(str(daemon.paths.socket)) as session:
        await session.call("events.subscribe", {"types": ["sync.progress", "data.synced"]})
        await client.call("sync.run", {"job_id": job["id"]})
        seen: list[tuple[str, dict]] = []

        async def collect() -> None:
            async for method, params in session.notifications():
                seen.append((method, params))
                if method == "event":
                    return
        await asyncio.wait_for(collect(), 10)
    progress = [p["progress"] for m, p in seen if m == "sync.progress"]
    assert [p["pages"] for p in progress[:3]] == [1, 2, 3] and progress[0]["job_id"] == job["id"]
    assert progress[0]["remaining"] == 50 and progress[0]["created"] == 25, "Link rel=last: 2 more pages of 25"
    assert progress[-1]["done"] is True and progress[-1]["created"] == 57


async def test_bad_requests_name_what_is_wrong(client, emulators):
    app = await connect(client, emulators, "github")
    for params, field in (({"stream": "wikis", "resource": "a/b"}, "stream"),
                          ({"stream": "issues", "resource": "not a repo"}, "resource"),
                          ({"stream": "issues", "resource": "a/b", "frequency": {"kind": "cron", "cron": "61 * * * *"}},
                           "frequency.cron")):
        with pytest.raises(RpcCallError) as bad:
            await client.call("sync.create", {"app_id": app["id"], **params})
        assert bad.value.code == -32004 and bad.value.data["field"] == field
    job = await client.call("sync.create", {"app_id": app["id"], "stream": "issues", "resource": "a/b"})
    with pytest.raises(RpcCallError) as twice:
        await client.call("sync.create", {"app_id": app["id"], "stream": "issues", "resource": "a/b"})
    assert "already has a sync job" in twice.value.message
    with pytest.raises(RpcCallError) as pull_only:
        await client.call("records.put", {"job_id": job["id"], "data": {"title": "x"}})
    assert pull_only.value.data["field"] == "job_id"


async def test_the_scheduler_runs_a_due_job_and_schedules_the_next_run(short_dir, emulators):
    daemon = make_daemon(short_dir / "state", short_dir / "d.sock", Config(sync=SyncConfig(jitter=0.0)))
    await daemon.start()
    synced: asyncio.Queue[str] = asyncio.Queue()
    daemon.bus.subscribe("test", lambda e: synced.put_nowait(e.payload["job_id"]) if e.type == "data.synced"
                         else None)
    try:
        from integd.client import IntegdClient
        async with IntegdClient(str(daemon.paths.socket)) as client:
            job, _ = await github_job(client, emulators, frequency={"kind": "interval", "minutes": 10})
            assert job["next_run_at"] is not None, "a job that never ran is due at once"
            assert await asyncio.wait_for(synced.get(), 10) == job["id"]

            async def rescheduled() -> dict:
                while True:
                    got = await client.call("sync.get", {"job_id": job["id"]})
                    if got["state"] == "idle" and got["next_run_at"] and got["next_run_at"] > got["last_run_at"]:
                        return got
                    await asyncio.sleep(0.01)    # the reschedule is a background task with no event of its own
            after = await asyncio.wait_for(rescheduled(), 10)
            assert after["next_run_at"] - after["last_run_at"] == pytest.approx(600.0), "one period later"
    finally:
        await daemon.stop()


async def test_a_local_change_during_a_run_earns_one_follow_up_run(client, emulators, daemon):
    synced: asyncio.Queue[str] = asyncio.Queue()
    daemon.bus.subscribe("test", lambda e: synced.put_nowait(e.payload["job_id"]) if e.type == "data.synced"
                         else None)
    emu = emulators["github"]
    job, (owner, name) = await github_job(client, emulators, direction="bidirectional")
    await run(client, job["id"])
    await synced.get()
    record = await client.call("records.get", {"job_id": job["id"], "remote_id": "5"})
    emu.faults.latency = 0.3
    started = await client.call("sync.run", {"job_id": job["id"]})
    assert started["started"]
    await client.call("records.put", {"job_id": job["id"], "remote_id": "5",
                                      "data": {**record["data"], "title": "changed mid-run"}})
    emu.faults.latency = 0.0
    assert [await asyncio.wait_for(synced.get(), 10) for _ in range(2)] == [job["id"], job["id"]]
    upstream = next(i for i in emu._issues(emu.repos[(owner.lower(), name.lower())]) if i.number == 5)
    assert upstream.title == "changed mid-run"
    assert (await client.call("sync.get", {"job_id": job["id"]}))["runs"] == 3


async def test_every_nth_run_is_a_full_refresh_for_streams_without_tombstones(short_dir, emulators):
    daemon = make_daemon(short_dir / "state", short_dir / "d.sock", Config(sync=SyncConfig(full_refresh_every=3)))
    await daemon.start()
    try:
        from integd.client import IntegdClient
        async with IntegdClient(str(daemon.paths.socket)) as client:
            job, (owner, name) = await github_job(client, emulators)
            await run(client, job["id"])
            emulators["github"].delete_issue(owner, name, 9)
            second = await run(client, job["id"])
            assert second["runs"] == 2 and second["last_counts"]["deleted"] == 0
            third = await run(client, job["id"])
            assert third["runs"] == 3 and third["last_counts"]["deleted"] == 1, "the third run listed everything"
            assert (await records_of(daemon, job["id"]))["9"]["deleted"]
    finally:
        await daemon.stop()
