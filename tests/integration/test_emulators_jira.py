"""The Jira emulator on the wire (raw aiohttp, no connector): site vs gateway auth, accessible-resources, JQL
refusals in Jira's words, field validation, the 429 headers, the control API's knobs."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from datetime import timezone
from typing import Any

import aiohttp
import pytest

from connectors.emulators import EMULATORS, ManualClock
from connectors.emulators.base import EmulatorInputError
from connectors.emulators.jira_jql import JqlError, parse

TOKEN = "ATATT3xFfGF0-emulator-0000000001"


@pytest.fixture
async def emu() -> AsyncIterator[Any]:
    emulator = EMULATORS["jira"](tokens=[TOKEN], seed=1, clock=ManualClock(1_700_000_000.0))
    await emulator.start()
    try:
        yield emulator
    finally:
        await emulator.stop()


def basic(emu: Any, token: str = TOKEN) -> dict[str, str]:
    pair = f"{emu.account_email(token)}:{token}".encode()
    return {"Authorization": "Basic " + base64.b64encode(pair).decode()}


async def call(method: str, url: str, headers: dict[str, str], **kw: Any) -> tuple[int, dict, Any]:
    async with aiohttp.ClientSession() as http:
        async with http.request(method, url, headers=headers, **kw) as resp:
            body = await (resp.json() if "json" in resp.content_type else resp.text())
            return resp.status, dict(resp.headers), body


async def test_basic_on_the_site_bearer_on_the_gateway(emu):
    status, headers, body = await call("GET", emu.base_url + "/myself", basic(emu))
    assert status == 200 and body["emailAddress"] == emu.account_email(TOKEN)
    assert {"X-RateLimit-Limit", "X-RateLimit-Remaining"} <= set(headers)
    assert "Beta-RateLimit" not in headers               # API-token traffic pays no points
    gateway = f"{emu.origin}/ex/jira/{emu.cloud_id}/rest/api/3/myself"
    status, _, body = await call("GET", gateway, basic(emu))
    assert status == 401 and body == {"code": 401, "message": "Unauthorized"}
    status, headers, body = await call("GET", gateway, {"Authorization": f"Bearer {TOKEN}"})
    assert status == 200 and body["self"].startswith(f"{emu.origin}/ex/jira/")
    assert headers["Beta-RateLimit-Policy"] == '"tenant-app-quota";q=65000;w=3600'
    emu.options.quota_headers = "ietf"
    _, headers, _ = await call("GET", gateway, {"Authorization": f"Bearer {TOKEN}"})
    assert headers["RateLimit"].startswith('"tenant-app-quota";r=64996;') and "Beta-RateLimit" not in headers
    emu.options.site_accepts_bearer = False
    status, _, body = await call("GET", emu.base_url + "/myself", {"Authorization": f"Bearer {TOKEN}"})
    assert status == 401 and body["errorMessages"] == ["Client must be authenticated to access this resource."]


async def test_accessible_resources_lists_the_site_for_a_valid_bearer(emu):
    status, _, body = await call("GET", emu.origin + "/oauth/token/accessible-resources",
                                 {"Authorization": f"Bearer {TOKEN}"})
    assert status == 200 and body[0]["id"] == emu.cloud_id and body[0]["url"] == emu.site_url
    status, _, _ = await call("GET", emu.origin + "/oauth/token/accessible-resources", {})
    assert status == 401


@pytest.mark.parametrize("jql, needle", [
    ("", "Unbounded JQL"),
    ("ORDER BY updated", "Unbounded JQL"),
    ("colour = red", "Field 'colour' does not exist"),
    ('updated >= "last tuesday"', "Date value 'last tuesday' for field 'updated' is invalid"),
    ("project = DEMO ORDER BY summary", "Not able to sort using field 'summary'"),
    ("project = DEMO OR project = OPS", "Expecting either 'OR' or 'AND'"),
])
async def test_jql_refusals_are_400s_in_jiras_words(emu, jql, needle):
    status, _, body = await call("GET", emu.base_url + "/search/jql", basic(emu), params={"jql": jql})
    assert status == 400 and needle in body["errorMessages"][0]


def test_jql_relative_dates_and_in_lists():
    q = parse("project in (DEMO, 'OPS') AND updated > -1d ORDER BY created DESC, key", tz=timezone.utc, now=90000.0)
    assert q.clauses[0].value == ("DEMO", "OPS") and q.clauses[1].value == 3600.0
    assert q.order == [("created", True), ("id", False)]
    with pytest.raises(JqlError):
        parse('summary ~ "x"', tz=timezone.utc, now=0)


async def test_search_caps_max_results_by_fields():
    big = EMULATORS["jira"](tokens=[TOKEN], seed=1, options={"issues_per_project": 150, "projects": ["DEMO"]})
    await big.start()
    try:
        url = big.base_url + "/search/jql"
        _, _, body = await call("POST", url, basic(big), json={"jql": "project = DEMO", "maxResults": 5000})
        assert len(body["issues"]) == 150 and body["isLast"] is True             # id only: up to 5,000
        _, _, body = await call("POST", url, basic(big), json={"jql": "project = DEMO", "maxResults": 5000,
                                                                "fields": ["summary"]})
        assert len(body["issues"]) == 100 and body["nextPageToken"]               # with fields: 100
        status, _, body = await call("POST", url, basic(big), json={"jql": "project = DEMO", "fields": "summary"})
        assert status == 400 and "array of strings" in body["errorMessages"][0]
    finally:
        await big.stop()


async def test_v3_wants_adf_and_status_is_not_a_field(emu):
    url = emu.base_url + "/issue"
    fields = {"project": {"key": "DEMO"}, "summary": "x", "issuetype": {"name": "Task"}, "description": "plain"}
    status, _, body = await call("POST", url, basic(emu), json={"fields": fields})
    assert status == 400 and "Atlassian Document" in body["errors"]["description"]
    status, _, body = await call("PUT", url + "/DEMO-1", basic(emu), json={"fields": {"status": {"name": "Done"}}})
    assert status == 400 and "cannot be set" in body["errors"]["status"]
    status, _, body = await call("POST", url, basic(emu), json={"fields": {**fields, "description": None,
                                                                            "project": {"key": "NOPE"}}})
    assert status == 400 and body["errors"] == {"project": "valid project is required"}


async def test_burst_window_429_carries_reason_reset_and_retry_after(emu):
    emu.set_rate_limit(1, 60)
    assert (await call("GET", emu.base_url + "/myself", basic(emu)))[0] == 200
    status, headers, body = await call("GET", emu.base_url + "/myself", basic(emu))
    assert status == 429 and headers["RateLimit-Reason"] == "jira-burst-based" and headers["Retry-After"] == "40"
    assert headers["X-RateLimit-Reset"] == "2023-11-14T22:14Z" and body["errorMessages"] == ["Rate limit exceeded."]


async def test_options_are_validated(emu):
    with pytest.raises(EmulatorInputError, match="jira options"):
        EMULATORS["jira"](options={"projects": []})
    emu.faults.error_rate = 1.0
    assert (await call("GET", emu.base_url + "/myself", basic(emu)))[0] in (500, 502, 503)


async def test_webhook_deliveries_pass_the_jira_verifier(emu):
    from connectors.webhooks import VERIFIERS, WebhookRejected
    headers, body = emu.webhook_delivery("DEMO-2", "jira-hook-secret")
    assert VERIFIERS["jira"].verify(headers, body, b"jira-hook-secret", 0.0) == headers["X-Atlassian-Webhook-Identifier"]
    assert b'"webhookEvent": "jira:issue_updated"' in body
    with pytest.raises(WebhookRejected):
        VERIFIERS["jira"].verify(headers, body + b" ", b"jira-hook-secret", 0.0)
