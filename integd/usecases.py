"""Use cases: the one path every entry takes.

An RPC call, a scheduler tick or (later) a webhook delivery each call exactly one method here. A use case checks
who may do it, loads the aggregate, calls the domain (which enforces the business rules and records events),
calls a connector where needed (never inside a write transaction: no network I/O while holding the writer), and
commits the new state together with its events in one transaction. The bus publishes the events after commit.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import structlog

from connectors.base import ApiRequest
from connectors.catalogue import SERVICES, get_service
from connectors.factory import connector_class
from domain import (ApiCredential, ApiKey, AuthMode, CheckInterval, Clock, ConnectedApp, ConnectionStatus,
                    ConnectionTimeout, HealthCheckResult, Integration, IntegrationError, IntegrationFailure,
                    IntegrationId, InvalidConfiguration, InvalidStateTransition, NotFound, RateLimit)
from integd import api
from integd.errors import NotImplementedService
from integd.identity import Principal
from integd.runtime import Runtimes
from integd.store.repository import AppStore
from integd.health import HealthScheduler, startup_due

log = structlog.get_logger("integd.usecases")


@dataclass(frozen=True)
class Actor:
    """Who a call acts for: the domain user, and whether the principal may see everything."""

    user: str
    admin: bool

    @classmethod
    def of(cls, principal: Principal, as_user: str | None) -> Actor:
        return cls(principal.acting_as(as_user), principal.is_admin)


def _rate_limit(model: api.RateLimitModel | None) -> RateLimit | None:
    return None if model is None else RateLimit(**model.model_dump())


def _check_base_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.username or parts.password \
            or parts.query or parts.fragment:
        raise InvalidConfiguration("base_url must be an http(s) URL with a host and no credentials, query or "
                                   "fragment", field="base_url")
    return url.rstrip("/")


class UseCases:
    def __init__(self, *, store: AppStore, runtimes: Runtimes, scheduler: HealthScheduler, clock: Clock,
                 health_timeout: float = 10.0, default_interval: float = 300.0,
                 on_checked: Callable[[str, str, HealthCheckResult], Awaitable[None]] | None = None) -> None:
        self.store = store
        self.runtimes = runtimes
        self.scheduler = scheduler
        self.clock = clock
        self.health_timeout = health_timeout
        self.default_interval = default_interval
        self.on_checked = on_checked     # live signal to dashboards: a check changes no state worth an event
        # set by the oauth feature: revoke an app's tokens at the provider before disconnecting (never raises)
        self.revoke_credential: Callable[[ConnectedApp], Awaitable[dict[str, Any] | None]] | None = None

    # ---- access ------------------------------------------------------------------------------------------
    async def _visible(self, actor: Actor, app_id: str, *, with_credentials: bool = False) -> ConnectedApp:
        try:
            IntegrationId(app_id)
        except InvalidConfiguration:
            raise NotFound(f"no app {app_id[:48]!r}") from None
        app = await self.store.find_by_id(app_id, with_credentials=with_credentials)
        if app is None or not app.can_be_used_by(actor.user, admin=actor.admin):
            raise NotFound(f"no app {app_id}")     # existence is not revealed to strangers
        return app

    # ---- catalogue ------------------------------------------------------------------------------------------
    def services(self, params: api.ServicesListParams) -> list[dict[str, Any]]:
        out = []
        for desc in SERVICES.values():
            d = desc.as_dict()
            if params.category and d["category"] != params.category:
                continue
            if params.implemented is not None and d["implemented"] != params.implemented:
                continue
            out.append(d)
        return out

    # ---- connect ----------------------------------------------------------------------------------------------
    async def connect(self, actor: Actor, p: api.ConnectParams) -> ConnectedApp:
        desc = get_service(p.service)
        if not desc.implemented:
            raise NotImplementedService(f"{desc.display_name} is in the catalogue but has no connector yet")
        connector_class(p.service)
        if AuthMode.API_KEY not in desc.auth_modes:
            raise InvalidConfiguration(f"{desc.display_name} does not take an API key; use OAuth",
                                       field="api_key")
        key = ApiKey(p.api_key.get_secret_value())
        now = self.clock.time()
        svc_conf = self.runtimes.config.services.get(p.service)
        published = desc.rate_limit
        if svc_conf is not None:
            published = RateLimit(**svc_conf.rate_limit.model_dump()).merged_over(published)
        requested = _rate_limit(p.rate_limit)
        integration = Integration(
            base_url=_check_base_url(p.base_url) if p.base_url else None,
            rate_limit=requested.merged_over(published) if requested else published,
            timeout=ConnectionTimeout(p.timeout if p.timeout is not None else
                                      (svc_conf.timeout if svc_conf and svc_conf.timeout else 30.0)),
            check_interval=CheckInterval(p.check_interval if p.check_interval is not None
                                         else self.default_interval),
            scopes=desc.scopes,
        )
        app = ConnectedApp.initiate(IntegrationId.generate(), actor.user, p.service, now=now, name=p.name,
                                    integration=integration)
        app.set_credentials(ApiCredential.from_api_key(key, hint=key.hint), now=now)
        connector = await self.runtimes.build(app)
        try:
            identity = await connector.authenticate()
        except BaseException:
            self.runtimes.drop(str(app.id))
            raise
        app.set_credentials(app.credential.with_attributes(account=identity.account_id,
                                                           display=identity.display), now=now)
        app.establish(now=self.clock.time())
        async with self.store.transaction() as tx:
            await tx.save(app, credential_changed=True)
        self.scheduler.schedule_now(str(app.id), app.integration.check_interval.seconds)
        log.info("app.connected", app_id=str(app.id), service=app.service, user=actor.user,
                 account=identity.display)
        return app

    # ---- queries ---------------------------------------------------------------------------------------------
    async def list_apps(self, actor: Actor, p: api.AppsListParams) -> list[dict[str, Any]]:
        """Rows of the apps the actor may see (the read model: no aggregates are built to list)."""
        if p.all_users and not actor.admin:
            raise PermissionError("only an admin may list every user's apps")
        rows = await self.store.summaries(user=None if p.all_users else actor.user)
        if p.service:
            rows = [r for r in rows if r["service"] == p.service]
        if p.status:
            rows = [r for r in rows if r["status"] == p.status]
        elif not p.include_disconnected:
            rows = [r for r in rows if r["status"] != ConnectionStatus.DISCONNECTED.value]
        return rows

    async def get_app(self, actor: Actor, app_id: str) -> tuple[ConnectedApp, list[dict[str, Any]]]:
        # With its credential: the detail shows the mode, hint and non-secret attributes (never the secret).
        app = await self._visible(actor, app_id, with_credentials=True)
        return app, await self.store.health_history(app_id)

    # ---- commands -------------------------------------------------------------------------------------------
    async def configure(self, actor: Actor, p: api.ConfigureParams) -> ConnectedApp:
        await self._visible(actor, p.app_id)
        async with self.store.transaction() as tx:
            app = await tx.get(p.app_id)
            app.ensure_manageable_by(actor.user, admin=actor.admin)
            changes = app.configure(
                now=self.clock.time(), provider_limit=get_service(app.service).rate_limit,
                rate_limit=_rate_limit(p.rate_limit),
                timeout=ConnectionTimeout(p.timeout) if p.timeout is not None else None,
                check_interval=CheckInterval(p.check_interval) if p.check_interval is not None else None,
                name=p.name)
            if changes:
                await tx.save(app)
        if changes:
            self.runtimes.reconfigure(app)
            if "check_interval" in changes:
                self.scheduler.set_interval(p.app_id, app.integration.check_interval.seconds)
        return app

    async def share(self, actor: Actor, app_id: str, user: str, *, share: bool) -> ConnectedApp:
        await self._visible(actor, app_id)
        async with self.store.transaction() as tx:
            app = await tx.get(app_id)
            app.ensure_manageable_by(actor.user, admin=actor.admin)
            changed = app.share_with(user, now=self.clock.time()) if share else \
                app.unshare(user, now=self.clock.time())
            if changed:
                await tx.save(app)
        return app

    async def disconnect(self, actor: Actor, p: api.DisconnectParams) -> ConnectedApp:
        return (await self.disconnect_revoking(actor, p))[0]

    async def disconnect_revoking(self, actor: Actor,
                                  p: api.DisconnectParams) -> tuple[ConnectedApp, dict[str, Any] | None]:
        """Disconnect; an OAuth app's tokens are revoked at the provider first (outside the transaction), and a
        failed revocation is reported, not fatal: the local credential is deleted regardless."""
        current = await self._visible(actor, p.app_id, with_credentials=True)
        current.ensure_manageable_by(actor.user, admin=actor.admin)
        revocation = None
        if self.revoke_credential is not None and current.credential is not None \
                and current.status is not ConnectionStatus.DISCONNECTED:
            revocation = await self.revoke_credential(current)
        async with self.store.transaction() as tx:
            app = await tx.get(p.app_id)
            app.ensure_manageable_by(actor.user, admin=actor.admin)
            app.disconnect(now=self.clock.time(), reason=p.reason, revocation=revocation)
            await tx.save(app, credential_changed=True)
        self.scheduler.remove(p.app_id)
        self.runtimes.drop(p.app_id)
        return app, revocation

    # ---- provider calls -----------------------------------------------------------------------------------
    async def check(self, actor: Actor, app_id: str) -> tuple[ConnectedApp, HealthCheckResult]:
        await self._visible(actor, app_id)
        result = await self.run_health_check(app_id)
        if result is None:
            app = await self.store.find_by_id(app_id)
            state = app.status.value if app else "gone"
            raise InvalidStateTransition(f"cannot check an app that is {state}")
        app = await self.store.find_by_id(app_id)
        return app, result

    async def run_health_check(self, app_id: str) -> HealthCheckResult | None:
        """One health check of one app; the scheduler's tick and ``apps.check`` both come here."""
        app = await self.store.find_by_id(app_id, with_credentials=True)
        if app is None or not app.status.is_active or app.credential is None:
            self.scheduler.remove(app_id)
            return None
        connector = await self.runtimes.connector_for(app)
        started = self.clock.monotonic()
        try:
            result = await asyncio.wait_for(connector.validate_connection(), self.health_timeout)
        except TimeoutError:
            result = HealthCheckResult(ok=False, latency=self.clock.monotonic() - started,
                                       checked_at=self.clock.time(), category=IntegrationError.NETWORK_ERROR,
                                       message=f"health check timed out after {self.health_timeout:g}s")
        if not result.sent:
            log.info("health.check_deferred", app_id=app_id, reason=result.message, retry_after=result.retry_after)
            return result
        async with self.store.transaction() as tx:
            try:
                fresh = await tx.get(app_id)
            except NotFound:
                return None
            if not fresh.status.is_active:
                return None
            fresh.record_health(result)
            await tx.add_health(app_id, result)
            await tx.save(fresh)
        if self.on_checked is not None:
            await self.on_checked(app_id, fresh.owner, result)
        return result

    async def request(self, actor: Actor, p: api.AppRequestParams) -> dict[str, Any]:
        app = await self._visible(actor, p.app_id, with_credentials=True)
        if not app.status.is_active or app.credential is None:
            raise InvalidStateTransition(f"cannot call the provider through an app that is {app.status.value}")
        connector = await self.runtimes.connector_for(app)
        req = ApiRequest(method=p.method, path=p.path, params=p.params, json=p.json_body, headers=p.headers)
        try:
            resp = await connector.send_request(req, interactive=not p.wait)
        except IntegrationFailure as failure:
            await self._record_failure(p.app_id, failure)
            raise
        if app.status in (ConnectionStatus.RATE_LIMITED, ConnectionStatus.ERROR):
            async with self.store.transaction() as tx:
                fresh = await tx.get(p.app_id)
                fresh.record_success(now=self.clock.time())
                await tx.save(fresh)
        return {"status": resp.status, "headers": dict(resp.headers), "body": resp.body,
                "latency": resp.latency, "attempts": resp.attempts}

    async def _record_failure(self, app_id: str, failure: IntegrationFailure) -> None:
        async with self.store.transaction() as tx:
            app = await tx.get(app_id)
            before = (app.status, len(app.pending_events))
            app.record_failure(failure.category, str(failure), now=self.clock.time(), status=failure.status,
                               provider_code=failure.provider_code, retry_after=failure.retry_after)
            if (app.status, len(app.pending_events)) != before:
                await tx.save(app)

    async def record_limiter_exhausted(self, app_id: str, window: str, retry_after: float) -> None:
        async with self.store.transaction() as tx:
            try:
                app = await tx.get(app_id)
            except NotFound:
                return
            app.record_limiter_exhausted(window, retry_after, now=self.clock.time())
            await tx.save(app)

    async def usage(self, actor: Actor, app_id: str) -> dict[str, Any]:
        app = await self._visible(actor, app_id)
        gate = await self.runtimes.gate_for(app)
        usage = gate.usage()
        return {"app_id": app_id, **usage}

    # ---- startup ----------------------------------------------------------------------------------------------
    async def schedule_all(self) -> int:
        rnd = random.Random()
        now = self.clock.time()
        apps = await self.store.find_all(active_only=True)
        for app in apps:
            interval = app.integration.check_interval.seconds
            self.scheduler.schedule(str(app.id), due=startup_due(now, app.integration.last_check_at, interval, rnd),
                                    interval=interval)
        return len(apps)

