"""Slack channel messages as a stream (reference: apis-messaging.md §4 "Incremental sync", "Write").

Pull: ``conversations.history`` with ``channel``, ``oldest`` (exclusive) and ``limit``; pages come newest first
and continue with ``response_metadata.next_cursor``. The pass's high-water mark (the newest ``ts`` seen) becomes
the next pass's ``oldest`` only when the pass is over, so a crash mid-pass resumes from the stored page cursor
with the same ``oldest`` and nothing between is skipped. A page cursor Slack no longer accepts
(``invalid_cursor``) raises CursorExpired: the runner starts a full refresh.

Threads: history lists only top-level messages (a parent carries ``reply_count``). For each parent on a page,
``conversations.replies`` (parent first, then the replies oldest first, cursor-paged) brings its replies INTO the
same page, so they commit with the page's cursor. A reply's ``thread_ts`` names its parent; a parent deleted
meanwhile (``thread_not_found``) has no replies to add. The pass's high-water mark counts top-level messages
only.

Edits and deletions do not appear as new history rows, nor do new replies to a parent older than the delta's
``oldest``: a full refresh (every message and every thread is listed, the unseen are tombstoned by the runner)
catches them. The Events API webhook triggers a delta run for new messages; for a reply (its event names a
``thread_ts``) that run also re-reads the thread (``pull_threads``), so a reply to an old thread arrives at once.

Cursor: ``{"oldest": "<ts>", "next": <page cursor> | None, "high": "<ts>" | None, "full"?: true, "pass"?: token}``.
Push: ``chat.postMessage`` creates a message; edits and deletions are not pushed (UnsupportedChange).
"""

from __future__ import annotations

import re
from typing import Any

from connectors.base import ApiRequest, ApiResponse
from connectors.streams.base import (CursorExpired, LocalChange, Page, PushRefused, RemoteRecord, Stream,
                                     StreamError, UnsupportedChange)

_CHANNEL = re.compile(r"^[CGD][A-Z0-9]{2,30}$")


def _ts(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise StreamError(f"Slack message has no valid ts ({str(value)[:30]!r})") from None


def message_record(message: Any) -> RemoteRecord:
    if not isinstance(message, dict) or not isinstance(message.get("ts"), str):
        raise StreamError("Slack returned a message without a ts")
    edited = message.get("edited") if isinstance(message.get("edited"), dict) else None
    data = {k: message.get(k) for k in ("ts", "user", "text", "thread_ts", "subtype", "reply_count")}
    data["edited"] = edited
    modified = _ts(edited["ts"]) if edited and edited.get("ts") else _ts(message["ts"])
    return RemoteRecord(message["ts"], data, modified)


def _max_ts(a: str | None, b: str | None) -> str | None:
    if a is None:
        return b
    if b is None:
        return a
    return a if _ts(a) >= _ts(b) else b


class SlackMessages(Stream):
    """``SlackMessages(connector, "C0123456789", page_size=100)``"""

    service = "slack"
    name = "messages"
    tombstones = False
    can_fetch = False

    @classmethod
    def check_resource(cls, resource: str) -> str:
        if not isinstance(resource, str) or not _CHANNEL.match(resource):
            raise ValueError("a Slack messages stream needs a channel id such as 'C0123456789'")
        return resource

    def start_cursor(self, previous: dict[str, Any] | None, *, full: bool, pass_token: str) -> dict[str, Any]:
        if full or not previous:
            return {"full": True, "pass": pass_token, "oldest": "0", "next": None, "high": None}
        return previous

    async def pull(self, cursor: dict[str, Any]) -> Page:
        params: dict[str, Any] = {"channel": self.resource, "oldest": cursor.get("oldest") or "0",
                                  "limit": max(1, min(999, self.page_size))}
        if cursor.get("next"):
            params["cursor"] = cursor["next"]
        resp = await self.call(ApiRequest("GET", "/conversations.history", params=params))
        self._check(resp, "conversations.history", cursor_sent=bool(cursor.get("next")))
        messages = resp.body.get("messages")
        if not isinstance(messages, list):
            raise StreamError("Slack conversations.history did not return messages")
        records = [message_record(m) for m in messages]
        high = cursor.get("high")
        for r in records:
            high = _max_ts(high, r.remote_id)
        for m in messages:
            if m.get("reply_count") and m.get("thread_ts") in (None, m["ts"]):
                records.extend(await self._replies(m["ts"]))
        meta = resp.body.get("response_metadata") or {}
        following = meta.get("next_cursor") if isinstance(meta, dict) else None
        if following:
            keep = {k: cursor[k] for k in ("full", "pass") if k in cursor}
            return Page(records, {**keep, "oldest": params["oldest"], "next": following, "high": high}, done=False)
        return Page(records, {"oldest": high or params["oldest"], "next": None, "high": None}, done=True)

    async def pull_threads(self, threads: list[str]) -> list[RemoteRecord]:
        """Each named thread again: its parent (whose ``reply_count`` moved) and every reply."""
        found: list[RemoteRecord] = []
        for parent_ts in threads:
            found.extend(await self._replies(parent_ts, with_parent=True))
        return found

    async def _replies(self, parent_ts: str, *, with_parent: bool = False) -> list[RemoteRecord]:
        """Every reply in the thread of ``parent_ts``; the parent itself (listed first by Slack) only if asked."""
        found: list[RemoteRecord] = []
        page_cursor: str | None = None
        while True:
            params: dict[str, Any] = {"channel": self.resource, "ts": parent_ts, "limit": 200}
            if page_cursor:
                params["cursor"] = page_cursor
            resp = await self.call(ApiRequest("GET", "/conversations.replies", params=params))
            if isinstance(resp.body, dict) and resp.body.get("error") == "thread_not_found":
                return found                      # the parent was deleted while we paged
            self._check(resp, "conversations.replies")
            replies = resp.body.get("messages")
            if not isinstance(replies, list):
                raise StreamError("Slack conversations.replies did not return messages")
            found.extend(message_record(m) for m in replies
                         if with_parent or not (isinstance(m, dict) and m.get("ts") == parent_ts))
            meta = resp.body.get("response_metadata") or {}
            page_cursor = meta.get("next_cursor") if isinstance(meta, dict) else None
            if not page_cursor:
                return found

    async def push(self, change: LocalChange) -> RemoteRecord:
        if change.deleted or change.remote_id is not None:
            raise UnsupportedChange("Slack messages can only be created through a sync (chat.postMessage); "
                                    "edits and deletions are not pushed")
        text = change.data.get("text")
        if not isinstance(text, str) or not text:
            raise PushRefused("Slack chat.postMessage: a new message needs a non-empty text")
        body: dict[str, Any] = {"channel": self.resource, "text": text}
        if change.data.get("thread_ts"):
            body["thread_ts"] = change.data["thread_ts"]
        resp = await self.call(ApiRequest("POST", "/chat.postMessage", json=body))
        self._check(resp, "chat.postMessage")
        return message_record(resp.body.get("message") or {"ts": resp.body.get("ts"), "text": text})

    @staticmethod
    def _check(resp: ApiResponse, method: str, *, cursor_sent: bool = False) -> None:
        body = resp.body
        if resp.status == 200 and isinstance(body, dict) and body.get("ok") is True:
            return
        code = body.get("error") if isinstance(body, dict) else None
        if code == "invalid_cursor" and cursor_sent:
            raise CursorExpired(f"Slack {method}: the stored page cursor is no longer valid")
        error = PushRefused if method == "chat.postMessage" else StreamError
        raise error(f"Slack {method}: {resp.status} {str(code or 'unexpected answer')[:100]}")
