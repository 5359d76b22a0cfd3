"""The help screen (``?``): every key, what it does, and what the symbols mean."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from integtui import format as fmt

KEYS: tuple[tuple[str, str], ...] = (
    ("↑ ↓ PgUp PgDn", "move in the table"),
    ("enter", "open the app's detail"),
    ("c", "connect an app: API key or OAuth (ctrl+y there copies the sign-in URL)"),
    ("r", "check now"),
    ("d", "disconnect (asks first)"),
    ("s / u", "share / unshare with a user"),
    ("e", "edit rate limits, timeout, check interval"),
    ("/", "find: filter by any visible text (escape clears)"),
    ("o / O", "sort by the next column / reverse (or click a header)"),
    ("t", "event log: next type filter"),
    ("a", "event log: only the selected app (again: all)"),
    ("ctrl+p", "command palette: every action"),
    ("ctrl+r", "reconnect to the daemon now"),
    ("escape", "back / cancel"),
    ("q", "quit"),
)


def help_table() -> Table:
    table = Table(show_header=False, box=None, padding=(0, 2))
    table.add_column(style="bold", no_wrap=True)
    table.add_column()
    for key, what in KEYS:
        table.add_row(key, what)
    table.add_row("", "")
    for status in fmt.STATUS_ORDER:
        table.add_row(fmt.status_text(status), Text(f"status {status}"))
    table.add_row("Sync ▶p3 / ✖", "a sync run on its 3rd page / a failed sync job (wide terminals)")
    return table


class HelpScreen(ModalScreen[None]):
    """Keys and symbols; any of escape, q or ? closes it."""

    BINDINGS = [Binding("escape,q,question_mark", "close", "Close")]

    def compose(self) -> ComposeResult:
        with VerticalScroll(classes="dialog", id="help"):
            yield Static(Text("integtui keys", style="bold"))
            yield Static(help_table())

    def action_close(self) -> None:
        self.dismiss(None)
