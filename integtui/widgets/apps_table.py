"""The apps table: keyed rows updated in place, rebuilt only when the row set or its order changes.

At 10,000 rows a rebuild costs about half a second and an ``update_cell`` almost nothing (libraries.md §6), so
the table never rebuilds per event: the app buffers changes in the view-model and calls ``flush`` a few times a
second. Columns have fixed widths (``update_width`` would re-measure a whole column per call). The clock columns
(time since the last check, next check) are refreshed once a second for the rows on screen only.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from rich.text import Text
from textual.widgets import DataTable
from textual.widgets.data_table import RowDoesNotExist

from integtui.state import CLOCK_COLUMNS, Column, DashboardState, cell, columns_for, row_cells

FlushListener = Callable[[set[str], float], None]


class AppsTable(DataTable):
    """The main screen's table of apps, fed by a ``DashboardState``.

    Example::

        table = AppsTable(state, clock=time.time)
        state.upsert(app); table.flush()
    """

    def __init__(self, state: DashboardState, clock: Callable[[], float], **kwargs: Any) -> None:
        super().__init__(cursor_type="row", zebra_stripes=False, **kwargs)
        self.state = state
        self.clock = clock
        self.wide: bool | None = None
        self.shown: tuple[Column, ...] = ()
        # Called after each flush with the apps whose cells changed and the time (for the benchmark).
        self.flush_listeners: list[FlushListener] = []

    @property
    def selected_app_id(self) -> str | None:
        """The id of the app under the cursor, if any."""
        if not self.row_count:
            return None
        try:
            return self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value
        except (RowDoesNotExist, KeyError, IndexError):
            return None

    def set_width_mode(self, wide: bool) -> None:
        """Choose the column set for the terminal's width (rebuilds when it changes)."""
        if wide == self.wide:
            return
        self.wide = wide
        self.shown = columns_for(wide)
        self.clear(columns=True)
        for column in self.shown:
            self.add_column(self._header(column), key=column.key, width=column.width)
        self.state.structure_dirty = True
        self.flush()

    def _arrow(self, key: str) -> str:
        if key != self.state.sort_column:
            return ""
        return "↓" if self.state.sort_reverse else "↑"

    def relabel(self) -> None:
        """Show the sort arrow on the sorted column."""
        for column in self.shown:
            col = self.columns.get(column.key)  # type: ignore[call-overload]
            if col is not None:
                col.label = self._header(column)
        self.refresh()

    def _header(self, column: Column) -> Text:
        return Text(column.label + self._arrow(column.key))

    def flush(self) -> None:
        """Apply what changed in the view-model since the last flush."""
        if not self.shown:
            return
        now = self.clock()
        if self.state.structure_dirty:
            changed = set(self.state.apps)
            self.state.take_dirty()
            self.rebuild(now)
        else:
            changed = self.state.take_dirty()
            for app_id in changed:
                self._update_row(app_id, now)
        if changed:
            for listener in self.flush_listeners:
                listener(changed, time.perf_counter())

    def rebuild(self, now: float) -> None:
        """Replace every row (filter, sort, apps added or removed), keeping the cursor on its app."""
        keep = self.selected_app_id
        self.state.structure_dirty = False
        self.clear(columns=False)
        ids = self.state.visible_ids(now)
        apps = self.state.apps
        for app_id in ids:
            self.add_row(*row_cells(apps[app_id], now, self.shown), key=app_id)
        self.relabel()
        if keep is not None and keep in apps and keep in ids:
            self.move_cursor(row=self.get_row_index(keep), animate=False)

    def _update_row(self, app_id: str, now: float) -> None:
        if app_id not in self.rows:  # type: ignore[operator]
            return
        app = self.state.apps[app_id]
        for column in self.shown:
            self.update_cell(app_id, column.key, cell(column, app, now))

    def tick_clock(self) -> None:
        """Refresh the clock columns of the rows on screen."""
        now = self.clock()
        columns = [c for c in self.shown if c.key in CLOCK_COLUMNS]
        for app_id in self.rows_on_screen():
            app = self.state.apps.get(app_id)
            if app is not None:
                for column in columns:
                    self.update_cell(app_id, column.key, cell(column, app, now))

    def rows_on_screen(self) -> list[str]:
        """The ids of the rows currently scrolled into view."""
        first = int(self.scroll_y)
        height = max(1, self.size.height)
        ordered = self.ordered_rows
        return [str(row.key.value) for row in ordered[first:first + height]]
