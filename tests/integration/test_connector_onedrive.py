"""OneDrive (Graph drive) connector against the Graph emulator: the OAuth service contract plus drive details."""

from __future__ import annotations

from typing import Any

from connectors.base import ApiRequest
from tests.integration.oauth_services import GRAPH_AUTH, Env, ServiceContract


class TestOneDrive(ServiceContract):
    service = "onedrive"
    identity_path = "/me/drive"
    missing = ApiRequest("GET", "/me/drive/items/01DOESNOTEXIST")
    narrow_scopes = ("User.Read",)
    auth_messages = {**GRAPH_AUTH, "unknown": "OneDrive: InvalidAuthenticationToken: IDX14100"}

    async def list_requests(self, env: Env) -> tuple[ApiRequest, ApiRequest, Any]:
        return (ApiRequest("GET", "/me/drive/root/children", params={"$top": 3}),
                ApiRequest("GET", "/me/drive/root/children", params={"$top": 1000}), lambda body: len(body["value"]))

    async def test_identity_is_the_drive_owner(self, env: Env) -> None:
        identity = await env.connector().authenticate()
        me = await env.connector().send_request(ApiRequest("GET", "/me"))
        assert identity.account_id == me.body["id"] and identity.details["drive_id"].startswith("b!")
        assert identity.details["driveType"] == "business" and identity.details["mail"] == me.body["mail"]

    async def test_items_carry_what_a_delta_sync_needs(self, env: Env) -> None:
        connector = env.connector()
        children = await connector.send_request(ApiRequest("GET", "/me/drive/root/children", params={"$top": 1000}))
        folder = next(i for i in children.body["value"] if "folder" in i)
        inside = await connector.send_request(ApiRequest("GET", f"/me/drive/items/{folder['id']}/children"))
        assert len(inside.body["value"]) == folder["folder"]["childCount"]
        for item in children.body["value"]:
            assert item["id"] and item["eTag"] and item["lastModifiedDateTime"].endswith("Z")
            assert item["parentReference"]["id"] == children.body["value"][0]["parentReference"]["id"]
