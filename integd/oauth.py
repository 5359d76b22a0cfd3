"""The OAuth feature (listed in integd.bootstrap.FEATURES): wiring, the connect step, revocation, RPC methods.

Parts (each in its own module): ``oauth_store`` (tables, sealed client secrets, grant state), ``oauth_clients``
(which client we are at each provider; generic providers), ``oauth_tokens`` (the token lifecycle: the
connectors' TokenSource), ``oauth_flows`` (begin/complete/status/cancel), ``api_oauth`` (wire models),
``oauth_errors`` (errors and codes). This module builds them from the daemon's parts, hooks the token manager
into ``Runtimes`` and revocation into ``UseCases.disconnect``, and registers the ``oauth.*`` methods.

Trust model: a flow and its events belong to the user who began it; ``oauth.clients.set`` is admin-only; client
secrets, tokens, PKCE verifiers and states never appear in a result, an event or a log line.

>>> # daemon.oauth.flows.begin(actor, "github", "device", ...) ; daemon.oauth.tokens.get(app_id).refreshes
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

import structlog

from connectors.oauth.client import OAuthClient
from connectors.oauth.protocol import TokenSet
from domain import ConnectedApp, IntegrationFailure, IntegrationId
from integd import api_oauth as api
from integd.oauth_clients import ClientRegistry
from integd.oauth_flows import Flow, FlowManager, OAuthFlowEvent, integration_for
from integd.oauth_store import OAuthStore
from integd.oauth_tokens import TokenManager, credential_from, with_tenant
from integd.rpc.registry import CallContext, MethodRegistry
from integd.usecases import Actor

if TYPE_CHECKING:
    from integd.bootstrap import Daemon

log = structlog.get_logger("integd.oauth")


class OAuthFeature:
    """Everything OAuth in one daemon (``daemon.oauth``)."""

    def __init__(self, daemon: Daemon) -> None:
        assert daemon.db is not None
        self.daemon = daemon
        self.config, self.clock, self.store = daemon.config, daemon.clock, daemon.store
        self.transport = daemon.transport
        self.oauth_store = OAuthStore(daemon.db, daemon.vault)
        self.registry = ClientRegistry(daemon.config, self.oauth_store, credentials_dir=daemon.credentials_dir)
        self.tokens = TokenManager(store=daemon.store, oauth_store=self.oauth_store, registry=self.registry,
                                   transport=daemon.transport, clock=daemon.clock,
                                   margin=daemon.config.oauth.refresh_margin)
        self.flows = FlowManager(self)
        daemon.runtimes.token_sources = self.tokens.source_for
        daemon.usecases.revoke_credential = self.revoke

    def spawn(self, coro: Coroutine[Any, Any, Any], *, name: str) -> Any:
        return self.daemon.spawn(coro, name=name)

    async def connect_app(self, flow: Flow, tokens: TokenSet, make_event: Callable[[str], OAuthFlowEvent]) -> str:
        """Create the ConnectedApp from a flow's tokens, after the identity endpoint accepted them.

        One transaction: the app (sealed tokens), its AppConnectedEvent (auth_mode oauth2), grant state "ok" and
        the flow's completed event. Nothing is stored if the identity check fails.
        """
        d = self.daemon
        now = self.clock.time()
        app = ConnectedApp.initiate(IntegrationId.generate(), flow.owner, flow.service, now=now, name=flow.name,
                                    integration=integration_for(self, flow.service, tokens.scopes or flow.scopes,
                                                                flow.base_url))
        app.authorize(with_tenant(credential_from(tokens, now=now), flow.tenant), now=now)
        app_id = str(app.id)
        try:
            identity = await (await d.runtimes.build(app)).authenticate()
        finally:
            self.tokens.forget(app_id)        # rebuilt from the stored credential on first use
            d.runtimes.drop(app_id)
        app.set_credentials(app.credential.with_attributes(account=identity.account_id, display=identity.display),
                            now=now)
        app.establish(now=self.clock.time())
        async with self.store.transaction() as tx:
            await tx.save(app, credential_changed=True)
            await self.oauth_store.set_grant(app_id, "ok", now=now, conn=tx.conn)
            await tx.add_events([make_event(app_id)])
        d.scheduler.schedule_now(app_id, app.integration.check_interval.seconds)
        log.info("app.connected", app_id=app_id, service=app.service, user=flow.owner, account=identity.display,
                 auth_mode="oauth2")
        return app_id

    async def revoke(self, app: ConnectedApp) -> dict[str, Any] | None:
        """Disconnect's revocation: the refresh token (the whole grant) or else the access token.

        Returns None for a non-OAuth app; else ``{"revoked": bool | None, "error": str | None}`` where None
        means the provider offers no revocation. Never raises: the credential is deleted regardless.
        """
        cred = app.credential
        self.tokens.forget(str(app.id))
        if cred is None or cred.mode.value != "oauth2":
            return None
        try:
            resolved = await self.registry.resolve(app.service, tenant=cred.attributes.get("tenant"))
            client = OAuthClient(resolved.provider, resolved.credentials, self.transport, clock=self.clock)
            token, hint = cred.secrets.get("refresh_token"), "refresh_token"
            if token is None or resolved.provider.revocation_style in ("github", "slack"):
                token, hint = cred.secrets["access_token"], "access_token"
            ok = await client.revoke(token, hint)   # type: ignore[arg-type]
        except Exception as exc:   # reported in the result, never fatal: the local delete must happen
            message = str(exc) if isinstance(exc, IntegrationFailure) else type(exc).__name__
            log.warning("oauth.revoke_failed", app_id=str(app.id), service=app.service, error=message)
            return {"revoked": False, "error": message[:300]}
        if ok is None:
            return {"revoked": None, "error": None}
        return {"revoked": ok, "error": None if ok else "the provider did not confirm the revocation"}

    async def stop(self) -> None:
        await self.flows.stop()
        await self.tokens.stop()
        self.registry.close()


def register(reg: MethodRegistry, d: Daemon) -> None:
    feature = OAuthFeature(d)
    d.oauth = feature            # type: ignore[attr-defined]
    flows, flow_errors = feature.flows, ((-32015, "oauth_flow_not_found"), (-32016, "oauth_flow_expired"))

    def actor(ctx: CallContext, p: Any) -> Actor:
        return Actor.of(ctx.principal, getattr(p, "as_user", None))

    @reg.method("oauth.begin", api.BeginParams, api.FlowView, tags=("oauth",),
                summary="Begin connecting a service by OAuth: an authorization URL, or a user code (device).",
                description="flow=loopback listens on 127.0.0.1 for the redirect; paste expects oauth.complete "
                            "with the redirect URL; device polls by itself. Progress: oauth.flow events.")
    async def oauth_begin(ctx: CallContext, p: api.BeginParams) -> dict[str, Any]:
        flow = await flows.begin(actor(ctx, p), p.service, p.flow, scopes=p.scopes, name=p.name, tenant=p.tenant,
                                 base_url=p.base_url)
        return flow.view()

    @reg.method("oauth.complete", api.CompleteParams, api.FlowView, tags=("oauth",),
                summary="Complete a flow with the redirect URL (or bare code) pasted from the browser.",
                errors=flow_errors + ((-32017, "oauth_state_mismatch"), (-32018, "oauth_access_denied"),
                                      (-32019, "oauth_token_endpoint_failed"), (-32020, "oauth_grant_refused"),
                                      (-32023, "oauth_flow_finished")))
    async def oauth_complete(ctx: CallContext, p: api.CompleteParams) -> dict[str, Any]:
        return (await flows.complete(actor(ctx, p), p.flow_id, p.pasted)).view()

    @reg.method("oauth.status", api.FlowRef, api.FlowView, tags=("oauth",), summary="Where a flow stands.",
                errors=flow_errors[:1])
    async def oauth_status(ctx: CallContext, p: api.FlowRef) -> dict[str, Any]:
        return flows.visible(actor(ctx, p), p.flow_id).view()

    @reg.method("oauth.cancel", api.FlowRef, api.FlowView, tags=("oauth",), summary="Abandon a flow.",
                errors=flow_errors + ((-32023, "oauth_flow_finished"),))
    async def oauth_cancel(ctx: CallContext, p: api.FlowRef) -> dict[str, Any]:
        return (await flows.cancel(actor(ctx, p), p.flow_id)).view()

    @reg.method("oauth.clients.set", api.ClientSetParams, api.ClientView, tags=("oauth",),
                summary="Admins: register the OAuth client for a service (the secret is stored encrypted).")
    async def oauth_clients_set(ctx: CallContext, p: api.ClientSetParams) -> dict[str, Any]:
        if not ctx.principal.is_admin:
            raise PermissionError("only an admin may register OAuth clients")
        from connectors.oauth import oauth_provider
        base = oauth_provider(p.service)
        if p.auth_base_url:
            base.with_auth_base(p.auth_base_url)       # validates
        if p.tenant:
            base.for_tenant(p.tenant)
        secret = p.client_secret.get_secret_value() if p.client_secret is not None else None
        await feature.oauth_store.set_client(p.service, p.client_id, secret, auth_base_url=p.auth_base_url,
                                             tenant=p.tenant, now=feature.clock.time(), by=ctx.principal.user)
        log.info("oauth.client_set", service=p.service, by=ctx.principal.user)
        stored = await feature.oauth_store.get_client(p.service)
        assert stored is not None
        return stored.redacted()

    @reg.method("oauth.clients.list", api.NoParams, list[api.ClientView], tags=("oauth",),
                summary="The registered OAuth clients, secrets redacted to a hint.")
    async def oauth_clients_list(ctx: CallContext, p: api.NoParams) -> list[dict[str, Any]]:
        return await feature.registry.listing()


async def start(d: Daemon) -> None:
    """Nothing runs in the background until a flow begins or a token nears expiry."""


async def stop(d: Daemon) -> None:
    feature = getattr(d, "oauth", None)
    if feature is not None:
        await feature.stop()
