"""Gmail messages and Google Drive files as streams (reference: apis-messaging.md §1 Gmail "Incremental sync",
apis-storage-dev.md §1 Drive "Incremental sync").

Gmail (resource ``me``). Full pass: the profile's ``historyId`` is read FIRST (so nothing that happens during
the listing is missed), then ``messages.list`` page by page and ``messages.get?format=metadata`` for each id.
Delta: ``history.list?startHistoryId=H``, oldest first: added and relabelled messages are read again (a 404
means it was deleted meanwhile: a tombstone), deleted ones become tombstones. The stored ``history`` only moves
to the response's ``historyId`` when the last page is done. A 404 on history.list (the id is too old) raises
CursorExpired: the runner does a full resync on its own. Gmail has no modification time: the message's
``historyId`` orders versions (the reference says to use it). Push: create = ``messages.send``.

Drive (resource ``me``). Full pass: ``changes/startPageToken`` first, then ``files.list``. Delta:
``changes.list?pageToken=T``; each page's ``nextPageToken`` is a position of its own, and the last page's
``newStartPageToken`` is stored for the next poll. ``removed`` changes are tombstones. A rejected token (400)
raises CursorExpired. Push: metadata update = ``PATCH files/{id}`` (name, description, starred, trashed); a
local delete trashes the file. Conflict check: ``files.get``'s ``modifiedTime``.

Push channels (``DriveFiles.watch`` / ``stop_watch``): ``changes.watch`` from a page token and ``channels.stop``;
integd/sync_channels.py registers and renews them for realtime jobs.

Cursors: Gmail ``{"history": id, "page": token?, "full"?, "pass"?}``; Drive ``{"token": t, "page": token?,
"full"?, "pass"?}``.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from typing import Any

from connectors.base import ApiRequest, ApiResponse
from connectors.streams.base import (
    CursorExpired,
    LocalChange,
    Page,
    PushRefused,
    RemoteRecord,
    Stream,
    StreamError,
    UnsupportedChange,
)


@dataclass(frozen=True)
class Channel:
    """A registered push channel: our id, the provider's resource id (needed to stop it), expiry (epoch s)."""

    id: str
    resource_id: str
    expires_at: float


_DRIVE_FIELDS = "id,name,mimeType,parents,trashed,version,createdTime,modifiedTime,size,md5Checksum"


def _google_message(resp: ApiResponse) -> str:
    error = resp.body.get("error") if isinstance(resp.body, dict) else None
    return str(error.get("message") if isinstance(error, dict) else "unexpected answer")[:200]


def _check(resp: ApiResponse, what: str, *, push: bool = False) -> None:
    if 200 <= resp.status < 300 and isinstance(resp.body, dict):
        return
    raise (PushRefused if push else StreamError)(f"{what}: {resp.status} {_google_message(resp)}")


def _keep(cursor: dict[str, Any]) -> dict[str, Any]:
    return {k: cursor[k] for k in ("full", "pass") if k in cursor}


def gmail_record(body: dict[str, Any]) -> RemoteRecord:
    headers = {h.get("name", "").lower(): h.get("value") for h in (body.get("payload") or {}).get("headers", [])}
    data = {"id": body.get("id"), "threadId": body.get("threadId"), "labelIds": body.get("labelIds") or [],
            "snippet": body.get("snippet"), "internalDate": body.get("internalDate"),
            "from": headers.get("from"), "to": headers.get("to"), "subject": headers.get("subject"),
            "historyId": body.get("historyId")}
    try:
        modified = float(body.get("historyId") or 0)
    except ValueError:
        raise StreamError("Gmail returned a message with a bad historyId") from None
    return RemoteRecord(str(body["id"]), data, modified)


class GmailMessages(Stream):
    """``GmailMessages(connector, "me", page_size=100)``"""

    service = "gmail"
    name = "messages"
    tombstones = True
    can_update = False
    can_delete = False

    @classmethod
    def check_resource(cls, resource: str) -> str:
        if resource != "me":
            raise ValueError("a Gmail messages stream syncs the connected mailbox: resource 'me'")
        return resource

    async def _get(self, message_id: str) -> RemoteRecord | None:
        resp = await self.call(ApiRequest("GET", f"/users/me/messages/{message_id}", params={"format": "metadata"}))
        if resp.status == 404:
            return None
        _check(resp, "Gmail messages.get")
        return gmail_record(resp.body)

    async def pull(self, cursor: dict[str, Any]) -> Page:
        if cursor.get("full"):
            return await self._list(cursor)
        return await self._history(cursor)

    async def _list(self, cursor: dict[str, Any]) -> Page:
        history = cursor.get("history")
        requests = 0
        if history is None:
            profile = await self.call(ApiRequest("GET", "/users/me/profile"))
            _check(profile, "Gmail getProfile")
            history, requests = profile.body.get("historyId"), 1
        params: dict[str, Any] = {"maxResults": max(1, min(500, self.page_size))}
        if cursor.get("page"):
            params["pageToken"] = cursor["page"]
        resp = await self.call(ApiRequest("GET", "/users/me/messages", params=params))
        _check(resp, "Gmail messages.list")
        records = []
        for brief in resp.body.get("messages") or []:
            found = await self._get(str(brief.get("id")))
            if found is not None:
                records.append(found)
        following = resp.body.get("nextPageToken")
        requests += 1 + len(records)
        if following:
            return Page(records, {**_keep(cursor), "history": history, "page": following}, False, requests=requests)
        return Page(records, {"history": history}, True, requests=requests)

    async def _history(self, cursor: dict[str, Any]) -> Page:
        params: dict[str, Any] = {"startHistoryId": cursor["history"], "maxResults": max(1, min(500, self.page_size))}
        if cursor.get("page"):
            params["pageToken"] = cursor["page"]
        resp = await self.call(ApiRequest("GET", "/users/me/history", params=params))
        if resp.status == 404:
            raise CursorExpired("Gmail history.list: the stored startHistoryId is too old")
        _check(resp, "Gmail history.list")
        changed: dict[str, bool] = {}                   # message id -> deleted?
        for entry in resp.body.get("history") or []:
            for item in entry.get("messagesDeleted") or []:
                changed[str(item["message"]["id"])] = True
            for key in ("messagesAdded", "labelsAdded", "labelsRemoved"):
                for item in entry.get(key) or []:
                    changed.setdefault(str(item["message"]["id"]), False)
        records = []
        for message_id, deleted in changed.items():
            found = None if deleted else await self._get(message_id)
            records.append(found or RemoteRecord(message_id, {"id": message_id}, float(resp.body["historyId"]),
                                                 deleted=True))
        if resp.body.get("nextPageToken"):
            return Page(records, {"history": cursor["history"], "page": resp.body["nextPageToken"]}, False)
        return Page(records, {"history": resp.body.get("historyId") or cursor["history"]}, True)

    async def push(self, change: LocalChange) -> RemoteRecord:
        if change.remote_id is not None or change.deleted:
            raise UnsupportedChange("Gmail messages can only be created (sent) through a sync")
        to, subject, text = (change.data.get(k) for k in ("to", "subject", "body"))
        if not isinstance(to, str) or not to or not isinstance(subject, str):
            raise PushRefused("Gmail messages.send: a new message needs 'to' and 'subject' (and a 'body')")
        mail = EmailMessage()
        mail["To"], mail["Subject"] = to, subject
        mail.set_content(text if isinstance(text, str) else "")
        raw = base64.urlsafe_b64encode(mail.as_bytes()).decode()
        resp = await self.call(ApiRequest("POST", "/users/me/messages/send", json={"raw": raw}))
        _check(resp, "Gmail messages.send", push=True)
        found = await self._get(str(resp.body.get("id")))
        if found is None:
            raise StreamError("Gmail messages.send: the sent message cannot be read back")
        return found


def drive_record(item: dict[str, Any]) -> RemoteRecord:
    if not isinstance(item, dict) or not item.get("id"):
        raise StreamError("Drive returned a file without an id")
    try:
        modified = datetime.fromisoformat(str(item.get("modifiedTime")).replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise StreamError("Drive returned a file without a valid modifiedTime") from None
    data = {k: item.get(k) for k in ("id", "name", "mimeType", "parents", "trashed", "version", "createdTime",
                                     "modifiedTime", "size", "md5Checksum")}
    return RemoteRecord(str(item["id"]), data, modified)


class DriveFiles(Stream):
    """``DriveFiles(connector, "me", page_size=100)``"""

    service = "google_drive"
    name = "files"
    tombstones = True
    can_fetch = True
    can_create = False
    can_update = True
    can_delete = True       # trashes the file

    @classmethod
    def check_resource(cls, resource: str) -> str:
        if resource != "me":
            raise ValueError("a Drive files stream syncs the connected user's Drive: resource 'me'")
        return resource

    async def pull(self, cursor: dict[str, Any]) -> Page:
        size = max(1, min(1000, self.page_size))
        if cursor.get("full"):
            token, requests = cursor.get("token"), 0
            if token is None:
                start = await self.call(ApiRequest("GET", "/changes/startPageToken"))
                _check(start, "Drive changes.getStartPageToken")
                token, requests = start.body.get("startPageToken"), 1
            params: dict[str, Any] = {"pageSize": size, "fields": f"nextPageToken,files({_DRIVE_FIELDS})",
                                      "orderBy": "createdTime"}
            if cursor.get("page"):
                params["pageToken"] = cursor["page"]
            resp = await self.call(ApiRequest("GET", "/files", params=params))
            _check(resp, "Drive files.list")
            records = [drive_record(f) for f in resp.body.get("files") or []]
            if resp.body.get("nextPageToken"):
                return Page(records, {**_keep(cursor), "token": token, "page": resp.body["nextPageToken"]}, False,
                            requests=requests + 1)
            return Page(records, {"token": token}, True, requests=requests + 1)
        resp = await self.call(ApiRequest("GET", "/changes", params={"pageToken": cursor["token"], "pageSize": size}))
        if resp.status in (400, 404, 410):
            raise CursorExpired(f"Drive changes.list refused the stored page token ({resp.status})")
        _check(resp, "Drive changes.list")
        records = []
        for c in resp.body.get("changes") or []:
            if c.get("removed") or not isinstance(c.get("file"), dict):
                records.append(RemoteRecord(str(c.get("fileId")), {"id": c.get("fileId")}, 0.0, deleted=True))
            else:
                records.append(drive_record(c["file"]))
        if resp.body.get("nextPageToken"):
            return Page(records, {"token": resp.body["nextPageToken"]}, False)
        return Page(records, {"token": resp.body.get("newStartPageToken") or cursor["token"]}, True)

    async def fetch(self, remote_id: str) -> RemoteRecord | None:
        resp = await self.call(ApiRequest("GET", f"/files/{remote_id}", params={"fields": _DRIVE_FIELDS}))
        if resp.status == 404:
            return None
        _check(resp, "Drive files.get")
        return drive_record(resp.body)

    # ---- push channels (apis-storage-dev.md §1 "Webhooks") --------------------------------------------------
    async def watch(self, channel_id: str, address: str, token: str, *, expires_at: float,
                    page_token: str | None) -> Channel:
        """Register a push channel on the changes resource from ``page_token`` (None: from now); Google may
        shorten the expiry, so the answer's counts. ``address`` gets ``X-Goog-*`` POSTs (integd/sync_webhooks.py).
        """
        if page_token is None:
            start = await self.call(ApiRequest("GET", "/changes/startPageToken"))
            _check(start, "Drive changes.getStartPageToken")
            page_token = start.body.get("startPageToken")
        resp = await self.call(ApiRequest("POST", "/changes/watch", params={"pageToken": page_token}, json={
            "id": channel_id, "type": "web_hook", "address": address, "token": token,
            "expiration": int(expires_at * 1000)}))
        _check(resp, "Drive changes.watch")
        try:
            expiry = int(resp.body["expiration"]) / 1000
        except (KeyError, TypeError, ValueError):
            raise StreamError("Drive changes.watch answered without a numeric expiration") from None
        return Channel(str(resp.body.get("id") or channel_id), str(resp.body.get("resourceId") or ""), expiry)

    async def stop_watch(self, channel_id: str, resource_id: str) -> bool:
        """Stop a channel; False when Google no longer knows it (expired or already stopped)."""
        resp = await self.call(ApiRequest("POST", "/channels/stop", json={"id": channel_id,
                                                                         "resourceId": resource_id}))
        if resp.status == 404:
            return False
        if not 200 <= resp.status < 300:
            raise StreamError(f"Drive channels.stop: {resp.status} {_google_message(resp)}")
        return True

    async def push(self, change: LocalChange) -> RemoteRecord:
        if change.remote_id is None:
            raise UnsupportedChange("Drive files are not created through a sync (metadata updates only)")
        body = {k: change.data[k] for k in ("name", "description", "starred", "trashed") if k in change.data}
        if change.deleted:
            body = {"trashed": True}
        resp = await self.call(ApiRequest("PATCH", f"/files/{change.remote_id}", json=body))
        _check(resp, "Drive files.update", push=True)
        return drive_record(resp.body)
