"""HubSpot contacts as a stream (reference: apis-crm.md §2.6-2.8).

Full pass: the list API, ``GET /crm/v3/objects/contacts?limit=100&after=…`` (no result cap), every live contact;
the runner sweeps the ones not seen.

Delta: the CRM search API on ``lastmodifieddate``::

    POST /crm/v3/objects/contacts/search
    {"filterGroups": [{"filters": [{"propertyName": "lastmodifieddate", "operator": "GTE", "value": <anchor ms>}]}],
     "sorts": [{"propertyName": "lastmodifieddate", "direction": "ASCENDING"}], "limit": N, "after": <offset>}

One search pages through at most 10,000 results (``SEARCH_CAP``; past it HubSpot answers 400), so the walk is
keyset, not offset: every next page is a new search anchored ``GTE`` the last ``lastmodifieddate`` of the page
before, offset 0 (re-anchoring the window at each page). The cap is then never reached, and a contact edited
during the walk (it jumps to the end of the order) cannot shift an unseen one past a page boundary. ``GTE``
brings the boundary records again and the store's content hash drops them. Only when a whole page shares the
anchor's millisecond does the walk page by offset within it; should more than a capped window share one
millisecond (or HubSpot refuse a page past a lower cap there), the stream raises :class:`CursorExpired` and the
runner falls back to the list API's full pass. Each delta starts
``SEARCH_LAG_MS`` before the last high-water mark, because search results are eventually consistent [unverified]
and a contact indexed late must not be skipped.

Deletions: after the search, the archived contacts (``?archived=true``) archived since the previous pass began
become tombstones.

Cursor: ``{"since": ms, "archived_since": ms}`` between passes; within a pass (``phase`` "search" or
"archived", or ``full``), ``after``, ``anchor``, ``max`` and ``started`` (server time, ms, from ``Date``).

Push: create ``POST`` (201; a duplicate email is 409 -> :class:`PushRefused`); update ``PATCH`` after a conflict
check: the contact's current ``updatedAt`` must not be newer than the change's base, or than the version ``fetch``
last read if that is newer (the runner's settled conflict, see ``connectors.streams.salesforce.settled_base``;
HubSpot has no conditional update); delete archives (``DELETE``, 204; already gone counts as deleted).
Each write is read back.
"""

from __future__ import annotations

import re
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any

from connectors.base import ApiRequest, ApiResponse
from connectors.hubspot import hs_error
from connectors.streams.salesforce import settled_base
from connectors.streams.base import (CursorExpired, LocalChange, Page, PushRefused, RemoteRecord, Stream,
                                     StreamError)

CONTACTS = "/crm/v3/objects/contacts"
PROPERTIES = ("email", "firstname", "lastname", "phone", "company", "jobtitle", "lifecyclestage",
              "lastmodifieddate", "createdate")
WRITABLE = ("email", "firstname", "lastname", "phone", "company", "jobtitle", "lifecyclestage")
SEARCH_CAP = 10_000
SEARCH_LAG_MS = 5_000
_LABEL = re.compile(r"^[A-Za-z0-9_.-]{1,80}$")


def parse_ms(text: Any, what: str) -> int:
    """HubSpot's ``2023-01-01T00:00:00.000Z`` (or epoch-ms digits) as epoch milliseconds."""
    if isinstance(text, str):
        if text.isdigit():
            return int(text)
        try:
            return int(round(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000))
        except ValueError:
            pass
    raise StreamError(f"HubSpot answered no valid {what} ({str(text)[:40]!r})")


class HubSpotContacts(Stream):
    """``HubSpotContacts(connector, "default", page_size=100)``; ``resource`` names the portal (a label)."""

    service = "hubspot"
    name = "contacts"
    tombstones = True
    can_fetch = True
    can_update = True
    can_delete = True
    search_cap = SEARCH_CAP

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._read: dict[str, float] = {}        # contact id -> updatedAt of the version last fetched

    @classmethod
    def check_resource(cls, resource: str) -> str:
        if not isinstance(resource, str) or not _LABEL.match(resource):
            raise ValueError("a HubSpot contacts stream's resource names the portal: 1-80 letters, digits, '.', "
                             "'_' or '-' (for example 'default')")
        return resource

    def record(self, item: Any) -> RemoteRecord:
        if not isinstance(item, dict) or not isinstance(item.get("id"), str):
            raise StreamError("HubSpot returned a contact without an id")
        props = item.get("properties") if isinstance(item.get("properties"), dict) else {}
        data = {"id": item["id"], **{name: props.get(name) for name in PROPERTIES},
                "createdAt": item.get("createdAt"), "updatedAt": item.get("updatedAt")}
        return RemoteRecord(item["id"], data, parse_ms(item.get("updatedAt"), "updatedAt") / 1000.0)

    # ---- pull ---------------------------------------------------------------------------------------
    async def pull(self, cursor: dict[str, Any]) -> Page:
        if cursor.get("full") or "since" not in cursor:
            return await self._list_page(cursor)
        if cursor.get("phase") == "archived":
            return await self._archived_page(cursor)
        return await self._search_page(cursor)

    def _server_ms(self, resp: ApiResponse) -> int:
        try:
            return int(parsedate_to_datetime(resp.headers["date"]).timestamp() * 1000) - 1000   # whole seconds
        except (KeyError, TypeError, ValueError):
            return int(self.connector.clock.time() * 1000) - 1000

    async def _list_page(self, cursor: dict[str, Any]) -> Page:
        params: dict[str, Any] = {"limit": max(1, min(100, self.page_size)), "properties": ",".join(PROPERTIES)}
        if cursor.get("after"):
            params["after"] = cursor["after"]
        resp = await self.call(ApiRequest("GET", CONTACTS, params=params))
        self._check(resp, "list contacts", StreamError)
        records = [self.record(r) for r in self._results(resp)]
        started = cursor.get("started") or self._server_ms(resp)
        newest = max([int(r.modified * 1000) for r in records] + [cursor.get("max") or 0])
        after = self._after(resp)
        if after:
            keep = {k: cursor[k] for k in ("full", "pass") if k in cursor}
            return Page(records, {**keep, "after": after, "started": started, "max": newest}, done=False)
        # a contact edited during the walk may have been passed already: the next delta starts no later than
        # the walk began
        return Page(records, {"since": min(newest, started) if newest else started, "archived_since": started},
                    done=True)

    async def _search_page(self, cursor: dict[str, Any]) -> Page:
        limit = max(1, min(200, self.page_size))
        anchor = cursor.get("anchor", max(0, int(cursor["since"]) - SEARCH_LAG_MS))
        offset = int(cursor.get("after") or 0)
        body = {"filterGroups": [{"filters": [{"propertyName": "lastmodifieddate", "operator": "GTE",
                                               "value": str(anchor)}]}],
                "sorts": [{"propertyName": "lastmodifieddate", "direction": "ASCENDING"}],
                "properties": list(PROPERTIES), "limit": limit, "after": str(offset)}
        resp = await self.call(ApiRequest("POST", f"{CONTACTS}/search", json=body))
        started = cursor.get("started") or self._server_ms(resp)
        newest = cursor.get("max") or int(cursor["since"])
        base = {"since": cursor["since"], "archived_since": cursor.get("archived_since", started),
                "started": started}
        if resp.status == 400 and offset > 0:       # a cap lower than believed, met inside one millisecond
            raise self._stuck()
        self._check(resp, "search contacts", StreamError)
        records = [self.record(r) for r in self._results(resp)]
        newest = max([newest] + [self._stamp(r) for r in records])
        after = self._after(resp)
        if after is None:
            return Page(records, {**base, "phase": "archived", "max": newest}, done=False)
        last = self._stamp(records[-1]) if records else anchor
        if last > anchor:           # keyset: the next page is a new search from this page's last timestamp
            return Page(records, {**base, "anchor": last, "after": None, "max": newest}, done=False)
        if int(after) + limit > self.search_cap:
            raise self._stuck()
        return Page(records, {**base, "anchor": anchor, "after": after, "max": newest}, done=False)

    @staticmethod
    def _stamp(record: RemoteRecord) -> int:
        value = record.data.get("lastmodifieddate")
        return parse_ms(value, "lastmodifieddate") if isinstance(value, str) else int(record.modified * 1000)

    def _stuck(self) -> CursorExpired:
        return CursorExpired(f"HubSpot search: more than {self.search_cap} contacts were modified at one "
                             "millisecond; a search window cannot page past them, so a full resync is needed")

    async def _archived_page(self, cursor: dict[str, Any]) -> Page:
        params: dict[str, Any] = {"archived": "true", "limit": 100, "properties": "lastmodifieddate"}
        if cursor.get("after"):
            params["after"] = cursor["after"]
        resp = await self.call(ApiRequest("GET", CONTACTS, params=params))
        self._check(resp, "list archived contacts", StreamError)
        since = int(cursor.get("archived_since") or 0)
        tombstones = []
        for item in self._results(resp):
            when = item.get("archivedAt") if isinstance(item, dict) else None
            if isinstance(when, str) and parse_ms(when, "archivedAt") >= since and isinstance(item.get("id"), str):
                tombstones.append(RemoteRecord(item["id"], {}, parse_ms(when, "archivedAt") / 1000.0, deleted=True))
        after = self._after(resp)
        if after:
            return Page(tombstones, {**cursor, "after": after}, done=False)
        return Page(tombstones, {"since": int(cursor.get("max") or cursor["since"]),
                                 "archived_since": int(cursor.get("started") or since)}, done=True)

    @staticmethod
    def _results(resp: ApiResponse) -> list[Any]:
        body = resp.body
        if not isinstance(body, dict) or not isinstance(body.get("results"), list):
            raise StreamError("HubSpot answered without results")
        return body["results"]

    @staticmethod
    def _after(resp: ApiResponse) -> str | None:
        paging = resp.body.get("paging") if isinstance(resp.body, dict) else None
        nxt = paging.get("next") if isinstance(paging, dict) else None
        after = nxt.get("after") if isinstance(nxt, dict) else None
        return after if isinstance(after, str) and after else None

    # ---- read one, push -----------------------------------------------------------------------------
    async def fetch(self, remote_id: str) -> RemoteRecord | None:
        resp = await self.call(ApiRequest("GET", f"{CONTACTS}/{self._id(remote_id)}",
                                          params={"properties": ",".join(PROPERTIES)}))
        if resp.status == 404:
            return None
        self._check(resp, "get contact", StreamError)
        found = self.record(resp.body)
        if len(self._read) < 10_000:
            self._read[remote_id] = found.modified
        return found

    async def push(self, change: LocalChange) -> RemoteRecord:
        props = {k: change.data[k] for k in WRITABLE if k in change.data}
        if change.deleted:
            if change.remote_id is None:
                raise PushRefused("a HubSpot contact that was never pushed cannot be deleted upstream")
            resp = await self.call(ApiRequest("DELETE", f"{CONTACTS}/{self._id(change.remote_id)}"))
            if resp.status != 404:
                self._check(resp, "archive contact", PushRefused, expect=204)
            return RemoteRecord(change.remote_id, {}, self.connector.clock.time(), deleted=True)
        if change.remote_id is None:
            resp = await self.call(ApiRequest("POST", CONTACTS, json={"properties": props}))
            self._check(resp, "create contact", PushRefused, expect=201)
            remote_id = self.record(resp.body).remote_id
        else:
            remote_id = self._id(change.remote_id)
            base = settled_base(change.base_modified, self._read.pop(remote_id, None))
            if base is not None:
                current = await self.fetch(remote_id)
                if current is None:
                    raise PushRefused(f"HubSpot update contact {remote_id}: it was deleted upstream")
                if current.modified > base + 0.0005:
                    raise PushRefused(f"HubSpot update contact {remote_id}: conflict, it was modified upstream "
                                      "after the version this change is based on")
            resp = await self.call(ApiRequest("PATCH", f"{CONTACTS}/{remote_id}", json={"properties": props}))
            self._check(resp, "update contact", PushRefused)
        current = await self.fetch(remote_id)
        if current is None:
            raise StreamError(f"HubSpot contact {remote_id} vanished right after the write")
        return current

    @staticmethod
    def _id(remote_id: str) -> str:
        if not isinstance(remote_id, str) or not remote_id.isdigit() or len(remote_id) > 20:
            raise PushRefused(f"not a HubSpot object id: {str(remote_id)[:30]!r}")
        return remote_id

    @staticmethod
    def _check(resp: ApiResponse, what: str, error: type[StreamError], expect: int = 200) -> None:
        if resp.status == expect:
            return
        message, category, _ = hs_error(resp.body)
        raise error(f"HubSpot {what}: {resp.status} {category or ''} {message[:200]}".strip())
