"""The apps table widget over the fake session: clock cells, cursor and paging, header clicks, many rows."""

from __future__ import annotations

from textual.pilot import Pilot

from integtui.app import IntegApp
from integtui.screens.detail import DetailScreen
from tests.tui.conftest import main_screen, table_rows, until
from tests.tui.fakes import NOW, FakeDaemon, fixed_app


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


def dashboard(apps: int, clock: Clock) -> tuple[IntegApp, FakeDaemon]:
    fake = FakeDaemon([fixed_app(n, name=f"app-{n:05d}") for n in range(apps)])
    app = IntegApp(socket_path="/fake.sock", clock=clock, session_factory=fake.session_factory, utc=True,
                   flush_interval=0.05)
    return app, fake


async def loaded(pilot: Pilot, app: IntegApp, count: int) -> None:
    await until(pilot, lambda: len(main_screen(app).table.ids) == count, f"{count} rows")


async def test_clock_cells_move_on_and_only_changed_rows_redraw():
    clock = Clock()
    app, _fake = dashboard(3, clock)
    async with app.run_test(size=(100, 30)) as pilot:
        await loaded(pilot, app, 3)
        table = main_screen(app).table
        assert table_rows(app)[0][3] == "12s" and table_rows(app)[0][6] == "48s"
        await pilot.pause()
        drawn = dict(table._lines)
        app.tick()  # the same second: nothing reads differently, nothing is redrawn
        assert table._lines == drawn
        clock.now += 60
        app.tick()
        assert table_rows(app)[0][3] == "1m" and table_rows(app)[0][6] == "now"
        assert not table._lines, "every row's clock cells changed: each will be drawn again"


async def test_cursor_paging_and_the_row_it_opens():
    clock = Clock()
    app, _fake = dashboard(120, clock)
    async with app.run_test(size=(100, 30)) as pilot:
        await loaded(pilot, app, 120)
        table = main_screen(app).table
        assert table.selected_app_id == fixed_app(0)["id"]
        await pilot.press("down", "down", "pagedown")
        assert table.cursor_row == 2 + table._page()
        assert int(table.scroll_y) <= table.cursor_row < int(table.scroll_y) + table._page(), "in view"
        await pilot.press("end")
        assert table.selected_app_id == fixed_app(119)["id"] and int(table.scroll_y) == 120 + 1 - table.size.height
        await pilot.press("home", "up")
        assert table.cursor_row == 0 and table.scroll_y == 0
        await pilot.press("down", "enter")
        await until(pilot, lambda: isinstance(app.screen, DetailScreen), "the detail")
        assert app.screen.app_id == fixed_app(1)["id"]


async def test_header_click_sorts_and_a_status_change_keeps_the_cursor_on_its_app():
    clock = Clock()
    app, fake = dashboard(40, clock)
    async with app.run_test(size=(100, 30)) as pilot:
        await loaded(pilot, app, 40)
        screen = main_screen(app)
        table = screen.table
        await pilot.press("down", "down")
        chosen = table.selected_app_id
        status_x = sum(c.width + 2 for c in table.shown[:2]) + 1  # inside the Status header
        await pilot.click(table, offset=(status_x, 0))
        await until(pilot, lambda: app.state.sort_column == "status", "the sort by status")
        assert table.selected_app_id == chosen, "the cursor follows its app through a re-sort"
        fake.emit("app.status_changed", chosen, {"old_status": "connected", "new_status": "error"})
        await until(pilot, lambda: table.ids[0] == chosen, "the failing app first")
        assert table.selected_app_id == chosen and table_rows(app)[0][2] == "✖ error"
