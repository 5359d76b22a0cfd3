"""Gmail and Drive sync through the whole daemon: an app connected by OAuth (paste flow against the Google
emulator's authorization server), then full runs, deltas with tombstones, an expired history id falling back to
a full resync on its own, and a Drive metadata push racing a rename upstream."""

from __future__ import annotations

import json

import pytest

from connectors.emulators import EMULATORS
from integd.bootstrap import Daemon
from integd.client import IntegdClient
from integd.config import Config, Paths
from tests.conftest import FAST_RETRY
from tests.e2e.test_oauth import browser

CLIENT_ID, SECRET = "integd-test.apps.googleusercontent.com", "google-client-secret-0001"


CHANNEL_TOKEN = b"drive-channel-token-for-tests"


async def google_daemon(short_dir, emu, webhooks: dict) -> Daemon:
    """A started daemon whose Gmail and Drive apps go to ``emu`` (OAuth client registered there), with
    ``webhooks`` as its [webhooks] table and CHANNEL_TOKEN in the channel token file."""
    emu.oauth.register_client(CLIENT_ID, SECRET, ["http://127.0.0.1/callback"])
    (short_dir / "google.secret").write_text(SECRET + "\n")
    (short_dir / "channel.token").write_bytes(CHANNEL_TOKEN)
    client = {"client_id": CLIENT_ID, "client_secret_file": str(short_dir / "google.secret"),
              "auth_base_url": emu.origin}
    cfg = Config.model_validate({
        "services": {"gmail": {"base_url": emu.origin + "/gmail/v1"},
                     "google_drive": {"base_url": emu.origin + "/drive/v3"}},
        "oauth": {"clients": {"gmail": client, "google_drive": client}},
        "webhooks": {**webhooks, "google_channel_token_file": str(short_dir / "channel.token")}})
    daemon = Daemon(cfg, Paths(short_dir / "state", short_dir / "d.sock", None), retry=FAST_RETRY)
    await daemon.start()
    return daemon


@pytest.fixture
async def google_env(short_dir):
    emu = EMULATORS["gmail"](seed=4, options={"messages_per_user": 30, "files_per_user": 25})
    await emu.start()
    daemon = await google_daemon(short_dir, emu, {"bind": "127.0.0.1:0"})
    try:
        async with IntegdClient(str(daemon.paths.socket)) as c:
            yield daemon, c, emu
    finally:
        await daemon.stop()
        await emu.stop()


async def connect_oauth(client: IntegdClient, service: str) -> str:
    flow = await client.call("oauth.begin", {"service": service, "flow": "paste"})
    done = await client.call("oauth.complete", {"flow_id": flow["flow_id"],
                                                "redirect_url": await browser(flow["authorization_url"])})
    assert done["state"] == "completed", done
    return done["app_id"]


async def live(daemon: Daemon, job_id: str) -> dict[str, dict]:
    rows = await daemon.db.fetchall("SELECT remote_id, data FROM records WHERE job_id = ? AND deleted = 0",
                                    (job_id,))
    return {r["remote_id"]: json.loads(r["data"]) for r in rows}


async def run(client: IntegdClient, job_id: str) -> dict:
    return (await client.call("sync.run", {"job_id": job_id, "wait": True}))["job"]


async def test_gmail_history_delta_tombstones_and_expired_history_resyncs(google_env):
    daemon, client, emu = google_env
    app_id = await connect_oauth(client, "gmail")
    job = await client.call("sync.create", {"app_id": app_id, "stream": "messages", "resource": "me",
                                            "batch_size": 10})
    first = await run(client, job["id"])
    assert first["state"] == "idle" and first["last_counts"]["created"] == 30, first["last_error"]
    email, box = next(iter(emu.mailboxes.items()))
    emu.delete_message(email, box.messages[2].id)
    delta = await run(client, job["id"])
    assert delta["last_counts"]["deleted"] == 1 and delta["last_counts"]["created"] == 0
    emu.options.history_retention = 3
    stored_history = delta["cursor"]["history"]
    for m in list(box.messages)[:5]:
        emu.delete_message(email, m.id)
    resynced = await run(client, job["id"])
    assert resynced["state"] == "idle", resynced["last_error"]
    assert resynced["last_counts"]["deleted"] == 5, "the full resync's sweep found what the lost history held"
    assert set(await live(daemon, job["id"])) == {m.id for m in box.messages}
    assert int(resynced["cursor"]["history"]) > int(stored_history)


async def test_drive_changes_and_a_push_racing_a_rename(google_env):
    daemon, client, emu = google_env
    app_id = await connect_oauth(client, "google_drive")
    job = await client.call("sync.create", {"app_id": app_id, "stream": "files", "resource": "me",
                                            "direction": "bidirectional", "conflict_resolution": "remote_wins"})
    assert (await run(client, job["id"]))["last_counts"]["created"] == 25
    email, drive = next(iter(emu.drives.items()))
    ids = list(drive.files)
    emu.remove_file(email, ids[0])
    record = await client.call("records.get", {"job_id": job["id"], "remote_id": ids[1]})
    await client.call("records.put", {"job_id": job["id"], "remote_id": ids[1],
                                      "data": {**record["data"], "name": "ours.txt"}})
    emu.rename_file(email, ids[1], "theirs.txt")
    done = await run(client, job["id"])
    assert done["last_counts"]["conflicts"] == 1 and done["last_counts"]["deleted"] == 1
    stored = await live(daemon, job["id"])
    assert ids[0] not in stored and stored[ids[1]]["name"] == "theirs.txt" == drive.files[ids[1]].name
    record = await client.call("records.get", {"job_id": job["id"], "remote_id": ids[3]})
    await client.call("records.put", {"job_id": job["id"], "remote_id": ids[3],
                                      "data": {**record["data"], "name": "renamed-by-integd"}})
    pushed = await run(client, job["id"])
    assert pushed["last_counts"]["pushed"] == 1 and drive.files[ids[3]].name == "renamed-by-integd"
