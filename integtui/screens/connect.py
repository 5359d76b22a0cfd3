"""Connect an app: pick a service from the catalogue, type its key (masked), see a refusal inline.

The modal makes the ``apps.connect`` call itself, so that a refused key keeps the form open with the provider's
reason under it; it dismisses with the new app (an AppDetail dict) only once the daemon has accepted it. The key
lives in the masked Input until then and is sent to the daemon only; it is never logged or shown.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Select

from integd.client import DaemonUnavailable, RpcCallError

Call = Callable[..., Coroutine[Any, Any, Any]]


def service_label(service: dict[str, Any]) -> str:
    """How a catalogue entry reads in the picker.

    Example:
        >>> service_label({"display_name": "GitHub", "category": "dev_tools", "auth_modes": ["api_key", "oauth2"],
        ...                "implemented": True})
        'GitHub · dev_tools · api_key, oauth2'
    """
    label = f"{service.get('display_name', service.get('name'))} · {service.get('category', '?')} · " \
            f"{', '.join(service.get('auth_modes', []))}"
    return label if service.get("implemented", True) else label + " (no connector yet)"


def error_text(error: RpcCallError) -> str:
    """The daemon's refusal, naming the field it objected to when it said which."""
    data = error.data if isinstance(error.data, dict) else {}
    if data.get("field"):
        return f"{data['field']}: {error.message}"
    if isinstance(data.get("errors"), list) and data["errors"]:
        first = data["errors"][0]
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "params")
        return f"{where}: {first.get('msg', error.message)}" if where else error.message
    return error.message


class ConnectModal(ModalScreen[dict[str, Any] | None]):
    """Dismisses with the connected app, or None when cancelled.

    Example::

        created = await app.push_screen_wait(ConnectModal(app.call))
    """

    BINDINGS = [Binding("escape", "cancel", "Cancel"), Binding("ctrl+s", "submit", "Connect")]

    def __init__(self, call: Call) -> None:
        super().__init__()
        self.call = call
        self.services: dict[str, dict[str, Any]] = {}

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="connect-dialog"):
            yield Label("Connect an app", classes="title")
            yield Select[str]([], prompt="service (loading the catalogue…)", id="service")
            yield Label("", id="service-info", classes="hint")
            yield Input(placeholder="API key or token", password=True, id="api-key")
            yield Input(placeholder="name (optional)", id="name")
            yield Input(placeholder="base URL (optional: GitHub Enterprise, a self-hosted site)", id="base-url")
            yield Label("", id="connect-error", classes="error")
            with Horizontal(classes="buttons"):
                yield Button("Connect (ctrl+s)", variant="primary", id="connect", compact=True)
                yield Button("Cancel (esc)", id="cancel", compact=True)

    def on_mount(self) -> None:
        self.load_services()

    @work(exclusive=True, exit_on_error=False, group="catalogue")
    async def load_services(self) -> None:
        try:
            services = await self.call("services.list")
        except (RpcCallError, DaemonUnavailable) as exc:
            self._error(f"cannot load the catalogue: {exc}")
            return
        services.sort(key=lambda s: (not s.get("implemented", True), s.get("display_name", s["name"]).lower()))
        self.services = {s["name"]: s for s in services}
        select = self.query_one("#service", Select)
        select.set_options([(service_label(s), s["name"]) for s in services])
        select.prompt = "service"

    def on_select_changed(self, event: Select.Changed) -> None:
        service = self.services.get(event.value) if event.value is not Select.NULL else None
        info = self.query_one("#service-info", Label)
        if service is None:
            info.update("")
            return
        modes = service.get("auth_modes", [])
        note = "" if "api_key" in modes else "  This service needs OAuth, which this dashboard cannot start yet."
        info.update(f"{service.get('category')}; auth: {', '.join(modes)}; docs: {service.get('docs_url', '-')}{note}")

    def on_input_submitted(self, _event: Input.Submitted) -> None:
        self.action_submit()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "connect":
            self.action_submit()
        else:
            self.dismiss(None)

    def action_cancel(self) -> None:
        self.dismiss(None)

    def _error(self, text: str) -> None:
        self.query_one("#connect-error", Label).update(text)

    def params(self) -> dict[str, Any] | None:
        """The call's params from the form, or None after saying inline what is missing."""
        service = self.query_one("#service", Select).value
        if service is Select.NULL:
            self._error("Pick a service first.")
            return None
        key = self.query_one("#api-key", Input).value.strip()
        if not key:
            self._error("Enter the API key or token.")
            return None
        params: dict[str, Any] = {"service": service, "api_key": key}
        for field, widget_id in (("name", "#name"), ("base_url", "#base-url")):
            value = self.query_one(widget_id, Input).value.strip()
            if value:
                params[field] = value
        return params

    def action_submit(self) -> None:
        params = self.params()
        if params is not None:
            self._error("connecting…")
            self.submit(params)

    @work(exclusive=True, exit_on_error=False, group="connect")
    async def submit(self, params: dict[str, Any]) -> None:
        try:
            created = await self.call("apps.connect", params)
        except RpcCallError as exc:
            self._error(f"Refused: {error_text(exc)}")
            return
        except DaemonUnavailable as exc:
            self._error(str(exc))
            return
        self.dismiss(created)
