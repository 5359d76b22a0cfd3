"""The dashboard's live signals and OAuth connect against a real daemon (Unix socket) and emulators (loopback).

``app.checked`` after every health check, ``sync.progress`` while a job runs, and the OAuth flows of the connect
modal (paste and device) against the GitHub emulator's authorization server.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import pytest
from textual.widgets import Input, Label, Select, Static

from connectors.emulators.github import GitHubEmulator
from integd.bootstrap import Daemon
from integd.config import Config, Paths
from integtui.app import IntegApp
from integtui.link import Link
from integtui.screens.connect import ConnectModal
from integtui.screens.detail import DetailScreen
from tests.conftest import FAST_RETRY, TOKENS, connect
from tests.tui.conftest import table_rows, until

CLIENT_ID, SECRET = "Iv1.integtui-test", "gh-client-secret-0002"


class RecordingApp(IntegApp):
    """The dashboard, also noting which live signals reached it (a fake observer, not a mock)."""

    def __init__(self, socket: Path | str) -> None:
        super().__init__(socket_path=str(socket), retry_delays=(0.05, 0.2), flush_interval=0.1)
        self.checked: list[str] = []
        self.progress: list[dict[str, Any]] = []

    def on_link_checked(self, message: Link.Checked) -> None:
        self.checked.append(message.app["id"])
        super().on_link_checked(message)

    def on_link_sync_progress(self, message: Link.SyncProgress) -> None:
        self.progress.append(message.progress)
        super().on_link_sync_progress(message)


async def test_each_completed_check_updates_the_row_and_the_detail_health(daemon, client, emulators):
    created = await connect(client, emulators, "github", name="octo")
    app = RecordingApp(daemon.paths.socket)
    async with app.run_test(size=(100, 40)) as pilot:
        await until(pilot, lambda: len(table_rows(app)) == 1, "the row")
        seen = app.state.apps[created["id"]].get("last_check_at")
        # The check runs outside the dashboard and changes no status: only app.checked can tell it.
        check = await client.call("apps.check", {"app_id": created["id"]})
        await until(pilot, lambda: app.state.apps[created["id"]]["last_check_at"] == check["app"]["last_check_at"],
                    "the row's last check from app.checked")
        assert check["app"]["last_check_at"] != seen and created["id"] in app.checked
        assert app.state.apps[created["id"]]["last_latency"] == check["app"]["last_latency"]
        await until(pilot, lambda: table_rows(app)[0][3] != "-" and table_rows(app)[0][4] != "-",
                    "the Chk and Lat cells")

        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, DetailScreen) and app.screen.detail, "the detail")
        screen = app.screen
        before = len(screen.detail["health"])
        check = await client.call("apps.check", {"app_id": created["id"]})
        await until(pilot, lambda: screen.detail["health"][-1]["checked_at"] == check["app"]["last_check_at"],
                    "the new result in the strip")
        assert len(screen.detail["health"]) > before
        health = screen.query_one("#detail-health", Static)
        await until(pilot, lambda: f"{len(screen.detail['health'])} checks" in str(health.content), "the strip redrawn")
        events = await client.call("events.list", {"app_id": created["id"], "order": "desc", "limit": 1})
        shown = str(screen.query_one("#detail-events", Static).content).splitlines()
        assert events["events"][0]["type"].split(".")[-1] in shown[0], "newest event first"


async def test_sync_job_progress_in_the_detail_screen(daemon, client, emulators):
    created = await connect(client, emulators, "github", name="octo")
    emu = emulators["github"]
    login = emu.users[TOKENS["github"]].login
    repo = next(r.name for (o, _), r in emu.repos.items() if o == login.lower() and not r.private)
    job = await client.call("sync.create", {"app_id": created["id"], "stream": "issues",
                                            "resource": f"{login}/{repo}", "batch_size": 20})
    app = RecordingApp(daemon.paths.socket)
    async with app.run_test(size=(100, 40)) as pilot:
        await until(pilot, lambda: len(table_rows(app)) == 1, "the row")
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, DetailScreen) and app.screen.jobs is not None, "the jobs")
        screen = app.screen
        section = screen.query_one("#detail-sync", Static)
        assert "issues" in str(section.content) and "idle" in str(section.content)
        assert app.state.apps[created["id"]]["sync"]["running"] is False, "the Sync column from sync.list"
        done = (await client.call("sync.run", {"job_id": job["id"], "wait": True}))["job"]
        assert done["last_counts"]["pages"] >= 2
        await until(pilot, lambda: any(p.get("done") for p in app.progress), "the last sync.progress")
        assert [p["pages"] for p in app.progress if p["job_id"] == job["id"]][-1] == done["last_counts"]["pages"]
        created_n = done["totals"]["created"]
        await until(pilot, lambda: f"+{created_n} " in str(section.content), "the job's totals after the run")
        assert screen.progress == {}, "no bar once the run has ended"
        await until(pilot, lambda: app.state.apps[created["id"]]["sync"]["running"] is False, "the row's Sync cell")


# ---- OAuth through the connect modal --------------------------------------------------------------------------
@pytest.fixture
async def oauth_daemon(short_dir):
    emu = GitHubEmulator(seed=1)
    emu.oauth.register_client(CLIENT_ID, SECRET, ["http://127.0.0.1/callback"])
    emu.oauth.options.device_interval = 0
    await emu.start()
    secret = short_dir / "github.secret"
    secret.write_text(SECRET + "\n")
    config = Config.model_validate({
        "services": {"github": {"base_url": emu.base_url}},
        "oauth": {"clients": {"github": {"client_id": CLIENT_ID, "client_secret_file": str(secret),
                                         "auth_base_url": emu.origin}}}})
    daemon = Daemon(config, Paths(short_dir / "state", short_dir / "d.sock", None), retry=FAST_RETRY)
    await daemon.start()
    yield daemon, emu
    await daemon.stop()
    await emu.stop()


async def open_modal_with(pilot: Any, app: IntegApp, way: str) -> ConnectModal:
    await until(pilot, lambda: app.link.connected, "the link")
    await pilot.press("c")
    await until(pilot, lambda: isinstance(app.screen, ConnectModal) and app.screen.services, "the catalogue")
    modal = app.screen
    assert isinstance(modal, ConnectModal)
    modal.query_one("#service", Select).value = "github"
    await pilot.pause()
    modal.query_one("#way", Select).value = way
    modal.query_one("#name", Input).value = f"gh {way}"
    await pilot.pause()
    assert not modal.query_one("#api-key", Input).display, "no key to type for OAuth"
    await pilot.press("ctrl+s")
    await until(pilot, lambda: modal.flow is not None, "oauth.begin")
    return modal


async def test_oauth_paste_flow_through_the_modal(oauth_daemon):
    daemon, emu = oauth_daemon
    app = RecordingApp(daemon.paths.socket)
    async with app.run_test(size=(100, 30)) as pilot:
        modal = await open_modal_with(pilot, app, "paste")
        url = modal.flow["authorization_url"]
        assert url.startswith(emu.origin) and url in str(modal.query_one("#oauth-prompt", Label).content)
        await pilot.press("ctrl+s")
        error = modal.query_one("#connect-error", Label)
        await until(pilot, lambda: "Paste the URL" in str(error.content), "the missing paste named")
        modal.query_one("#redirect", Input).value = "http://127.0.0.1/callback?code=nope&state=wrong"
        await pilot.press("ctrl+s")
        await until(pilot, lambda: "Refused" in str(error.content), "a wrong paste refused inline")
        assert isinstance(app.screen, ConnectModal) and "nope" not in str(error.content)
        async with aiohttp.ClientSession() as http:  # the person's browser
            async with http.get(url, allow_redirects=False) as resp:
                landed = resp.headers["Location"]
        modal.query_one("#redirect", Input).value = landed
        await pilot.press("ctrl+s")
        await until(pilot, lambda: not isinstance(app.screen, ConnectModal), "the modal to close")
        await until(pilot, lambda: [r[:3] for r in table_rows(app)] == [["gh paste", "github", "● connected"]],
                    "the connected row")


async def test_oauth_device_flow_completes_by_itself(oauth_daemon):
    daemon, emu = oauth_daemon
    app = RecordingApp(daemon.paths.socket)
    async with app.run_test(size=(100, 30)) as pilot:
        modal = await open_modal_with(pilot, app, "device")
        code = modal.flow["user_code"]
        assert code in str(modal.query_one("#oauth-prompt", Label).content)
        assert not modal.query_one("#redirect", Input).display, "nothing to paste for a device code"
        assert emu.oauth.approve(code)
        await until(pilot, lambda: not isinstance(app.screen, ConnectModal), "the modal to close on its own")
        await until(pilot, lambda: [r[:3] for r in table_rows(app)] == [["gh device", "github", "● connected"]],
                    "the connected row")


async def test_oauth_loopback_flow_is_cancelled_when_the_modal_is_left(oauth_daemon):
    # Loopback and device flows end alike on the dashboard's side (an oauth.flow event), so the device test
    # covers the completion; here the person gives up instead.
    daemon, _emu = oauth_daemon
    app = RecordingApp(daemon.paths.socket)
    async with app.run_test(size=(100, 30)) as pilot:
        modal = await open_modal_with(pilot, app, "loopback")
        flow_id = modal.flow["flow_id"]
        assert modal.flow["redirect_uri"].startswith("http://127.0.0.1:")
        assert "daemon's machine" in str(modal.query_one("#oauth-prompt", Label).content)
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, ConnectModal), "the modal to close")
        await until(pilot, lambda: not [w for w in app.workers if w.name == "Cancel sign-in" and not w.is_finished],
                    "oauth.cancel")
        assert (await app.call("oauth.status", {"flow_id": flow_id}))["state"] == "cancelled"
