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
from textual.widgets.data_table import Row, RowDoesNotExist, RowKey
from typing_extensions import Self

from integtui.state import CLOCK_COLUMNS, Column, DashboardState, cell, columns_for, row_cells

FlushListener = Callable[[set[str], float], None]


class AppsTable(DataTable):
    """The main screen's table of apps, fed by a ``DashboardState``.

    Example::

        table = AppsTable(state, clock=time.time)
        state.upsert(app); table.flush()
    """

    def __init__(self, state: DashboardState, clock: Callable[[], float], **kwargs: Any) -> None:
        self._row_layout_version = 0  # before DataTable's __init__, which already clears
        self._row_layout_cache: dict[str, tuple[tuple[int, int], Any]] = {}
        super().__init__(cursor_type="row", zebra_stripes=False, **kwargs)
        self.state = state
        self.clock = clock
        self.wide: bool | None = None
        self.shown: tuple[Column, ...] = ()
        # Called after each flush with the apps whose cells changed and the time (for the benchmark).
        self.flush_listeners: list[FlushListener] = []

    # DataTable keys its row-order and y-offset caches on a counter that every update_cell bumps, so each cell
    # update made the next frame walk all 10,000 rows (twice). Rows all have height 1 here and their order only
    # changes when rows are added, removed, cleared or sorted, so those two caches are keyed on a counter that
    # only those bump. At 10k rows that took the two lookups after a cell update from ~45 ms to ~0 (measured
    # headless). Cell contents still invalidate DataTable's render caches as usual (the visible rows re-render).
    def _relayout(self) -> None:
        self._row_layout_version += 1
        self._row_layout_cache.clear()

    def _cached(self, name: str, compute: Callable[[], Any]) -> Any:
        key = (self.row_count, self._row_layout_version)
        hit = self._row_layout_cache.get(name)
        if hit is None or hit[0] != key:
            hit = (key, compute())
            self._row_layout_cache[name] = hit
        return hit[1]

    @property
    def ordered_rows(self) -> list[Row]:
        return self._cached("ordered_rows", lambda: [self.rows[self._row_locations.get_key(i)]
                                                     for i in range(self.row_count)])

    @property
    def _y_offsets(self) -> list[tuple[RowKey, int]]:
        return self._cached("y_offsets", lambda: [(row.key, y) for row in self.ordered_rows
                                                  for y in range(row.height)])

    def clear(self, columns: bool = False) -> Self:
        self._relayout()
        result = super().clear(columns)
        self._relayout()
        return result

    def add_row(self, *cells: Any, height: int | None = 1, key: str | None = None,
                label: Any = None) -> RowKey:
        self._relayout()
        return super().add_row(*cells, height=height, key=key, label=label)

    def remove_row(self, row_key: RowKey | str) -> None:
        self._relayout()
        super().remove_row(row_key)

    def sort(self, *columns: Any, key: Callable[[Any], Any] | None = None, reverse: bool = False) -> Self:
        self._relayout()
        return super().sort(*columns, key=key, reverse=reverse)

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
