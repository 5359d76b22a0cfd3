"""What is particular to each provider's dialect, against its emulator over loopback HTTP."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from connectors.base import ApiRequest
from connectors.emulators import EMULATORS
from connectors.github import GitHubConnector
from connectors.http import HttpTransport
from connectors.limits import CallGate, MemoryQuotaStore
from connectors.sendgrid import SendGridConnector
from connectors.slack import SlackConnector
from domain.clock import FakeClock
from domain.errors import IntegrationError, IntegrationFailure, RateLimitExceededException
from domain.model import ApiCredential
from domain.values import ApiKey, RateLimit, RetryPolicy

GH = "ghp_dialect00000000000000000000000000001"
SL = "xoxb-dialect-0000000000-000000000001"
SG = "SG.dialectId.dialectSecret000000000000000001"


class World:
    def __init__(self) -> None:
        self.clock = FakeClock()
        self.transport = HttpTransport()
        self.sleeps: list[float] = []
        self.emus: list = []

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.clock.advance(seconds)
        await asyncio.sleep(0)

    async def emulator(self, service: str, token: str, **kw):
        emu = EMULATORS[service](tokens=[token], seed=1, clock=self.clock.time, **kw)
        await emu.start(host="127.0.0.1", port=0)
        self.emus.append(emu)
        return emu

    def connect(self, cls, token: str, base_url: str, **kw):
        return cls(ApiCredential.from_api_key(ApiKey(token)), app_id="int_d", base_url=base_url,
                   transport=self.transport, clock=self.clock, sleep=self.sleep, **kw)


@pytest.fixture
async def world() -> AsyncIterator[World]:
    w = World()
    try:
        yield w
    finally:
        await w.transport.close()
        for emu in w.emus:
            await emu.stop()


# ---- GitHub ------------------------------------------------------------------------------------------------

async def test_github_404_and_422_are_answers_not_failures(world):
    emu = await world.emulator("github", GH)
    gh = world.connect(GitHubConnector, GH, emu.base_url)
    missing = await gh.send_request(ApiRequest("GET", "/repos/nobody/nothing"))
    assert missing.status == 404 and missing.body["message"] == "Not Found"
    login = (await gh.authenticate()).details["login"]
    repo = (await gh.send_request(ApiRequest("GET", "/user/repos", params={"per_page": 1}))).body[0]["name"]
    invalid = await gh.send_request(ApiRequest("POST", f"/repos/{login}/{repo}/issues", json={"body": "no title"}))
    assert invalid.status == 422 and invalid.body["message"] == "Validation Failed"
    created = await gh.send_request(ApiRequest("POST", f"/repos/{login}/{repo}/issues", json={"title": "Hi"}))
    assert created.status == 201 and created.body["title"] == "Hi"


async def test_github_enterprise_base_url_and_its_pagination(world):
    emu = await world.emulator("github", GH)
    gh = world.connect(GitHubConnector, GH, emu.origin + "/api/v3")
    assert (await gh.authenticate()).details["login"]
    pages = [p async for p in gh.pages(ApiRequest("GET", "/user/repos", params={"per_page": 20}))]
    assert [len(p.body) for p in pages] == [20, 20, 5]
    assert emu.hits("/user/repos") == 3


async def test_github_primary_limit_exhausted(world):
    emu = await world.emulator("github", GH)
    emu.set_rate_limit(limit=2, window=3600)
    gh = world.connect(GitHubConnector, GH, emu.base_url)
    await gh.authenticate()
    await gh.authenticate()
    with pytest.raises(IntegrationFailure) as info:      # 403 with x-ratelimit-remaining: 0
        await gh.authenticate()
    failure = info.value
    assert failure.category is IntegrationError.RATE_LIMIT_EXCEEDED and failure.status == 403
    assert "primary rate limit exhausted" in str(failure)
    assert 0 < failure.retry_after <= 3600 and world.sleeps == []


async def test_github_remaining_zero_closes_our_gate_before_the_provider_refuses(world):
    emu = await world.emulator("github", GH)
    emu.set_rate_limit(limit=2, window=3600)
    gate = CallGate("int_d", RateLimit(per_hour=5000), store=MemoryQuotaStore(), clock=world.clock,
                    sleep=world.sleep)
    gh = world.connect(GitHubConnector, GH, emu.base_url, gate=gate)
    await gh.authenticate()
    await gh.authenticate()                              # answered with x-ratelimit-remaining: 0
    with pytest.raises(RateLimitExceededException) as info:
        await gh.authenticate()
    assert info.value.window == "provider" and info.value.retry_after > 5
    assert emu.hits("/user") == 2                        # the third never left
    health = await gh.validate_connection()
    assert not health.ok and health.category is IntegrationError.RATE_LIMIT_EXCEEDED
    assert health.retry_after > 5 and emu.hits("/user") == 2


async def test_github_rate_limits_answered_with_429(world):
    emu = await world.emulator("github", GH, options={"rate_limit_status": 429})
    emu.faults.rate_limit_burst = 1
    gh = world.connect(GitHubConnector, GH, emu.base_url)
    assert (await gh.authenticate()).account_id
    assert world.sleeps == [1.0]


async def test_github_forbidden_that_is_not_rate_limiting_is_an_auth_failure(world):
    gh = world.connect(GitHubConnector, GH, "http://127.0.0.1:9")
    failure = gh.classify(403, {"x-ratelimit-remaining": "4999"},
                          {"message": "Resource not accessible by personal access token"})
    assert failure.category is IntegrationError.AUTHENTICATION_FAILED
    assert str(failure) == "GitHub: forbidden: Resource not accessible by personal access token (403)"
    secondary = gh.classify(403, {"x-ratelimit-remaining": "4000"},
                            {"message": "You have exceeded a secondary rate limit."})
    assert secondary.category is IntegrationError.RATE_LIMIT_EXCEEDED and secondary.retry_after == 60.0


# ---- Slack -------------------------------------------------------------------------------------------------

async def test_slack_ok_false_errors_that_are_not_failures_come_back_as_answers(world):
    emu = await world.emulator("slack", SL)
    slack = world.connect(SlackConnector, SL, emu.base_url)
    resp = await slack.send_request(ApiRequest("POST", "/conversations.history", json={"channel": "C_NOPE"}))
    assert resp.status == 200 and resp.body == {"ok": False, "error": "channel_not_found"}
    unknown = await slack.send_request(ApiRequest("POST", "/no.such.method"))
    assert unknown.status == 404


async def test_slack_missing_scope_is_an_auth_failure(world):
    emu = await world.emulator("slack", SL)
    narrow = "xoxb-narrow-0000000000-000000000002"
    emu.add_token(narrow, scopes=[])
    slack = world.connect(SlackConnector, narrow, emu.base_url)
    assert (await slack.authenticate()).details["scopes"] == []
    with pytest.raises(IntegrationFailure) as info:
        await slack.send_request(ApiRequest("GET", "/conversations.list"))
    assert info.value.category is IntegrationError.AUTHENTICATION_FAILED
    assert info.value.provider_code == "missing_scope"


async def test_slack_cursor_pagination_with_a_json_body(world):
    emu = await world.emulator("slack", SL)
    slack = world.connect(SlackConnector, SL, emu.base_url)
    channel = (await slack.send_request(ApiRequest("GET", "/conversations.list"))).body["channels"][0]["id"]
    first = ApiRequest("POST", "/conversations.history", json={"channel": channel, "limit": 50})
    pages = [p async for p in slack.pages(first)]
    assert [len(p.body["messages"]) for p in pages] == [50, 50, 20]
    stamps = [m["ts"] for p in pages for m in p.body["messages"]]
    assert len(set(stamps)) == 120


async def test_slack_tier_limit_gives_rate_limit_with_retry_after(world):
    emu = await world.emulator("slack", SL)
    emu.set_rate_limit(limit=1, window=60)
    slack = world.connect(SlackConnector, SL, emu.base_url)
    await slack.authenticate()
    with pytest.raises(IntegrationFailure) as info:
        await slack.authenticate()                        # interactive: a long Retry-After is not waited out
    assert info.value.category is IntegrationError.RATE_LIMIT_EXCEEDED
    assert info.value.status == 429 and info.value.provider_code == "ratelimited"
    assert 5 < info.value.retry_after <= 60
    identity = await slack.send_request(slack.identity_request(), interactive=False)   # background waits
    assert identity.body["ok"] is True and len(world.sleeps) == 1


# ---- SendGrid ----------------------------------------------------------------------------------------------

async def test_sendgrid_key_without_a_permission(world):
    emu = await world.emulator("sendgrid", SG)
    narrow = "SG.narrowId.narrowSecret0000000000000000002"
    emu.add_token(narrow, scopes=["mail.send"])
    sg = world.connect(SendGridConnector, narrow, emu.base_url)
    identity = await sg.authenticate()                    # no user.profile.read: no profile call
    assert identity.display == "API key narrowId" and identity.details["scopes"] == ["mail.send"]
    assert emu.hits("/user/profile") == 0
    with pytest.raises(IntegrationFailure) as info:
        await sg.send_request(ApiRequest("GET", "/suppression/bounces"))
    assert info.value.category is IntegrationError.AUTHENTICATION_FAILED
    assert str(info.value) == ("SendGrid: the API key lacks permission for this endpoint: access forbidden (403)")


async def test_sendgrid_mail_send_and_validation_answers(world):
    emu = await world.emulator("sendgrid", SG)
    sg = world.connect(SendGridConnector, SG, emu.base_url)
    mail = {"personalizations": [{"to": [{"email": "a@example.com"}]}], "from": {"email": "me@example.com"},
            "subject": "Hi", "content": [{"type": "text/plain", "value": "Hello"}]}
    sent = await sg.send_request(ApiRequest("POST", "/mail/send", json=mail))
    assert sent.status == 202 and sent.body is None and "x-message-id" in sent.headers
    assert emu.outbox[0]["body"] == mail
    bad = await sg.send_request(ApiRequest("POST", "/mail/send", json={"subject": "no one"}))
    assert bad.status == 400 and bad.body["errors"][0]["field"] == "personalizations"


async def test_sendgrid_429_waits_until_the_reset(world):
    emu = await world.emulator("sendgrid", SG)
    emu.set_rate_limit(limit=2, window=60)
    sg = world.connect(SendGridConnector, SG, emu.base_url, retry=RetryPolicy.exponential_backoff())
    await sg.send_request(ApiRequest("GET", "/scopes"))
    await sg.send_request(ApiRequest("GET", "/scopes"))
    resp = await sg.send_request(ApiRequest("GET", "/scopes"), interactive=False)
    assert resp.status == 200 and resp.attempts == 2
    reset_wait = world.sleeps[0]
    assert 0 < reset_wait <= 60 and world.clock.time() % 60 < 1     # woke at the window boundary
