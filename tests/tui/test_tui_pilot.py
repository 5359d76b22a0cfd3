"""The dashboard against a real daemon on a Unix socket, with the provider emulators over loopback HTTP."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import Input, Label, Select, Static

from integtui.app import IntegApp
from integtui.screens.confirm import ConfirmModal
from integtui.screens.connect import ConnectModal
from integtui.screens.detail import DetailScreen
from integtui.widgets.event_log import EventLog
from tests.conftest import TOKENS, connect, make_daemon
from tests.tui.conftest import main_screen, table_rows, until


def dashboard(socket: Path | str) -> IntegApp:
    return IntegApp(socket_path=str(socket), retry_delays=(0.05, 0.2), flush_interval=0.1)


def statuses(app: IntegApp) -> list[str]:
    return [row[2] for row in table_rows(app)]


async def test_connect_through_the_modal_refusal_inline_then_connected(daemon, emulators):
    app = dashboard(daemon.paths.socket)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: app.link.connected, "the link")
        await pilot.press("c")
        await until(pilot, lambda: isinstance(app.screen, ConnectModal) and app.screen.services, "the catalogue")
        modal = app.screen
        modal.query_one("#service", Select).value = "github"
        modal.query_one("#base-url", Input).value = emulators["github"].base_url
        modal.query_one("#name", Input).value = "octo"
        modal.query_one("#api-key", Input).value = "ghp_wrongwrongwrong0000"
        await pilot.press("ctrl+s")
        error = modal.query_one("#connect-error", Label)
        await until(pilot, lambda: "Bad credentials" in str(error.content), "the provider's refusal inline")
        assert "ghp_wrong" not in str(error.content)
        assert isinstance(app.screen, ConnectModal), "a refused key keeps the form open"
        modal.query_one("#api-key", Input).value = TOKENS["github"]
        await pilot.press("ctrl+s")
        await until(pilot, lambda: not isinstance(app.screen, ConnectModal), "the modal to close")
        await until(pilot, lambda: statuses(app) == ["● connected"], "the connected row")
        assert table_rows(app)[0][:2] == ["octo", "github"]
        log = main_screen(app).query_one(EventLog)
        await until(pilot, lambda: "github via api_key" in "\n".join(log.plain_lines()), "app.connected in the log")


async def test_revoked_key_turns_the_row_unauthorized_live(daemon, client, emulators):
    app_info = await connect(client, emulators, "slack", name="ops")
    app = dashboard(daemon.paths.socket)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: statuses(app) == ["● connected"], "the row")
        emulators["slack"].revoke(TOKENS["slack"])
        # The check runs outside the dashboard: the change can only reach it as an event.
        await client.call("apps.check", {"app_id": app_info["id"]})
        await until(pilot, lambda: statuses(app) == ["⊘ unauthorized"], "the row to turn unauthorized")
        log = main_screen(app).query_one(EventLog)

        def shown() -> str:
            return "\n".join(log.plain_lines())

        await until(pilot, lambda: "connected → unauthorized" in shown(), "the status event")
        assert "auth_failed" in shown(), "the integration.failed event is in the log"
        await pilot.press("t")  # status changes only
        assert "auth_failed" not in shown() and "→ unauthorized" in shown()


async def test_filter_and_sort(daemon, client, emulators):
    for service, name in (("github", "zeta"), ("slack", "alpha"), ("sendgrid", "mid")):
        await connect(client, emulators, service, name=name)
    app = dashboard(daemon.paths.socket)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: len(table_rows(app)) == 3, "three rows")
        assert [r[0] for r in table_rows(app)] == ["alpha", "mid", "zeta"], "sorted by name"
        await pilot.press("o")  # next column: service
        await until(pilot, lambda: [r[1] for r in table_rows(app)] == ["github", "sendgrid", "slack"], "by service")
        await pilot.press("O")  # the same column again: reversed
        await until(pilot, lambda: [r[1] for r in table_rows(app)] == ["slack", "sendgrid", "github"], "reversed")
        await pilot.press("slash", *"send", "enter")
        await until(pilot, lambda: [r[0] for r in table_rows(app)] == ["mid"], "the filter")
        assert main_screen(app).table.has_focus, "enter returns to the table"
        await pilot.press("escape")
        await until(pilot, lambda: len(table_rows(app)) == 3, "the filter cleared")


async def test_detail_screen_redacts_and_shows_health(daemon, client, emulators):
    created = await connect(client, emulators, "github", name="octo")
    await client.call("apps.check", {"app_id": created["id"]})
    app = dashboard(daemon.paths.socket)
    async with app.run_test(size=(100, 40)) as pilot:
        await until(pilot, lambda: len(table_rows(app)) == 1, "the row")
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, DetailScreen) and app.screen.detail, "the detail")
        screen = app.screen
        config = str(screen.query_one("#detail-config", Static).content)
        text = " ".join(str(w.content) for w in screen.query(Static)) + repr(screen.detail) + config
        assert TOKENS["github"] not in text, "the key never reaches the screen"
        health = str(screen.query_one("#detail-health", Static).content)
        assert "●" in health and " check" in health
        events = str(screen.query_one("#detail-events", Static).content)
        assert "github via api_key" in events
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, DetailScreen), "back to the main screen")


async def test_disconnect_asks_first(daemon, client, emulators):
    await connect(client, emulators, "sendgrid", name="mail")
    app = dashboard(daemon.paths.socket)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: len(table_rows(app)) == 1, "the row")
        await pilot.press("d")
        await until(pilot, lambda: isinstance(app.screen, ConfirmModal), "the question")
        await pilot.press("n")
        await until(pilot, lambda: not isinstance(app.screen, ConfirmModal), "the question to go")
        assert len(await client.call("apps.list")) == 1, "no means no"
        await pilot.press("d")
        await until(pilot, lambda: isinstance(app.screen, ConfirmModal), "the question again")
        await pilot.press("y")
        await until(pilot, lambda: table_rows(app) == [], "the row to go")
        assert await client.call("apps.list") == []


async def test_failed_action_is_a_titled_notification(daemon):
    app = dashboard(daemon.paths.socket)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: app.link.connected, "the link")
        app.actions.check("int_" + "0" * 32)
        await until(pilot, lambda: list(app._notifications), "a notification")
        note = list(app._notifications)[-1]
        assert note.title == "Check failed" and note.severity == "error" and note.message
        assert app.is_running


async def test_daemon_restart_under_the_dashboard(short_dir, emulators):
    state, sock = short_dir / "state", short_dir / "d.sock"
    first = make_daemon(state, sock)
    await first.start()
    app = dashboard(sock)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: app.link.connected, "the link")
        await first.stop()
        banner = main_screen(app).query_one("#banner", Static)
        await until(pilot, lambda: banner.display and "daemon unavailable at" in str(banner.content), "the banner")
        assert str(sock) in str(banner.content) and "retrying in" in str(banner.content)
        second = make_daemon(state, sock)
        await second.start()
        try:
            await until(pilot, lambda: app.link.connected and not banner.display, "the reconnection")
            from integd.client import IntegdClient  # noqa: PLC0415

            async with IntegdClient(str(sock)) as c:
                await connect(c, emulators, "github", name="after restart")
            await until(pilot, lambda: [r[0] for r in table_rows(app)] == ["after restart"], "the live row")
        finally:
            await second.stop()
