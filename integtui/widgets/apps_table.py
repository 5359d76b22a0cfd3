"""The apps table: a Line-API widget that draws only the rows on screen, each from a cached line.

Why not ``DataTable``: at 10,000 rows any cell update made its next frame re-draw every visible row (its render
caches share one counter) and a rebuild re-added every row; with 200 status events a second that cost ~0.5 s
of event-loop lag at p99 (bench/bench_tui.py). Here the sorted, filtered order of the apps comes from the
view-model (``DashboardState.visible_ids``) and stays a plain list of ids; the widget renders a row only when
it is on screen and keeps the rendered line until that app changes, the columns change or the clock columns
tick. A flush therefore costs O(apps that changed), and a frame O(lines on screen)::

    line on screen   0          the header (stays put; a click sorts by that column)
                     1 .. h-1   row ``scroll_y + line - 1`` of ``ids``; the cursor row gets the cursor style

Messages: ``AppsTable.RowSelected(app_id)`` on enter or a click on the cursor row, ``AppsTable.HeaderSelected
(column_key)`` on a click in the header. Nothing here does I/O; it reads ``DashboardState`` and its clock.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, ClassVar

from rich.segment import Segment
from rich.text import Text
from textual import events
from textual.binding import Binding, BindingType
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

from integtui.state import CLOCK_COLUMNS, Column, DashboardState, cell, columns_for

FlushListener = Callable[[set[str], float], None]
PAD = 1  # blank cells either side of each column, as DataTable draws them
LINE_CACHE = 2000  # rendered rows kept (a few screens' worth many times over; 10k would be ~10 MB)


class AppsTable(ScrollView, can_focus=True):
    """The main screen's table of apps, fed by a ``DashboardState``.

    Example::

        table = AppsTable(state, clock=time.time)
        table.set_width_mode(wide=False)
        state.upsert(app); table.flush()     # re-renders that one row, if it is on screen
        table.selected_app_id                # the app under the cursor
    """

    COMPONENT_CLASSES: ClassVar[set[str]] = {"apps-table--header", "apps-table--cursor"}
    DEFAULT_CSS = """
    AppsTable {
        background: $surface;
        color: $foreground;
    }
    AppsTable > .apps-table--header {
        text-style: bold;
        background: $panel;
        color: $foreground;
    }
    AppsTable > .apps-table--cursor {
        background: $block-cursor-blurred-background;
        color: $block-cursor-blurred-foreground;
        text-style: $block-cursor-blurred-text-style;
    }
    AppsTable:focus {
        background-tint: $foreground 5%;
    }
    AppsTable:focus > .apps-table--header {
        background-tint: $foreground 5%;
    }
    AppsTable:focus > .apps-table--cursor {
        background: $block-cursor-background;
        color: $block-cursor-foreground;
        text-style: $block-cursor-text-style;
    }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up", "cursor_up", "Up", show=False),
        Binding("down", "cursor_down", "Down", show=False),
        Binding("pageup", "page_up", "Page up", show=False),
        Binding("pagedown", "page_down", "Page down", show=False),
        Binding("home", "first", "First", show=False),
        Binding("end", "last", "Last", show=False),
        Binding("enter", "select", "Detail", show=False),
    ]

    class RowSelected(Message):
        """Enter (or a click) on the row of ``app_id``."""

        def __init__(self, app_id: str) -> None:
            super().__init__()
            self.app_id = app_id

    class HeaderSelected(Message):
        """A click on the header of ``column_key``."""

        def __init__(self, column_key: str) -> None:
            super().__init__()
            self.column_key = column_key

    def __init__(self, state: DashboardState, clock: Callable[[], float], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.state = state
        self.clock = clock
        self.wide: bool | None = None
        self.shown: tuple[Column, ...] = ()
        self.ids: list[str] = []
        self.cursor_row = 0
        self._index: dict[str, int] = {}
        self._lines: dict[str, Strip] = {}  # rendered rows, full width, without the cursor's style
        self._clocks: dict[str, tuple[str, ...]] = {}  # the clock cells as each cached row shows them
        self._header: Strip | None = None
        self._total_width = 0
        # Called after each flush with the apps whose rows changed and the time (for the benchmark).
        self.flush_listeners: list[FlushListener] = []

    # ---- what is shown ----------------------------------------------------------------------------------------
    @property
    def row_count(self) -> int:
        return len(self.ids)

    @property
    def selected_app_id(self) -> str | None:
        """The id of the app under the cursor, if any."""
        return self.ids[self.cursor_row] if 0 <= self.cursor_row < len(self.ids) else None

    def row_plain(self, app_id: str) -> list[str]:
        """The row's cells as plain text (what a test or a screen reader would read); blank once the app is gone."""
        app, now = self.state.apps.get(app_id, {}), self.clock()
        return [str(getattr(v, "plain", v)) for v in (cell(c, app, now) for c in self.shown)]

    def rows_on_screen(self) -> list[str]:
        """The ids of the rows currently scrolled into view."""
        first = int(self.scroll_y)
        return self.ids[first:first + self._page()]

    def _page(self) -> int:
        return max(1, self.scrollable_content_region.height - 1)

    # ---- feeding it ---------------------------------------------------------------------------------------------
    def set_width_mode(self, wide: bool) -> None:
        """Choose the column set for the terminal's width (re-renders when it changes)."""
        if wide == self.wide:
            return
        self.wide = wide
        self.shown = columns_for(wide)
        self._total_width = sum(c.width + 2 * PAD for c in self.shown)
        self._forget_lines()
        self.state.structure_dirty = True
        self.flush()

    def flush(self) -> None:
        """Apply what changed in the view-model since the last flush."""
        if not self.shown:
            return
        changed = self.state.take_dirty()
        if self.state.structure_dirty:
            for app_id in changed:
                self._lines.pop(app_id, None)
            self.rebuild(self.clock())
            changed = set(self.state.apps)  # every row now reflects the view-model
        else:
            self._repaint(changed)
        if changed:
            at = time.perf_counter()
            for listener in self.flush_listeners:
                listener(changed, at)

    def rebuild(self, now: float) -> None:
        """Re-read the order (filter, sort, apps added or removed), keeping the cursor on its app."""
        keep = self.selected_app_id
        self.state.structure_dirty = False
        self.ids = self.state.visible_ids(now)
        self._index = {app_id: i for i, app_id in enumerate(self.ids)}
        self._lines = {k: v for k, v in self._lines.items() if k in self._index}
        self._clocks = {k: v for k, v in self._clocks.items() if k in self._lines}
        self._header = None
        found = self._index.get(keep) if keep is not None else None
        self.cursor_row = found if found is not None else max(0, min(self.cursor_row, len(self.ids) - 1))
        self.virtual_size = Size(self._total_width, len(self.ids) + 1)
        self._scroll_cursor_into_view()
        self.refresh()

    def _repaint(self, app_ids: set[str]) -> None:
        first, last = int(self.scroll_y), int(self.scroll_y) + self._page()
        for app_id in app_ids:
            self._lines.pop(app_id, None)
            row = self._index.get(app_id)
            if row is not None and first <= row < last:
                self.refresh_line(row + 1)

    def tick_clock(self) -> None:
        """Re-render the rows on screen whose clock cells ("ago", "in") now read differently."""
        now = self.clock()
        first = int(self.scroll_y)
        for row, app_id in enumerate(self.rows_on_screen(), start=first):
            drawn = self._clocks.get(app_id)
            if drawn is not None and drawn != self._clock_cells(app_id, now):
                self._lines.pop(app_id, None)
                self.refresh_line(row + 1)

    def _clock_cells(self, app_id: str, now: float) -> tuple[str, ...]:
        app = self.state.apps.get(app_id, {})
        return tuple(c.plain(app, now) for c in self.shown if c.key in CLOCK_COLUMNS)

    def relabel(self) -> None:
        """Show the sort arrow on the sorted column."""
        self._header = None
        self.refresh()

    def _forget_lines(self) -> None:
        self._lines.clear()
        self._clocks.clear()
        self._header = None

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._forget_lines()  # a theme change: the cached lines carry the old colours

    # ---- drawing ------------------------------------------------------------------------------------------------
    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        scroll_x = int(self.scroll_x)
        base = self.rich_style
        if y == 0:  # the header's colour runs to the right edge, as DataTable's does
            header = self.get_component_rich_style("apps-table--header")
            return self._header_line().crop_extend(scroll_x, scroll_x + width, base + header)
        row = int(self.scroll_y) + y - 1
        if row >= len(self.ids):
            return Strip.blank(width, base)
        line = self._row_line(self.ids[row])
        if row == self.cursor_row:  # the cursor's colour runs to the right edge too
            cursor = self.get_component_rich_style("apps-table--cursor")
            return Strip(Segment.apply_style(line, post_style=cursor), line.cell_length).crop_extend(
                scroll_x, scroll_x + width, base + cursor)
        return line.crop_extend(scroll_x, scroll_x + width, None).apply_style(base)

    def _header_line(self) -> Strip:
        if self._header is None:
            text = Text()
            for column in self.shown:
                arrow = ("↓" if self.state.sort_reverse else "↑") if column.key == self.state.sort_column else ""
                text.append_text(_padded(Text(column.label + arrow), column.width))
            style = self.get_component_rich_style("apps-table--header")
            self._header = _strip(text, self._total_width, self.app.console).apply_style(style)
        return self._header

    def _row_line(self, app_id: str) -> Strip:
        line = self._lines.get(app_id)
        if line is None:
            if len(self._lines) >= LINE_CACHE:  # scrolled through thousands of rows: keep what is in view
                keep = set(self.rows_on_screen())
                self._lines = {k: v for k, v in self._lines.items() if k in keep}
                self._clocks = {k: v for k, v in self._clocks.items() if k in keep}
            app, now = self.state.apps.get(app_id, {}), self.clock()
            self._clocks[app_id] = self._clock_cells(app_id, now)
            text = Text()
            for column in self.shown:
                value = cell(column, app, now)
                text.append_text(_padded(value if isinstance(value, Text) else Text(value), column.width))
            line = self._lines[app_id] = _strip(text, self._total_width, self.app.console)
        return line

    # ---- moving -------------------------------------------------------------------------------------------------
    def move_cursor(self, row: int) -> None:
        """Put the cursor on ``row`` (clamped) and scroll it into view."""
        row = max(0, min(row, len(self.ids) - 1))
        if row == self.cursor_row:
            return
        self.cursor_row = row
        self._scroll_cursor_into_view()
        self.refresh()

    def _scroll_cursor_into_view(self) -> None:
        page, top = self._page(), int(self.scroll_y)
        if self.cursor_row < top:
            self.scroll_to(y=self.cursor_row, animate=False, immediate=True)
        elif self.cursor_row >= top + page:
            self.scroll_to(y=self.cursor_row - page + 1, animate=False, immediate=True)

    def action_cursor_up(self) -> None:
        self.move_cursor(self.cursor_row - 1)

    def action_cursor_down(self) -> None:
        self.move_cursor(self.cursor_row + 1)

    def action_page_up(self) -> None:
        self.move_cursor(self.cursor_row - self._page())

    def action_page_down(self) -> None:
        self.move_cursor(self.cursor_row + self._page())

    def action_first(self) -> None:
        self.move_cursor(0)

    def action_last(self) -> None:
        self.move_cursor(len(self.ids) - 1)

    def action_select(self) -> None:
        if (app_id := self.selected_app_id) is not None:
            self.post_message(self.RowSelected(app_id))

    def on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None:
            return
        if offset.y == 0:
            x = offset.x + int(self.scroll_x)
            for column in self.shown:
                x -= column.width + 2 * PAD
                if x < 0:
                    self.post_message(self.HeaderSelected(column.key))
                    return
            return
        row = int(self.scroll_y) + offset.y - 1
        if row < len(self.ids):
            if row == self.cursor_row:
                self.action_select()
            else:
                self.move_cursor(row)


def _padded(text: Text, width: int) -> Text:
    """The cell: cut to ``width`` (with an ellipsis), padded, one blank either side."""
    text = text.copy()
    text.truncate(width, overflow="ellipsis", pad=True)
    text.no_wrap = True
    return Text(" " * PAD).append_text(text).append(" " * PAD)


def _strip(text: Text, width: int, console: Any) -> Strip:
    segments = [s for s in text.render(console, end="") if s.text != "\n"]
    return Strip(segments).adjust_cell_length(width)
