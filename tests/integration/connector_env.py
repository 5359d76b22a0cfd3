"""Shared by the connector tests: an emulator, one transport, a fake clock whose sleeps are recorded, and the
provider's OAuth client re-rooted at the emulator. Each test module subclasses it with its ``service``."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, ClassVar

import aiohttp

from connectors.base import CallRecord, Connector
from connectors.factory import build_connector
from connectors.http import HttpTransport
from connectors.oauth import oauth_provider, protocol
from connectors.oauth.client import OAuthClient
from connectors.oauth.protocol import ClientCredentials, TokenSet
from domain.clock import FakeClock
from domain.model import ApiCredential


@dataclass
class ConnectorEnv:
    service: ClassVar[str]
    emu: Any
    transport: HttpTransport
    clock: FakeClock
    sleeps: list[float] = field(default_factory=list)
    records: list[CallRecord] = field(default_factory=list)

    async def sleep(self, seconds: float) -> None:
        """The connector's sleep: recorded and applied to the fake clock, never waited for."""
        self.sleeps.append(seconds)
        self.clock.advance(seconds)
        await asyncio.sleep(0)

    def build(self, credential: ApiCredential, *, app_id: str, **kw: Any) -> Connector:
        return build_connector(self.service, credential, app_id=app_id, transport=self.transport,
                               observer=self.records.append, clock=self.clock, sleep=self.sleep, **kw)

    def oauth_client(self, client: ClientCredentials) -> OAuthClient:
        return OAuthClient(oauth_provider(self.service).with_auth_base(self.emu.origin), client, self.transport,
                           clock=self.clock)

    async def consent(self, client: ClientCredentials, redirect: str) -> tuple[TokenSet, str]:
        """A person's consent through the emulator's authorization server (code + PKCE): (tokens, the URL)."""
        provider = oauth_provider(self.service).with_auth_base(self.emu.origin)
        state, verifier = protocol.new_state(), protocol.new_verifier()
        url = protocol.authorization_url(provider, client.client_id, redirect, provider.default_scopes, state,
                                         verifier)
        async with aiohttp.ClientSession() as browser, browser.get(url, allow_redirects=False) as answer:
            assert answer.status == 302, await answer.text()
            location = answer.headers["Location"]
        code = protocol.code_from_redirect(location, state, redirect)
        return await self.oauth_client(client).exchange_code(code, redirect, verifier), url
