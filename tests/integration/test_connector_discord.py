"""Discord connector against the Discord emulator over loopback: bot token and OAuth (code + PKCE, rotation,
revocation), identity and health, the error classes from Discord's real bodies, per-route buckets learnt by the
gate (one exhausted channel does not hold back another; zero 429s once learnt), the global limit, snowflake paging.

Time: emulator, gate and connector share one FakeClock; sleeps move it, so nothing waits."""

from __future__ import annotations

import asyncio
import urllib.parse
from collections.abc import AsyncIterator
from typing import Any

import pytest

from connectors.base import ApiRequest, Connector
from connectors.discord import OAUTH, USER_AGENT, DiscordConnector, route_key
from connectors.emulators import EMULATORS
from connectors.http import HttpTransport
from connectors.limits import CallGate, MemoryQuotaStore
from connectors.oauth.client import OAuthClient
from connectors.oauth.protocol import ClientCredentials, GrantInvalid, TokenSet
from domain.clock import FakeClock
from domain.errors import IntegrationError, IntegrationFailure, RateLimitExceededException
from domain.model import ApiCredential
from domain.values import ApiKey, RateLimit, RetryPolicy
from tests.integration.connector_env import ConnectorEnv

BOT = "MTE4.bot-token-0000000000000000000000001"
OTHER = "MTE4.unknown-00000000000000000000000002"
CLIENT = ClientCredentials("1180000000000000000", "discord-client-secret")
REDIRECT = "http://127.0.0.1:47123/callback"
AUTH, RATE, DOWN = (IntegrationError.AUTHENTICATION_FAILED, IntegrationError.RATE_LIMIT_EXCEEDED,
                    IntegrationError.SERVICE_UNAVAILABLE)


class Env(ConnectorEnv):
    service = "discord"

    def connector(self, credential: ApiCredential | None = None, **kw: Any) -> DiscordConnector:
        kw.setdefault("retry", RetryPolicy(max_retries=3, base_delay=0.5, max_delay=2.0))
        connector = self.build(credential or ApiCredential.from_api_key(ApiKey(BOT)), app_id="int_test",
                               base_url=self.emu.base_url, **kw)
        assert isinstance(connector, DiscordConnector)
        return connector

    def oauth_client(self, client: ClientCredentials = CLIENT) -> OAuthClient:
        return super().oauth_client(client)

    async def consent(self, client: ClientCredentials = CLIENT, redirect: str = REDIRECT) -> tuple[TokenSet, str]:
        return await super().consent(client, redirect)

    def channels(self) -> list[str]:
        return [c.id for g in self.emu.world.guilds for c in g.channels]


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    clock = FakeClock()
    emu = EMULATORS["discord"](tokens=[BOT], seed=1, clock=clock.time)
    emu.oauth.register_client(CLIENT.client_id, CLIENT.secret, [REDIRECT])
    await emu.start()
    transport = HttpTransport()
    try:
        yield Env(emu, transport, clock)
    finally:
        await transport.close()
        await emu.stop()


async def outcome(connector: Connector, request: ApiRequest | None = None, *, interactive: bool = False) -> Any:
    try:
        if request is None:
            return await connector.authenticate()
        return await connector.send_request(request, interactive=interactive)
    except IntegrationFailure as failure:
        return failure


def messages(channel: str, **params: Any) -> ApiRequest:
    return ApiRequest("GET", f"/channels/{channel}/messages", params=params or None)


# ---- both auth modes -----------------------------------------------------------------------------------------

async def test_a_bot_token_is_sent_as_bot_with_the_discordbot_user_agent(env: Env):
    env.emu.options.require_user_agent = True
    identity = await env.connector().authenticate()
    assert identity.details["bot"] is True and identity.display.endswith("(bot)")
    health = await env.connector().validate_connection()
    assert health.ok and health.status == 200 and USER_AGENT.startswith("DiscordBot (")


async def test_a_bot_token_sent_as_bearer_is_refused(env: Env):
    failure = await outcome(env.connector(ApiCredential.from_tokens(BOT)))
    assert failure.category is AUTH and failure.status == 401 and BOT not in str(failure)


def test_the_oauth_descriptor_is_discords():
    assert OAUTH.authorize_url == "https://discord.com/oauth2/authorize"
    assert OAUTH.token_url == "https://discord.com/api/oauth2/token"
    assert OAUTH.revocation_url == "https://discord.com/api/oauth2/token/revoke" and OAUTH.supports_revocation
    assert OAUTH.pkce and OAUTH.rotates_refresh_tokens and not OAUTH.old_refresh_token_survives_rotation


async def test_oauth_user_token_identifies_the_user_and_rotates_on_refresh(env: Env):
    tokens, url = await env.consent()
    assert urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)["scope"] == ["identify guilds"]
    assert tokens.expires_at == pytest.approx(env.clock.time() + 604800) and tokens.refresh_token
    user = env.connector(ApiCredential.from_tokens(tokens.access_token))
    identity = await user.authenticate()
    assert identity.details["bot"] is False and not identity.display.endswith("(bot)")
    guilds = await user.send_request(ApiRequest("GET", "/users/@me/guilds"))
    assert guilds.status == 200 and len(guilds.body) == 2
    denied = await outcome(user, messages(env.channels()[0]))
    assert denied.category is AUTH and denied.status == 403 and denied.provider_code == "50001"
    env.clock.advance(604801)
    expired = await outcome(user)
    assert expired.category is AUTH and expired.status == 401
    fresh = await env.oauth_client().refresh(tokens.refresh_token)
    assert fresh.refresh_token and fresh.refresh_token != tokens.refresh_token
    assert (await env.connector(ApiCredential.from_tokens(fresh.access_token)).authenticate()).account_id \
        == identity.account_id
    with pytest.raises(GrantInvalid):
        await env.oauth_client().refresh(tokens.refresh_token)         # the old one died with the rotation


async def test_revoking_one_token_revokes_the_authorization(env: Env):
    tokens, _ = await env.consent()
    assert await env.oauth_client().revoke(tokens.refresh_token, "refresh_token") is True
    failure = await outcome(env.connector(ApiCredential.from_tokens(tokens.access_token)))
    assert failure.category is AUTH and failure.status == 401


# ---- error classes -------------------------------------------------------------------------------------------

async def test_discord_error_bodies_are_classified(env: Env):
    unknown = await outcome(env.connector(ApiCredential.from_api_key(ApiKey(OTHER))))
    assert unknown.category is AUTH and unknown.status == 401 and "401: Unauthorized" in str(unknown)
    bot = env.connector()
    missing = await bot.send_request(messages("1234567890"))
    assert missing.status == 404 and missing.body["code"] == 10003
    empty = await bot.send_request(ApiRequest("POST", f"/channels/{env.channels()[0]}/messages", json={}))
    assert empty.status == 400 and empty.body["code"] == 50006
    bad = await bot.send_request(messages(env.channels()[0], limit=500))
    assert bad.status == 400 and bad.body["code"] == 50035 and "limit" in bad.body["errors"]
    assert [r.outcome for r in env.records][-3:] == ["ok", "ok", "ok"]


async def test_server_errors_are_retried_then_service_unavailable(env: Env):
    env.emu.faults.error_rate = 1.0
    failure = await outcome(env.connector(), ApiRequest("GET", "/users/@me"))
    assert failure.category is DOWN and failure.status in (500, 502)
    assert env.emu.hits("/users/@me") == 4 and len(env.sleeps) == 3


# ---- rate limits ---------------------------------------------------------------------------------------------

def test_route_keys_keep_the_major_parameter_only():
    assert route_key("GET", "/channels/1/messages") == "GET /channels/1/messages"
    assert route_key("GET", "/channels/1/messages/2") == route_key("GET", "/channels/1/messages/3")
    assert route_key("GET", "/channels/1/messages") != route_key("GET", "/channels/2/messages")
    assert route_key("DELETE", "/webhooks/5/tok") == "DELETE /webhooks/5/{token}"


async def test_a_shared_429_is_retried_after_the_bodys_retry_after(env: Env):
    env.emu.faults.rate_limit_burst = 2
    env.emu.faults.burst_retry_after = 3
    answer = await env.connector().send_request(ApiRequest("GET", "/users/@me"), interactive=False)
    assert answer.status == 200 and answer.attempts == 3 and env.sleeps == [3.0, 3.0]


async def test_route_buckets_are_learnt_per_channel_with_zero_429s(env: Env):
    env.emu.options.route_window = 60.0           # a bucket longer than an interactive caller may wait
    gate = CallGate("int_test", RateLimit(per_minute=6000, burst=100), store=MemoryQuotaStore(), clock=env.clock,
                    sleep=env.sleep)
    bot = env.connector(gate=gate)
    first, second = env.channels()[:2]
    for _ in range(5):                                      # route_limit 5: the fifth answer says remaining 0
        answer = await bot.send_request(messages(first, limit=1), interactive=False)
    assert answer.headers["x-ratelimit-remaining"] == "0" and answer.headers["x-ratelimit-bucket"]
    assert float(answer.headers["x-ratelimit-reset-after"]) == pytest.approx(60.0)
    usage = gate.usage()["provider"]
    assert len(usage["blocked_buckets"]) == 1 and usage["blocked_until"] is None     # one bucket, not the app
    other = await bot.send_request(messages(second, limit=1), interactive=True)   # another channel: no wait
    assert other.status == 200 and env.sleeps == []
    sent = len(env.emu.request_log)
    with pytest.raises(RateLimitExceededException, match="provider asked us to wait"):
        await bot.send_request(messages(first, limit=1), interactive=True)
    assert len(env.emu.request_log) == sent                 # refused here, never sent to Discord
    results = await asyncio.gather(*(outcome(bot, messages(first, limit=1)) for _ in range(12)))
    assert all(getattr(r, "status", None) == 200 for r in results)
    assert [e.status for e in env.emu.request_log[sent:]] == [200] * 12         # zero 429s once learnt
    assert env.sleeps and all(s == pytest.approx(60.0) for s in env.sleeps)    # whole windows waited


async def test_a_per_route_429_blocks_its_bucket_and_a_global_one_blocks_everything(env: Env):
    gate = CallGate("int_test", RateLimit(per_minute=6000, burst=100), store=MemoryQuotaStore(), clock=env.clock,
                    sleep=env.sleep)
    bot = env.connector(gate=gate, retry=RetryPolicy.none())
    first, second = env.channels()[:2]
    env.emu.options.route_window = 30.0
    outsider = env.connector(retry=RetryPolicy.none())     # another process spends the bucket behind our back
    for _ in range(5):
        await outsider.send_request(messages(first))
    refused = await outcome(bot, messages(first))
    assert refused.category is RATE and refused.status == 429 and refused.provider_code == "user"
    assert refused.retry_after == pytest.approx(30.0, abs=0.01)
    assert gate.usage()["provider"]["blocked_until"] is None
    assert (await bot.send_request(messages(second), interactive=True)).status == 200   # other bucket: free
    with pytest.raises(RateLimitExceededException):
        await bot.send_request(messages(first), interactive=True)
    env.emu.set_rate_limit(3, 60)                           # the global limit, now 3 per minute
    for _ in range(3):
        await outcome(outsider, ApiRequest("GET", "/users/@me"))
    failure = await outcome(bot, ApiRequest("GET", "/users/@me"))
    assert failure.category is RATE and failure.provider_code == "global" and failure.retry_after > 0
    assert gate.usage()["provider"]["blocked_until"] is not None               # every route waits now
    with pytest.raises(RateLimitExceededException):
        await bot.send_request(messages(second), interactive=True)


# ---- paging --------------------------------------------------------------------------------------------------

async def test_before_and_after_paging_walk_the_whole_channel(env: Env):
    bot, channel = env.connector(), env.channels()[0]
    backwards = [p async for p in bot.pages(messages(channel, limit=25))]
    forwards = [p async for p in bot.pages(messages(channel, limit=25, after="0"))]
    back_ids = [m["id"] for p in backwards for m in p.body]
    fwd_ids = [m["id"] for p in forwards for m in p.body]
    assert len(back_ids) == len(fwd_ids) == 60 and set(back_ids) == set(fwd_ids)
    assert back_ids == sorted(back_ids, key=int, reverse=True)
    assert len(backwards) == 3 and backwards[-1].next_page() is None
