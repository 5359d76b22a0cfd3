"""One app in full: configuration (secrets redacted), health history, rate-limit gauges, sync jobs, recent events.

Loaded with ``apps.get``, ``apps.usage``, ``sync.list`` and ``events.list`` (newest first) in one exclusive worker;
reloaded when an event for this app arrives, never on a blind timer. Live signals patch it in place: a completed
check (``app.checked``) adds its result to the health strip and re-reads only the rate-limit windows; a sync page
(``sync.progress``) moves that job's bar, and the end of a run re-reads the jobs.
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
from integtui.widgets.sync_jobs import jobs_text

if TYPE_CHECKING:
    from integtui.app import IntegApp

RECENT_EVENTS = 30
METHOD_NOT_FOUND = -32601  # JSON-RPC 2.0's own code: the daemon predates the method
HEALTH_KEEP = 50  # results kept in the strip when checks arrive live (the daemon's history is shorter)
SECRET_WORDS = ("secret", "token", "key", "password")


def config_table(app: dict[str, Any], now: float) -> Table:
    """The configuration block (``config_rows`` as a two-column table)."""
    table = Table(show_header=False, box=None, padding=(0, 1))
    table.add_column(style="dim", no_wrap=True)
    table.add_column(overflow="fold")
    for label, value in config_rows(app, now):
        table.add_row(label, value)
    return table


def config_rows(app: dict[str, Any], now: float) -> tuple[tuple[str, str], ...]:
    """Label and value of each configuration line; of the credential only its mode, its hint and attributes not
    named like secrets.

    Example:
        >>> rows = dict(config_rows({"credential": {"mode": "api_key", "hint": "…ab12", "token": "s3cret"}}, 0.0))
        >>> rows["credential"]
        'hint=…ab12 mode=api_key'
    """
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
    return tuple((label, str(value)) for label, value in rows)


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
        self.jobs: list[dict[str, Any]] | None = None  # None: the daemon has no sync methods
        self.progress: dict[str, dict[str, Any]] = {}
        self._stale = False
        self._drawn: dict[str, Any] = {}  # section -> what it shows now (see _put)

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
            yield Static(Text("Sync jobs", style="bold"), classes="heading", id="detail-sync-heading")
            yield Static("", id="detail-sync", classes="section")
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
        await self._load_usage()
        self.jobs = await self._sync_jobs()
        page = await call("events.list", {"app_id": self.app_id, "order": "desc", "limit": RECENT_EVENTS})
        self.events = page.get("events", [])
        self.show()

    async def _load_usage(self) -> None:
        try:
            self.usage = await self.integ.call("apps.usage", {"app_id": self.app_id})
        except RpcCallError as exc:
            self.usage = {"windows": [], "error": exc.message}

    async def _sync_jobs(self) -> list[dict[str, Any]] | None:
        try:
            jobs = await self.integ.call("sync.list", {"app_id": self.app_id})
        except RpcCallError as exc:
            if exc.code == METHOD_NOT_FOUND:
                return None  # a daemon without sync: no section
            raise
        running = {j["id"] for j in jobs if j.get("state") == "running"}
        self.progress = {k: v for k, v in self.progress.items() if k in running}
        return jobs

    # Live signals re-read only what they made stale; each part in its own exclusive group, so that a newer
    # signal cancels an older re-read of the same part and never one of the other part.
    @work(exclusive=True, exit_on_error=False, group="detail-usage", name="Detail")
    async def reload_usage(self) -> None:
        """Re-read the rate-limit windows (after a check)."""
        await self._load_usage()
        self.show()

    @work(exclusive=True, exit_on_error=False, group="detail-jobs", name="Detail")
    async def reload_jobs(self) -> None:
        """Re-read the sync jobs (after a run ended, or for a job not seen yet)."""
        self.jobs = await self._sync_jobs()
        self.show()

    def show(self) -> None:
        """Draw every section; a section whose content reads the same as on screen is left alone (the clock
        ticks every second, and re-laying out an unchanged screen would cost a frame each time)."""
        app, now, utc = self.detail, self.integ.clock(), self.integ.utc
        if app is None or not self.is_attached or not self.children:
            return
        title = Text(f"{app.get('name')} ", style="bold")
        title.append(fmt.status_text(app.get("status", "")))
        if app.get("status_reason"):
            title.append(f"  {app['status_reason']}", style="dim")
        self._put("#detail-title", title)
        self._put("#detail-config", config_table(app, now), key=config_rows(app, now))
        health = app.get("health") or []
        latencies = [h.get("latency", 0.0) for h in health] or [0.0]
        sparkline = self.query_one("#detail-sparkline", Sparkline)
        if sparkline.data != latencies:
            sparkline.data = latencies
        checks = f"{len(health)} check{'s' if len(health) != 1 else ''}"
        self._put("#detail-health", Text.assemble(
            health_strip(health), f"  {checks} · last {fmt.ago(app.get('last_check_at'), now)} ago, "
            f"{fmt.latency(app.get('last_latency'))} · next in {fmt.until(app.get('next_check_at'), now)}"))
        windows = (self.usage or {}).get("windows") or []
        gauges = [window_gauge(w, utc=utc) for w in windows]
        self._put("#detail-limits", Group(*gauges) if gauges else Text(
            (self.usage or {}).get("error") or "no windows in use", style="dim"), key=_text_key(*gauges))
        sync = self.query_one("#detail-sync", Static)
        sync.display = self.query_one("#detail-sync-heading", Static).display = self.jobs is not None
        if self.jobs is not None:
            self._put("#detail-sync", jobs_text(self.jobs, self.progress, now))
        lines = [event_line(e, app.get("name", ""), utc=utc) for e in self.events[:RECENT_EVENTS]]
        self._put("#detail-events", Text("\n").join(lines) if lines else Text("no events", style="dim"))

    def _put(self, selector: str, content: Any, key: Any = None) -> None:
        """Update a section unless it would read exactly as it does (``key``: what identifies the content)."""
        key = _text_key(content) if key is None else key
        if self._drawn.get(selector) != key:
            self._drawn[selector] = key
            self.query_one(selector, Static).update(content)

    # ---- called by the app ----------------------------------------------------------------------------------
    def on_daemon_event(self, event: dict[str, Any]) -> None:
        if event.get("app_id") == self.app_id:
            self.events.insert(0, event)
            self._stale = True

    def on_app_checked(self, app: dict[str, Any], result: dict[str, Any]) -> None:
        """A check of this app completed: patch the row data and the health strip, re-read the windows."""
        if app.get("id") != self.app_id or self.detail is None:
            return
        health = [*(self.detail.get("health") or []), {k: result.get(k) for k in (
            "checked_at", "ok", "outcome", "latency", "message")}]
        self.detail = {**self.detail, **app, "health": health[-HEALTH_KEEP:]}
        self.reload_usage()

    def on_sync_progress(self, progress: dict[str, Any]) -> None:
        """A sync page landed: move the bar; a finished run or an unknown job re-reads the jobs."""
        if progress.get("app_id") != self.app_id or self.jobs is None:
            return
        job_id = str(progress.get("job_id", ""))
        if progress.get("done") or all(j.get("id") != job_id for j in self.jobs):
            self.progress.pop(job_id, None)
            self.reload_jobs()
            return
        self.progress[job_id] = progress
        self.show()

    def flush(self) -> None:
        if self._stale:
            self._stale = False
            if event_gone(self.events):
                self._leave()
                return
            self.load()

    def tick(self) -> None:
        if self.detail is not None:
            self.show()  # the "ago" and "next in" move on; nothing is re-read

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


def _text_key(*texts: Any) -> tuple[Any, ...]:
    """What a Rich Text reads as, styles included (equal keys: nothing to redraw)."""
    return tuple((t.plain, tuple(t.spans), str(t.style)) if isinstance(t, Text) else repr(t) for t in texts)


def event_gone(events: list[dict[str, Any]]) -> bool:
    """Whether the newest event says the app was disconnected."""
    return bool(events) and events[0].get("type") == "app.disconnected"
