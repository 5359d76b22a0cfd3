"""Edit an app's rate limits, timeout, check interval and name; the daemon's refusal shows inline."""

from __future__ import annotations

from typing import Any

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label

from integtui.screens.connect import Call, call_or_report

LIMIT_FIELDS = ("per_minute", "per_hour", "per_day", "burst")
FLOAT_FIELDS = ("timeout", "check_interval")


def _shown(value: Any) -> str:
    if value is None:
        return ""
    return f"{value:g}" if isinstance(value, float) else str(value)


def changes(app: dict[str, Any], form: dict[str, str]) -> dict[str, Any]:
    """The ``apps.configure`` params for what the form changed; ValueError naming a field it cannot read.

    Example:
        >>> changes({"name": "a", "timeout": 10.0, "rate_limit": {"per_minute": 60}},
        ...         {"name": "a", "timeout": "12", "per_minute": "30"})
        {'timeout': 12.0, 'rate_limit': {'per_minute': 30}}
    """
    out: dict[str, Any] = {}
    name = form.get("name", "").strip()
    if name and name != app.get("name"):
        out["name"] = name
    for field in FLOAT_FIELDS:
        raw = form.get(field, "").strip()
        if raw:
            try:
                value = float(raw)
            except ValueError:
                raise ValueError(f"{field}: {raw!r} is not a number of seconds") from None
            if value != app.get(field):
                out[field] = value
    limits: dict[str, int] = {}
    current = app.get("rate_limit") or {}
    for field in LIMIT_FIELDS:
        raw = form.get(field, "").strip()
        if raw:
            if not raw.isdigit() or int(raw) < 1:
                raise ValueError(f"rate_limit.{field}: {raw!r} is not a whole number of at least 1")
            if int(raw) != current.get(field):
                limits[field] = int(raw)
    if limits:
        out["rate_limit"] = limits
    return out


class ConfigureModal(ModalScreen[dict[str, Any] | None]):
    """Dismisses with the updated app, or None when cancelled or nothing changed.

    Example::

        updated = await app.push_screen_wait(ConfigureModal(detail, app.call))
    """

    BINDINGS = [Binding("escape", "cancel", "Cancel"), Binding("ctrl+s", "submit", "Save")]

    def __init__(self, app_detail: dict[str, Any], call: Call) -> None:
        super().__init__()
        self.detail = app_detail
        self.call = call

    def compose(self) -> ComposeResult:
        limits = self.detail.get("rate_limit") or {}
        with Vertical(classes="dialog"):
            yield Label(f"Limits of {self.detail.get('name')} ({self.detail.get('service')})", classes="title")
            with Grid(id="configure-grid"):
                yield Label("name")
                yield Input(value=self.detail.get("name", ""), id="name", compact=True)
                for field in LIMIT_FIELDS:
                    yield Label(field.replace("_", " "))
                    yield Input(value=_shown(limits.get(field)), placeholder="provider default", id=field, compact=True)
                yield Label("timeout (s)")
                yield Input(value=_shown(self.detail.get("timeout")), id="timeout", compact=True)
                yield Label("check every (s)")
                yield Input(value=_shown(self.detail.get("check_interval")), id="check_interval", compact=True)
            yield Label("Limits may be lowered, not raised past the provider's.", classes="hint")
            yield Label("", id="configure-error", classes="error")
            with Horizontal(classes="buttons"):
                yield Button("Save (ctrl+s)", variant="primary", id="save", compact=True)
                yield Button("Cancel (esc)", id="cancel", compact=True)

    def form(self) -> dict[str, str]:
        return {i.id: i.value for i in self.query(Input) if i.id}

    def on_input_submitted(self, _event: Input.Submitted) -> None:
        self.action_submit()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "save":
            self.action_submit()
        else:
            self.dismiss(None)

    def action_cancel(self) -> None:
        self.dismiss(None)

    def _error(self, text: str) -> None:
        self.query_one("#configure-error", Label).update(text)

    def action_submit(self) -> None:
        try:
            params = changes(self.detail, self.form())
        except ValueError as exc:
            self._error(str(exc))
            return
        if not params:
            self.dismiss(None)
            return
        self.save({"app_id": self.detail["id"], **params})

    @work(exclusive=True, exit_on_error=False, group="configure")
    async def save(self, params: dict[str, Any]) -> None:
        updated = await call_or_report(self.call, "apps.configure", params, self._error)
        if updated is not None:
            self.dismiss(updated)
