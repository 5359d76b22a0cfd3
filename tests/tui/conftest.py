"""Shared by the dashboard's tests: deterministic Textual (no animations, no cursor blink) and a waiting helper."""

from __future__ import annotations

import asyncio
import os

os.environ["TEXTUAL_ANIMATIONS"] = "none"  # read when textual is first imported: set it before that

from collections.abc import Callable  # noqa: E402

from textual.pilot import Pilot  # noqa: E402
from textual.widgets import Input  # noqa: E402

from integtui.app import IntegApp  # noqa: E402
from integtui.screens.main import MainScreen  # noqa: E402

TIMEOUT = 10.0


async def until(pilot: Pilot, predicate: Callable[[], object], what: str, timeout: float = TIMEOUT) -> None:
    """Let the app process its messages until ``predicate()`` holds; fail naming ``what`` after ``timeout``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await pilot.pause(0.02)


def no_blink(app: IntegApp) -> None:
    for box in app.screen.query(Input):
        box.cursor_blink = False


def main_screen(app: IntegApp) -> MainScreen:
    screen = app.screen_stack[0]
    assert isinstance(screen, MainScreen)
    return screen


def table_rows(app: IntegApp) -> list[list[str]]:
    """The main table as plain text, in display order."""
    table = main_screen(app).table
    # An app removed since the last flush is still in the table's order until the next one: not a row any more.
    return [table.row_plain(app_id) for app_id in table.ids if app_id in app.state.apps]
