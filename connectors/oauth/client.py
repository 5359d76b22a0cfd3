"""The OAuth client's I/O: carries ``connectors.oauth.protocol`` requests over our HttpTransport (aiohttp).

No Authlib HTTP client (it needs httpx); every token request goes through the same transport as the API calls,
so its errors are already IntegrationFailures (network -> NETWORK_ERROR, retryable). Protocol failures are the
protocol module's typed OAuthFailures. Nothing here retries or stores: callers own that (integd's token
manager backs off on outages and commits tokens durably).

>>> client = OAuthClient(oauth_provider("github"), ClientCredentials("Iv1.x", "s"), HttpTransport())  # doctest: +SKIP
>>> tokens = await client.refresh(stored_refresh_token)                                                # doctest: +SKIP
"""

from __future__ import annotations

from typing import Literal

from connectors.http import HttpTransport, RawResponse
from connectors.oauth import protocol
from connectors.oauth.protocol import ClientCredentials, DeviceAuthorization, TokenRequest, TokenSet
from connectors.oauth.provider import OAuthProvider
from domain.clock import Clock, SystemClock

TOKEN_TIMEOUT = 20.0


class OAuthClient:
    """Token endpoint calls for one provider and client registration."""

    def __init__(self, provider: OAuthProvider, client: ClientCredentials, transport: HttpTransport, *,
                 clock: Clock | None = None, timeout: float = TOKEN_TIMEOUT) -> None:
        self.provider, self.client, self.transport = provider, client, transport
        self.clock: Clock = clock or SystemClock()
        self.timeout = timeout

    async def send(self, request: TokenRequest) -> RawResponse:
        return await self.transport.send(request.method, request.url, headers=request.headers, data=request.body,
                                         timeout=self.timeout)

    async def _tokens(self, request: TokenRequest) -> TokenSet:
        raw = await self.send(request)
        return protocol.parse_token_response(self.provider, raw.status, raw.headers, raw.body,
                                             now=self.clock.time())

    async def exchange_code(self, code: str, redirect_uri: str, verifier: str | None) -> TokenSet:
        """Authorization code grant (RFC 6749 §4.1.3) with the PKCE verifier."""
        return await self._tokens(protocol.code_request(self.provider, self.client, code, redirect_uri, verifier))

    async def refresh(self, refresh_token: str) -> TokenSet:
        """Refresh grant (RFC 6749 §6). A rotating provider returns a new refresh token in the set."""
        return await self._tokens(protocol.refresh_request(self.provider, self.client, refresh_token))

    async def start_device(self, scopes: tuple[str, ...]) -> DeviceAuthorization:
        """Device authorization request (RFC 8628 §3.1)."""
        raw = await self.send(protocol.device_request(self.provider, self.client, scopes))
        return protocol.parse_device_response(self.provider, raw.status, raw.headers, raw.body,
                                              now=self.clock.time())

    async def poll_device(self, poller: protocol.DevicePoller) -> TokenSet | None:
        """One poll: a TokenSet, None while pending (the poller's interval may have grown), or a failure."""
        raw = await self.send(poller.request())
        return poller.receive(raw.status, raw.headers, raw.body, now=self.clock.time())

    async def revoke(self, token: str, hint: Literal["access_token", "refresh_token"]) -> bool | None:
        """Revoke ``token``: True if the provider confirmed, False if it refused, None if it has no revocation."""
        request = protocol.revocation_request(self.provider, self.client, token, hint)
        if request is None:
            return None
        raw = await self.send(request)
        return protocol.revocation_ok(self.provider, raw.status, raw.body)
