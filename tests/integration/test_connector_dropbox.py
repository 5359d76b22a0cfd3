"""Dropbox connector against the Dropbox emulator over loopback: OAuth with PKCE and offline refresh tokens that
never rotate, identity and health, the error classes from Dropbox's real bodies, the 429 retry_after dialect
learnt by the gate, list_folder pagination, the content host for uploads and the auth-less longpoll.

Time: emulator, gate, connector and OAuth client share one FakeClock; sleeps move it, so nothing waits."""

from __future__ import annotations

import asyncio
import json
import urllib.parse
from collections.abc import AsyncIterator
from typing import Any

import pytest

from connectors.base import ApiRequest, Connector
from connectors.dropbox import OAUTH, DropboxConnector
from connectors.emulators import EMULATORS
from connectors.factory import build_connector
from connectors.http import HttpTransport
from connectors.limits import CallGate, MemoryQuotaStore
from connectors.oauth.client import OAuthClient
from connectors.oauth.protocol import ClientCredentials, GrantInvalid, TokenSet
from domain.clock import FakeClock
from domain.errors import IntegrationError, IntegrationFailure
from domain.model import ApiCredential
from domain.values import RateLimit, RetryPolicy
from tests.integration.connector_env import ConnectorEnv

GOOD = "sl.u.good-token-000000000000000000000001"
OTHER = "sl.u.other-token-00000000000000000000002"
CLIENT = ClientCredentials("dropbox-app-key", "dropbox-app-secret")
PUBLIC = ClientCredentials("dropbox-pkce-app")
REDIRECT = "http://127.0.0.1:47123/callback"
AUTH, RATE, DOWN = (IntegrationError.AUTHENTICATION_FAILED, IntegrationError.RATE_LIMIT_EXCEEDED,
                    IntegrationError.SERVICE_UNAVAILABLE)
IDENTITY = "/2/users/get_current_account"


class Env(ConnectorEnv):
    service = "dropbox"

    def connector(self, token: str = GOOD, **kw: Any) -> DropboxConnector:
        kw.setdefault("retry", RetryPolicy(max_retries=3, base_delay=0.5, max_delay=2.0))
        connector = self.build(ApiCredential.from_tokens(token), app_id="int_test", base_url=self.emu.base_url,
                               **kw)
        assert isinstance(connector, DropboxConnector)
        return connector

    def oauth_client(self, client: ClientCredentials = CLIENT) -> OAuthClient:
        return super().oauth_client(client)

    async def consent(self, client: ClientCredentials = CLIENT, redirect: str = REDIRECT) -> tuple[TokenSet, str]:
        return await super().consent(client, redirect)


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    clock = FakeClock()
    emu = EMULATORS["dropbox"](tokens=[GOOD], seed=1, clock=clock.time)
    emu.oauth.register_client(CLIENT.client_id, CLIENT.secret, [REDIRECT])
    emu.oauth.register_client(PUBLIC.client_id, None, [REDIRECT])
    await emu.start()
    transport = HttpTransport()
    try:
        yield Env(emu, transport, clock)
    finally:
        await transport.close()
        await emu.stop()


async def outcome(connector: Connector, request: ApiRequest | None = None) -> Any:
    try:
        if request is None:
            return await connector.authenticate()
        return await connector.send_request(request, interactive=False)
    except IntegrationFailure as failure:
        return failure


# ---- OAuth ---------------------------------------------------------------------------------------------------

def test_the_oauth_descriptor_is_dropboxs():
    assert OAUTH.authorize_url == "https://www.dropbox.com/oauth2/authorize"
    assert OAUTH.token_url == "https://api.dropboxapi.com/oauth2/token"
    assert OAUTH.pkce and not OAUTH.rotates_refresh_tokens and not OAUTH.supports_device_flow
    assert OAUTH.extra_authorize_params["token_access_type"] == "offline"


async def test_pkce_consent_gives_an_offline_grant_for_the_subjects_account(env: Env):
    tokens, url = await env.consent()
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
    assert query["token_access_type"] == ["offline"] and query["code_challenge_method"] == ["S256"]
    assert tokens.refresh_token and tokens.expires_at == pytest.approx(env.clock.time() + 14400)
    mine = await env.connector(tokens.access_token).authenticate()
    bot = await env.connector(GOOD).authenticate()
    assert mine.account_id.startswith("dbid:") and mine.account_id != bot.account_id
    assert "@example.com" in mine.display and tokens.access_token not in repr(mine)


async def test_a_public_client_uses_the_verifier_alone(env: Env):
    tokens, _ = await env.consent(PUBLIC)
    assert (await env.connector(tokens.access_token).authenticate()).account_id.startswith("dbid:")
    fresh = await env.oauth_client(PUBLIC).refresh(tokens.refresh_token)
    assert fresh.access_token != tokens.access_token


async def test_an_expired_token_fails_once_and_the_refresh_token_never_rotates(env: Env):
    tokens, _ = await env.consent()
    env.clock.advance(14401)
    expired = await outcome(env.connector(tokens.access_token))
    assert isinstance(expired, IntegrationFailure) and expired.category is AUTH
    assert expired.provider_code == "expired_access_token" and env.emu.hits(IDENTITY) == 1
    assert tokens.access_token not in str(expired)
    fresh = await env.oauth_client().refresh(tokens.refresh_token)
    assert fresh.refresh_token is None                           # Dropbox keeps the original
    assert (await env.connector(fresh.access_token).authenticate()).account_id
    again = await env.oauth_client().refresh(tokens.refresh_token)
    assert again.access_token not in (fresh.access_token, tokens.access_token)


async def test_revoking_through_the_api_kills_the_grant(env: Env):
    tokens, _ = await env.consent()
    connector = env.connector(tokens.access_token)
    assert await connector.revoke() is True
    health = await connector.validate_connection()
    assert not health.ok and health.category is AUTH and health.status == 401
    with pytest.raises(GrantInvalid):
        await env.oauth_client().refresh(tokens.refresh_token)


# ---- identity, errors ----------------------------------------------------------------------------------------

async def test_health_and_identity(env: Env):
    health = await env.connector().validate_connection()
    assert health.ok and health.status == 200
    identity = await env.connector().authenticate()
    assert identity.details["account_type"] == "basic" and identity.details["email"] in identity.display


async def test_unknown_token_and_missing_scope_are_auth_failures_with_dropbox_tags(env: Env):
    unknown = await outcome(env.connector(OTHER))
    assert unknown.category is AUTH and unknown.status == 401 and unknown.provider_code == "invalid_access_token"
    env.emu.add_token(OTHER, scopes=["account_info.read"])
    assert (await env.connector(OTHER).authenticate()).account_id
    narrow = await outcome(env.connector(OTHER), ApiRequest("POST", "/files/list_folder", json={"path": ""}))
    assert narrow.category is AUTH and narrow.provider_code == "missing_scope"
    assert env.emu.hits("/files/list_folder") == 1


async def test_route_errors_and_bad_input_are_handed_back(env: Env):
    connector = env.connector()
    missing = await connector.send_request(ApiRequest("POST", "/files/get_metadata", json={"path": "/nope.txt"}))
    assert missing.status == 409 and missing.body["error_summary"].startswith("path/not_found/")
    bad = await connector.send_request(ApiRequest("POST", "/files/list_folder", json={"path": "no-slash"}))
    assert bad.status == 400 and isinstance(bad.body, str) and "files/list_folder" in bad.body
    assert [r.outcome for r in env.records] == ["ok", "ok"]


async def test_server_errors_are_retried_then_service_unavailable(env: Env):
    env.emu.faults.error_rate = 1.0
    failure = await outcome(env.connector(), ApiRequest("POST", "/users/get_current_account"))
    assert failure.category is DOWN and failure.status in (500, 503)
    assert env.emu.hits(IDENTITY) == 4 and len(env.sleeps) == 3


# ---- rate limits ---------------------------------------------------------------------------------------------

async def test_a_429_burst_is_retried_after_the_bodys_retry_after(env: Env):
    env.emu.faults.rate_limit_burst = 2
    env.emu.faults.burst_retry_after = 7
    answer = await env.connector().send_request(ApiRequest("POST", "/users/get_current_account"),
                                                interactive=False)
    assert answer.status == 200 and answer.attempts == 3 and env.sleeps == [7.0, 7.0]
    assert [r.outcome for r in env.records] == ["rate_limit", "rate_limit", "ok"]


async def test_the_gate_learns_retry_after_and_nothing_more_is_refused(env: Env):
    env.emu.set_rate_limit(5, 60)
    gate = CallGate("int_test", RateLimit(per_minute=6000, burst=100), store=MemoryQuotaStore(), clock=env.clock,
                    sleep=env.sleep)
    request = ApiRequest("POST", "/users/get_current_account")
    first = env.connector(gate=gate, retry=RetryPolicy.none())
    for _ in range(5):
        await first.send_request(request, interactive=False)
    refused = await outcome(first, request)
    window_left = 60 - env.clock.time() % 60
    assert refused.category is RATE and refused.status == 429 and refused.provider_code == "too_many_requests"
    assert refused.retry_after == pytest.approx(window_left, abs=1)
    before = len(env.emu.request_log)
    later = env.connector(gate=gate)
    results = await asyncio.gather(*(outcome(later, request) for _ in range(5)))
    assert all(getattr(r, "status", None) == 200 for r in results)
    assert [e.status for e in env.emu.request_log[before:]] == [200] * 5          # zero 429s
    assert min(env.sleeps) >= window_left - 1


# ---- pagination, hosts, uploads, longpoll --------------------------------------------------------------------

async def test_list_folder_pages_continue_to_the_same_entries_as_one_big_page(env: Env):
    connector = env.connector()
    small = ApiRequest("POST", "/files/list_folder", json={"path": "", "recursive": True, "limit": 5})
    pages = [page async for page in connector.pages(small)]
    whole = await connector.send_request(ApiRequest("POST", "/files/list_folder",
                                                    json={"path": "", "recursive": True}))
    assert len(pages) > 2 and pages[-1].next_page() is None and whole.next_page() is None
    names = [e["path_lower"] for p in pages for e in p.body["entries"]]
    assert names == [e["path_lower"] for e in whole.body["entries"]] and len(names) == 28   # 24 files, 4 folders
    assert env.emu.hits("/files/list_folder/continue") == len(pages) - 1


def test_uploads_go_to_the_content_host_and_the_longpoll_to_notify_without_credentials():
    connector = build_connector("dropbox", ApiCredential.from_tokens(GOOD), app_id="int_x", base_url=None,
                                transport=HttpTransport())
    upload = ApiRequest("POST", "/files/upload", data=b"x")
    poll = ApiRequest("POST", "/files/list_folder/longpoll", json={"cursor": "c"})
    assert connector.request_url(upload) == "https://content.dropboxapi.com/2/files/upload"
    assert connector.request_url(poll) == "https://notify.dropboxapi.com/2/files/list_folder/longpoll"
    assert connector.request_url(ApiRequest("POST", "/files/list_folder")).startswith("https://api.dropboxapi.com/2")
    assert connector.sends_credential(upload) and not connector.sends_credential(poll)


async def test_upload_add_then_update_with_a_stale_rev_is_a_conflict(env: Env):
    connector = env.connector()
    created = await connector.upload("/Notes/Résumé.txt", b"v1")
    assert created.status == 200 and created.body["path_display"] == "/Notes/Résumé.txt"
    rev1 = created.body["rev"]
    updated = await connector.upload("/Notes/Résumé.txt", b"v2", mode={".tag": "update", "update": rev1})
    assert updated.status == 200 and updated.body["rev"] != rev1 and updated.body["size"] == 2
    stale = await connector.upload("/Notes/Résumé.txt", b"v3", mode={".tag": "update", "update": rev1})
    assert stale.status == 409 and stale.body["error_summary"].startswith("path/conflict/file/")
    clash = await connector.upload("/Notes/Résumé.txt", b"other")
    assert clash.status == 409
    download = await connector.send_request(ApiRequest("POST", "/files/download", headers={
        "Dropbox-API-Arg": json.dumps({"path": "/notes/résumé.txt"})}))
    assert download.body == "v2" and json.loads(download.headers["dropbox-api-result"])["rev"] == updated.body["rev"]


async def test_the_longpoll_sends_no_authorization_and_wakes_on_a_change(env: Env):
    connector = env.connector()
    env.emu.options.longpoll_max_wait = 5.0          # a broken wake-up fails in 5 s, not 30
    latest = await connector.send_request(ApiRequest("POST", "/files/list_folder/get_latest_cursor",
                                                     json={"path": "", "recursive": True}))
    poll = asyncio.create_task(connector.send_request(
        ApiRequest("POST", "/files/list_folder/longpoll", json={"cursor": latest.body["cursor"], "timeout": 30}),
        interactive=False))
    await env.emu.longpoll_waiting.wait()
    env.emu.put_file(GOOD, "/Notes/new.txt", b"hello")
    answer = await poll
    assert answer.status == 200 and answer.body == {"changes": True}
    quiet = await connector.send_request(ApiRequest("POST", "/files/list_folder/longpoll", json={
        "cursor": latest.body["cursor"], "timeout": 30}))
    assert quiet.body == {"changes": True}                  # the change is still after that cursor
