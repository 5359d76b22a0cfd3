"""What the user can do to an app, shared by the main screen, the detail screen and the command palette.

Each action runs in a worker (``IntegApp.act``), opens its modal with ``push_screen_wait``, calls the daemon
and puts the result into the view-model, so the row changes at once rather than at the next event. Failures
are not caught here: they reach the app's one worker-failure handler and become titled notifications.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from textual.app import SystemCommand
from textual.screen import Screen

from integtui.screens.confirm import ConfirmModal
from integtui.screens.configure import ConfigureModal
from integtui.screens.connect import ConnectModal
from integtui.screens.share import ShareModal

if TYPE_CHECKING:
    from integtui.app import IntegApp


class Actions:
    """The app-level actions; ``app_id`` None means "the app under the cursor" (nothing when there is none).

    Example::

        app.actions.check("int_0123...")       # runs "Check" in a worker
    """

    def __init__(self, app: IntegApp) -> None:
        self.app = app

    def _target(self, app_id: str | None) -> str | None:
        if app_id is None:
            app_id = getattr(self.app.screen, "current_app_id", None)
        if app_id is None:
            self.app.notify("Select an app first.", title="No app selected", severity="warning")
        return app_id

    def _name(self, app_id: str) -> str:
        return self.app.state.app_name(app_id)

    # ---- the actions ----------------------------------------------------------------------------------------
    def connect(self) -> None:
        self.app.act("Connect", self._connect())

    async def _connect(self) -> None:
        created = await self.app.push_screen_wait(ConnectModal(self.app.call))
        if created:
            self.app.state.upsert(created)
            self.app.notify(f"{created.get('name')} is {created.get('status')}.", title="Connected")

    def check(self, app_id: str | None = None) -> None:
        if (target := self._target(app_id)) is not None:
            self.app.act("Check", self._check(target))

    async def _check(self, app_id: str) -> None:
        result = await self.app.call("apps.check", {"app_id": app_id})
        self.app.state.upsert(result["app"])
        verdict = "ok" if result.get("ok") else f"{result.get('outcome')}: {result.get('message', '')}"
        self.app.notify(f"{self._name(app_id)}: {verdict}", title="Checked",
                        severity="information" if result.get("ok") else "warning", markup=False)

    def disconnect(self, app_id: str | None = None) -> None:
        if (target := self._target(app_id)) is not None:
            self.app.act("Disconnect", self._disconnect(target))

    async def _disconnect(self, app_id: str) -> None:
        name = self._name(app_id)
        question = f"Disconnect {name}? Its credential is deleted and its checks stop."
        if not await self.app.push_screen_wait(ConfirmModal(question, confirm="Disconnect")):
            return
        await self.app.call("apps.disconnect", {"app_id": app_id})
        self.app.state.remove(app_id)
        self.app.notify(f"{name} was disconnected.", title="Disconnected", markup=False)

    def share(self, app_id: str | None = None, *, unshare: bool = False) -> None:
        if (target := self._target(app_id)) is not None:
            self.app.act("Unshare" if unshare else "Share", self._share(target, unshare))

    async def _share(self, app_id: str, unshare: bool) -> None:
        shared_with = list(self.app.state.apps.get(app_id, {}).get("shared_with", []))
        user = await self.app.push_screen_wait(ShareModal(self._name(app_id), shared_with, unshare=unshare))
        if not user:
            return
        result = await self.app.call("apps.unshare" if unshare else "apps.share", {"app_id": app_id, "user": user})
        self.app.state.upsert(result)
        verb = "no longer shared with" if unshare else "shared with"
        self.app.notify(f"{self._name(app_id)} is {verb} {user}.", title="Sharing", markup=False)

    def configure(self, app_id: str | None = None) -> None:
        if (target := self._target(app_id)) is not None:
            self.app.act("Edit limits", self._configure(target))

    async def _configure(self, app_id: str) -> None:
        detail = await self.app.call("apps.get", {"app_id": app_id})
        updated = await self.app.push_screen_wait(ConfigureModal(detail, self.app.call))
        if updated:
            self.app.state.upsert(updated)
            self.app.notify(f"{updated.get('name')} was reconfigured.", title="Saved", markup=False)

    def open_detail(self, app_id: str | None = None) -> None:
        from integtui.screens.detail import DetailScreen  # noqa: PLC0415 - detail imports actions

        if (target := self._target(app_id)) is not None:
            self.app.push_screen(DetailScreen(target))

    # ---- the command palette --------------------------------------------------------------------------------
    def commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        """Every action, for the command palette (the ones needing an app act on the current one)."""
        yield SystemCommand("Connect an app", "Connect a service with an API key or OAuth", self.connect)
        yield SystemCommand("Check now", "Run a health check on the selected app", self.check)
        yield SystemCommand("Open detail", "Configuration, health history, limits and events", self.open_detail)
        yield SystemCommand("Disconnect", "Disconnect the selected app (asks first)", self.disconnect)
        yield SystemCommand("Share", "Share the selected app with a user", self.share)
        yield SystemCommand("Unshare", "Stop sharing the selected app with a user",
                            lambda: self.share(unshare=True))
        yield SystemCommand("Edit limits", "Rate limits, timeout and check interval", self.configure)
        yield SystemCommand("Reconnect now", "Retry the daemon connection without waiting", self.app.link.retry_now)
        main = self.app.screen_stack[0] if self.app.screen_stack else None
        if main is not None and hasattr(main, "palette_commands"):
            yield from main.palette_commands()
