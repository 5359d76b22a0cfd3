"""Gmail connector against the Google emulator: the OAuth service contract plus Gmail's own details."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from connectors.base import ApiRequest
from domain.errors import IntegrationError, IntegrationFailure
from tests.integration.oauth_services import Env, ServiceContract

DRIVE_ONLY = ("https://www.googleapis.com/auth/drive.readonly",)


class TestGmail(ServiceContract):
    service = "gmail"
    identity_path = "/gmail/v1/users/me/profile"
    missing = ApiRequest("GET", "/users/me/messages/0000000000000000")
    narrow_scopes = DRIVE_ONLY
    auth_messages = {"unknown": "Gmail: Invalid Credentials (401)", "expired": "Invalid Credentials",
                     "revoked": "Invalid Credentials"}

    async def list_requests(self, env: Env) -> tuple[ApiRequest, ApiRequest, Any]:
        return (ApiRequest("GET", "/users/me/messages", params={"maxResults": 25}),
                ApiRequest("GET", "/users/me/messages", params={"maxResults": 500}),
                lambda body: len(body.get("messages", [])))

    def provider_sends_retry_after(self, env: Env) -> None:
        env.emu.options.send_retry_after = True
        env.emu.options.rate_limit_status = 429

    async def test_identity_is_the_profile_with_its_history_id(self, env: Env) -> None:
        identity = await env.connector().authenticate()
        assert identity.account_id == identity.display and identity.display.endswith("@example.com")
        assert identity.details["messagesTotal"] == 120 and int(identity.details["historyId"]) > 100000


    async def test_quota_units_run_out_with_the_documented_403_and_no_retry_after(self, env: Env) -> None:
        env.emu.options.gmail_units_per_user_minute = 12       # two messages.list at 5 units, then refused
        connector = env.connector()
        request = ApiRequest("GET", "/users/me/messages")
        await connector.send_request(request)
        await connector.send_request(request)
        with pytest.raises(IntegrationFailure) as info:
            await connector.send_request(request, interactive=True)
        failure = info.value
        assert failure.category is IntegrationError.RATE_LIMIT_EXCEEDED and failure.status == 403
        assert failure.provider_code == "userRateLimitExceeded" and failure.retry_after is None
        profile = await connector.send_request(ApiRequest("GET", "/users/me/profile"))   # 1 unit still fits
        assert profile.status == 200


    async def test_send_then_find_it_with_a_search(self, env: Env) -> None:
        connector = env.connector()
        raw = base64.urlsafe_b64encode(b"To: ada@example.org\r\nSubject: Quarterly kiwi\r\n\r\nHello Ada").decode()
        sent = await connector.send_request(ApiRequest("POST", "/users/me/messages/send", json={"raw": raw}))
        assert sent.status == 200 and sent.body["labelIds"] == ["SENT"]
        found = await connector.send_request(ApiRequest("GET", "/users/me/messages",
                                                        params={"q": "subject:kiwi", "labelIds": "SENT"}))
        assert [m["id"] for m in found.body["messages"]] == [sent.body["id"]]
        message = await connector.send_request(ApiRequest("GET", f"/users/me/messages/{sent.body['id']}",
                                                          params={"format": "metadata"}))
        headers = {h["name"]: h["value"] for h in message.body["payload"]["headers"]}
        assert headers["Subject"] == "Quarterly kiwi" and int(message.body["historyId"]) > 100000
        bad = await connector.send_request(ApiRequest("POST", "/users/me/messages/send", json={"raw": ""}))
        assert bad.status == 400 and bad.body["error"]["errors"][0]["reason"] == "invalidArgument"


    async def test_a_bad_page_token_is_the_callers_400(self, env: Env) -> None:
        answer = await env.connector().send_request(ApiRequest("GET", "/users/me/messages",
                                                                     params={"pageToken": "nonsense"}))
        assert answer.status == 400 and answer.body["error"]["status"] == "INVALID_ARGUMENT"
