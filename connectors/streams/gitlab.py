"""GitLab project issues as a stream (reference: apis-storage-dev.md §5 "Incremental sync", "Write operations").

Pull: ``GET /projects/:id/issues?state=all&order_by=updated_at&sort=asc&updated_after=<T>&per_page=N
&pagination=keyset``, then each ``Link rel="next"`` as given (its ``cursor`` names the last row returned, so an
issue edited during the walk moves to the end of the order and is met again instead of shifting everything after
it, which is what makes offset pages lose rows). A pass ends on a page without a next link; the next delta pass
starts at the newest ``updated_at`` seen (``updated_after`` is inclusive, so the issues at exactly that instant
come again and the store's content hash drops them). An instance without keyset on this endpoint answers offset
pages with a ``Link rel="next"`` too, so the same walk works there.

GitLab's issue list reports no deletions (owners can delete issues): the stream has no tombstones, and a full
refresh lists every issue so that the runner sweeps the ones it did not see. A keyset cursor the instance no
longer accepts (400) is :class:`CursorExpired`: the runner restarts with a full pass.

Cursor: ``{"updated_after": ISO | None, "next": {query params of the next link} | None, "full"?, "pass"?}``.
Push: create ``POST /projects/:id/issues`` (201); update ``PUT /projects/:id/issues/:iid``; a local delete closes
the issue (``state_event=close``): deleting needs owner rights and loses history. Conflict check (by the runner):
``fetch`` reads ``GET /projects/:id/issues/:iid`` and compares its ``updated_at`` with the change's base.

>>> GitLabIssues.check_resource("group/sub/project")
'group/sub/project'
"""

from __future__ import annotations

import re
import urllib.parse
from datetime import datetime
from typing import Any

from connectors.base import ApiRequest, ApiResponse, request_from_url
from connectors.gitlab import gitlab_message
from connectors.http import parse_link_header
from connectors.streams.base import (CursorExpired, LocalChange, Page, PushRefused, RemoteRecord, Stream,
                                     StreamError, UnsupportedChange)

_PROJECT = re.compile(r"^(\d{1,12}|[A-Za-z0-9_.-]{1,255}(/[A-Za-z0-9_.-]{1,255}){1,20})$")
_WRITABLE = ("title", "description", "labels", "state_event")


def parse_time(text: Any) -> float:
    if isinstance(text, str):
        try:
            return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
        except ValueError:
            pass
    raise StreamError(f"GitLab issue has no valid updated_at ({str(text)[:30]!r})")


def issue_record(issue: Any) -> RemoteRecord:
    """The stored form of an issue: the fields worth syncing, keyed by the project-local ``iid``."""
    if not isinstance(issue, dict) or not isinstance(issue.get("iid"), int):
        raise StreamError("GitLab returned an issue without an iid")
    data = {
        "iid": issue["iid"], "id": issue.get("id"), "project_id": issue.get("project_id"),
        "title": issue.get("title"), "description": issue.get("description"), "state": issue.get("state"),
        "labels": list(issue.get("labels") or []),
        "assignees": [a.get("username") for a in issue.get("assignees") or [] if isinstance(a, dict)],
        "author": (issue.get("author") or {}).get("username"), "web_url": issue.get("web_url"),
        "created_at": issue.get("created_at"), "updated_at": issue.get("updated_at"),
        "closed_at": issue.get("closed_at"),
    }
    return RemoteRecord(str(issue["iid"]), data, parse_time(issue.get("updated_at")))


class GitLabIssues(Stream):
    """``GitLabIssues(connector, "group/project", page_size=100)`` (or the numeric project id)."""

    service = "gitlab"
    name = "issues"
    tombstones = False
    can_fetch = True
    can_update = True
    can_delete = True      # closes the issue (module docstring)

    @classmethod
    def check_resource(cls, resource: str) -> str:
        if not isinstance(resource, str) or not _PROJECT.match(resource):
            raise ValueError("a GitLab issues stream needs resource 'namespace/project' or a numeric project id")
        return resource

    @property
    def _path(self) -> str:
        return f"/projects/{urllib.parse.quote(self.resource, safe='')}/issues"

    async def pull(self, cursor: dict[str, Any]) -> Page:
        per_page = max(1, min(100, self.page_size))
        if cursor.get("next"):
            request = ApiRequest("GET", self._path, params=cursor["next"])
        else:
            params: dict[str, Any] = {"state": "all", "order_by": "updated_at", "sort": "asc",
                                      "per_page": per_page, "pagination": "keyset"}
            if cursor.get("updated_after"):
                params["updated_after"] = cursor["updated_after"]
            request = ApiRequest("GET", self._path, params=params)
        resp = await self.call(request)
        if resp.status == 400 and cursor.get("next"):
            raise CursorExpired(f"GitLab list issues refused the stored page cursor: {self._reason(resp)}")
        self._check(resp, "list issues")
        if not isinstance(resp.body, list):
            raise StreamError("GitLab list issues did not return a list")
        records = [issue_record(i) for i in resp.body]
        return self._next(cursor, records, resp)

    def _next(self, cursor: dict[str, Any], records: list[RemoteRecord], resp: ApiResponse) -> Page:
        newest = max((r.data["updated_at"] for r in records), key=parse_time, default=None)
        seen = cursor.get("seen") or cursor.get("updated_after")
        if newest is not None and (seen is None or parse_time(newest) > parse_time(seen)):
            seen = newest
        link = parse_link_header(resp.headers.get("link")).get("next")
        if link is None:         # the pass is over: the next delta starts at the newest issue seen
            return Page(records, {"updated_after": seen, "next": None}, done=True)
        following = request_from_url(link, self.connector.base_url)
        if following.path != self._path:
            raise StreamError("GitLab list issues: the next link leads to another endpoint")
        keep = {k: cursor[k] for k in ("full", "pass", "updated_after") if k in cursor}
        return Page(records, {**keep, "next": dict(following.params or {}), "seen": seen}, done=False)

    async def fetch(self, remote_id: str) -> RemoteRecord | None:
        resp = await self.call(ApiRequest("GET", f"{self._path}/{self._iid(remote_id)}"))
        if resp.status == 404:
            return None
        self._check(resp, "get issue")
        return issue_record(resp.body)

    async def push(self, change: LocalChange) -> RemoteRecord:
        body = {k: change.data[k] for k in _WRITABLE if k in change.data}
        if isinstance(body.get("labels"), list):
            body["labels"] = ",".join(str(x) for x in body["labels"])
        state = change.data.get("state")
        if "state_event" not in body and state in ("opened", "closed"):
            body["state_event"] = "close" if state == "closed" else "reopen"
        if change.deleted:
            if change.remote_id is None:
                raise UnsupportedChange("a GitLab issue that was never pushed cannot be deleted upstream")
            body = {"state_event": "close"}
        if change.remote_id is None:
            if not body.get("title"):
                raise PushRefused("GitLab create issue: a new issue needs a title")
            if body.get("state_event") == "reopen":      # a new issue is open already
                del body["state_event"]
            resp = await self.call(ApiRequest("POST", self._path, json=body))
            self._check(resp, "create issue", expect=201)
        else:
            resp = await self.call(ApiRequest("PUT", f"{self._path}/{self._iid(change.remote_id)}", json=body))
            self._check(resp, "update issue")
        return issue_record(resp.body)

    @staticmethod
    def _iid(remote_id: str) -> int:
        if not str(remote_id).isdigit():
            raise StreamError(f"GitLab issue ids are numbers (iid), not {str(remote_id)[:20]!r}")
        return int(remote_id)

    @staticmethod
    def _reason(resp: ApiResponse) -> str:
        text, _ = gitlab_message(resp.body)
        return (text if text != "no message" else "unexpected answer")[:200]

    def _check(self, resp: ApiResponse, what: str, expect: int = 200) -> None:
        if resp.status == expect:
            return
        error = PushRefused if what in ("create issue", "update issue") else StreamError
        raise error(f"GitLab {what}: {resp.status} {self._reason(resp)}")
