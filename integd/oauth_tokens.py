"""The token lifecycle of OAuth apps: proactive refresh, single flight, durable rotation, dead grants.

One ``AppTokens`` per OAuth app lives as long as the daemon (connectors are rebuilt on every app change; this
is not) and is the connector's ``TokenSource`` (connectors.base)::

    ensure_fresh()  token valid beyond the margin   -> nothing
                    inside the margin, still valid  -> a background refresh starts (callers go on with the
                                                       current token: no call waits for a proactive refresh)
                    expired (or within 5 s of it)   -> every caller awaits the ONE shared refresh task
    on_unauthorized(gen)  the provider said 401 to token `gen`: if a newer token exists, retry with it; else
                    the shared refresh runs, and the connector retries once

A refresh, in order::

    1. commit grant state "refreshing" (write-ahead marker, own transaction). Written for every provider, not
       only those described as revoking the old refresh token (GitHub, Slack): a misdescribed or changed
       provider then still gets the precise cause; the cost is one small write per refresh
    2. POST token endpoint (no transaction open)                    <- INTEGD_TEST_CRASH_AFTER_TOKEN_RESPONSE=1
    3. one transaction: the new tokens into the vault (apps.credential) + grant state "ok"     os._exit(137)s
    4. only now the new access token is used                                                   between 2 and 3

Crash safety: where the old refresh token survives rotation (Microsoft) or tokens never rotate (Google,
Dropbox), a crash between 2 and 3 leaves the stored (old) refresh token valid, so the next refresh simply
works: proven by the kill -9 test. Where the provider revokes the old refresh token at once, no client can
make that window safe; the marker turns the otherwise puzzling invalid_grant after a restart into a precise
cause ("the refresh answer was lost before it could be stored; reconnect"). The README says so.

Failures: invalid_grant (GrantInvalid) -> grant state "dead" with its reason, the failure (AUTH_FAILED) is
raised to the caller whose failure path makes the app unauthorized with one IntegrationFailedEvent; later
calls fail at once without a token request. Outages (5xx, garbage, network) -> exponential back-off (1 s .. 5
min); the grant is not touched and callers get the outage failure (SERVICE_UNAVAILABLE / NETWORK_ERROR).
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import replace

import structlog

from connectors.http import HttpTransport
from connectors.oauth.client import OAuthClient
from connectors.oauth.protocol import GrantInvalid, OAuthFailure, TokenSet
from domain import ApiCredential, AuthMode, Clock, ConnectedApp, IntegrationError, IntegrationFailure
from integd.oauth_clients import ClientRegistry
from integd.oauth_store import OAuthStore
from integd.store.repository import AppStore

log = structlog.get_logger("integd.oauth")

CRASH_HOOK = "INTEGD_TEST_CRASH_AFTER_TOKEN_RESPONSE"
EXPIRY_SKEW = 5.0            # a token this close to expiry is treated as expired
BACKOFF_MIN, BACKOFF_MAX = 1.0, 300.0
LOST_ROTATION = ("the provider refused the stored refresh token (invalid_grant) after a refresh whose answer was "
                 "lost before it could be stored (crash or network failure); the provider revoked the old "
                 "refresh token when it issued the new one, so the grant is gone: reconnect the app")


def credential_from(tokens: TokenSet, previous: ApiCredential | None = None, *,
                    now: float | None = None) -> ApiCredential:
    """The stored credential for a token response; a response without a refresh token keeps the old one.

    ``obtained_at`` (non-secret) lets the refresh margin shrink for short-lived tokens (see AppTokens).
    """
    refresh = tokens.refresh_token or (previous.secrets.get("refresh_token") if previous else None)
    attrs = dict(previous.attributes) if previous else {}
    # The response's non-secret details (Salesforce's instance_url and Pipedrive's api_domain are the API host
    # the connector must call; Slack's team): a refresh that repeats them keeps them current.
    attrs.update(tokens.extra)
    if now is not None:
        attrs["obtained_at"] = now
    attrs.pop("expires_at", None)
    attrs.pop("scopes", None)
    attrs.pop("token_type", None)
    return ApiCredential.from_tokens(tokens.access_token, refresh, expires_at=tokens.expires_at,
                                     scopes=list(tokens.scopes) or (previous.attributes.get("scopes") if previous
                                                                    else None), token_type=tokens.token_type,
                                     **attrs)


class AppTokens:
    """The TokenSource of one app (module docstring)."""

    def __init__(self, manager: TokenManager, app_id: str, service: str, credential: ApiCredential, *,
                 dead_reason: str | None = None) -> None:
        self.manager, self.app_id, self.service = manager, app_id, service
        self._credential = credential
        self._generation = 0
        self._task: asyncio.Task[None] | None = None
        self._dead: IntegrationFailure | None = None
        if dead_reason is not None:
            self._dead = IntegrationFailure(IntegrationError.AUTHENTICATION_FAILED, dead_reason,
                                            provider_code="invalid_grant")
        self._outage: IntegrationFailure | None = None
        self._retry_at = 0.0
        self._backoff = BACKOFF_MIN
        self.refreshes = 0

    @property
    def credential(self) -> ApiCredential:
        return self._credential

    @property
    def generation(self) -> int:
        return self._generation

    @property
    def expires_at(self) -> float | None:
        value = self._credential.attributes.get("expires_at")
        return float(value) if isinstance(value, (int, float)) else None

    async def ensure_fresh(self) -> None:
        if self._dead is not None:
            raise self._dead
        expires = self.expires_at
        if expires is None:
            return
        now = self.manager.clock.time()
        if now >= expires - EXPIRY_SKEW:
            await self._shared_refresh(now)
        elif now >= expires - self._margin(expires) and now >= self._retry_at:
            self._start()

    def _margin(self, expires: float) -> float:
        """The configured margin, but at most half the token's lifetime (no refresh storm for short tokens)."""
        obtained = self._credential.attributes.get("obtained_at")
        if isinstance(obtained, (int, float)) and expires > obtained:
            return min(self.manager.margin, (expires - obtained) / 2)
        return self.manager.margin

    async def on_unauthorized(self, generation: int) -> bool:
        if self._dead is not None:
            raise self._dead
        if generation != self._generation:
            return True
        await self._shared_refresh(self.manager.clock.time(), forced=True)
        return generation != self._generation

    async def _shared_refresh(self, now: float, *, forced: bool = False) -> None:
        if self._task is None and now < self._retry_at and self._outage is not None:
            raise self._outage            # backing off: no token request until the back-off ends
        if self._task is None and not forced and (self.expires_at or 0) > now + EXPIRY_SKEW:
            return                        # someone refreshed meanwhile
        self._start()
        assert self._task is not None
        await asyncio.shield(self._task)

    def _start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._refresh(), name=f"oauth-refresh:{self.app_id}")
            self._task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._task = None
        if not task.cancelled() and task.exception() is not None:   # retrieved here; awaiting callers re-raise
            log.info("oauth.refresh_failed", app_id=self.app_id, error=str(task.exception()))

    async def _refresh(self) -> None:
        m = self.manager
        refresh_token = self._credential.secrets.get("refresh_token")
        if not refresh_token:
            raise IntegrationFailure(IntegrationError.AUTHENTICATION_FAILED,
                                     f"{self.service}: the access token expired and the provider issued no "
                                     "refresh token; reconnect the app")
        resolved = await m.registry.resolve(self.service, tenant=self._credential.attributes.get("tenant"))
        await m.oauth_store.set_grant(self.app_id, "refreshing", now=m.clock.time())
        client = OAuthClient(resolved.provider, resolved.credentials, m.transport, clock=m.clock)
        try:
            tokens = await client.refresh(refresh_token)
        except GrantInvalid as failure:
            await self._mark_dead(failure)
            raise self._dead from None
        except IntegrationFailure as failure:
            if failure.status is not None:     # the provider answered (5xx, garbage): no new token was issued
                await m.oauth_store.set_grant(self.app_id, "ok", now=m.clock.time())
            self._outage = failure
            self._retry_at = m.clock.time() + self._backoff
            self._backoff = min(BACKOFF_MAX, self._backoff * 2)
            raise
        if os.environ.get(CRASH_HOOK) == "1":
            os._exit(137)     # fault injection: the token answer is lost before the commit (kill -9 test)
        credential = credential_from(tokens, self._credential, now=m.clock.time())
        await m.commit(self.app_id, credential)
        self._credential = credential
        self._generation += 1
        self._outage, self._retry_at, self._backoff = None, 0.0, BACKOFF_MIN
        self.refreshes += 1
        log.info("oauth.refreshed", app_id=self.app_id, service=self.service, expires_at=tokens.expires_at,
                 rotated=bool(tokens.refresh_token and tokens.refresh_token != refresh_token))

    async def _mark_dead(self, failure: OAuthFailure) -> None:
        m = self.manager
        grant = await m.oauth_store.grant(self.app_id)
        if grant is not None and grant.state == "refreshing":
            reason = f"{self.service}: {LOST_ROTATION}"
        else:
            reason = (f"{self.service}: the provider refused the refresh token ({failure.error}); it was revoked "
                      "or expired: reconnect the app")
        await m.oauth_store.set_grant(self.app_id, "dead", now=m.clock.time(), reason=reason)
        self._dead = IntegrationFailure(IntegrationError.AUTHENTICATION_FAILED, reason, status=failure.status,
                                        provider_code=failure.error)
        log.warning("oauth.grant_dead", app_id=self.app_id, service=self.service, code=failure.error)


class TokenManager:
    """All AppTokens, by app id. ``source_for(app)`` is the Runtimes hook for OAuth apps."""

    def __init__(self, *, store: AppStore, oauth_store: OAuthStore, registry: ClientRegistry,
                 transport: HttpTransport, clock: Clock, margin: float) -> None:
        self.store, self.oauth_store, self.registry = store, oauth_store, registry
        self.transport, self.clock, self.margin = transport, clock, margin
        self._apps: dict[str, AppTokens] = {}

    async def source_for(self, app: ConnectedApp) -> AppTokens | None:
        if app.credential is None or app.credential.mode is not AuthMode.OAUTH2:
            return None
        key = str(app.id)
        tokens = self._apps.get(key)
        if tokens is None:
            grant = await self.oauth_store.grant(key)
            dead = grant.reason if grant is not None and grant.state == "dead" else None
            tokens = self._apps.setdefault(key, AppTokens(self, key, app.service, app.credential, dead_reason=dead))
        return tokens

    def get(self, app_id: str) -> AppTokens | None:
        return self._apps.get(app_id)

    def forget(self, app_id: str) -> None:
        tokens = self._apps.pop(app_id, None)
        if tokens is not None and tokens._task is not None:
            tokens._task.cancel()

    async def commit(self, app_id: str, credential: ApiCredential) -> None:
        """Step 3: the new tokens and the cleared marker in one transaction (shielded from cancellation)."""
        async def write() -> None:
            async with self.store.transaction() as tx:
                app = await tx.get(app_id)
                app.set_credentials(credential, now=self.clock.time())
                await tx.save(app, credential_changed=True)
                await self.oauth_store.set_grant(app_id, "ok", now=self.clock.time(), conn=tx.conn)
        await asyncio.shield(write())

    async def stop(self) -> None:
        tasks = [t._task for t in self._apps.values() if t._task is not None]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)


def with_tenant(credential: ApiCredential, tenant: str | None) -> ApiCredential:
    return replace(credential, attributes={**credential.attributes, "tenant": tenant}) if tenant else credential
