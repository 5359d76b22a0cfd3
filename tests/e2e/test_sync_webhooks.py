"""Webhooks end to end: a real TCP listener on loopback, signed deliveries, forged and replayed ones."""

from __future__ import annotations

import asyncio
import json
import time
import uuid

import aiohttp
import pytest
from structlog.testing import capture_logs

from connectors.webhooks import github_signature, slack_signature
from integd.client import IntegdClient
from integd.config import Config, WebhooksConfig
from tests.conftest import TOKENS, connect, make_daemon
from tests.e2e.test_sync import github_repo

GITHUB_SECRET = b"gh-webhook-secret-for-tests"
SLACK_SECRET = b"slack-signing-secret-for-tests"


@pytest.fixture
async def hooked(short_dir, emulators):
    (short_dir / "gh").write_bytes(GITHUB_SECRET + b"\n")
    (short_dir / "sl").write_bytes(SLACK_SECRET)
    cfg = Config(webhooks=WebhooksConfig(bind="127.0.0.1:0", github_secret_file=short_dir / "gh",
                                         slack_signing_secret_file=short_dir / "sl"))
    daemon = make_daemon(short_dir / "state", short_dir / "d.sock", cfg)
    await daemon.start()
    synced: asyncio.Queue[str] = asyncio.Queue()
    daemon.bus.subscribe("test", lambda e: synced.put_nowait(e.payload["job_id"]) if e.type == "data.synced"
                         else None)
    try:
        async with IntegdClient(str(daemon.paths.socket)) as client, aiohttp.ClientSession() as http:
            yield daemon, client, http, synced, f"http://127.0.0.1:{daemon.webhooks.port}"
    finally:
        await daemon.stop()


def signed(payload: dict, *, at: float | None = None) -> tuple[bytes, dict]:
    """A Slack Events API delivery signed with the test's signing secret (at ``at``, default now)."""
    body = json.dumps(payload).encode()
    ts = str(int(at if at is not None else time.time()))
    return body, {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": slack_signature(SLACK_SECRET, ts, body),
                  "Content-Type": "application/json"}


def github_delivery(body: bytes, *, secret: bytes = GITHUB_SECRET, delivery: str | None = None) -> dict:
    return {"X-Hub-Signature-256": github_signature(secret, body), "X-GitHub-Event": "issues",
            "X-GitHub-Delivery": delivery or str(uuid.uuid4()), "Content-Type": "application/json"}


async def test_github_delivery_triggers_a_delta_run_forged_and_replayed_do_not(hooked, emulators):
    daemon, client, http, synced, base = hooked
    app = await connect(client, emulators, "github")
    owner, name = github_repo(emulators["github"])
    job = await client.call("sync.create", {"app_id": app["id"], "stream": "issues", "resource": f"{owner}/{name}",
                                            "frequency": {"kind": "realtime"}})
    body = json.dumps({"action": "edited", "repository": {"full_name": f"{owner}/{name}"}}).encode()
    with capture_logs() as logs:
        forged = await http.post(base + "/webhooks/github", data=body,
                                 headers=github_delivery(body, secret=b"not the secret"))
    assert forged.status == 401
    assert any(r["event"] == "webhook.refused" and r["log_level"] == "warning" for r in logs)
    assert not any(GITHUB_SECRET.decode() in json.dumps(r, default=str) for r in logs)
    assert (await client.call("sync.get", {"job_id": job["id"]}))["runs"] == 0, "nothing enqueued"

    headers = github_delivery(body)
    valid = await http.post(base + "/webhooks/github", data=body, headers=headers)
    assert valid.status == 200 and (await valid.json())["started"] == [job["id"]]
    assert await asyncio.wait_for(synced.get(), 10) == job["id"]
    replayed = await http.post(base + "/webhooks/github", data=body, headers=headers)
    assert replayed.status == 200 and (await replayed.json())["replayed"] is True
    tampered = await http.post(base + "/webhooks/github", data=body + b" ", headers=github_delivery(body))
    assert tampered.status == 401
    assert (await client.call("sync.get", {"job_id": job["id"]}))["runs"] == 1


async def test_slack_url_verification_signature_window_and_event(hooked, emulators):
    daemon, client, http, synced, base = hooked
    app = await connect(client, emulators, "slack")
    channel = emulators["slack"].channels[0].id
    job = await client.call("sync.create", {"app_id": app["id"], "stream": "messages", "resource": channel})

    challenge = "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"      # Slack's documented example
    body, headers = signed({"type": "url_verification", "challenge": challenge})
    answer = await http.post(base + "/webhooks/slack", data=body, headers=headers)
    assert answer.status == 200 and (await answer.json())["challenge"].startswith("3eZbrw")
    event = {"type": "event_callback", "event_id": "Ev0PV52K21", "event": {"type": "message", "channel": channel}}
    body, headers = signed(event, at=time.time() - 301)
    assert (await http.post(base + "/webhooks/slack", data=body, headers=headers)).status == 401, "replay window"
    body, headers = signed(event)
    ok = await http.post(base + "/webhooks/slack", data=body, headers=headers)
    assert ok.status == 200 and (await ok.json())["started"] == [job["id"]]
    assert await asyncio.wait_for(synced.get(), 10) == job["id"]
    again = await http.post(base + "/webhooks/slack", data=body, headers=headers)
    assert (await again.json())["replayed"] is True and again.headers["X-Slack-No-Retry"] == "1"
    done = await client.call("sync.get", {"job_id": job["id"]})
    assert done["runs"] == 1 and done["last_counts"]["created"] == 120


async def test_a_slack_reply_to_an_old_thread_arrives_with_its_event(hooked, emulators):
    """A delta cannot see a new reply to an old thread (history lists top-level messages only); the event names
    the thread, and the run it triggers re-reads it."""
    daemon, client, http, synced, base = hooked
    emu = emulators["slack"]
    app = await connect(client, emulators, "slack")
    channel = emu.channels[0]
    job = await client.call("sync.create", {"app_id": app["id"], "stream": "messages", "resource": channel.id})
    await client.call("sync.run", {"job_id": job["id"], "wait": True})
    parent = channel.messages[3]
    parent_ts = f"{parent.ts // 1_000_000}.{parent.ts % 1_000_000:06d}"
    async with http.post(emu.base_url + "/chat.postMessage", headers={"Authorization": f"Bearer {TOKENS['slack']}"},
                         json={"channel": channel.id, "thread_ts": parent_ts, "text": "late reply"}) as r:
        reply_ts = (await r.json())["ts"]
    plain = await client.call("sync.run", {"job_id": job["id"], "wait": True})     # what a delta alone sees
    assert plain["job"]["last_counts"]["created"] == 0
    while not synced.empty():                                  # the two runs' own data.synced events
        synced.get_nowait()
    event = {"type": "event_callback", "event_id": "Ev0THREAD1",
             "event": {"type": "message", "channel": channel.id, "ts": reply_ts, "thread_ts": parent_ts}}
    body, headers = signed(event)
    async with http.post(base + "/webhooks/slack", data=body, headers=headers) as ok:
        assert (await ok.json())["started"] == [job["id"]]
    assert await asyncio.wait_for(synced.get(), 10) == job["id"]
    reply = await client.call("records.get", {"job_id": job["id"], "remote_id": reply_ts})
    assert reply["data"]["text"] == "late reply" and reply["data"]["thread_ts"] == parent_ts
    assert (await client.call("records.get", {"job_id": job["id"], "remote_id": parent_ts}))["data"]["reply_count"] == 1
    done = await client.call("sync.get", {"job_id": job["id"]})
    assert done["last_counts"]["created"] == 1 and done["last_counts"]["updated"] == 1
