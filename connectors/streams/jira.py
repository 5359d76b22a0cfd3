"""Jira issues of one project as a stream (reference: apis-storage-dev.md §6 "Pagination", "Incremental sync").

Pull: ``POST /search/jql`` with ``project = "KEY" [AND updated >= "yyyy-MM-dd HH:mm"] ORDER BY updated ASC, key
ASC``, the fields worth syncing and ``maxResults``; then the same body with each ``nextPageToken`` until an answer
has none. JQL dates have minute precision and are read in the time zone of the user behind the credential, so
the stream asks ``/myself`` for ``timeZone`` once and writes the newest ``updated`` it saw, floored to the minute,
in that zone: the next delta pass re-reads that minute (the store's content hash drops the repeats) and never
misses an edit made in the same minute after the pass. A page token the site refuses (they expire after 7 days)
is :class:`CursorExpired`: the runner restarts with a full pass.

The search reports no deletions: the stream has no tombstones and a full refresh lets the runner sweep issues
it did not see. Remote ids are the issue ids (stable when an issue moves and changes key); ``key`` is in data.

Cursor: ``{"since": "yyyy-MM-dd HH:mm" | None, "token": nextPageToken | None, "newest": ISO | None, "full"?, "pass"?}``.
Push: create ``POST /issue`` (201 ``{"id", "key"}``), update ``PUT /issue/{id}`` (204); the stream then reads the
issue back for the provider's record. Text is sent as ADF (v3). Deleting is not pushed (``can_delete`` False):
Jira's delete is irreversible and needs a permission most users lack. Conflict check (by the runner): ``fetch``
returns the current ``updated`` to compare with the change's base.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from connectors.base import ApiRequest, ApiResponse
from connectors.jira import jira_message
from connectors.streams.base import (CursorExpired, LocalChange, Page, PushRefused, RemoteRecord, Stream,
                                     StreamError, UnsupportedChange)

_PROJECT = re.compile(r"^[A-Z][A-Z0-9_]{0,9}$")
FIELDS = ["summary", "description", "status", "issuetype", "labels", "created", "updated", "project", "reporter"]


def parse_time(text: Any) -> float:
    """Jira's ``2023-01-01T00:00:00.000+0000``."""
    if isinstance(text, str):
        try:
            return datetime.fromisoformat(text).timestamp()
        except ValueError:
            pass
    raise StreamError(f"Jira issue has no valid updated time ({str(text)[:30]!r})")


def adf_text(doc: Any) -> str | None:
    """The plain text of an Atlassian Document (paragraphs joined by newlines)."""
    if not isinstance(doc, dict):
        return None
    paragraphs = []
    for block in doc.get("content") or []:
        if isinstance(block, dict):
            paragraphs.append("".join(str(n.get("text", "")) for n in block.get("content") or []
                                      if isinstance(n, dict)))
    return "\n".join(paragraphs)


def adf(text: str) -> dict[str, Any]:
    """Plain text as an Atlassian Document, one paragraph per line."""
    return {"type": "doc", "version": 1,
            "content": [{"type": "paragraph", "content": [{"type": "text", "text": line}] if line else []}
                        for line in text.split("\n")]}


def issue_record(issue: Any) -> RemoteRecord:
    if not isinstance(issue, dict) or not isinstance(issue.get("id"), str) or not isinstance(issue.get("fields"), dict):
        raise StreamError("Jira returned an issue without id or fields")
    f = issue["fields"]
    data = {
        "id": issue["id"], "key": issue.get("key"), "summary": f.get("summary"),
        "description": adf_text(f.get("description")), "status": (f.get("status") or {}).get("name"),
        "issuetype": (f.get("issuetype") or {}).get("name"), "labels": list(f.get("labels") or []),
        "project": (f.get("project") or {}).get("key"),
        "reporter": (f.get("reporter") or {}).get("displayName"),
        "created": f.get("created"), "updated": f.get("updated"),
    }
    return RemoteRecord(issue["id"], data, parse_time(f.get("updated")))


class JiraIssues(Stream):
    """``JiraIssues(connector, "DEMO", page_size=50)``"""

    service = "jira"
    name = "issues"
    tombstones = False
    can_fetch = True
    can_update = True
    can_delete = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._zone: tzinfo | None = None

    @classmethod
    def check_resource(cls, resource: str) -> str:
        if not isinstance(resource, str) or not _PROJECT.match(resource):
            raise ValueError("a Jira issues stream needs a project key as resource (e.g. 'DEMO')")
        return resource

    async def _user_zone(self) -> tzinfo:
        if self._zone is None:
            resp = await self.call(ApiRequest("GET", "/myself"))
            name = resp.body.get("timeZone") if resp.ok and isinstance(resp.body, dict) else None
            try:
                self._zone = ZoneInfo(name) if isinstance(name, str) and name else timezone.utc
            except (KeyError, ValueError):          # an unknown zone name: UTC, and the overlap below still holds
                self._zone = timezone.utc
        return self._zone

    async def pull(self, cursor: dict[str, Any]) -> Page:
        jql = f'project = "{self.resource}"'
        if cursor.get("since"):
            jql += f' AND updated >= "{cursor["since"]}"'
        body: dict[str, Any] = {"jql": jql + " ORDER BY updated ASC, key ASC", "fields": FIELDS,
                                "maxResults": max(1, min(100, self.page_size))}
        if cursor.get("token"):
            body["nextPageToken"] = cursor["token"]
        resp = await self.call(ApiRequest("POST", "/search/jql", json=body))
        if resp.status == 400 and cursor.get("token"):
            raise CursorExpired(f"Jira search refused the stored page token: {jira_message(resp.body)[:200]}")
        self._check(resp, "search")
        issues = resp.body.get("issues") if isinstance(resp.body, dict) else None
        if not isinstance(issues, list):
            raise StreamError("Jira search did not return an issue list")
        records = [issue_record(i) for i in issues]
        newest = cursor.get("newest")
        for r in records:
            if newest is None or r.modified > parse_time(newest):
                newest = r.data["updated"]
        token = resp.body.get("nextPageToken")
        keep = {k: cursor[k] for k in ("full", "pass", "since") if k in cursor}
        if isinstance(token, str) and token:
            return Page(records, {**keep, "token": token, "newest": newest}, done=False)
        since = cursor.get("since")
        if newest is not None:
            moment = datetime.fromtimestamp(parse_time(newest), await self._user_zone())
            since = moment.strftime("%Y-%m-%d %H:%M")
        return Page(records, {"since": since, "token": None, "newest": newest}, done=True)

    async def fetch(self, remote_id: str) -> RemoteRecord | None:
        resp = await self.call(ApiRequest("GET", f"/issue/{self._id(remote_id)}", params={"fields": ",".join(FIELDS)}))
        if resp.status == 404:
            return None
        self._check(resp, "get issue")
        return issue_record(resp.body)

    def _fields(self, data: dict[str, Any]) -> dict[str, Any]:
        fields: dict[str, Any] = {}
        if "summary" in data:
            fields["summary"] = data["summary"]
        if "description" in data:
            text = data["description"]
            fields["description"] = adf(text) if isinstance(text, str) else text
        if "labels" in data:
            fields["labels"] = list(data["labels"] or [])
        return fields

    async def push(self, change: LocalChange) -> RemoteRecord:
        if change.deleted:
            raise UnsupportedChange("Jira issues are not deleted from integd (irreversible, needs admin rights)")
        fields = self._fields(change.data)
        if change.remote_id is None:
            fields.update(project={"key": self.resource}, issuetype={"name": change.data.get("issuetype") or "Task"})
            resp = await self.call(ApiRequest("POST", "/issue", json={"fields": fields}))
            self._check(resp, "create issue", expect=201)
            remote_id = str(resp.body.get("id")) if isinstance(resp.body, dict) else ""
        else:
            remote_id = self._id(change.remote_id)
            resp = await self.call(ApiRequest("PUT", f"/issue/{remote_id}", json={"fields": fields}))
            self._check(resp, "update issue", expect=204)
        record = await self.fetch(remote_id)
        if record is None:
            raise StreamError(f"Jira issue {remote_id} vanished right after it was written")
        return record

    @staticmethod
    def _id(remote_id: str) -> str:
        if not str(remote_id).isdigit():
            raise StreamError(f"Jira issue ids are numbers, not {str(remote_id)[:20]!r}")
        return str(remote_id)

    @staticmethod
    def _check(resp: ApiResponse, what: str, expect: int = 200) -> None:
        if resp.status == expect:
            return
        error = PushRefused if what in ("create issue", "update issue") else StreamError
        raise error(f"Jira {what}: {resp.status} {jira_message(resp.body)[:200]}")
