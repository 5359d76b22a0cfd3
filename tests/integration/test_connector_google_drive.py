"""Google Drive connector against the Google emulator: the OAuth service contract plus Drive's own details."""

from __future__ import annotations

from typing import Any

from connectors.base import ApiRequest
from tests.integration.oauth_services import Env, ServiceContract


class TestGoogleDrive(ServiceContract):
    service = "google_drive"
    identity_path = "/drive/v3/about"
    missing = ApiRequest("GET", "/files/0000000000000000000000000000000")
    narrow_scopes = ("https://www.googleapis.com/auth/gmail.readonly",)
    auth_messages = {"unknown": "Google Drive: Invalid Credentials (401)", "expired": "Invalid Credentials",
                     "revoked": "Invalid Credentials"}

    async def list_requests(self, env: Env) -> tuple[ApiRequest, ApiRequest, Any]:
        query = {"q": "trashed = false", "orderBy": "name"}
        return (ApiRequest("GET", "/files", params={**query, "pageSize": 40}),
                ApiRequest("GET", "/files", params={**query, "pageSize": 1000}),
                lambda body: len(body["files"]))

    def provider_sends_retry_after(self, env: Env) -> None:
        env.emu.options.send_retry_after = True

    async def test_identity_is_the_about_user(self, env: Env) -> None:
        identity = await env.connector().authenticate()
        assert identity.details["permissionId"] == identity.account_id
        assert identity.details["emailAddress"] in identity.display and identity.details["displayName"]

    async def test_about_without_fields_is_refused_as_google_does(self, env: Env) -> None:
        answer = await env.connector().send_request(ApiRequest("GET", "/about"))
        assert answer.status == 400
        assert answer.body["error"]["errors"][0] == {
            "message": "The 'fields' parameter is required for this method.", "domain": "global",
            "reason": "required", "location": "fields", "locationType": "parameter"}

    async def test_a_folder_listing_and_the_change_feed_start(self, env: Env) -> None:
        connector = env.connector()
        folders = await connector.send_request(ApiRequest("GET", "/files", params={
            "q": "mimeType = 'application/vnd.google-apps.folder' and trashed = false", "pageSize": 1000}))
        folder = folders.body["files"][0]["id"]
        inside = await connector.send_request(ApiRequest("GET", "/files", params={"q": f"'{folder}' in parents"}))
        assert all(folder in f["parents"] for f in inside.body["files"])
        one = inside.body["files"][0] if inside.body["files"] else folders.body["files"][0]
        got = await connector.send_request(ApiRequest("GET", f"/files/{one['id']}"))
        assert got.body["modifiedTime"].endswith("Z") and got.body["id"] == one["id"]
        start = await connector.send_request(ApiRequest("GET", "/changes/startPageToken"))
        assert start.body["kind"] == "drive#startPageToken" and int(start.body["startPageToken"]) > 150
        bad = await connector.send_request(ApiRequest("GET", "/files", params={"q": "owner is bob"}))
        assert bad.status == 400 and bad.body["error"]["errors"][0]["location"] == "q"

    async def test_the_quota_answer_is_403_user_rate_limit_by_default(self, env: Env) -> None:
        env.emu.options.drive_queries_per_user_minute = 1
        connector = env.connector()
        await connector.authenticate()
        result = await connector.validate_connection()
        assert not result.ok and result.category.value == "rate_limit" and result.status == 403
        assert result.provider_code == "userRateLimitExceeded"
