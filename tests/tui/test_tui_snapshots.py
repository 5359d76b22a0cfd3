"""Snapshots of the main screen, the detail screen and the connect modal at 80x24 and at a wide size.

Fixed data (a fake session answering from memory), a fixed clock and UTC times make them stable. Plain ``def``
tests: snap_compare runs the app itself (libraries.md §6). Update with ``pytest --snapshot-update``.
"""

from __future__ import annotations

import pytest
from textual.pilot import Pilot
from textual.widgets import Select

from integtui.app import IntegApp
from integtui.screens.connect import ConnectModal
from integtui.screens.detail import DetailScreen
from tests.tui.conftest import no_blink, until
from tests.tui.fakes import NOW, FakeDaemon, fixed_app, fixed_job

SIZES = [pytest.param((80, 24), id="80x24"), pytest.param((140, 40), id="wide")]


def fixed_dashboard() -> IntegApp:
    apps = [
        fixed_app(1, name="GitHub (octo-org)", used=1200),
        fixed_app(2, service="slack", status="unauthorized", name="Slack (#legacy)", used=41),
        fixed_app(3, service="sendgrid", name="SendGrid (mail)", used=590, owner="bob"),
        fixed_app(4, name="GitHub (flaky)", status="error", used=4700),
        fixed_app(5, service="slack", status="rate_limited", name="Slack (#ops)", used=50),
    ]
    fake = FakeDaemon(apps)
    running = fixed_job(apps[3], 1, state="running", pages=5)
    running["progress"] = {"job_id": running["id"], "app_id": apps[3]["id"], "stream": running["key"],
                           "phase": "pull", "full": False, "done": False, "created": 120, "updated": 3, "deleted": 0,
                           "pages": 3}
    fake.jobs = [running, fixed_job(apps[3], 2, state="failed", resource="octo/web")]
    fake.emit("app.connected", apps[0]["id"], {"service": "github", "auth_mode": "api_key"}, NOW - 300)
    fake.emit("integration.failed", apps[1]["id"],
              {"service": "slack", "category": "auth_failed", "message": "invalid_auth", "status": 200}, NOW - 90)
    fake.emit("app.status_changed", apps[1]["id"],
              {"service": "slack", "old_status": "connected", "new_status": "unauthorized", "reason": "invalid_auth"},
              NOW - 90)
    fake.emit("rate_limit.exceeded", apps[4]["id"],
              {"service": "slack", "window": "minute", "retry_after": 30.0, "source": "provider"}, NOW - 20)
    return IntegApp(socket_path="/run/integd/integd.sock", clock=lambda: NOW, session_factory=fake.session_factory,
                    utc=True)


async def ready(pilot: Pilot) -> None:
    app = pilot.app
    await until(pilot, lambda: app.link.connected and app.state.apps, "the fixed data")
    await pilot.pause()


@pytest.mark.parametrize("size", SIZES)
def test_main_screen(snap_compare, size):
    assert snap_compare(fixed_dashboard(), terminal_size=size, run_before=ready)


@pytest.mark.parametrize("size", SIZES)
def test_detail_screen(snap_compare, size):
    async def open_detail(pilot: Pilot) -> None:
        await ready(pilot)
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(pilot.app.screen, DetailScreen) and pilot.app.screen.detail,
                    "the detail")
        await pilot.pause()

    assert snap_compare(fixed_dashboard(), terminal_size=size, run_before=open_detail)


@pytest.mark.parametrize("size", SIZES)
def test_connect_modal(snap_compare, size):
    async def open_modal(pilot: Pilot) -> None:
        await ready(pilot)
        await pilot.press("c")
        await until(pilot, lambda: isinstance(pilot.app.screen, ConnectModal) and pilot.app.screen.services,
                    "the catalogue")
        no_blink(pilot.app)
        await pilot.pause()

    assert snap_compare(fixed_dashboard(), terminal_size=size, run_before=open_modal)


def test_connect_modal_paste_flow(snap_compare):
    async def begin(pilot: Pilot) -> None:
        await ready(pilot)
        await pilot.press("c")
        await until(pilot, lambda: isinstance(pilot.app.screen, ConnectModal) and pilot.app.screen.services,
                    "the catalogue")
        modal = pilot.app.screen
        modal.query_one("#service", Select).value = "github"
        await pilot.pause()
        modal.query_one("#way", Select).value = "paste"
        await pilot.press("ctrl+s")
        await until(pilot, lambda: modal.flow is not None, "oauth.begin")
        no_blink(pilot.app)
        await pilot.pause()

    assert snap_compare(fixed_dashboard(), terminal_size=(80, 24), run_before=begin)
