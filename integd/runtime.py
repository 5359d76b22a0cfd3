"""Live per-app machinery: each active app's CallGate (its rate-limit layers) and Connector.

Gates are keyed by app id and live as long as the daemon (their hour/day windows are persisted through the
QuotaStore, so a restart resumes the counts). A user's PlanBudget is shared by all their apps. Connectors are
rebuilt whenever the app's credential or settings change (``invalidate``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import structlog

from connectors.base import CallRecord, Connector, TokenSource
from connectors.catalogue import get_service
from connectors.factory import build_connector
from connectors.http import HttpTransport
from connectors.limits import CallGate, PlanBudget, QuotaStore
from domain import Clock, ConnectedApp, RetryPolicy
from integd.config import Config

log = structlog.get_logger("integd.provider")


def log_call(record: CallRecord) -> None:
    """Every provider attempt as one structured line (the path already has secret query values removed)."""
    level = log.info if record.outcome == "ok" else log.warning
    level("provider.call", app_id=record.app_id, service=record.service, method=record.method, path=record.path,
          status=record.status, latency_ms=round(record.latency * 1000, 1), attempt=record.attempt,
          outcome=record.outcome, error=record.error)


class Runtimes:
    def __init__(self, *, config: Config, transport: HttpTransport, quota: QuotaStore, clock: Clock,
                 retry: RetryPolicy | None = None, max_interactive_wait: float = 5.0, sleep: Any = None,
                 on_exhausted: Callable[[str, str, float], None] | None = None) -> None:
        self.config = config
        self.transport = transport
        self.quota = quota
        self.clock = clock
        self.retry = retry or RetryPolicy.exponential_backoff()
        self.max_interactive_wait = max_interactive_wait
        self.sleep = sleep
        self.on_exhausted = on_exhausted
        self._gates: dict[str, CallGate] = {}
        self._plans: dict[str, PlanBudget] = {}
        self._connectors: dict[str, tuple[int, Connector]] = {}
        # OAuth apps get their bearer from a TokenSource (integd.oauth_tokens); set by the oauth feature
        self.token_sources: Callable[[ConnectedApp], Awaitable[TokenSource | None]] | None = None

    def plan_for(self, user: str) -> tuple[str, int]:
        usage = self.config.usage
        name = usage.users.get(user, usage.default_plan)
        return name, usage.plans[name].daily_limit

    def apply_plans(self) -> None:
        """After a reload: move each live budget to its user's (possibly new) plan; what was spent today stays."""
        for user, plan in self._plans.items():
            plan.plan_name, plan.daily_limit = self.plan_for(user)
            plan.window.limit = plan.daily_limit

    async def _plan(self, user: str) -> PlanBudget:
        plan = self._plans.get(user)
        if plan is None:
            name, limit = self.plan_for(user)
            plan = PlanBudget(user, name, limit, self.quota, self.clock)
            await plan.start()
            self._plans.setdefault(user, plan)
        return self._plans[user]

    async def gate_for(self, app: ConnectedApp) -> CallGate:
        key = str(app.id)
        gate = self._gates.get(key)
        if gate is None:
            kwargs: dict[str, Any] = {"store": self.quota, "clock": self.clock, "plan": await self._plan(app.owner),
                                      "max_interactive_wait": self.max_interactive_wait}
            if self.sleep is not None:
                kwargs["sleep"] = self.sleep
            gate = CallGate(key, app.integration.rate_limit, **kwargs)
            await gate.start()
            if self.on_exhausted is not None:
                hook = self.on_exhausted
                gate.on_exhausted = lambda window, retry_after, _k=key: hook(_k, window, retry_after)
            gate = self._gates.setdefault(key, gate)
        return gate

    def existing_gate(self, app_id: str) -> CallGate | None:
        return self._gates.get(app_id)

    def base_url(self, app: ConnectedApp) -> str:
        svc = self.config.services.get(app.service)
        return app.integration.base_url or (svc.base_url if svc and svc.base_url else None) \
            or get_service(app.service).default_base_url

    async def connector_for(self, app: ConnectedApp) -> Connector:
        """The app's connector (``app`` must carry its credential), reused while the app's version holds."""
        key = str(app.id)
        cached = self._connectors.get(key)
        if cached is not None and cached[0] == app.version:
            return cached[1]
        if app.credential is None:
            raise ValueError(f"app {key} has no credential loaded")
        connector = await self.build(app)
        self._connectors[key] = (app.version, connector)
        return connector

    async def build(self, app: ConnectedApp) -> Connector:
        kwargs: dict[str, Any] = {}
        if self.sleep is not None:
            kwargs["sleep"] = self.sleep
        if self.token_sources is not None:
            source = await self.token_sources(app)
            if source is not None:
                kwargs["token_source"] = source
        return build_connector(
            app.service, app.credential, app_id=str(app.id), base_url=self.base_url(app),
            transport=self.transport, gate=await self.gate_for(app), retry=self.retry,
            timeout=app.integration.timeout.seconds, observer=log_call, clock=self.clock, **kwargs)

    def invalidate(self, app_id: str) -> None:
        self._connectors.pop(app_id, None)

    def reconfigure(self, app: ConnectedApp) -> None:
        gate = self._gates.get(str(app.id))
        if gate is not None:
            gate.reconfigure(app.integration.rate_limit)
        self.invalidate(str(app.id))

    def drop(self, app_id: str) -> None:
        self._connectors.pop(app_id, None)
        self._gates.pop(app_id, None)

    def tightest_window(self, app_id: str) -> dict[str, Any] | None:
        """The window with the least room left (by share used), for the dashboard's bar."""
        gate = self._gates.get(app_id)
        if gate is None:
            return None
        windows = [w for w in _as_dicts(gate.usage().get("windows", [])) if w.get("limit")]
        if not windows:
            return None
        return max(windows, key=lambda w: w["used"] / w["limit"])


def _as_dicts(windows: list[Any]) -> list[dict[str, Any]]:
    out = []
    for w in windows:
        if isinstance(w, dict):
            out.append(w)
        else:
            out.append({k: getattr(w, k) for k in ("name", "limit", "used", "remaining", "resets_at")})
    return out
