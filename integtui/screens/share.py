"""Share an app with a user, or stop sharing it: one field, the user's name."""

from __future__ import annotations

import re

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label

# A domain user name as the daemon accepts them; the daemon has the last word, this only catches typos early.
USER_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.@-]{0,63}$")


class ShareModal(ModalScreen[str | None]):
    """Dismisses with the user name, or None when cancelled.

    Example::

        user = await app.push_screen_wait(ShareModal("GitHub", ["bob"], unshare=True))
    """

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, app_name: str, shared_with: list[str], *, unshare: bool = False) -> None:
        super().__init__()
        self.app_name = app_name
        self.shared_with = shared_with
        self.unshare = unshare

    def compose(self) -> ComposeResult:
        verb = "Stop sharing" if self.unshare else "Share"
        now = ", ".join(self.shared_with) if self.shared_with else "nobody"
        with Vertical(classes="dialog"):
            yield Label(f"{verb} {self.app_name}", classes="title")
            yield Label(f"Shared with: {now}")
            value = self.shared_with[0] if self.unshare and len(self.shared_with) == 1 else ""
            yield Input(value=value, placeholder="user name", id="user")
            yield Label("", id="share-error", classes="error")
            yield Label("enter to confirm, escape to cancel", classes="hint")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        user = event.value.strip()
        if not USER_RE.match(user):
            self.query_one("#share-error", Label).update(
                "A user name is 1-64 letters, digits, '_', '.', '@' or '-'.")
            return
        if self.unshare and user not in self.shared_with:
            self.query_one("#share-error", Label).update(f"{self.app_name} is not shared with {user}.")
            return
        self.dismiss(user)

    def action_cancel(self) -> None:
        self.dismiss(None)
