"""Discord channel messages as a stream (reference: apis-messaging.md §6 "Pagination", "Incremental sync").

Resource: a channel id (snowflake). The bot token reads it (user OAuth tokens cannot read guild messages).

Pull: ``GET /channels/{id}/messages?after=<snowflake>&limit=N`` returns the N messages right after the anchor,
newest first; the stream reverses them and moves ``after`` to the highest id seen. A full pass starts at
``after=0`` (the beginning of time) and walks the whole channel oldest first; a delta pass continues from the
highest id of the last run. Snowflake order is creation order, so a message posted during a walk is never
skipped. Discord reports no deletions or edits through this endpoint (only the Gateway sees them), so
``tombstones`` is False: a full refresh lists every message and the runner sweeps the ones it did not see, and
picks up edits (``edited_timestamp`` is the record's modification time).

Cursor: ``{"after": "<snowflake>", "full"?: true, "pass"?: token}``.

Push: create ``POST /channels/{id}/messages {"content"}``; update ``PATCH .../messages/{mid}`` (only the bot's
own messages: Discord answers 403 50005 otherwise); delete ``DELETE .../messages/{mid}``. Discord has no
conditional writes: the conflict check is the runner's (``fetch`` compares ``edited_timestamp`` with the change's
base right before the push, then applies the job's policy), and a push it lets through overwrites. An edit of a
message deleted upstream meanwhile is refused (PushRefused), never turned into a new post.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from connectors.base import ApiRequest, ApiResponse
from connectors.discord import discord_error
from connectors.streams.base import LocalChange, Page, PushRefused, RemoteRecord, Stream, StreamError

_SNOWFLAKE = re.compile(r"^\d{1,20}$")


def parse_time(text: Any) -> float:
    if not isinstance(text, str):
        raise StreamError(f"Discord message has no valid timestamp ({str(text)[:30]!r})")
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise StreamError(f"Discord message has no valid timestamp ({text[:30]!r})") from None


def message_record(message: Any) -> RemoteRecord:
    """The stored form of a message: what people wrote and when, not the render details."""
    if not isinstance(message, dict) or not isinstance(message.get("id"), str) \
            or not _SNOWFLAKE.match(message["id"]):
        raise StreamError("Discord returned a message without a snowflake id")
    author = message.get("author") if isinstance(message.get("author"), dict) else {}
    data = {"id": message["id"], "channel_id": message.get("channel_id"), "content": message.get("content"),
            "author_id": author.get("id"), "author": author.get("global_name") or author.get("username"),
            "author_is_bot": author.get("bot") is True, "timestamp": message.get("timestamp"),
            "edited_timestamp": message.get("edited_timestamp"), "pinned": message.get("pinned"),
            "attachments": len(message.get("attachments") or []), "embeds": len(message.get("embeds") or [])}
    modified = parse_time(message.get("edited_timestamp") or message.get("timestamp"))
    return RemoteRecord(message["id"], data, modified)


class DiscordMessages(Stream):
    """``DiscordMessages(connector, "1180000000000000001", page_size=100)``"""

    service = "discord"
    name = "messages"
    tombstones = False
    can_fetch = True
    can_create = True
    can_update = True
    can_delete = True

    @classmethod
    def check_resource(cls, resource: str) -> str:
        if not isinstance(resource, str) or not _SNOWFLAKE.match(resource):
            raise ValueError("a Discord messages stream needs resource '<channel id>' (a snowflake)")
        return resource

    @property
    def _path(self) -> str:
        return f"/channels/{self.resource}/messages"

    async def pull(self, cursor: dict[str, Any]) -> Page:
        after = str(cursor.get("after") or "0")
        if not _SNOWFLAKE.match(after):
            raise StreamError("Discord cursor 'after' is not a snowflake")
        limit = max(1, min(100, self.page_size))
        resp = await self.call(ApiRequest("GET", self._path, params={"after": after, "limit": limit}))
        self._check(resp, "list messages")
        if not isinstance(resp.body, list):
            raise StreamError("Discord list messages did not return a list")
        records = sorted((message_record(m) for m in resp.body), key=lambda r: int(r.remote_id))
        newest = records[-1].remote_id if records else after
        done = len(records) < limit
        keep = {k: cursor[k] for k in ("full", "pass") if k in cursor and not done}
        return Page(records, {**keep, "after": newest}, done=done)

    async def fetch(self, remote_id: str) -> RemoteRecord | None:
        if not _SNOWFLAKE.match(remote_id):
            return None
        resp = await self.call(ApiRequest("GET", f"{self._path}/{remote_id}"))
        if resp.status == 404:
            return None
        self._check(resp, "get message")
        return message_record(resp.body)

    async def push(self, change: LocalChange) -> RemoteRecord:
        if change.deleted:
            if change.remote_id is None:
                raise PushRefused("Discord delete: a message that was never posted cannot be deleted")
            resp = await self.call(ApiRequest("DELETE", f"{self._path}/{change.remote_id}"))
            if resp.status not in (204, 404):
                self._check(resp, "delete message", push=True)
            return RemoteRecord(change.remote_id, {"id": change.remote_id}, 0.0, deleted=True)
        content = change.data.get("content")
        if not isinstance(content, str) or not content.strip() or len(content) > 2000:
            raise PushRefused("Discord message: content must be 1-2000 characters")
        if change.remote_id is None:
            resp = await self.call(ApiRequest("POST", self._path, json={"content": content}))
            self._check(resp, "create message", push=True)
            return message_record(resp.body)
        resp = await self.call(ApiRequest("PATCH", f"{self._path}/{change.remote_id}", json={"content": content}))
        if resp.status == 404:
            raise PushRefused(f"Discord edit message: message {change.remote_id} no longer exists upstream")
        self._check(resp, "edit message", push=True)
        return message_record(resp.body)

    @staticmethod
    def _check(resp: ApiResponse, what: str, *, push: bool = False) -> None:
        if resp.status == 200:
            return
        message, code = discord_error(resp.body)
        error = PushRefused if push else StreamError
        raise error(f"Discord {what}: {resp.status} {message[:200]}" + (f" (code {code})" if code else ""))
