"""Salesforce end to end: a real daemon connects through the OAuth paste flow (PKCE required) against the emulator's
authorization server, syncs accounts (full, then a delta with an upstream edit and a getDeleted tombstone), and
when the session expires (Salesforce sends no expires_in: the 401 INVALID_SESSION_ID is the signal) refreshes
once with a rotating refresh token and carries on; a local write racing a remote edit is settled per policy."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from connectors.emulators import SalesforceEmulator
from integd.bootstrap import Daemon
from integd.client import IntegdClient
from integd.config import Config, Paths
from tests.conftest import FAST_RETRY
from tests.e2e.test_oauth import browser

CLIENT_ID, SECRET = "3MVG9-integd-test-consumer-key", "sf-consumer-secret-0001"


@pytest.fixture
async def sf(short_dir: Path) -> AsyncIterator[tuple[SalesforceEmulator, IntegdClient, Daemon]]:
    emu = SalesforceEmulator(seed=7, options={"accounts": 25, "contacts": 5})
    emu.oauth.register_client(CLIENT_ID, SECRET, ["http://127.0.0.1/callback"])
    emu.oauth.options.pkce_required = True
    emu.oauth.options.rotate_refresh_tokens = True
    await emu.start()
    secret = short_dir / "salesforce.secret"
    secret.write_text(SECRET + "\n")
    # no base URL is configured: the API host is the token answer's instance_url, kept with the credential
    config = Config.model_validate({
        "oauth": {"clients": {"salesforce": {"client_id": CLIENT_ID, "client_secret_file": str(secret),
                                             "auth_base_url": emu.origin}}}})
    daemon = Daemon(config, Paths(short_dir / "state", short_dir / "d.sock", None), retry=FAST_RETRY)
    await daemon.start()
    try:
        async with IntegdClient(str(daemon.paths.socket)) as client:
            yield emu, client, daemon
    finally:
        await daemon.stop()
        await emu.stop()


async def connect(client: IntegdClient) -> str:
    flow = await client.call("oauth.begin", {"service": "salesforce", "flow": "paste", "name": "sf org"})
    assert "code_challenge=" in flow["authorization_url"]
    done = await client.call("oauth.complete", {"flow_id": flow["flow_id"],
                                                "redirect_url": await browser(flow["authorization_url"])})
    assert done["state"] == "completed"
    return done["app_id"]


async def run(client: IntegdClient, job_id: str) -> dict:
    return (await client.call("sync.run", {"job_id": job_id, "wait": True}))["job"]


async def test_connect_sync_and_refresh_an_expired_session(sf):
    emu, client, daemon = sf
    app_id = await connect(client)
    app = await client.call("apps.get", {"app_id": app_id})
    assert app["status"] == "connected" and app["credential"]["mode"] == "oauth2"
    assert app["credential"]["instance_url"] == emu.origin          # the org's host, not login.salesforce.com
    job = await client.call("sync.create", {"app_id": app_id, "stream": "accounts", "resource": "default",
                                            "batch_size": 10})
    first = await run(client, job["id"])
    assert first["state"] == "idle", first["last_error"]
    assert first["last_counts"]["created"] == 25
    ids = sorted(emu.org.records["Account"])
    emu.update_record("Account", ids[0], Name="Renamed upstream")
    emu.delete_record("Account", ids[1])
    grant = next(iter(emu.oauth.grants.values()))
    for token in grant.access_tokens:                   # the session times out (no expires_in was given)
        emu.tokens.get(token).expires_at = time.time() - 1
    delta = await run(client, job["id"])
    assert delta["state"] == "idle", delta["last_error"]
    assert delta["last_counts"]["updated"] == 1 and delta["last_counts"]["deleted"] == 1
    assert daemon.oauth.tokens.get(app_id).refreshes == 1 and len(grant.refresh_tokens) == 1   # rotated
    statuses = [e.status for e in emu.request_log]
    assert statuses.count(401) == 1 and 403 not in statuses


@pytest.mark.parametrize("policy, expected, patched", [
    ("remote_wins", "Remote edit", False), ("local_wins", "Local edit", True)])
async def test_a_local_write_racing_a_remote_edit(sf, policy: str, expected: str, patched: bool):
    emu, client, _ = sf
    app_id = await connect(client)
    job = await client.call("sync.create", {"app_id": app_id, "stream": "contacts", "resource": "default",
                                            "direction": "bidirectional", "conflict_resolution": policy})
    await run(client, job["id"])
    target = sorted(emu.org.records["Contact"])[2]
    real = emu.clock
    emu.clock = lambda: real() + 5                     # a later second than the synced version
    emu.update_record("Contact", target, Title="Remote edit")
    emu.clock = real
    record: Any = await client.call("records.get", {"job_id": job["id"], "remote_id": target})
    put = await client.call("records.put", {"job_id": job["id"], "remote_id": target,
                                            "base_version": record["version"],
                                            "data": {**record["data"], "Title": "Local edit"}})
    assert put["sync_state"] == "to_push"
    done = await run(client, job["id"])
    assert done["state"] == "idle", done["last_error"]
    assert bool([e for e in emu.request_log if e.method == "PATCH"]) is patched
    assert emu.org.records["Contact"][target].fields["Title"] == expected
    final = await client.call("records.get", {"job_id": job["id"], "remote_id": target})
    assert final["data"]["Title"] == expected and final["sync_state"] == "in_step"
