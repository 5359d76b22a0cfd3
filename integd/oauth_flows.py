"""OAuth connect flows: authorization code + PKCE (loopback listener or paste-back) and the device grant.

A flow lives in memory for at most ten minutes (pending consents do not survive a restart: the person simply
begins again) and belongs to the user who began it: nobody else can see, complete or cancel it (an unknown
flow and someone else's flow give the same not-found answer). Its ``state`` and PKCE verifier never leave the
daemon except inside the authorization URL (the state, as the protocol requires).

    begin ──> started ──(code arrives: loopback / oauth.complete)──> authorized ──> completed (app connected)
                 │  (device grant: the daemon polls by itself)                   └──> failed
                 ├──> expired (10 min)   ├──> cancelled   └──> failed (access_denied, token endpoint error)

A redirect with a wrong or missing state, or leading elsewhere, is refused and the flow stays started (a typo
can be fixed); a second completion of a finished flow is refused (``FlowFinished``). Nothing is stored unless
the flow completes: the app row, its sealed tokens, the grant state and the events commit together.

Progress events: type ``oauth.flow``, payload ``{flow_id, service, flow, state, error, app}`` (app: the new
app's id once completed). They go
through the outbox like every event; having no app yet, their ``app_id`` column holds the flow id and ``user``
the flow's owner, so subscriptions deliver them to the owner (and admins) only.

Errors: integd.oauth_errors (FlowNotFound, FlowExpired, FlowStateMismatch, FlowDenied, TokenEndpointFailed,
FlowGrantRefused, ClientRefused, FlowFinished), each with its JSON-RPC code.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import structlog

from connectors.catalogue import get_service
from connectors.oauth import protocol
from connectors.oauth.client import OAuthClient
from connectors.oauth.protocol import (AuthorizationDenied, ClientInvalid, DeviceAuthorization, DeviceCodeExpired,
                                       GrantInvalid, OAuthFailure, RedirectMismatch, TokenSet)
from domain import (CheckInterval, ConnectedApp, ConnectionTimeout, DomainEvent, DomainException, Integration,
                    IntegrationFailure, IntegrationId, InvalidConfiguration, InvalidStateTransition, RateLimit)
from integd.oauth_clients import ResolvedClient
from integd.oauth_errors import (ClientRefused, FlowDenied, FlowExpired, FlowFinished, FlowGrantRefused,
                                 FlowNotFound, FlowStateMismatch, TokenEndpointFailed)
from integd.oauth_loopback import LoopbackListener

if TYPE_CHECKING:
    from integd.oauth import OAuthFeature
    from integd.usecases import Actor

log = structlog.get_logger("integd.oauth")

FLOW_TTL = 600.0
MIN_POLL = 0.05
FlowKind = Literal["loopback", "paste", "device"]
FlowState = Literal["started", "authorized", "completed", "failed", "expired", "cancelled"]


@dataclass(frozen=True, kw_only=True)
class OAuthFlowEvent(DomainEvent):
    type: ClassVar[str] = "oauth.flow"
    flow_id: str
    service: str
    flow: str
    state: str
    error: str | None = None
    app: str | None = None       # the connected app's id, once completed


@dataclass
class Flow:
    id: str
    owner: str
    service: str
    kind: FlowKind
    name: str | None
    scopes: tuple[str, ...]
    client: ResolvedClient
    created_at: float
    expires_at: float
    base_url: str | None = None
    tenant: str | None = None
    state: FlowState = "started"
    oauth_state: str = field(default_factory=protocol.new_state, repr=False)
    verifier: str = field(default_factory=protocol.new_verifier, repr=False)
    redirect_uri: str | None = None
    authorization_url: str | None = field(default=None, repr=False)
    device: DeviceAuthorization | None = field(default=None, repr=False)
    error: str | None = None
    app_id: str | None = None
    listener: LoopbackListener | None = field(default=None, repr=False)
    task: asyncio.Task[Any] | None = field(default=None, repr=False)
    timer: asyncio.TimerHandle | None = field(default=None, repr=False)

    def view(self) -> dict[str, Any]:
        out: dict[str, Any] = {"flow_id": self.id, "service": self.service, "flow": self.kind, "state": self.state,
                               "expires_at": self.expires_at, "app_id": self.app_id, "error": self.error,
                               "authorization_url": None, "redirect_uri": self.redirect_uri, "user_code": None,
                               "verification_uri": None, "verification_uri_complete": None, "interval": None}
        if self.state in ("started", "authorized"):
            out["authorization_url"] = self.authorization_url
            if self.device is not None:
                out.update(user_code=self.device.user_code, verification_uri=self.device.verification_uri,
                           verification_uri_complete=self.device.verification_uri_complete,
                           interval=self.device.interval)
        return out


def _translate(failure: IntegrationFailure) -> Exception:
    """A protocol failure during a flow -> the flow error the caller sees (message already safe)."""
    if isinstance(failure, AuthorizationDenied):
        return FlowDenied(str(failure))
    if isinstance(failure, GrantInvalid):
        return FlowGrantRefused(str(failure))
    if isinstance(failure, DeviceCodeExpired):
        return FlowExpired(str(failure))
    if isinstance(failure, ClientInvalid):
        return ClientRefused(str(failure))
    if isinstance(failure, OAuthFailure) or failure.category.retryable:
        return TokenEndpointFailed(str(failure))
    return failure


class FlowManager:
    """The flows of this daemon. ``feature`` gives it the daemon's parts (store, runtimes, tokens, spawn)."""

    def __init__(self, feature: OAuthFeature, *, ttl: float = FLOW_TTL) -> None:
        self.feature = feature
        self.ttl = ttl
        self.flows: dict[str, Flow] = {}

    # ---- the RPC side --------------------------------------------------------------------------------
    async def begin(self, actor: Actor, service: str, kind: FlowKind, *, scopes: list[str] | None,
                    name: str | None, tenant: str | None, base_url: str | None) -> Flow:
        f = self.feature
        desc = get_service(service)
        resolved = await f.registry.resolve(service, tenant=tenant)
        if kind == "device" and not resolved.provider.supports_device_flow:
            raise InvalidConfiguration(f"{desc.display_name} has no device authorization grant; use the loopback "
                                       "or paste flow", field="flow")
        if name is not None:
            ConnectedApp.initiate(IntegrationId.generate(), actor.user, service, now=0.0, name=name)  # validates
        now = f.clock.time()
        flow = Flow("flw_" + uuid.uuid4().hex, actor.user, service, kind, name,
                    tuple(scopes) if scopes else resolved.provider.default_scopes or desc.scopes, resolved, now,
                    now + self.ttl, base_url=base_url, tenant=tenant)
        try:
            if kind == "device":
                client = OAuthClient(resolved.provider, resolved.credentials, f.transport, clock=f.clock)
                flow.device = await client.start_device(flow.scopes)
                flow.expires_at = min(flow.expires_at, flow.device.expires_at)
            else:
                flow.redirect_uri = resolved.redirect_uri
                if kind == "loopback":
                    await self._listen(flow)
                flow.authorization_url = protocol.authorization_url(
                    resolved.provider, resolved.credentials.client_id, flow.redirect_uri, flow.scopes,
                    flow.oauth_state, flow.verifier)
        except IntegrationFailure as failure:
            await self._close(flow)
            raise _translate(failure) from None
        self.flows[flow.id] = flow
        flow.timer = asyncio.get_running_loop().call_later(
            max(0.0, flow.expires_at - now), lambda: f.spawn(self._expire(flow.id), name=f"oauth-expire:{flow.id}"))
        if kind == "device":
            flow.task = f.spawn(self._poll(flow), name=f"oauth-device:{flow.id}")
        await self._event(flow)
        log.info("oauth.flow_started", flow_id=flow.id, service=service, flow=kind, user=actor.user)
        return flow

    def visible(self, actor: Actor, flow_id: str) -> Flow:
        flow = self.flows.get(flow_id) if isinstance(flow_id, str) else None
        if flow is None or flow.owner != actor.user:
            raise FlowNotFound(f"no OAuth flow {str(flow_id)[:48]!r}")
        return flow

    async def complete(self, actor: Actor, flow_id: str, pasted: str) -> Flow:
        flow = self.visible(actor, flow_id)
        self._check_open(flow)
        if flow.kind == "device":
            raise InvalidStateTransition("a device flow completes by itself once the code is approved; "
                                         "watch oauth.status or the oauth.flow events")
        await self._complete_with(flow, pasted)
        return flow

    async def cancel(self, actor: Actor, flow_id: str) -> Flow:
        flow = self.visible(actor, flow_id)
        self._check_open(flow)
        await self._end(flow, "cancelled")
        return flow

    # ---- the flow's progress -------------------------------------------------------------------------
    def _check_open(self, flow: Flow) -> None:
        if flow.state == "expired" or (flow.state == "started" and self.feature.clock.time() >= flow.expires_at):
            raise FlowExpired(f"OAuth flow {flow.id} expired; begin a new one")
        if flow.state != "started":
            raise FlowFinished(f"OAuth flow {flow.id} is already {flow.state}")

    async def _complete_with(self, flow: Flow, pasted: str) -> None:
        self._check_open(flow)            # the loopback listener comes here directly
        try:
            code = protocol.code_from_redirect(pasted, flow.oauth_state, flow.redirect_uri)
        except RedirectMismatch as exc:
            raise FlowStateMismatch(str(exc)) from None
        except AuthorizationDenied as failure:
            await self._end(flow, "failed", str(failure))
            raise FlowDenied(str(failure)) from None
        except OAuthFailure as failure:
            await self._end(flow, "failed", str(failure))
            raise _translate(failure) from None
        if flow.state != "started":        # the loopback and a paste raced: the first one wins
            raise FlowFinished(f"OAuth flow {flow.id} is already {flow.state}")
        flow.state = "authorized"
        await self._event(flow)
        client = OAuthClient(flow.client.provider, flow.client.credentials, self.feature.transport,
                             clock=self.feature.clock)
        try:
            assert flow.redirect_uri is not None
            tokens = await client.exchange_code(code, flow.redirect_uri, flow.verifier)
        except IntegrationFailure as failure:
            await self._end(flow, "failed", str(failure))
            raise _translate(failure) from None
        await self._connect(flow, tokens)

    async def _connect(self, flow: Flow, tokens: TokenSet) -> None:
        try:
            flow.app_id = await self.feature.connect_app(flow, tokens, self._completed_event(flow))
        except IntegrationFailure as failure:
            await self._end(flow, "failed", str(failure))
            raise
        except BaseException:
            await self._end(flow, "failed", "the app could not be created")
            raise
        flow.state = "completed"
        await self._close(flow)
        log.info("oauth.flow_completed", flow_id=flow.id, service=flow.service, app_id=flow.app_id)

    def _completed_event(self, flow: Flow) -> Any:
        def make(app_id: str) -> OAuthFlowEvent:
            flow.app_id = app_id
            return self._make_event(flow, "completed")
        return make

    async def _poll(self, flow: Flow) -> None:
        assert flow.device is not None
        f = self.feature
        client = OAuthClient(flow.client.provider, flow.client.credentials, f.transport, clock=f.clock)
        poller = protocol.DevicePoller(flow.client.provider, flow.client.credentials, flow.device)
        while flow.state == "started":
            await asyncio.sleep(max(poller.interval, MIN_POLL))
            if flow.state != "started":
                return
            try:
                tokens = await client.poll_device(poller)
            except IntegrationFailure as failure:
                if failure.category.retryable and not isinstance(failure, OAuthFailure):
                    continue            # a network blip: keep polling until the code expires
                await self._end(flow, "expired" if isinstance(failure, DeviceCodeExpired) else "failed",
                                str(failure))
                return
            if tokens is not None:
                flow.state = "authorized"
                await self._event(flow)
                try:
                    await self._connect(flow, tokens)
                except (IntegrationFailure, DomainException):
                    return

    async def _expire(self, flow_id: str) -> None:
        flow = self.flows.get(flow_id)
        if flow is not None and flow.state == "started":
            await self._end(flow, "expired", "the flow was not completed within ten minutes")
        # finished flows stay visible (oauth.status) for one more TTL, then are forgotten
        if flow is not None:
            asyncio.get_running_loop().call_later(self.ttl, lambda: self.flows.pop(flow_id, None))

    async def _end(self, flow: Flow, state: FlowState, error: str | None = None) -> None:
        if flow.state in ("completed", "failed", "expired", "cancelled"):
            return
        flow.state, flow.error = state, error
        await self._close(flow)
        await self._event(flow)
        log.info("oauth.flow_ended", flow_id=flow.id, service=flow.service, state=state)

    async def _close(self, flow: Flow) -> None:
        if flow.timer is not None and flow.state != "started":
            flow.timer.cancel()
            flow.timer = None
            self.feature.spawn(self._expire(flow.id), name=f"oauth-forget:{flow.id}")
        task, flow.task = flow.task, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()
        listener, flow.listener = flow.listener, None
        if listener is not None:
            self.feature.spawn(listener.close(), name=f"oauth-listener-stop:{flow.id}")

    def _make_event(self, flow: Flow, state: str) -> OAuthFlowEvent:
        return OAuthFlowEvent(app_id=flow.id, user=flow.owner, occurred_at=self.feature.clock.time(),
                              flow_id=flow.id, service=flow.service, flow=flow.kind, state=state, error=flow.error,
                              app=flow.app_id)

    async def _event(self, flow: Flow) -> None:
        async with self.feature.store.transaction() as tx:
            await tx.add_events([self._make_event(flow, flow.state)])

    # ---- the loopback listener (RFC 8252 §7.3) -------------------------------------------------------
    async def _listen(self, flow: Flow) -> None:
        async def redirected(url: str) -> None:
            await self._complete_with(flow, url)
        flow.listener = await LoopbackListener.start(flow.client.redirect_uri, redirected)
        flow.redirect_uri = flow.listener.redirect_uri

    async def stop(self) -> None:
        for flow in list(self.flows.values()):
            if flow.timer is not None:
                flow.timer.cancel()
            if flow.task is not None:
                flow.task.cancel()
            if flow.listener is not None:
                await flow.listener.close()
                flow.listener = None


def integration_for(feature: OAuthFeature, service: str, scopes: tuple[str, ...], base_url: str | None) -> Integration:
    """The new app's settings: the provider's published limit (narrowed by the config), default timeout."""
    desc = get_service(service)
    svc_conf = feature.config.services.get(service)
    published = desc.rate_limit
    if svc_conf is not None:
        published = RateLimit(**svc_conf.rate_limit.model_dump()).merged_over(published)
    return Integration(base_url=base_url.rstrip("/") if base_url else None, rate_limit=published,
                       timeout=ConnectionTimeout(svc_conf.timeout if svc_conf and svc_conf.timeout else 30.0),
                       check_interval=CheckInterval(feature.config.health.interval), scopes=scopes)


__all__ = ["Flow", "FlowManager", "OAuthFlowEvent", "integration_for"]
