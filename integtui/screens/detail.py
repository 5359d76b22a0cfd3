"""One app in full: configuration (secrets redacted), health history, rate-limit gauges, recent events.

Loaded with ``apps.get``, ``apps.usage`` and ``events.list`` in one exclusive worker; reloaded when an event for
this app arrives or its next check falls due, never on a blind timer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Sparkline, Static

from integd.client import RpcCallError
from integtui import format as fmt
from integtui.widgets.event_log import event_line

if TYPE_CHECKING:
    from integtui.app import IntegApp

EVENT_PAGES = 5
SECRET_WORDS = ("secret", "token", "key", "password")


def config_table(app: dict[str, Any], now: float) -> Table:
    """The configuration block; of the credential only its mode, its hint and attributes not named like secrets."""
    table = Table(show_header=False, box=None, padding=(0, 1))
    table.add_column(style="dim", no_wrap=True)
    table.add_column(overflow="fold")
    limits = app.get("rate_limit") or {}
    cred = app.get("credential") or {}
    cred_text = " ".join(f"{k}={v}" for k, v in sorted(cred.items())
                         if k in ("mode", "hint") or not any(w in k.lower() for w in SECRET_WORDS))
    rows = (
        ("id", app.get("id", "")),
        ("service", f"{app.get('service', '')} ({app.get('category', '')})"),
        ("owner", app.get("owner", "")),
        ("shared with", ", ".join(app.get("shared_with", [])) or "nobody"),
        ("base URL", app.get("base_url", "-")),
        ("credential", cred_text or "-"),
        ("timeout", f"{app.get('timeout', '-')} s"),
        ("check every", fmt.duration(app.get("check_interval"))),
        ("rate limit", ", ".join(f"{k} {v}" for k, v in limits.items() if v) or "-"),
        ("connected", f"{fmt.ago(app.get('connected_at'), now)} ago"),
        ("last error", app.get("last_error") or "-"),
    )
    for label, value in rows:
        table.add_row(label, str(value))
    return table


def health_strip(health: list[dict[str, Any]]) -> Text:
    """One cell per check, oldest first: ● ok, ✖ failed, with the outcome's colour.

    Example:
        >>> health_strip([{"ok": True}, {"ok": False, "outcome": "auth_failed"}]).plain
        '●✖'
    """
    strip = Text()
    for h in health:
        strip.append("●" if h.get("ok") else "✖", style="green" if h.get("ok") else "red")
    return strip


def window_gauge(window: dict[str, Any], width: int = 20, *, utc: bool = False) -> Text:
    """``minute ████░░░░  12/60  resets 14:05:00``.

    Example:
        >>> window_gauge({"name": "minute", "limit": 60, "used": 30, "resets_at": 0}, 4, utc=True).plain
        'minute ██░░ 30/60 (50%)  resets 00:00:00'
    """
    fraction = fmt.window_fraction(window) or 0.0
    style = "red" if fraction >= 0.9 else "yellow" if fraction >= 0.7 else "green"
    gauge = Text(f"{str(window.get('name', '?')):<6} ")
    gauge.append(fmt.bar(fraction, width), style=style)
    gauge.append(f" {window.get('used', 0)}/{window.get('limit', '?')} ({round(fraction * 100)}%)"
                 f"  resets {fmt.clock_time(window.get('resets_at'), utc=utc)}")
    return gauge


class DetailScreen(Screen[None]):
    """The detail of one app; escape goes back.

    Example::

        app.push_screen(DetailScreen("int_0123..."))
    """

    BINDINGS = [
        Binding("escape", "back", "Back"),
        Binding("r", "check", "Check"),
        Binding("d", "disconnect", "Disconnect"),
        Binding("s", "share", "Share"),
        Binding("u", "unshare", "Unshare", show=False),
        Binding("e", "configure", "Limits"),
    ]

    def __init__(self, app_id: str) -> None:
        super().__init__()
        self.app_id = app_id
        self.detail: dict[str, Any] | None = None
        self.usage: dict[str, Any] | None = None
        self.events: list[dict[str, Any]] = []
        self._stale = False
        self._loaded_due: float | None = None

    @property
    def integ(self) -> IntegApp:
        return cast("IntegApp", self.app)

    @property
    def current_app_id(self) -> str:
        return self.app_id

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="detail"):
            yield Static(Text(f"loading {self.app_id}…"), id="detail-title")
            yield Static("", id="detail-config", classes="section")
            yield Static(Text("Latency", style="bold"), classes="heading")
            yield Sparkline([], id="detail-sparkline")
            yield Static("", id="detail-health", classes="section")
            yield Static(Text("Rate limits", style="bold"), classes="heading")
            yield Static("", id="detail-limits", classes="section")
            yield Static(Text("Recent events", style="bold"), classes="heading")
            yield Static("", id="detail-events", classes="section")
        yield Footer()

    def on_mount(self) -> None:
        self.load()

    @work(exclusive=True, exit_on_error=False, group="detail", name="Detail")
    async def load(self) -> None:
        call = self.integ.call
        try:
            self.detail = await call("apps.get", {"app_id": self.app_id})
        except RpcCallError:
            self._leave()
            raise
        self.integ.state.upsert(self.detail)
        self._loaded_due = self.detail.get("next_check_at")
        try:
            self.usage = await call("apps.usage", {"app_id": self.app_id})
        except RpcCallError as exc:
            self.usage = {"windows": [], "error": exc.message}
        self.events = await self._recent_events()
        self.show()

    async def _recent_events(self) -> list[dict[str, Any]]:
        after, found = 0, []
        for _ in range(EVENT_PAGES):
            page = await self.integ.call("events.list", {"app_id": self.app_id, "after": after, "limit": 1000})
            found = (found + page.get("events", []))[-30:]
            if len(page.get("events", [])) < 1000:
                break
            after = page.get("last_seq", after)
        return list(reversed(found))

    def show(self) -> None:
        app, now, utc = self.detail, self.integ.clock(), self.integ.utc
        if app is None or not self.is_attached or not self.children:
            return
        title = Text(f"{app.get('name')} ", style="bold")
        title.append(fmt.status_text(app.get("status", "")))
        if app.get("status_reason"):
            title.append(f"  {app['status_reason']}", style="dim")
        self.query_one("#detail-title", Static).update(title)
        self.query_one("#detail-config", Static).update(config_table(app, now))
        health = app.get("health") or []
        self.query_one("#detail-sparkline", Sparkline).data = [h.get("latency", 0.0) for h in health] or [0.0]
        summary = Text.assemble(
            health_strip(health), f"  {len(health)} checks · last {fmt.ago(app.get('last_check_at'), now)} ago, "
            f"{fmt.latency(app.get('last_latency'))} · next in {fmt.until(app.get('next_check_at'), now)}")
        self.query_one("#detail-health", Static).update(summary)
        windows = (self.usage or {}).get("windows") or []
        limits: Any = Group(*(window_gauge(w, utc=utc) for w in windows)) if windows else Text(
            (self.usage or {}).get("error") or "no windows in use", style="dim")
        self.query_one("#detail-limits", Static).update(limits)
        lines = [event_line(e, app.get("name", ""), utc=utc) for e in self.events[:30]]
        self.query_one("#detail-events", Static).update(
            Text("\n").join(lines) if lines else Text("no events", style="dim"))

    # ---- called by the app ----------------------------------------------------------------------------------
    def on_daemon_event(self, event: dict[str, Any]) -> None:
        if event.get("app_id") == self.app_id:
            self.events.insert(0, event)
            self._stale = True

    def flush(self) -> None:
        if self._stale:
            self._stale = False
            if event_gone(self.events):
                self._leave()
                return
            self.load()

    def tick(self) -> None:
        due = self._loaded_due
        if due is not None and due + 1 < self.integ.clock():
            self._loaded_due = None  # once per due check
            self.load()
        elif self.detail is not None:
            self.show()

    # ---- actions ----------------------------------------------------------------------------------------------
    def action_back(self) -> None:
        self.app.pop_screen()

    def _leave(self) -> None:
        """Go back to the main screen if this screen is still on the stack (the app is gone)."""
        if self in self.app.screen_stack:
            while self.app.screen is not self:
                self.app.pop_screen()
            self.app.pop_screen()

    def action_check(self) -> None:
        self.integ.actions.check(self.app_id)

    def action_disconnect(self) -> None:
        self.integ.actions.disconnect(self.app_id)

    def action_share(self) -> None:
        self.integ.actions.share(self.app_id)

    def action_unshare(self) -> None:
        self.integ.actions.share(self.app_id, unshare=True)

    def action_configure(self) -> None:
        self.integ.actions.configure(self.app_id)


def event_gone(events: list[dict[str, Any]]) -> bool:
    """Whether the newest event says the app was disconnected."""
    return bool(events) and events[0].get("type") == "app.disconnected"
