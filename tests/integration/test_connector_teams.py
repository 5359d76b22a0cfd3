"""Microsoft Teams connector against the Graph emulator: the OAuth service contract plus channel messages."""

from __future__ import annotations

from typing import Any

from connectors.base import ApiRequest
from tests.integration.oauth_services import GRAPH_AUTH, Env, ServiceContract


async def first_channel(env: Env) -> tuple[str, str]:
    connector = env.connector()
    teams = await connector.send_request(ApiRequest("GET", "/me/joinedTeams"))
    team = teams.body["value"][0]["id"]
    channels = await connector.send_request(ApiRequest("GET", f"/teams/{team}/channels"))
    return team, channels.body["value"][0]["id"]


class TestTeams(ServiceContract):
    service = "teams"
    identity_path = "/me"
    missing = ApiRequest("GET", "/teams/00000000-0000-0000-0000-000000000000/channels")
    narrow_scopes = ("User.Read",)
    auth_messages = {**GRAPH_AUTH, "unknown": "Microsoft Teams: InvalidAuthenticationToken: IDX14100"}

    async def list_requests(self, env: Env) -> tuple[ApiRequest, ApiRequest, Any]:
        team, channel = await first_channel(env)
        path = f"/teams/{team}/channels/{channel}/messages"
        return (ApiRequest("GET", path, params={"$top": 10}), ApiRequest("GET", path, params={"$top": 50}),
                lambda body: len(body["value"]))

    async def test_channel_messages_default_to_20_and_refuse_more_than_50(self, env: Env) -> None:
        team, channel = await first_channel(env)
        connector = env.connector()
        path = f"/teams/{team}/channels/{channel}/messages"
        page = await connector.send_request(ApiRequest("GET", path))
        assert len(page.body["value"]) == 20 and "$skiptoken" in page.body["@odata.nextLink"]
        message = page.body["value"][0]
        assert message["id"].isdigit() and message["lastModifiedDateTime"].endswith("Z")
        assert message["channelIdentity"] == {"teamId": team, "channelId": channel}
        too_many = await connector.send_request(ApiRequest("GET", path, params={"$top": 51}))
        assert too_many.status == 400

    async def test_post_a_channel_message(self, env: Env) -> None:
        team, channel = await first_channel(env)
        connector = env.connector()
        path = f"/teams/{team}/channels/{channel}/messages"
        posted = await connector.send_request(ApiRequest("POST", path, json={
            "body": {"contentType": "html", "content": "<p>Deploy done</p>"}}))
        assert posted.status == 201 and posted.body["body"]["content"] == "<p>Deploy done</p>"
        newest = await connector.send_request(ApiRequest("GET", path, params={"$top": 1}))
        assert newest.body["value"][0]["id"] == posted.body["id"]
        empty = await connector.send_request(ApiRequest("POST", path, json={"body": {"content": " "}}))
        assert empty.status == 400
