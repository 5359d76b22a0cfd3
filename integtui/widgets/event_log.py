"""The live event log: newest first, filtered by a group of event types and optionally by one app.

A Line-API widget: a flush only re-reads which events to show (at most ``LINES`` from the view-model's log);
a frame draws just the lines in view, each kept as a rendered line per event, so 200 events a second cost a
few new lines per frame rather than re-laying out a hundred-line block (bench/bench_tui.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rich.text import Text
from textual.geometry import Size
from textual.scroll_view import ScrollView
from textual.strip import Strip

from integtui import format as fmt
from integtui.state import DashboardState

LINES = 100
# name shown -> event types (None: every type)
TYPE_FILTERS: tuple[tuple[str, frozenset[str] | None], ...] = (
    ("all", None),
    ("status", frozenset({"app.status_changed"})),
    ("failures", frozenset({"integration.failed", "rate_limit.exceeded"})),
    ("lifecycle", frozenset({"app.connected", "app.disconnected", "app.configured", "app.shared", "oauth.flow"})),
    ("sync", frozenset({"data.synced", "sync.job_changed"})),
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


class EventLog(ScrollView):
    """The event log panel.

    Example::

        log = EventLog(state); log.cycle_types(); log.set_app("int_...")
        log.flush()          # after the view-model changed
        log.plain_lines()    # what it shows, as text
    """

    def __init__(self, state: DashboardState, *, utc: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.state = state
        self.utc = utc
        self.type_index = 0
        self.app_id: str | None = None
        self.name_of: Callable[[str], str] = state.app_name
        self.events: list[dict[str, Any]] = []
        self._lines: dict[tuple[Any, str, int], Strip] = {}  # (seq or id, app name, width) -> rendered line

    def on_mount(self) -> None:
        self._retitle()
        self.render_log()

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
        """Re-read the events to show; only the lines in view get drawn."""
        self.state.log_dirty = False
        self.events = self.state.log_lines(TYPE_FILTERS[self.type_index][1], self.app_id, LINES)
        keep = {_key(e) for e in self.events}
        if len(self._lines) > 4 * LINES:
            self._lines = {k: v for k, v in self._lines.items() if k[0] in keep}
        self.virtual_size = Size(self.scrollable_content_region.width, max(1, len(self.events)))
        self.refresh()

    def plain_lines(self) -> list[str]:
        """Every line the log holds now (scrolled into view or not), as plain text."""
        if not self.events:
            return ["no events yet"]
        return [self._text(e).plain for e in self.events]

    def _text(self, event: dict[str, Any]) -> Text:
        return event_line(event, self.name_of(event.get("app_id", "")), utc=self.utc)

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._lines.clear()

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        base = self.rich_style
        index = int(self.scroll_y) + y
        if not self.events:
            if y:
                return Strip.blank(width, base)
            return Strip(Text("no events yet", style="dim").render(self.app.console)).crop_extend(
                0, width, None).apply_style(base)
        if index >= len(self.events):
            return Strip.blank(width, base)
        event = self.events[index]
        name = self.name_of(event.get("app_id", ""))
        key = (_key(event), name, width)
        line = self._lines.get(key)
        if line is None:
            text = event_line(event, name, utc=self.utc)
            text.truncate(width, overflow="ellipsis")
            segments = [s for s in text.render(self.app.console, end="") if s.text != "\n"]
            line = self._lines[key] = Strip(segments).crop_extend(0, width, None).apply_style(base)
        return line


def _key(event: dict[str, Any]) -> Any:
    """What identifies an event for the line cache (its sequence number; an id for a sequence-less one)."""
    return event.get("seq") or event.get("event_id") or id(event)
