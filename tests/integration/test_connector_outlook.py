"""Outlook (Graph mail) connector against the Graph emulator: the OAuth service contract plus mail details."""

from __future__ import annotations

from typing import Any

import pytest

from connectors.base import ApiRequest
from domain.errors import IntegrationError, IntegrationFailure
from domain.values import RetryPolicy
from tests.integration.oauth_services import GRAPH_AUTH, Env, ServiceContract

class TestOutlook(ServiceContract):
    service = "outlook"
    identity_path = "/me"
    missing = ApiRequest("GET", "/me/messages/AAMkAGdoesnotexist")
    narrow_scopes = ("User.Read",)
    auth_messages = {**GRAPH_AUTH, "unknown": "Outlook: InvalidAuthenticationToken: IDX14100"}

    async def list_requests(self, env: Env) -> tuple[ApiRequest, ApiRequest, Any]:
        return (ApiRequest("GET", "/me/messages", params={"$top": 7}),
                ApiRequest("GET", "/me/messages", params={"$top": 1000}), lambda body: len(body["value"]))

    async def test_identity_is_the_graph_user(self, env: Env) -> None:
        identity = await env.connector().authenticate()
        assert identity.details["userPrincipalName"] in identity.display
        assert identity.details["displayName"] in identity.display and len(identity.account_id) == 36

    async def test_send_mail_is_202_and_lands_in_sent_items(self, env: Env) -> None:
        connector = env.connector()
        mail = {"message": {"subject": "Plan", "body": {"contentType": "Text", "content": "See you"},
                            "toRecipients": [{"emailAddress": {"address": "ada@example.org"}}]},
                "saveToSentItems": True}
        sent = await connector.send_request(ApiRequest("POST", "/me/sendMail", json=mail))
        assert sent.status == 202 and sent.body is None
        newest = await connector.send_request(ApiRequest("GET", "/me/mailFolders/sentitems/messages",
                                                         params={"$top": 1}))
        assert newest.body["value"][0]["subject"] == "Plan" and "@odata.nextLink" in newest.body
        bad = await connector.send_request(ApiRequest("POST", "/me/sendMail", json={"message": {}}))
        assert bad.status == 400 and bad.body["error"]["code"] == "ErrorInvalidRecipients"

    async def test_a_fractional_retry_after_is_honoured(self, env: Env) -> None:
        env.emu.options.fractional_retry_after = True
        env.emu.faults.rate_limit_burst = 1
        env.emu.faults.burst_retry_after = 2
        answer = await env.connector().send_request(ApiRequest("GET", "/me"), interactive=False)
        assert answer.status == 200 and env.sleeps == [2.128]

    async def test_throttling_body_and_page_size_bounds(self, env: Env) -> None:
        env.emu.set_rate_limit(1, 600)
        connector = env.connector(retry=RetryPolicy.none())
        await connector.authenticate()
        with pytest.raises(IntegrationFailure) as info:
            await connector.send_request(ApiRequest("GET", "/me/messages"))
        assert info.value.category is IntegrationError.RATE_LIMIT_EXCEEDED and info.value.status == 429
        assert info.value.provider_code == "TooManyRequests" and 0 < info.value.retry_after <= 600
        env.emu.set_rate_limit(100, 600)
        too_big = await connector.send_request(ApiRequest("GET", "/me/messages", params={"$top": 1001}))
        assert too_big.status == 400 and too_big.body["error"]["code"] == "BadRequest"
