"""integtui: the live dashboard for integd, fit for SSH. This module is the wiring and the global bindings.

    integtui [--socket PATH]

Everything the daemon says arrives through one ``Link`` (a WebSocket session with an ``events.subscribe``
subscription) as messages; every call runs in a worker. Worker failures all land in ``on_worker_state_changed``,
which turns them into titled notifications carrying the JSON-RPC error's message, so no failed call can take
the UI down::

    Exception (in a worker)
    ├── RpcCallError        "<Action> failed": the daemon's message
    ├── DaemonUnavailable   "<Action> failed": daemon unavailable at <socket> (the banner says the rest)
    └── anything else       "<Action> failed": its type and message

Trust model: the dashboard is a client like integctl; it sees what the daemon lets the caller's uid see and
never opens the daemon's files. Secrets typed into the connect modal go to the daemon and nowhere else.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from collections.abc import Callable, Coroutine, Iterable
from typing import Any

from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen
from textual.worker import Worker, WorkerState

from integd import api
from integd.client import DaemonUnavailable, RpcCallError, default_socket_path
from integtui.actions import Actions
from integtui.link import Link, SessionFactory, open_session
from integtui.screens.help import HelpScreen
from integtui.screens.main import MainScreen
from integtui.state import SYNC_EVENTS, DashboardState

REFRESH_BATCH = 50


class IntegApp(App[None]):
    """The dashboard.

    Example::

        IntegApp(socket_path="/run/integd/integd.sock").run()
        # tests: IntegApp(socket_path=..., clock=lambda: 1_700_000_000.0, session_factory=fake, utc=True)
    """

    CSS_PATH = Path(__file__).with_name("app.tcss")  # absolute: a subclass elsewhere must find it too
    TITLE = "integd"
    BINDINGS = [
        Binding("question_mark", "help", "Help", key_display="?"),
        Binding("q", "quit", "Quit"),
        Binding("ctrl+r", "reconnect", "Reconnect", show=False),
    ]

    def __init__(self, socket_path: str | None = None, *, clock: Callable[[], float] = time.time,
                 session_factory: SessionFactory = open_session, retry_delays: tuple[float, float] = (0.5, 10.0),
                 flush_interval: float = 0.25, utc: bool = False) -> None:
        super().__init__()
        self.socket_path = socket_path or default_socket_path()
        self.clock = clock
        self.utc = utc
        self.state = DashboardState()
        self.link = Link(self.socket_path, session_factory, self.post_message,
                         first_delay=retry_delays[0], max_delay=retry_delays[1])
        self.actions = Actions(self)
        self.daemon_status: dict[str, Any] | None = None
        self.status_fetched_at = 0.0
        self.banner: str | None = None
        self.flush_interval = flush_interval
        self._to_refresh: set[str] = set()
        self._jobs_to_refresh: set[str] = set()  # apps whose sync jobs changed (sync.list again)
        self._refreshing = False

    # ---- life ---------------------------------------------------------------------------------------------
    def get_default_screen(self) -> Screen[Any]:
        return MainScreen()

    def on_mount(self) -> None:
        self.run_worker(self.link.run(), name="Connection", group="link", exit_on_error=False)
        self.set_interval(self.flush_interval, self.flush)
        self.set_interval(1.0, self.tick)

    async def on_unmount(self) -> None:
        await self.link.aclose()  # the socket closes cleanly before the event loop does

    def call(self, method: str, params: dict[str, Any] | None = None) -> Coroutine[Any, Any, Any]:
        """Call the daemon through the link (DaemonUnavailable while it is down)."""
        return self.link.call(method, params)

    def act(self, title: str, work: Coroutine[Any, Any, Any]) -> Worker[Any]:
        """Run an action in a worker; its failure becomes a notification titled ``"<title> failed"``."""
        return self.run_worker(work, name=title, group="actions", exit_on_error=False)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state != WorkerState.ERROR:
            return
        error = event.worker.error
        if isinstance(error, RpcCallError):
            message = error.message
        elif isinstance(error, DaemonUnavailable):
            message = f"daemon unavailable at {self.socket_path}"
        else:
            message = f"{type(error).__name__}: {error}"
        self.notify(message, title=f"{event.worker.name or 'Action'} failed", severity="error", markup=False)

    # ---- what the link says -------------------------------------------------------------------------------
    def on_link_up(self, message: Link.Up) -> None:
        self.state.load(message.apps)
        if message.jobs is not None:
            self.state.set_jobs(message.jobs)
        if message.backlog is not None:
            self.state.load_log(message.backlog)
        self.daemon_status = message.status
        self.status_fetched_at = self.clock()
        self.banner = None
        self._to_refresh.clear()  # the snapshot is fresher than any refresh we still owed
        self._jobs_to_refresh.clear()
        self.flush()

    def on_link_down(self, message: Link.Down) -> None:
        self.banner = message.banner
        self.flush()

    def on_link_event(self, message: Link.Event) -> None:
        event = message.event
        if message.replayed:
            self.state.log_event(event)
        elif self.state.apply_event(event) and event.get("app_id"):
            self._to_refresh.add(event["app_id"])
        elif event.get("type") in SYNC_EVENTS and event.get("app_id") in self.state.apps:
            self._jobs_to_refresh.add(event["app_id"])
        self._tell_screens("on_daemon_event", event)

    def on_link_checked(self, message: Link.Checked) -> None:
        # The summary is the row after the check: no apps.get needed, the next flush shows it.
        self.state.upsert(message.app)
        self._tell_screens("on_app_checked", message.app, message.result)

    def on_link_sync_progress(self, message: Link.SyncProgress) -> None:
        if self.state.apply_sync_progress(message.progress):
            self._jobs_to_refresh.add(message.progress["app_id"])  # the run ended: its next run, its state
        self._tell_screens("on_sync_progress", message.progress)

    def _tell_screens(self, hook: str, *args: Any) -> None:
        """Hand a daemon signal to every screen on the stack that wants it (a detail screen under a modal too)."""
        for screen in self.screen_stack:
            handler = getattr(screen, hook, None)
            if handler is not None:
                handler(*args)

    def refresh_app(self, app_id: str) -> None:
        """Ask for this app's row to be re-read from the daemon at the next flush."""
        self._to_refresh.add(app_id)

    # ---- the clock ------------------------------------------------------------------------------------------
    def flush(self) -> None:
        """Apply buffered changes to the screens (a few times a second, never per event)."""
        for screen in self.screen_stack:
            if hasattr(screen, "flush"):
                screen.flush()
        if (self._to_refresh or self._jobs_to_refresh) and not self._refreshing and self.link.connected:
            batch = [self._to_refresh.pop() for _ in range(min(REFRESH_BATCH, len(self._to_refresh)))]
            jobs = [self._jobs_to_refresh.pop() for _ in range(min(REFRESH_BATCH, len(self._jobs_to_refresh)))]
            self._refreshing = True
            self.run_worker(self._refresh(batch, jobs), name="Refresh", group="refresh", exit_on_error=False)

    async def _refresh(self, app_ids: list[str], job_app_ids: list[str]) -> None:
        try:
            for app_id in app_ids:
                try:
                    self.state.upsert(await self.call("apps.get", {"app_id": app_id}))
                except RpcCallError as exc:
                    if exc.code != api.NOT_FOUND:
                        raise
                    self.state.remove(app_id)  # gone, or no longer shared with us
            for app_id in job_app_ids:
                try:
                    self.state.set_jobs(await self.call("sync.list", {"app_id": app_id}), app_id)
                except RpcCallError as exc:
                    if exc.code != api.NOT_FOUND:
                        raise  # not found: the app went away meanwhile, and its row with it
        finally:
            self._refreshing = False

    def tick(self) -> None:
        for screen in self.screen_stack:
            if hasattr(screen, "tick"):
                screen.tick()

    # ---- global bindings ------------------------------------------------------------------------------------
    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def action_reconnect(self) -> None:
        self.link.retry_now()

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        yield from self.actions.commands(screen)


def main(argv: list[str] | None = None) -> int:
    """The ``integtui`` console script."""
    parser = argparse.ArgumentParser(prog="integtui", description="Live dashboard for integd.")
    parser.add_argument("--socket", metavar="PATH", help="the daemon's socket (default: $INTEGD_SOCKET, ...)")
    args = parser.parse_args(argv)
    IntegApp(socket_path=args.socket).run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
