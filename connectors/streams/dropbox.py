"""Dropbox files as a stream (reference: apis-storage-dev.md §2 "Pagination", "Incremental sync", "upload").

Resource: a folder path (``"/"`` or ``""`` for the whole Dropbox, else ``/Folder``), listed recursively.

Pull: a full pass is ``POST /files/list_folder {"path", "recursive": true, "limit"}`` and then
``/files/list_folder/continue`` while ``has_more``; the cursor it ends with is a delta cursor, so the next run
only continues from it and gets what changed: files (upserts) and ``deleted`` entries (tombstones). A cursor
Dropbox has reset (409 ``reset``) raises CursorExpired and the runner falls back to a full resync. Only files are
records; folders are structure. A record's id is its ``path_lower``, because a ``deleted`` entry carries no
``id`` (a rename is a deletion plus a new file). A deleted folder comes as ONE deleted entry; its files'
records are swept by the next full refresh (the stream cannot list what the provider no longer has).

Longpoll: :meth:`DropboxFiles.wait_for_changes` asks ``notify.dropboxapi.com`` (no Authorization) whether
anything changed after a delta cursor, for a watcher that wants to trigger a delta sync without a webhook.

Cursor: ``{"cursor": <Dropbox cursor> | None, "full"?: true, "pass"?: token}``.

Push (``files/upload``, content host): ``data["content"]`` (text, UTF-8) or ``data["content_base64"]`` is the
file's new content. A create uploads with ``mode: add`` (409 conflict if the path already holds other content).
An update uploads with ``mode: {".tag": "update", "update": <rev>}`` so that Dropbox itself refuses a write that
lost a race (409 ``path/conflict/file``) -> PushRefused, the record stays dirty and the next run decides. Which
rev: the stream re-reads the file first; when the file is no newer than the change's base, the rev the change
was based on (``data["rev"]``: if the file moved on since, Dropbox refuses); when it is newer, the runner has
already met that conflict and chose to keep the local side (it only pushes then), so the current rev: the write
overwrites exactly the version the runner looked at, and still nothing written after that. A delete is
``files/delete_v2`` with ``parent_rev`` chosen the same way.
"""

from __future__ import annotations

import base64
import binascii
import re
from datetime import datetime
from typing import Any

from connectors.base import ApiRequest, ApiResponse
from connectors.dropbox import DropboxConnector, dropbox_error
from connectors.streams.base import (CursorExpired, LocalChange, Page, PushRefused, RemoteRecord, Stream,
                                     StreamError)

_FOLDER = re.compile(r"^(|/[^\x00-\x1f\\]{1,4095})$")
_FIELDS = ("id", "name", "path_lower", "path_display", "rev", "size", "server_modified", "client_modified",
           "content_hash")


def parse_time(text: Any) -> float:
    if not isinstance(text, str):
        raise StreamError(f"Dropbox file has no valid server_modified ({str(text)[:30]!r})")
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise StreamError(f"Dropbox file has no valid server_modified ({text[:30]!r})") from None


def file_record(entry: Any) -> RemoteRecord | None:
    """A record for a file, a tombstone for a deleted entry, None for a folder."""
    if not isinstance(entry, dict) or not isinstance(entry.get("path_lower"), str):
        raise StreamError("Dropbox returned an entry without path_lower")
    tag = entry.get(".tag")
    if tag == "deleted":
        return RemoteRecord(entry["path_lower"], {"path_lower": entry["path_lower"],
                                                   "name": entry.get("name")}, 0.0, deleted=True)
    if tag != "file":
        return None
    data = {k: entry.get(k) for k in _FIELDS}
    return RemoteRecord(entry["path_lower"], data, parse_time(entry.get("server_modified")))


class DropboxFiles(Stream):
    """``DropboxFiles(connector, "/Documents", page_size=500)``"""

    service = "dropbox"
    name = "files"
    tombstones = True
    can_fetch = True
    can_create = True
    can_update = True
    can_delete = True

    @classmethod
    def check_resource(cls, resource: str) -> str:
        if resource == "/":
            return resource
        if not isinstance(resource, str) or not _FOLDER.match(resource) or resource.endswith("/"):
            raise ValueError("a Dropbox files stream needs a folder path: '/' for everything or '/Folder' "
                             "(no trailing slash)")
        return resource

    @property
    def folder(self) -> str:
        """The list_folder path: Dropbox names the root ``""``."""
        return "" if self.resource == "/" else self.resource

    async def pull(self, cursor: dict[str, Any]) -> Page:
        keep = {k: cursor[k] for k in ("full", "pass") if k in cursor}
        position = cursor.get("cursor")
        if position:
            resp = await self.call(ApiRequest("POST", "/files/list_folder/continue", json={"cursor": position}))
            if resp.status == 409 and dropbox_error(resp.body)[1] == "reset":
                raise CursorExpired("Dropbox reset the list_folder cursor; a full resync is needed")
        else:
            limit = max(1, min(2000, self.page_size))
            resp = await self.call(ApiRequest("POST", "/files/list_folder", json={
                "path": self.folder, "recursive": True, "include_deleted": False, "limit": limit}))
        body = self._check(resp, "list_folder")
        entries = body.get("entries")
        if not isinstance(entries, list) or not isinstance(body.get("cursor"), str):
            raise StreamError("Dropbox list_folder answered without entries or cursor")
        records = [r for r in (file_record(e) for e in entries) if r is not None]
        more = body.get("has_more") is True
        nxt = {**keep, "cursor": body["cursor"]} if more else {"cursor": body["cursor"]}
        return Page(records, nxt, done=not more)

    async def wait_for_changes(self, cursor: dict[str, Any], timeout: int = 30) -> tuple[bool, int | None]:
        """Longpoll: (whether anything changed after the delta cursor, the backoff Dropbox asks for in s)."""
        position = cursor.get("cursor")
        if not position:
            raise StreamError("Dropbox longpoll needs a delta cursor (run a full pass first)")
        resp = await self.call(ApiRequest("POST", "/files/list_folder/longpoll",
                                          json={"cursor": position, "timeout": max(30, min(480, timeout))}))
        if resp.status == 409 and dropbox_error(resp.body)[1] == "reset":
            raise CursorExpired("Dropbox reset the list_folder cursor; a full resync is needed")
        body = self._check(resp, "list_folder/longpoll")
        backoff = body.get("backoff")
        return body.get("changes") is True, backoff if isinstance(backoff, int) else None

    async def fetch(self, remote_id: str) -> RemoteRecord | None:
        resp = await self.call(ApiRequest("POST", "/files/get_metadata", json={"path": remote_id}))
        if resp.status == 409 and "not_found" in dropbox_error(resp.body)[0]:
            return None
        return file_record(self._check(resp, "get_metadata"))

    async def push(self, change: LocalChange) -> RemoteRecord:
        connector = self.connector
        if not isinstance(connector, DropboxConnector):
            raise StreamError("a Dropbox files stream needs the Dropbox connector")
        if change.deleted:
            return await self._delete(change)
        content = self._content(change.data)
        if change.remote_id is None:
            path = change.data.get("path_display") or change.data.get("path")
            if not isinstance(path, str) or not path.startswith(self.folder + "/"):
                raise PushRefused(f"Dropbox upload: a new file needs a path under {self.folder or '/'!r}")
            resp = await connector.upload(path, content, mode="add")
        else:
            rev = await self._expected_rev(change)
            path = change.data.get("path_display") or change.remote_id
            resp = await connector.upload(path, content, mode={".tag": "update", "update": rev})
        record = file_record(self._check(resp, "upload", push=True))
        if record is None:
            raise StreamError("Dropbox upload answered with something that is not a file")
        return record

    async def _expected_rev(self, change: LocalChange) -> str:
        """The rev the write may replace (module docstring); PushRefused without one or when the file is gone."""
        rev = change.data.get("rev")
        if not isinstance(rev, str) or not rev:
            raise PushRefused("Dropbox upload: an update needs the rev it was based on (data['rev'])")
        current = await self.fetch(change.remote_id or "")
        if current is None:
            raise PushRefused(f"Dropbox upload: {change.remote_id} no longer exists upstream")
        if change.base_modified is not None and current.modified > change.base_modified:
            return str(current.data["rev"])          # the runner kept the local side of a conflict it saw
        return rev

    async def _delete(self, change: LocalChange) -> RemoteRecord:
        if change.remote_id is None:
            raise PushRefused("Dropbox delete: a file that was never pushed cannot be deleted upstream")
        body: dict[str, Any] = {"path": change.remote_id}
        if isinstance(change.data.get("rev"), str):
            body["parent_rev"] = await self._expected_rev(change)
        resp = await self.call(ApiRequest("POST", "/files/delete_v2", json=body))
        meta = self._check(resp, "delete_v2", push=True).get("metadata") or {}
        return RemoteRecord(change.remote_id, {"path_lower": change.remote_id, "name": meta.get("name")}, 0.0,
                            deleted=True)

    @staticmethod
    def _content(data: dict[str, Any]) -> bytes:
        if isinstance(data.get("content"), str):
            return data["content"].encode()
        if isinstance(data.get("content_base64"), str):
            try:
                return base64.b64decode(data["content_base64"], validate=True)
            except (binascii.Error, ValueError):
                raise PushRefused("Dropbox upload: content_base64 is not valid base64") from None
        raise PushRefused("Dropbox upload: the change needs data['content'] (text) or data['content_base64']")

    @staticmethod
    def _check(resp: ApiResponse, what: str, *, push: bool = False) -> dict[str, Any]:
        if resp.status == 200 and isinstance(resp.body, dict):
            return resp.body
        text, _ = dropbox_error(resp.body)
        error = PushRefused if push else StreamError
        raise error(f"Dropbox {what}: {resp.status} {text[:200]}")
