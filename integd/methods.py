"""The RPC methods: each validates its params (integd.api), finds who it acts for and calls one use case.

Nothing here holds business logic; it maps between the wire models and the use cases.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from connectors.catalogue import SERVICES
from domain import ConnectedApp
from integd import __version__, api
from integd.rpc.registry import CallContext, MethodRegistry, Prevalidated
from integd.usecases import Actor

if TYPE_CHECKING:
    from integd.bootstrap import Daemon

_APP_ERRORS = ((api.NOT_FOUND, "not_found"), (api.ACCESS_DENIED, "access_denied"),
               (api.INVALID_STATE, "invalid_state"), (api.INVALID_CONFIG, "invalid_config"))
_CALL_ERRORS = _APP_ERRORS + ((api.RATE_LIMITED, "rate_limited"), (api.USAGE_LIMIT, "usage_limit"),
                              (api.INTEGRATION_FAILED, "integration_failed"), (api.AUTH_FAILED, "auth_failed"))


def summary_row(d: Daemon, row: dict[str, Any]) -> dict[str, Any]:
    """An AppSummary from a read-model row (see AppStore.summaries)."""
    desc = SERVICES.get(row["service"])
    app_id = row["id"]
    return {**row, "category": desc.category.value if desc else "",
            "next_check_at": d.scheduler.next_check_at(app_id),
            "tightest_window": d.runtimes.tightest_window(app_id)}


def app_summary(d: Daemon, app: ConnectedApp) -> dict[str, Any]:
    integ = app.integration
    desc = SERVICES.get(app.service)
    return {
        "id": str(app.id), "name": app.name, "service": app.service,
        "category": desc.category.value if desc else "", "owner": app.owner, "status": app.status.value,
        "status_reason": app.status_reason, "shared_with": sorted(app.shared_with),
        "created_at": app.created_at, "updated_at": app.updated_at, "connected_at": app.connected_at,
        "last_check_at": integ.last_check_at, "last_latency": integ.last_latency,
        "next_check_at": d.scheduler.next_check_at(str(app.id)),
        "consecutive_failures": integ.consecutive_failures, "rate_limit": integ.rate_limit.as_dict(),
        "tightest_window": d.runtimes.tightest_window(str(app.id)),
    }


def app_detail(d: Daemon, app: ConnectedApp, health: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    integ = app.integration
    cred_attrs = app.credential.describe() if app.credential else None
    return {
        **app_summary(d, app), "base_url": d.runtimes.base_url(app), "timeout": integ.timeout.seconds,
        "check_interval": integ.check_interval.seconds, "credential": cred_attrs, "health": health or [],
        "last_error": integ.last_error,
    }


def register(reg: MethodRegistry, d: Daemon) -> None:  # noqa: C901 - one flat list of small handlers
    uc = d.usecases

    def actor(ctx: CallContext, p: Any) -> Actor:
        return Actor.of(ctx.principal, getattr(p, "as_user", None))

    @reg.method("daemon.status", api.NoParams, api.DaemonStatus, summary="Version, uptime and app counts.",
                tags=("daemon",))
    async def daemon_status(ctx: CallContext, p: api.NoParams) -> dict[str, Any]:
        counts = await d.status_counts()
        return {"version": __version__, "pid": os.getpid(), "uptime": d.clock.monotonic() - d.started_mono,
                "started_at": d.started_at, "principal": {"uid": ctx.principal.uid, "user": ctx.principal.user,
                                                          "kind": ctx.principal.kind},
                "apps": sum(counts.values()), "by_status": counts, "in_flight": d.server.in_flight,
                "socket": str(d.paths.socket), "state_dir": str(d.paths.state_dir),
                "last_event_seq": d.bus.last_seq}

    @reg.method("services.list", api.ServicesListParams, list[api.ServiceInfo],
                summary="The catalogue of all fifteen services and which are implemented.", tags=("services",))
    async def services_list(ctx: CallContext, p: api.ServicesListParams) -> list[dict[str, Any]]:
        return uc.services(p)

    @reg.method("apps.connect", api.ConnectParams, api.AppDetail, summary="Connect a service with an API key.",
                description="The key is validated against the provider's identity endpoint first; a refused key "
                            "stores nothing.", errors=_CALL_ERRORS + ((api.NOT_IMPLEMENTED, "not_implemented"),),
                tags=("apps",))
    async def apps_connect(ctx: CallContext, p: api.ConnectParams) -> dict[str, Any]:
        app = await uc.connect(actor(ctx, p), p)
        return app_detail(d, app)

    @reg.method("apps.list", api.AppsListParams, list[api.AppSummary], summary="The apps the caller may see.",
                tags=("apps",))
    async def apps_list(ctx: CallContext, p: api.AppsListParams) -> list[dict[str, Any]]:
        # Rows come from the typed read model (AppStore.summaries, built from aggregates): no re-validation.
        return Prevalidated([summary_row(d, r) for r in await uc.list_apps(actor(ctx, p), p)])

    @reg.method("apps.get", api.AppRef, api.AppDetail, summary="One app with its settings and health history.",
                errors=_APP_ERRORS, tags=("apps",))
    async def apps_get(ctx: CallContext, p: api.AppRef) -> dict[str, Any]:
        app, health = await uc.get_app(actor(ctx, p), p.app_id)
        return app_detail(d, app, health)

    @reg.method("apps.configure", api.ConfigureParams, api.AppDetail,
                summary="Change rate limit (never above the provider's), timeout, check interval or name.",
                errors=_APP_ERRORS, tags=("apps",))
    async def apps_configure(ctx: CallContext, p: api.ConfigureParams) -> dict[str, Any]:
        return app_detail(d, await uc.configure(actor(ctx, p), p))

    @reg.method("apps.check", api.AppRef, api.CheckResult, summary="Check an app's health now.",
                errors=_APP_ERRORS, tags=("apps",))
    async def apps_check(ctx: CallContext, p: api.AppRef) -> dict[str, Any]:
        app, result = await uc.check(actor(ctx, p), p.app_id)
        return {"app": app_summary(d, app), "ok": result.ok, "outcome": result.outcome,
                "latency": result.latency, "message": result.message}

    @reg.method("apps.request", api.AppRequestParams, api.RequestResult,
                summary="Call any endpoint of the app's service through its rate limits and retries.",
                description="Fails fast with rate_limited (data.retry_after) unless wait is true.",
                errors=_CALL_ERRORS, tags=("apps",))
    async def apps_request(ctx: CallContext, p: api.AppRequestParams) -> dict[str, Any]:
        return await uc.request(actor(ctx, p), p)

    @reg.method("apps.usage", api.AppRef, api.UsageResult, summary="Rate-limit windows and their consumption.",
                errors=_APP_ERRORS, tags=("apps",))
    async def apps_usage(ctx: CallContext, p: api.AppRef) -> dict[str, Any]:
        return await uc.usage(actor(ctx, p), p.app_id)

    @reg.method("apps.share", api.ShareParams, api.AppDetail, summary="Let another user use this app.",
                errors=_APP_ERRORS, tags=("apps",))
    async def apps_share(ctx: CallContext, p: api.ShareParams) -> dict[str, Any]:
        return app_detail(d, await uc.share(actor(ctx, p), p.app_id, p.user, share=True))

    @reg.method("apps.unshare", api.ShareParams, api.AppDetail, summary="Stop sharing this app with a user.",
                errors=_APP_ERRORS, tags=("apps",))
    async def apps_unshare(ctx: CallContext, p: api.ShareParams) -> dict[str, Any]:
        return app_detail(d, await uc.share(actor(ctx, p), p.app_id, p.user, share=False))

    @reg.method("apps.disconnect", api.DisconnectParams, api.DisconnectResult,
                summary="Disconnect an app: its credential is deleted.", errors=_APP_ERRORS, tags=("apps",))
    async def apps_disconnect(ctx: CallContext, p: api.DisconnectParams) -> dict[str, Any]:
        app, revocation = await uc.disconnect_revoking(actor(ctx, p), p)
        return {"app_id": str(app.id), "status": app.status.value, "revocation": revocation}

    @reg.method("events.list", api.EventsListParams, api.EventsPage,
                summary="Committed events after a sequence number, filtered by type or app.", tags=("events",))
    async def events_list(ctx: CallContext, p: api.EventsListParams) -> dict[str, Any]:
        who = actor(ctx, p)
        app_ids = None
        if not who.admin:
            visible = {str(a.id) for a in await d.store.find_by_user(who.user)}
            app_ids = sorted(visible if p.app_id is None else visible & {p.app_id})
        elif p.app_id is not None:
            app_ids = [p.app_id]
        events = await d.store.events_after(p.after, limit=p.limit, types=p.types, app_ids=app_ids,
                                            before=p.before, newest_first=p.order == "desc")
        return {"events": [e.as_dict() for e in events],
                "last_seq": max((e.seq for e in events), default=p.after)}

    @reg.method("events.subscribe", api.SubscribeParams, api.SubscribeResult,
                summary="WebSocket only: receive each event as it is committed (notification 'event').",
                tags=("events",))
    async def events_subscribe(ctx: CallContext, p: api.SubscribeParams) -> dict[str, Any]:
        if ctx.connection is None:
            raise api_error_ws_only()
        who = actor(ctx, p)
        shared = {str(a.id) for a in await d.store.find_by_user(who.user) if a.owner != who.user}
        sub = await d.subscriptions.subscribe(ctx.connection, user=who.user, admin=who.admin, types=p.types,
                                              app_id=p.app_id, after=p.after, shared=shared)
        if sub.replaying:
            d.spawn(d.subscriptions.replay(sub), name=f"replay:{sub.id}")
        return {"subscription": sub.id, "last_seq": sub.last_sent}

    @reg.method("events.unsubscribe", api.UnsubscribeParams, bool, summary="End a subscription.",
                tags=("events",))
    async def events_unsubscribe(ctx: CallContext, p: api.UnsubscribeParams) -> bool:
        if ctx.connection is None:
            raise api_error_ws_only()
        return d.subscriptions.unsubscribe(p.subscription, ctx.connection)

    @reg.method("keys.rotate", api.NoParams, api.KeyRotation,
                summary="Admins: re-encrypt every credential under a new data key.", tags=("keys",))
    async def keys_rotate(ctx: CallContext, p: api.NoParams) -> dict[str, Any]:
        if not ctx.principal.is_admin:
            raise PermissionError("only an admin may rotate keys")
        return await d.rotate_keys()


def api_error_ws_only() -> Exception:
    from integd.rpc.errors import RpcError
    return RpcError(-32600, "subscriptions need the WebSocket endpoint /rpc/ws", {"kind": "websocket_only"})
