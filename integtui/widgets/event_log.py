"""The live event log: newest first, filtered by a group of event types and optionally by one app.

It renders at most ``LINES`` lines from the view-model's log on each flush, so its cost does not grow with the
number of events the daemon has sent.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rich.text import Text
from textual.containers import VerticalScroll
from textual.widgets import Static

from integtui import format as fmt
from integtui.state import DashboardState

LINES = 100
# name shown -> event types (None: every type)
TYPE_FILTERS: tuple[tuple[str, frozenset[str] | None], ...] = (
    ("all", None),
    ("status", frozenset({"app.status_changed"})),
    ("failures", frozenset({"integration.failed", "rate_limit.exceeded"})),
    ("lifecycle", frozenset({"app.connected", "app.disconnected", "app.configured", "app.shared", "oauth.flow"})),
    ("sync", frozenset({"data.synced"})),
)


def event_line(event: dict[str, Any], app_name: str, *, utc: bool = False) -> Text:
    """One log line: time, app, type, what happened.

    Example:
        >>> event_line({"occurred_at": 0, "type": "app.connected", "payload": {"service": "github"}},
        ...            "gh", utc=True).plain
        '00:00:00 gh             connected           github via api_key'
    """
    kind = str(event.get("type", ""))
    short = kind.split(".", 1)[-1] if kind.startswith("app.") else kind
    line = Text(f"{fmt.clock_time(event.get('occurred_at'), utc=utc)} ", style="dim")
    line.append(f"{fmt.clip(app_name, 14):<14} ")
    line.append(f"{fmt.clip(short, 19):<19} ", style=fmt.EVENT_STYLE.get(kind, ""))
    line.append(fmt.event_summary(event))
    return line


class EventLog(VerticalScroll):
    """The event log panel.

    Example::

        log = EventLog(state); log.cycle_types(); log.set_app("int_...")
    """

    def __init__(self, state: DashboardState, *, utc: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.state = state
        self.utc = utc
        self.type_index = 0
        self.app_id: str | None = None
        self.name_of: Callable[[str], str] = state.app_name
        self._body = Static("", id="event-log-body")

    def compose(self):  # type: ignore[no-untyped-def]
        yield self._body

    def on_mount(self) -> None:
        self._retitle()

    @property
    def types_label(self) -> str:
        return TYPE_FILTERS[self.type_index][0]

    def cycle_types(self) -> None:
        """Show the next group of event types."""
        self.type_index = (self.type_index + 1) % len(TYPE_FILTERS)
        self._retitle()
        self.render_log()

    def set_app(self, app_id: str | None) -> None:
        """Show only this app's events (None: every app's)."""
        self.app_id = app_id
        self._retitle()
        self.render_log()

    def _retitle(self) -> None:
        who = f" · app {self.name_of(self.app_id)}" if self.app_id else ""
        self.border_title = f"Events · {self.types_label}{who}"

    def flush(self) -> None:
        if self.state.log_dirty:
            self.render_log()

    def render_log(self) -> None:
        self.state.log_dirty = False
        events = self.state.log_lines(TYPE_FILTERS[self.type_index][1], self.app_id, LINES)
        if not events:
            self._body.update(Text("no events yet", style="dim"))
            return
        body = Text("\n").join(event_line(e, self.name_of(e.get("app_id", "")), utc=self.utc) for e in events)
        body.no_wrap, body.overflow = True, "ellipsis"
        self._body.update(body)
