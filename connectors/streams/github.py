"""GitHub issues as a stream (reference: apis-storage-dev.md §4 "Incremental sync", "Write operations").

Pull: ``GET /repos/{o}/{r}/issues?state=all&sort=updated&direction=asc&since=<T>&per_page=N``. Pages are walked
by moving ``since`` forward to the last issue's ``updated_at`` (keyset pagination), not by page number: an issue
edited during a run jumps to the end of the ``updated`` order and shifts every later position by one, so page
numbers would skip an unchanged issue at a page boundary and lose it for good. ``since`` is inclusive, so the
issues at exactly T come again and the store's content hash drops them; only when a whole page shares one
``updated_at`` does the cursor fall back to ``page`` + 1 at the same ``since``.

The first request of a delta pass is conditional (``If-None-Match`` with the ETag of the identical request last
time): a 304 costs no quota. GitHub reports no deletions (admins can delete issues): a full refresh lists every
issue and the runner tombstones the ones it did not see.

Cursor: ``{"since": ISO-8601 | None, "page": int, "etag": str | None, "full"?: true, "pass"?: token}``.
Push: create ``POST .../issues``; update ``PATCH .../issues/{number}``; a local delete closes the issue (the REST
API cannot delete one). Conflict check: ``GET .../issues/{number}``'s ``updated_at`` against the base.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Any
from urllib.parse import parse_qs, urlsplit

from connectors.base import ApiRequest, ApiResponse
from connectors.http import parse_link_header
from connectors.streams.base import (LocalChange, Page, PushRefused, RemoteRecord, Stream, StreamError,
                                     UnsupportedChange)

_REPO = re.compile(r"^[A-Za-z0-9_.-]{1,100}/[A-Za-z0-9_.-]{1,100}$")
_WRITABLE = ("title", "body", "state", "state_reason", "labels", "assignees")


def parse_time(text: Any) -> float:
    if not isinstance(text, str):
        raise StreamError(f"GitHub issue has no valid updated_at ({str(text)[:30]!r})")
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise StreamError(f"GitHub issue has no valid updated_at ({text[:30]!r})") from None


def iso(ts: float) -> str:
    return datetime.fromtimestamp(int(ts), timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def issue_record(issue: Any) -> RemoteRecord:
    """The stored form of an issue: the fields worth syncing, not the URLs and avatars."""
    if not isinstance(issue, dict) or not isinstance(issue.get("number"), int):
        raise StreamError("GitHub returned an issue without a number")
    data = {
        "number": issue["number"], "id": issue.get("id"), "title": issue.get("title"), "body": issue.get("body"),
        "state": issue.get("state"), "state_reason": issue.get("state_reason"),
        "labels": [lab.get("name") if isinstance(lab, dict) else lab for lab in issue.get("labels") or []],
        "assignees": [a.get("login") if isinstance(a, dict) else a for a in issue.get("assignees") or []],
        "user": (issue.get("user") or {}).get("login"), "comments": issue.get("comments"),
        "created_at": issue.get("created_at"), "updated_at": issue.get("updated_at"),
        "closed_at": issue.get("closed_at"), "pull_request": "pull_request" in issue,
    }
    return RemoteRecord(str(issue["number"]), data, parse_time(issue.get("updated_at")))


def _remaining(resp: ApiResponse, page: int, per_page: int) -> int | None:
    """Issues after this page, from the Link header's rel="last" page number (an estimate for progress bars)."""
    last = parse_link_header(resp.headers.get("link")).get("last")
    if last is None:
        return 0 if "next" not in parse_link_header(resp.headers.get("link")) else None
    number = parse_qs(urlsplit(last).query).get("page", [""])[0]
    return max(0, int(number) - page) * per_page if number.isdigit() else None


class GitHubIssues(Stream):
    """``GitHubIssues(connector, "octo/demo", page_size=100)``"""

    service = "github"
    name = "issues"
    tombstones = False
    can_fetch = True
    can_update = True
    can_delete = True      # closes the issue: the REST API cannot delete one

    @classmethod
    def check_resource(cls, resource: str) -> str:
        if not isinstance(resource, str) or not _REPO.match(resource):
            raise ValueError("a GitHub issues stream needs resource 'owner/repo'")
        return resource

    @property
    def _path(self) -> str:
        return f"/repos/{self.resource}/issues"

    async def pull(self, cursor: dict[str, Any]) -> Page:
        since, page = cursor.get("since"), int(cursor.get("page") or 1)
        per_page = max(1, min(100, self.page_size))
        params: dict[str, Any] = {"state": "all", "sort": "updated", "direction": "asc", "per_page": per_page}
        if since:
            params["since"] = since
        if page > 1:
            params["page"] = page
        headers = {"If-None-Match": cursor["etag"]} if cursor.get("etag") and page == 1 and since else None
        resp = await self.call(ApiRequest("GET", self._path, params=params, headers=headers))
        if resp.status == 304:
            return Page([], dict(cursor), done=True, not_modified=True)
        self._check(resp, "list issues")
        if not isinstance(resp.body, list):
            raise StreamError("GitHub list issues did not return a list")
        records = [issue_record(i) for i in resp.body]
        return Page(records, self._next(cursor, records, per_page, resp), done=len(records) < per_page,
                    remaining=_remaining(resp, page, per_page))

    def _next(self, cursor: dict[str, Any], records: list[RemoteRecord], per_page: int,
              resp: ApiResponse) -> dict[str, Any]:
        since, page = cursor.get("since"), int(cursor.get("page") or 1)
        keep = {k: cursor[k] for k in ("full", "pass") if k in cursor}
        if len(records) < per_page:      # the pass is over: the next delta starts at the newest issue seen
            last = records[-1].data["updated_at"] if records else since
            etag = resp.headers.get("etag") if last == since and page == 1 else None
            return {"since": last, "page": 1, "etag": etag}
        last = records[-1].data["updated_at"]
        if last == since:                # a whole page at one timestamp: step through it by page number
            return {**keep, "since": since, "page": page + 1, "etag": None}
        return {**keep, "since": last, "page": 1, "etag": None}

    async def fetch(self, remote_id: str) -> RemoteRecord | None:
        resp = await self.call(ApiRequest("GET", f"{self._path}/{int(remote_id)}"))
        if resp.status in (404, 410):
            return None
        self._check(resp, "get issue")
        return issue_record(resp.body)

    async def push(self, change: LocalChange) -> RemoteRecord:
        body = {k: change.data[k] for k in _WRITABLE if k in change.data}
        if change.deleted:
            if change.remote_id is None:
                raise UnsupportedChange("a GitHub issue that was never pushed cannot be deleted upstream")
            body = {"state": "closed", "state_reason": "not_planned"}
        if change.remote_id is None:
            if not body.get("title"):
                raise PushRefused("GitHub create issue: a new issue needs a title")
            resp = await self.call(ApiRequest("POST", self._path, json=body))
            self._check(resp, "create issue", expect=201)
        else:
            resp = await self.call(ApiRequest("PATCH", f"{self._path}/{int(change.remote_id)}", json=body))
            self._check(resp, "update issue")
        return issue_record(resp.body)

    @staticmethod
    def _check(resp: ApiResponse, what: str, expect: int = 200) -> None:
        if resp.status == expect:
            return
        message = resp.body.get("message") if isinstance(resp.body, dict) else None
        error = PushRefused if what.endswith("issue") and what != "get issue" else StreamError
        raise error(f"GitHub {what}: {resp.status} {str(message or 'unexpected answer')[:200]}")
