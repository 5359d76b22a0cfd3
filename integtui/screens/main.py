"""The main screen: status line, the banner when the daemon is away, the apps table, the event log, the keys."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, cast

from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding
from textual.events import Resize
from textual.screen import Screen
from textual.widgets import Footer, Input, Static

from integtui.state import COLUMNS
from integtui.widgets.apps_table import AppsTable
from integtui.widgets.event_log import EventLog
from integtui.widgets.status_line import StatusLine, status_line

if TYPE_CHECKING:
    from integtui.app import IntegApp

WIDE_AT = 120  # columns from which category, owner and sync fit (with the scrollbar)


class MainScreen(Screen[None]):
    """Apps at a glance, acting on the one under the cursor.

    Example::

        app.push_screen(MainScreen())   # IntegApp makes it the default screen
    """

    BINDINGS = [
        Binding("c", "connect", "Connect"),
        Binding("enter", "detail", "Detail", show=False),
        Binding("r", "check", "Check"),
        Binding("d", "disconnect", "Disconnect"),
        Binding("s", "share", "Share", show=False),
        Binding("u", "unshare", "Unshare", show=False),
        Binding("e", "configure", "Limits"),
        Binding("slash", "filter", "Find", key_display="/"),
        Binding("o", "sort_next", "Sort"),
        Binding("O", "sort_reverse", "Reverse", show=False),
        Binding("t", "log_types", "Log types", show=False),
        Binding("a", "log_app", "Log app", show=False),
        Binding("escape", "clear_filter", "Clear", show=False),
    ]

    @property
    def integ(self) -> IntegApp:
        return cast("IntegApp", self.app)

    def compose(self) -> ComposeResult:
        state = self.integ.state
        self._table = AppsTable(state, self.integ.clock, id="apps")
        self._log = EventLog(state, utc=self.integ.utc, id="event-log")
        self._status = StatusLine(id="status-line")
        self._banner = Static("", id="banner")
        self._filter = Input(placeholder="find: any visible text (enter to keep, escape to clear)", id="filter")
        yield self._status
        yield self._banner
        yield self._filter
        yield self._table
        yield self._log
        yield Footer()

    def on_mount(self) -> None:
        self._filter.display = False
        self._banner.display = False
        self.table.set_width_mode(self.size.width >= WIDE_AT)
        self.table.focus()
        self.flush()

    def on_resize(self, event: Resize) -> None:
        if self.live:
            self.table.set_width_mode(event.size.width >= WIDE_AT)

    @property
    def table(self) -> AppsTable:
        return self._table

    @property
    def live(self) -> bool:
        """Whether the widgets are there to update (not before compose, not while the app shuts down)."""
        table = getattr(self, "_table", None)
        return table is not None and table.is_attached

    @property
    def current_app_id(self) -> str | None:
        return self.table.selected_app_id

    # ---- called by the app ----------------------------------------------------------------------------------
    def flush(self) -> None:
        if not self.live:
            return
        app = self.integ
        self.table.flush()
        self._log.flush()
        banner = self._banner
        if banner.display != (app.banner is not None):
            banner.display = app.banner is not None
        if app.banner is not None and str(banner.content) != app.banner:
            banner.update(app.banner)
        self._show_status()

    def tick(self) -> None:
        if not self.live:
            return
        self.table.tick_clock()
        self._show_status()

    def _show_status(self) -> None:
        app = self.integ
        state = app.state
        column = next(c for c in COLUMNS if c.key == state.sort_column)
        sort = f"{column.label.lower()} {'↓' if state.sort_reverse else '↑'}"
        self._status.show(status_line(
            app.daemon_status, app.status_fetched_at, app.clock(), state.counts(),
            connected=app.banner is None and app.daemon_status is not None, filter_text=state.filter_text,
            sort=sort, width=self.size.width - 2))

    # ---- find and sort --------------------------------------------------------------------------------------
    def action_filter(self) -> None:
        box = self._filter
        box.display = True
        box.value = self.integ.state.filter_text
        box.focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "filter":
            self.integ.state.set_filter(event.value.strip())

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "filter":
            event.input.display = False
            self.table.focus()

    def action_clear_filter(self) -> None:
        box = self._filter
        box.value = ""
        box.display = False
        self.integ.state.set_filter("")
        self.table.focus()

    def sort_by(self, column_key: str) -> None:
        self.integ.state.set_sort(column_key)
        self.flush()

    def action_sort_next(self) -> None:
        keys = [c.key for c in self.table.shown]
        current = self.integ.state.sort_column
        nxt = keys[(keys.index(current) + 1) % len(keys)] if current in keys else keys[0]
        self.sort_by(nxt)

    def action_sort_reverse(self) -> None:
        self.sort_by(self.integ.state.sort_column)

    def on_apps_table_header_selected(self, event: AppsTable.HeaderSelected) -> None:
        self.sort_by(event.column_key)

    def on_apps_table_row_selected(self, event: AppsTable.RowSelected) -> None:
        self.integ.actions.open_detail(event.app_id)

    # ---- the log ----------------------------------------------------------------------------------------------
    def action_log_types(self) -> None:
        self._log.cycle_types()

    def action_log_app(self) -> None:
        log = self._log
        log.set_app(None if log.app_id else self.current_app_id)

    # ---- actions ------------------------------------------------------------------------------------------------
    def action_connect(self) -> None:
        self.integ.actions.connect()

    def action_detail(self) -> None:
        self.integ.actions.open_detail()

    def action_check(self) -> None:
        self.integ.actions.check()

    def action_disconnect(self) -> None:
        self.integ.actions.disconnect()

    def action_share(self) -> None:
        self.integ.actions.share()

    def action_unshare(self) -> None:
        self.integ.actions.share(unshare=True)

    def action_configure(self) -> None:
        self.integ.actions.configure()

    def palette_commands(self) -> Iterable[SystemCommand]:
        yield SystemCommand("Find", "Filter the apps by any visible text", self.action_filter)
        for column in COLUMNS:
            yield SystemCommand(f"Sort by {column.label.lower()}", f"Sort the apps by {column.key} (again: reverse)",
                                lambda key=column.key: self.sort_by(key))
        yield SystemCommand("Event log: next type filter", "all, status, failures, lifecycle, sync",
                            self.action_log_types)
        yield SystemCommand("Event log: selected app only", "Toggle", self.action_log_app)
