"""Connect an app: pick a service from the catalogue, then type its key (masked) or sign in with OAuth.

The modal makes the calls itself, so that a refusal keeps the form open with the reason under it; it dismisses
with the new app (an AppDetail dict) only once the daemon has accepted it. Ways in, per the service's
``auth_modes``::

    api_key    apps.connect {service, api_key, name?, base_url?}
    paste      oauth.begin {flow: "paste"} -> show the URL -> the person pastes where the browser landed
               -> oauth.complete {flow_id, redirect_url} -> apps.get
    device     oauth.begin {flow: "device"} -> show the code and where to enter it -> the daemon polls
    loopback   oauth.begin {flow: "loopback"} -> show the URL -> the daemon's listener gets the redirect
               (device and loopback end with an ``oauth.flow`` event "completed" naming the app -> apps.get)

Trust: the key and the pasted redirect URL (it carries a one-time code) sit in masked inputs and go to the
daemon only; they are never logged or shown. Leaving the modal with a flow under way cancels it
(``oauth.cancel``), so no half-made consent lingers for its ten minutes.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Select

from integd.client import DaemonUnavailable, RpcCallError
from integtui.screens.signin import FLOW_ENDED, FLOW_FINISHED, WAYS, flow_prompt, ways_for

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


async def call_or_report(call: Call, method: str, params: dict[str, Any],
                         report: Callable[[str], None]) -> Any | None:
    """One RPC from a form: its result, or None after ``report`` showed why it failed (refused or unreachable)."""
    try:
        return await call(method, params)
    except RpcCallError as exc:
        report(f"Refused: {error_text(exc)}")
    except DaemonUnavailable as exc:
        report(str(exc))
    return None


class ConnectModal(ModalScreen[dict[str, Any] | None]):
    """Dismisses with the connected app, or None when cancelled.

    Example::

        created = await app.push_screen_wait(ConnectModal(app.call))
    """

    BINDINGS = [Binding("escape", "cancel", "Cancel"), Binding("ctrl+s", "submit", "Connect"),
                Binding("ctrl+y", "copy_url", "Copy URL", show=False)]

    def __init__(self, call: Call) -> None:
        super().__init__()
        self.call = call
        self.services: dict[str, dict[str, Any]] = {}
        self.flow: dict[str, Any] | None = None  # the OAuth flow under way, as oauth.begin answered

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="connect-dialog"):
            yield Label("Connect an app", classes="title")
            with Grid(id="connect-grid"):
                yield Label("service")
                yield Select[str]([], prompt="loading the catalogue…", id="service", compact=True)
                yield Label("sign in with")
                yield Select[str]([], prompt="pick a service first", id="way", compact=True, allow_blank=True)
                yield Label("key", id="api-key-label")
                yield Input(placeholder="API key or token", password=True, id="api-key", compact=True)
                yield Label("name")
                yield Input(placeholder="optional", id="name", compact=True)
                yield Label("base URL")
                yield Input(placeholder="optional: GitHub Enterprise, a self-hosted site", id="base-url",
                            compact=True)
            yield Label("", id="service-info", classes="hint")
            with Vertical(id="oauth-box"):
                yield Label("", id="oauth-prompt")
                yield Input(placeholder="paste the redirect URL here", password=True, id="redirect", compact=True)
            yield Label("", id="connect-error", classes="error")
            with Horizontal(classes="buttons"):
                yield Button("Connect (ctrl+s)", variant="primary", id="connect", compact=True)
                yield Button("Cancel (esc)", id="cancel", compact=True)

    def on_mount(self) -> None:
        self.query_one("#oauth-box").display = False
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
        select.prompt = "pick a service"

    # ---- the form -------------------------------------------------------------------------------------------
    @property
    def way(self) -> str:
        value = self.query_one("#way", Select).value
        return str(value) if value is not Select.NULL else "api_key"

    def on_select_changed(self, event: Select.Changed) -> None:
        if event.select.id == "service":
            self._service_changed(event.value)
        elif event.select.id == "way":
            self._show_way()

    def _service_changed(self, value: Any) -> None:
        service = self.services.get(value) if value is not Select.NULL else None
        info = self.query_one("#service-info", Label)
        way = self.query_one("#way", Select)
        self._forget_flow()
        if service is None:
            info.update("")
            way.set_options([])
            return
        ways = ways_for(service)
        way.set_options([(WAYS[w], w) for w in ways])
        if ways:
            way.value = ways[0]
        info.update(f"{service.get('category')}; auth: {', '.join(service.get('auth_modes', []))}; "
                    f"docs: {service.get('docs_url', '-')}")
        self._show_way()

    def _show_way(self) -> None:
        key = self.way == "api_key"
        self.query_one("#api-key").display = self.query_one("#api-key-label").display = key
        self._forget_flow()

    def _forget_flow(self) -> None:
        """Drop the flow shown (the person changed the service or the way); the daemon's is cancelled."""
        if self.flow is not None and self.flow.get("state") not in (*FLOW_ENDED, "completed"):
            self._cancel_flow(self.flow["flow_id"])
        self.flow = None
        if self.children:
            self.query_one("#oauth-box").display = False
            self.query_one("#redirect", Input).value = ""

    def _error(self, text: str) -> None:
        self.query_one("#connect-error", Label).update(text)

    def _optional(self) -> dict[str, Any]:
        params: dict[str, Any] = {}
        for field, widget_id in (("name", "#name"), ("base_url", "#base-url")):
            value = self.query_one(widget_id, Input).value.strip()
            if value:
                params[field] = value
        return params

    def params(self) -> dict[str, Any] | None:
        """The ``apps.connect`` params from the form, or None after saying inline what is missing."""
        service = self.query_one("#service", Select).value
        if service is Select.NULL:
            self._error("Pick a service first.")
            return None
        key = self.query_one("#api-key", Input).value.strip()
        if not key:
            self._error("Enter the API key or token.")
            return None
        return {"service": service, "api_key": key, **self._optional()}

    # ---- submitting -----------------------------------------------------------------------------------------
    def on_input_submitted(self, _event: Input.Submitted) -> None:
        self.action_submit()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "connect":
            self.action_submit()
        else:
            self.action_cancel()

    def action_cancel(self) -> None:
        self._forget_flow()
        self.dismiss(None)

    def action_submit(self) -> None:
        service = self.query_one("#service", Select).value
        if self.way == "api_key" or service is Select.NULL:
            params = self.params()
            if params is not None:
                self._error("connecting…")
                self.submit(params)
        elif self.flow is None:
            self._error("starting the sign-in…")
            self.begin({"service": service, "flow": self.way, **self._optional()})
        elif self.flow.get("flow") == "paste":
            pasted = self.query_one("#redirect", Input).value.strip()
            if not pasted:
                self._error("Paste the URL the browser landed on.")
                return
            self._error("completing the sign-in…")
            self.complete(self.flow["flow_id"], pasted)
        else:
            self._error("Waiting for the provider: approve in the browser (escape gives up).")

    @work(exclusive=True, exit_on_error=False, group="connect")
    async def submit(self, params: dict[str, Any]) -> None:
        created = await call_or_report(self.call, "apps.connect", params, self._error)
        if created is not None:
            self.dismiss(created)

    @work(exclusive=True, exit_on_error=False, group="connect")
    async def begin(self, params: dict[str, Any]) -> None:
        self.flow = await call_or_report(self.call, "oauth.begin", params, self._error)
        if self.flow is None:
            return
        self.query_one("#oauth-prompt", Label).update(flow_prompt(self.flow))
        redirect = self.query_one("#redirect", Input)
        redirect.display = self.flow.get("flow") == "paste"
        self.query_one("#oauth-box").display = True
        self._error("")
        if redirect.display:
            redirect.focus()

    @work(exclusive=True, exit_on_error=False, group="connect")
    async def complete(self, flow_id: str, pasted: str) -> None:
        # A refused paste can be fixed and sent again: the flow is still started.
        done = await call_or_report(self.call, "oauth.complete", {"flow_id": flow_id, "redirect_url": pasted},
                                    self._error)
        if done is not None:
            await self._finish(done)

    async def _finish(self, flow: dict[str, Any]) -> None:
        """The flow ended: dismiss with the new app, or say why not."""
        if self.flow is not None:
            self.flow = {**self.flow, **flow}
        if flow.get("state") != "completed" or not flow.get("app_id"):
            self._error(f"Sign-in {flow.get('state')}: {flow.get('error') or 'no app was connected'}"
                        " - ctrl+s starts again.")
            self.flow = None
            return
        self.dismiss(await self.call("apps.get", {"app_id": flow["app_id"]}))

    # ---- the flow's events (loopback and device end on the daemon's side) -----------------------------------
    def on_daemon_event(self, event: dict[str, Any]) -> None:
        payload = event.get("payload") or {}
        if event.get("type") != "oauth.flow" or self.flow is None or payload.get("flow_id") != self.flow["flow_id"]:
            return
        state = payload.get("state")
        if state == "completed" or state in FLOW_ENDED:
            self.ended(payload)

    @work(exclusive=True, exit_on_error=False, group="connect")
    async def ended(self, payload: dict[str, Any]) -> None:
        await self._finish({"state": payload.get("state"), "app_id": payload.get("app"),
                            "error": payload.get("error")})

    def _cancel_flow(self, flow_id: str) -> None:
        async def cancel() -> None:
            try:
                await self.call("oauth.cancel", {"flow_id": flow_id})
            except RpcCallError as exc:
                if exc.code != FLOW_FINISHED:
                    raise

        self.app.run_worker(cancel(), name="Cancel sign-in", group="actions", exit_on_error=False)

    def action_copy_url(self) -> None:
        url = (self.flow or {}).get("authorization_url") or (self.flow or {}).get("verification_uri")
        if url:
            self.app.copy_to_clipboard(url)
            self.notify("The URL is on the clipboard (if the terminal allows it).", title="Copied")

