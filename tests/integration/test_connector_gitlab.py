"""GitLab connector against the GitLab emulator over loopback: both auth modes (PRIVATE-TOKEN and OAuth with
rotating refresh tokens on a self-managed host), health, the RateLimit-* episode learnt with zero 429s, the
application-limit 429 with Retry-After, each error class from GitLab's real bodies, pagination.

Time: emulator, gate, connector and OAuth client share one FakeClock; sleeps move it, so nothing waits.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from connectors.base import ApiRequest, Connector
from connectors.emulators import EMULATORS
from connectors.gitlab import OAUTH
from connectors.http import HttpTransport
from connectors.limits import CallGate, MemoryQuotaStore
from connectors.oauth import protocol
from connectors.oauth.client import OAuthClient
from connectors.oauth.protocol import ClientCredentials, GrantInvalid
from domain.clock import FakeClock
from domain.errors import IntegrationError, IntegrationFailure
from domain.model import ApiCredential, ApiKey
from domain.values import RateLimit, RetryPolicy
from tests.integration.connector_env import ConnectorEnv

PAT = "glpat-test-token-0000000000000001"
OTHER = "glpat-test-token-0000000000000002"
CLIENT = ClientCredentials("gitlab-app-id-for-tests", "gitlab-app-secret-for-tests")
REDIRECT = "http://127.0.0.1:47123/callback"
AUTH, RATE, DOWN = (IntegrationError.AUTHENTICATION_FAILED, IntegrationError.RATE_LIMIT_EXCEEDED,
                    IntegrationError.SERVICE_UNAVAILABLE)


class Env(ConnectorEnv):
    service = "gitlab"

    def connector(self, credential: ApiCredential | None = None, **kw: Any) -> Connector:
        kw.setdefault("base_url", self.emu.base_url)
        return self.build(credential or ApiCredential.from_api_key(ApiKey(PAT)), app_id="int_gl", **kw)

    def oauth_client(self, client: ClientCredentials = CLIENT) -> OAuthClient:
        # a self-managed instance: the provider re-rooted at the emulator's origin, like https://git.example.com
        return super().oauth_client(client)


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    clock = FakeClock()
    emu = EMULATORS["gitlab"](tokens=[PAT], seed=1, clock=clock.time)
    emu.oauth.register_client(CLIENT.client_id, CLIENT.secret, [REDIRECT])
    await emu.start()
    transport = HttpTransport()
    try:
        yield Env(emu, transport, clock)
    finally:
        await transport.close()
        await emu.stop()


async def consent(env: Env) -> protocol.TokenSet:
    tokens, _ = await env.consent(CLIENT, REDIRECT)
    return tokens


async def attempt(connector: Connector, request: ApiRequest) -> Any:
    try:
        return await connector.send_request(request, interactive=False)
    except IntegrationFailure as failure:
        return failure


def test_oauth_descriptor_is_gitlabs_doorkeeper():
    assert OAUTH.token_url == "https://gitlab.com/oauth/token" and OAUTH.pkce
    assert OAUTH.device_authorization_url == "https://gitlab.com/oauth/authorize_device"
    assert OAUTH.rotates_refresh_tokens and not OAUTH.old_refresh_token_survives_rotation
    assert OAUTH.with_auth_base("https://git.example.com").authorize_url == "https://git.example.com/oauth/authorize"


async def test_a_personal_access_token_goes_in_private_token_and_names_the_user(env):
    connector = env.connector()
    assert connector.auth_headers() == {"PRIVATE-TOKEN": PAT}
    identity = await connector.authenticate()
    user = env.emu.users[PAT]
    assert identity.account_id == str(user.id) and identity.display == f"{user.username} ({user.name})"
    health = await connector.validate_connection()
    assert health.ok and health.status == 200


async def test_oauth_tokens_work_as_bearer_and_refresh_rotates_killing_the_old_pair(env):
    tokens = await consent(env)
    assert tokens.expires_at == pytest.approx(env.clock.time() + 7200)
    oauth = env.connector(ApiCredential.from_tokens(tokens.access_token, tokens.refresh_token))
    assert oauth.auth_headers() == {"Authorization": f"Bearer {tokens.access_token}"}
    first = await oauth.authenticate()
    assert first.account_id != (await env.connector().authenticate()).account_id
    env.clock.advance(7201)
    expired = await attempt(oauth, ApiRequest("GET", "/user"))
    assert isinstance(expired, IntegrationFailure) and expired.category is AUTH and expired.status == 401
    assert str(expired) == "GitLab: 401 Unauthorized" and tokens.access_token not in str(expired)
    fresh = await env.oauth_client().refresh(tokens.refresh_token)
    assert fresh.refresh_token and fresh.refresh_token != tokens.refresh_token
    again = env.connector(ApiCredential.from_tokens(fresh.access_token))
    assert (await again.authenticate()).account_id == first.account_id
    with pytest.raises(GrantInvalid):                   # the old refresh token died with the rotation
        await env.oauth_client().refresh(tokens.refresh_token)


async def test_unknown_and_revoked_tokens_are_auth_failures(env):
    unknown = await attempt(env.connector(ApiCredential.from_api_key(ApiKey(OTHER))), ApiRequest("GET", "/user"))
    assert isinstance(unknown, IntegrationFailure) and unknown.category is AUTH and OTHER not in str(unknown)
    env.emu.revoke(PAT)
    health = await env.connector().validate_connection()
    assert not health.ok and health.category is AUTH and health.status == 401
    assert env.emu.hits("/user") == 2                    # never retried


async def test_insufficient_scope_is_an_auth_failure_with_its_code(env):
    env.emu.add_token(OTHER, scopes=["read_user"])
    connector = env.connector(ApiCredential.from_api_key(ApiKey(OTHER)))
    await connector.authenticate()                        # read_user is enough for /user
    with pytest.raises(IntegrationFailure) as info:
        await connector.send_request(ApiRequest("GET", "/projects", params={"membership": "true"}))
    assert info.value.category is AUTH and info.value.status == 403
    assert info.value.provider_code == "insufficient_scope" and "api read_api" in str(info.value)


async def test_a_missing_project_is_handed_back(env):
    answer = await env.connector().send_request(ApiRequest("GET", "/projects/999999999/issues"))
    assert answer.status == 404 and answer.body == {"message": "404 Project Not Found"}
    assert env.records[-1].outcome == "ok"


async def test_server_errors_are_service_unavailable_and_retried(env):
    env.emu.faults.error_rate = 1.0
    failure = await attempt(env.connector(), ApiRequest("GET", "/user"))
    assert isinstance(failure, IntegrationFailure) and failure.category is DOWN
    assert failure.status in (500, 502, 503) and env.emu.hits("/user") == 4 and len(env.sleeps) == 3


async def test_an_application_limit_429_is_retried_after_retry_after_despite_quota_left(env):
    env.emu.faults.rate_limit_burst = 2
    env.emu.faults.burst_retry_after = 7
    answer = await env.connector().send_request(ApiRequest("GET", "/user"), interactive=False)
    assert answer.status == 200 and answer.attempts == 3 and env.sleeps == [7.0, 7.0]
    assert [r.outcome for r in env.records] == ["rate_limit", "rate_limit", "ok"]


async def test_ratelimit_headers_are_learnt_and_no_request_is_ever_refused(env):
    env.emu.set_rate_limit(5, 60)
    gate = CallGate("int_gl", RateLimit(per_minute=2000, burst=40), store=MemoryQuotaStore(), clock=env.clock,
                    sleep=env.sleep)
    connector = env.connector(gate=gate)
    first = await connector.send_request(ApiRequest("GET", "/user"), interactive=False)
    assert first.headers["ratelimit-limit"] == "5" and first.headers["ratelimit-remaining"] == "4"
    assert first.headers["ratelimit-name"] == "throttle_authenticated_api"
    window_end = int(first.headers["ratelimit-reset"])
    for _ in range(11):          # a sync's sequential calls: RateLimit-Remaining 0 closes the gate until the reset
        answer = await connector.send_request(ApiRequest("GET", "/user"), interactive=False)
        assert answer.status == 200 and answer.attempts == 1
    assert [e.status for e in env.emu.request_log] == [200] * 12          # zero 429s
    assert len(env.sleeps) == 2 and env.sleeps[0] == pytest.approx(window_end - 1_700_000_000.0, abs=1)
    assert gate.usage()["provider"]["resource"] == "throttle_authenticated_api"
    assert gate.exhausted_events[0]["window"] == "provider"
    # concurrent callers within a learnt window: the allowance (3 left) is counted down per admitted call, so
    # the fourth waits for the reset instead of spending a call the provider would refuse
    sleeps_before = len(env.sleeps)
    results = await asyncio.gather(*(attempt(connector, ApiRequest("GET", "/user")) for _ in range(4)))
    assert all(getattr(r, "status", None) == 200 for r in results)
    assert [e.status for e in env.emu.request_log] == [200] * 16          # still zero 429s
    assert len(env.sleeps) == sleeps_before + 1


async def test_an_exhausted_window_is_a_429_retry_later_with_retry_after(env):
    env.emu.set_rate_limit(2, 60)
    connector = env.connector(retry=RetryPolicy.none())
    for _ in range(2):
        await connector.send_request(ApiRequest("GET", "/user"))
    refused = await attempt(connector, ApiRequest("GET", "/user"))
    assert isinstance(refused, IntegrationFailure) and refused.category is RATE and refused.status == 429
    window_left = 60 - env.clock.time() % 60
    assert refused.retry_after == pytest.approx(window_left, abs=1) and "Retry later" in str(refused)


async def test_offset_and_keyset_walks_collect_every_issue(env):
    project = env.emu.project_of(PAT)
    path = f"/projects/{project.path.replace('/', '%2F')}/issues"
    connector = env.connector()
    whole = await connector.send_request(ApiRequest("GET", path, params={"per_page": 100, "state": "all"}))
    offset = [p async for p in connector.pages(ApiRequest("GET", path, params={"per_page": 10}))]
    keyset = [p async for p in connector.pages(ApiRequest("GET", path, params={
        "per_page": 10, "pagination": "keyset", "order_by": "updated_at", "sort": "asc"}))]
    assert len(whole.body) == 42 and len(offset) == 5 and len(keyset) == 5
    assert sorted(i["iid"] for p in offset for i in p.body) == list(range(1, 43))
    assert sorted(i["iid"] for p in keyset for i in p.body) == list(range(1, 43))
    assert offset[0].headers["x-total"] == "42" and "x-total" not in keyset[0].headers
    updated = [i["updated_at"] for p in keyset for i in p.body]
    assert updated == sorted(updated)


async def test_a_bad_base_url_is_a_configuration_error(env):
    connector = env.connector(base_url=env.emu.origin + "/api/v3")
    health = await connector.validate_connection()
    assert not health.ok and health.category is IntegrationError.INVALID_CONFIGURATION


async def test_the_device_grant_of_gitlab_17_2(env):
    client = env.oauth_client()
    authorization = await client.start_device(("read_api", "read_user"))
    assert authorization.user_code and authorization.interval == 5
    poller = protocol.DevicePoller(client.provider, CLIENT, authorization)
    assert await client.poll_device(poller) is None                     # authorization_pending
    assert env.emu.oauth.approve(authorization.user_code)
    env.clock.advance(poller.interval)
    tokens = await client.poll_device(poller)
    assert tokens is not None and tokens.refresh_token
    identity = await env.connector(ApiCredential.from_tokens(tokens.access_token)).authenticate()
    assert identity.account_id


async def test_revocation_ends_the_grant(env):
    tokens = await consent(env)
    connector = env.connector(ApiCredential.from_tokens(tokens.access_token))
    await connector.authenticate()
    assert await env.oauth_client().revoke(tokens.access_token, "access_token") is True
    health = await connector.validate_connection()
    assert not health.ok and health.category is AUTH and health.status == 401
    with pytest.raises(GrantInvalid):
        await env.oauth_client().refresh(tokens.refresh_token)
