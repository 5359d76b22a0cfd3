"""The contract every OAuth service of issue 4 part B proves against its emulator (Gmail, Google Drive, Outlook,
OneDrive, Teams); each ``test_connector_<service>.py`` subclasses :class:`ServiceContract`.

Proved per service, over loopback HTTP with real sockets: an access token issued by the emulator's own
authorization server (authorization code + PKCE through connectors.oauth) validates and names the account;
identity; a paginated list walk equals one big page; each error class from the provider's real body (401,
403 permission, rate limit, 5xx; 404 handed back); Retry-After honoured with zero rejected calls once the
gate has learnt it; expired and revoked tokens -> AUTH_FAILED; refresh in the provider's style (Google keeps
the refresh token, Microsoft rotates and the old one survives).

Time: emulator, gate, connector and OAuth client share one FakeClock; sleeps move it, so nothing waits.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import aiohttp
import pytest

from connectors.base import ApiRequest, CallRecord, Connector
from connectors.emulators import EMULATORS
from connectors.factory import build_connector, connector_class
from connectors.http import HttpTransport
from connectors.limits import CallGate, MemoryQuotaStore
from connectors.oauth import oauth_provider, protocol
from connectors.oauth.client import OAuthClient
from connectors.oauth.protocol import ClientCredentials, GrantInvalid, TokenSet
from domain.clock import FakeClock
from domain.errors import IntegrationError, IntegrationFailure
from domain.model import ApiCredential
from domain.values import RateLimit, RetryPolicy

GOOD = "good-token-0000000000000000000000000001"
OTHER = "other-token-000000000000000000000000002"
CLIENT = ClientCredentials("emulator-client.apps.example", "client-secret-for-tests")
REDIRECT = "http://127.0.0.1:47123/callback"
AUTH = IntegrationError.AUTHENTICATION_FAILED
RATE = IntegrationError.RATE_LIMIT_EXCEEDED
DOWN = IntegrationError.SERVICE_UNAVAILABLE
GRAPH_AUTH = {"unknown": "InvalidAuthenticationToken: IDX14100", "expired": "Access token has expired",
              "revoked": "has been revoked"}


@dataclass
class Env:
    service: str
    emu: Any
    transport: HttpTransport
    clock: FakeClock
    sleeps: list[float] = field(default_factory=list)
    records: list[CallRecord] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return self.emu.origin + {"gmail": "/gmail/v1", "google_drive": "/drive/v3"}.get(self.service, "/v1.0")

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.clock.advance(seconds)
        await asyncio.sleep(0)

    def connector(self, token: str = GOOD, **kw: Any) -> Connector:
        kw.setdefault("base_url", self.base_url)
        return build_connector(self.service, ApiCredential.from_tokens(token), app_id="int_test",
                               transport=self.transport, observer=self.records.append, clock=self.clock,
                               sleep=self.sleep, **kw)

    def provider(self) -> Any:
        provider = oauth_provider(self.service)
        if "{tenant}" in provider.token_url:
            provider = provider.for_tenant("contoso.example")
        return provider.with_auth_base(self.emu.origin)

    def oauth_client(self) -> OAuthClient:
        return OAuthClient(self.provider(), CLIENT, self.transport, clock=self.clock)

    async def consent(self, scopes: tuple[str, ...] | None = None) -> TokenSet:
        """The whole authorization-code flow with PKCE against the emulator's authorization server."""
        provider = self.provider()
        state, verifier = protocol.new_state(), protocol.new_verifier()
        url = protocol.authorization_url(provider, CLIENT.client_id, REDIRECT,
                                         provider.default_scopes if scopes is None else scopes, state, verifier)
        async with aiohttp.ClientSession() as browser:
            async with browser.get(url, allow_redirects=False) as answer:
                assert answer.status == 302, await answer.text()
                location = answer.headers["Location"]
        code = protocol.code_from_redirect(location, state, REDIRECT)
        return await self.oauth_client().exchange_code(code, REDIRECT, verifier)


def failure_of(result: Any) -> IntegrationFailure:
    assert isinstance(result, IntegrationFailure), result
    return result


class ServiceContract:
    """Subclass with ``service`` (the catalogue name) and the service's requests below."""

    service: ClassVar[str]
    identity_path: ClassVar[str]                  # as logged by the emulator (full path)
    missing: ClassVar[ApiRequest]                 # a request for something that does not exist (404)
    narrow_scopes: ClassVar[tuple[str, ...]]      # a grant too narrow for `list_requests`
    auth_messages: ClassVar[dict[str, str]]       # unknown / expired / revoked -> text in the failure

    async def list_requests(self, env: Env) -> tuple[ApiRequest, ApiRequest, Callable[[Any], int]]:
        """(a small-page list request, the same list in one page, how to count a page's items)."""
        raise AssertionError("each service defines its list")

    @pytest.fixture
    async def env(self) -> AsyncIterator[Env]:
        clock = FakeClock()
        emu = EMULATORS[self.service](tokens=[GOOD], seed=1, clock=clock.time)
        emu.oauth.register_client(CLIENT.client_id, CLIENT.secret, [REDIRECT])
        await emu.start(host="127.0.0.1", port=0)
        transport = HttpTransport()
        try:
            yield Env(self.service, emu, transport, clock)
        finally:
            await transport.close()
            await emu.stop()

    # ---- tokens from the emulator's authorization server -------------------------------------------------

    async def test_oauth_descriptor_has_the_providers_real_parameters(self, env: Env) -> None:
        provider = oauth_provider(self.service)
        assert provider.pkce and provider.default_scopes
        assert connector_class(self.service).descriptor.name == self.service
        if self.service in ("gmail", "google_drive"):
            assert provider.authorize_url == "https://accounts.google.com/o/oauth2/v2/auth"
            assert provider.token_url == "https://oauth2.googleapis.com/token"
            assert provider.extra_authorize_params.items() >= {"access_type": "offline", "prompt": "consent"}.items()
            assert not provider.rotates_refresh_tokens and provider.supports_revocation
        else:
            common = provider.for_tenant("common")
            assert common.authorize_url == "https://login.microsoftonline.com/common/oauth2/v2.0/authorize"
            assert common.device_authorization_url.endswith("/common/oauth2/v2.0/devicecode")
            assert "offline_access" in provider.default_scopes
            assert provider.rotates_refresh_tokens and provider.old_refresh_token_survives_rotation
            assert not provider.supports_revocation

    async def test_a_token_issued_by_the_authorization_server_validates(self, env: Env) -> None:
        tokens = await env.consent()
        lifetime = env.emu.oauth.options.access_token_lifetime
        assert tokens.refresh_token and tokens.expires_at == pytest.approx(env.clock.time() + lifetime)
        identity = await env.connector(tokens.access_token).authenticate()
        same_user = await env.connector(GOOD).authenticate()
        assert identity.account_id and identity.display and tokens.access_token not in repr(identity)
        assert identity.account_id != same_user.account_id       # the grant's subject, not the token, decides
        result = await env.connector(tokens.access_token).validate_connection()
        assert result.ok and result.status == 200

    async def test_an_issued_token_expires_and_a_refresh_brings_a_working_one(self, env: Env) -> None:
        tokens = await env.consent()
        env.clock.advance(env.emu.oauth.options.access_token_lifetime + 1)
        expired = failure_of(await self._try_identity(env, tokens.access_token))
        assert expired.category is AUTH and self.auth_messages["expired"] in str(expired)
        assert env.emu.hits(self.identity_path) == 1                 # an auth failure is never retried
        fresh = await env.oauth_client().refresh(tokens.refresh_token)
        assert (await env.connector(fresh.access_token).authenticate()).account_id
        if self.service in ("gmail", "google_drive"):
            assert fresh.refresh_token is None                      # Google keeps the original: no rotation
            again = await env.oauth_client().refresh(tokens.refresh_token)
            assert again.access_token != fresh.access_token
        else:
            assert fresh.refresh_token and fresh.refresh_token != tokens.refresh_token   # rotated
            survivor = await env.oauth_client().refresh(tokens.refresh_token)           # old one still works
            assert survivor.access_token

    async def test_a_revoked_grant_fails_the_api_and_the_refresh(self, env: Env) -> None:
        tokens = await env.consent()
        connector = env.connector(tokens.access_token)
        await connector.authenticate()
        if self.service in ("gmail", "google_drive"):
            assert await env.oauth_client().revoke(tokens.refresh_token, "refresh_token") is True
        else:     # Graph has no RFC 7009 endpoint: sessions are revoked through Graph itself
            assert await env.oauth_client().revoke(tokens.refresh_token, "refresh_token") is None
            answer = await connector.send_request(ApiRequest("POST", "/me/revokeSignInSessions"))
            assert answer.status == 200 and answer.body["value"] is True
        revoked = failure_of(await self._try_identity(env, tokens.access_token))
        assert revoked.category is AUTH and self.auth_messages["revoked"] in str(revoked)
        with pytest.raises(GrantInvalid) as info:
            await env.oauth_client().refresh(tokens.refresh_token)
        assert info.value.category is AUTH and tokens.refresh_token not in str(info.value)

    async def _try_identity(self, env: Env, token: str) -> Any:
        try:
            return await env.connector(token).authenticate()
        except IntegrationFailure as failure:
            assert token not in str(failure) and token not in repr(failure)
            return failure

    # ---- identity, pagination ---------------------------------------------------------------------------

    async def test_unknown_and_directly_revoked_or_expired_tokens_are_auth_failures(self, env: Env) -> None:
        unknown = failure_of(await self._try_identity(env, OTHER))
        assert unknown.category is AUTH and unknown.status == 401
        assert self.auth_messages["unknown"] in str(unknown)
        env.emu.add_token(OTHER, expires_at=env.clock.time() + 60)
        await env.connector(OTHER).authenticate()
        env.clock.advance(61)
        expired = failure_of(await self._try_identity(env, OTHER))
        assert expired.category is AUTH and self.auth_messages["expired"] in str(expired)
        env.emu.revoke(GOOD)
        revoked = await env.connector(GOOD).validate_connection()
        assert not revoked.ok and revoked.category is AUTH and revoked.status == 401

    async def test_a_paginated_walk_collects_every_item(self, env: Env) -> None:
        small, whole, count = await self.list_requests(env)
        connector = env.connector()
        pages = [page async for page in connector.pages(small)]
        everything = await connector.send_request(whole)
        assert len(pages) > 2 and all(p.status == 200 and p.attempts == 1 for p in pages)
        assert sum(count(p.body) for p in pages) == count(everything.body) > 0
        assert pages[-1].next_page() is None and everything.next_page() is None

    async def test_a_missing_resource_is_handed_back_not_a_failure(self, env: Env) -> None:
        answer = await env.connector().send_request(self.missing)
        assert answer.status == 404 and not answer.ok and "error" in answer.body
        assert env.records[-1].outcome == "ok"

    # ---- error classes from the provider's real bodies -------------------------------------------------

    async def test_a_grant_without_the_needed_scope_is_an_auth_failure(self, env: Env) -> None:
        env.emu.add_token(OTHER, scopes=self.narrow_scopes)
        small, _, _ = await self.list_requests(env)
        with pytest.raises(IntegrationFailure) as info:
            await env.connector(OTHER).send_request(small)
        assert info.value.category is AUTH and info.value.status == 403
        assert info.value.provider_code in ("insufficientPermissions", "ErrorAccessDenied", "accessDenied",
                                            "Forbidden")

    async def test_server_errors_are_service_unavailable_and_retried(self, env: Env) -> None:
        env.emu.faults.error_rate = 1.0
        with pytest.raises(IntegrationFailure) as info:
            await env.connector().send_request(ApiRequest("GET", self._identity_request(env)), interactive=False)
        assert info.value.category is DOWN and info.value.status in (500, 502, 503, 504)
        assert env.emu.hits(self.identity_path) == 4 and len(env.sleeps) == 3

    def _identity_request(self, env: Env) -> str:
        return connector_class(self.service).descriptor.identity_endpoint

    async def test_burst_rate_limit_is_retried_after_retry_after(self, env: Env) -> None:
        env.emu.faults.rate_limit_burst = 2
        env.emu.faults.burst_retry_after = 7
        answer = await env.connector().send_request(ApiRequest("GET", self._identity_request(env)),
                                                    interactive=False)
        assert answer.status == 200 and answer.attempts == 3
        assert [r.outcome for r in env.records] == ["rate_limit", "rate_limit", "ok"]
        assert env.sleeps == [7.0, 7.0]

    async def test_retry_after_is_learnt_by_the_gate_and_nothing_more_is_refused(self, env: Env) -> None:
        self.provider_sends_retry_after(env)
        env.emu.set_rate_limit(5, 60)
        gate = CallGate("int_test", RateLimit(per_minute=6000, burst=100), store=MemoryQuotaStore(),
                        clock=env.clock, sleep=env.sleep)
        request = ApiRequest("GET", self._identity_request(env))
        first = env.connector(gate=gate, retry=RetryPolicy.none())
        for _ in range(5):
            await first.send_request(request, interactive=False)
        refused = failure_of(await self._attempt(first, request))
        window_left = 60 - env.clock.time() % 60
        assert refused.category is RATE and refused.retry_after == pytest.approx(window_left, abs=1)
        statuses_before = len(env.emu.request_log)
        later = env.connector(gate=gate)
        results = await asyncio.gather(*(self._attempt(later, request) for _ in range(5)))
        assert all(getattr(r, "status", None) == 200 for r in results)
        assert [e.status for e in env.emu.request_log[statuses_before:]] == [200] * 5   # zero 429s
        assert min(env.sleeps) >= window_left - 1

    def provider_sends_retry_after(self, env: Env) -> None:
        """Graph always does; Google only with the emulator's knob (none is documented)."""

    async def _attempt(self, connector: Connector, request: ApiRequest) -> Any:
        try:
            return await connector.send_request(request, interactive=False)
        except IntegrationFailure as failure:
            return failure

