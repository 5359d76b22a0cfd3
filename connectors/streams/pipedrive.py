"""Pipedrive deals as a stream (reference: apis-crm.md §3.6-3.9), on API v2.

Pull: ``GET /api/v2/deals?sort_by=update_time&sort_direction=asc&limit=N[&updated_since=T][&cursor=C]``, walking
the opaque ``next_cursor`` until it is null. A delta pass has two phases: the live deals changed since T, then
``status=deleted`` changed since T (deleted deals leave the plain list and stay findable for 30 days), which
become tombstones. ``updated_since`` is inclusive, so the deals at exactly T come again and the store's content
hash drops them. The next T is the newest ``update_time`` seen. A full pass lists the live deals only: the
runner sweeps the ones it did not see.

A delta cursor older than the 30 days Pipedrive keeps deleted deals could miss deletions: ``CursorExpired``
(the runner falls back to a full pass).

Cursor: ``{"since": RFC 3339 | None, "phase": "live" | "deleted", "page": str | None, "high": RFC 3339 | None,
"full"?: true, "pass"?: token}``. Resource: ``all``, or ``pipeline:<id>`` for one pipeline's deals.
Push: create ``POST /api/v2/deals``; update ``PATCH /api/v2/deals/{id}`` (the runner's conflict check compares
``fetch``'s ``update_time`` with the change's base first); delete ``DELETE /api/v2/deals/{id}``.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Any

from connectors.base import ApiRequest, ApiResponse
from connectors.streams.base import CursorExpired, LocalChange, Page, PushRefused, RemoteRecord, Stream, StreamError

_RESOURCE = re.compile(r"^(all|pipeline:[1-9][0-9]{0,11})$")
PATH = "/api/v2/deals"
WRITABLE = ("title", "value", "currency", "status", "owner_id", "person_id", "org_id", "pipeline_id", "stage_id",
            "probability", "expected_close_date")
KEPT = ("id", *WRITABLE, "add_time", "update_time", "stage_change_time", "close_time", "won_time", "lost_time",
        "is_deleted", "custom_fields")
DELETED_RETENTION = 30 * 86400.0


def parse_time(text: Any) -> float:
    if not isinstance(text, str):
        raise StreamError(f"Pipedrive deal has no valid update_time ({str(text)[:30]!r})")
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise StreamError(f"Pipedrive deal has no valid update_time ({text[:30]!r})") from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)).timestamp()


def deal_record(deal: Any, *, deleted: bool = False) -> RemoteRecord:
    """The stored form of a v2 deal."""
    if not isinstance(deal, dict) or not isinstance(deal.get("id"), int):
        raise StreamError("Pipedrive returned a deal without an id")
    data = {key: deal.get(key) for key in KEPT}
    gone = deleted or bool(deal.get("is_deleted")) or deal.get("status") == "deleted"
    return RemoteRecord(str(deal["id"]), data, parse_time(deal.get("update_time")), deleted=gone)


class PipedriveDeals(Stream):
    """``PipedriveDeals(connector, "all", page_size=100)``"""

    service = "pipedrive"
    name = "deals"
    tombstones = True
    can_fetch = True
    can_update = True
    can_delete = True

    @classmethod
    def check_resource(cls, resource: str) -> str:
        if not isinstance(resource, str) or not _RESOURCE.match(resource):
            raise ValueError("a Pipedrive deals stream needs resource 'all' or 'pipeline:<id>'")
        return resource

    async def pull(self, cursor: dict[str, Any]) -> Page:
        since, phase = cursor.get("since"), cursor.get("phase") or "live"
        if since and not cursor.get("full"):
            if self.connector.clock.time() - parse_time(since) > DELETED_RETENTION:
                raise CursorExpired("Pipedrive keeps deleted deals 30 days; the delta position is older")
        params: dict[str, Any] = {"sort_by": "update_time", "sort_direction": "asc",
                                  "limit": max(1, min(500, self.page_size))}
        if self.resource.startswith("pipeline:"):
            params["pipeline_id"] = self.resource.split(":", 1)[1]
        if since and not cursor.get("full"):
            params["updated_since"] = since
        if phase == "deleted":
            params["status"] = "deleted"
        if cursor.get("page"):
            params["cursor"] = cursor["page"]
        resp = await self.call(ApiRequest("GET", PATH, params=params))
        self._check(resp, "list deals")
        deals, nxt = resp.body.get("data"), (resp.body.get("additional_data") or {}).get("next_cursor")
        if not isinstance(deals, list):
            raise StreamError("Pipedrive list deals did not return a list")
        records = [deal_record(d, deleted=phase == "deleted") for d in deals]
        return self._advance(cursor, records, nxt if isinstance(nxt, str) and nxt else None)

    @staticmethod
    def _advance(cursor: dict[str, Any], records: list[RemoteRecord], nxt: str | None) -> Page:
        keep = {k: cursor[k] for k in ("full", "pass") if k in cursor}
        high = cursor.get("high") or cursor.get("since")
        for record in records:
            stamp = record.data.get("update_time")
            if isinstance(stamp, str) and (high is None or parse_time(stamp) > parse_time(high)):
                high = stamp
        phase = cursor.get("phase") or "live"
        if nxt is not None:
            return Page(records, {**keep, "since": cursor.get("since"), "phase": phase, "page": nxt,
                                  "high": high}, done=False)
        if phase == "live" and cursor.get("since") and not cursor.get("full"):
            return Page(records, {"since": cursor["since"], "phase": "deleted", "page": None, "high": high},
                        done=False)
        return Page(records, {"since": high, "phase": "live", "page": None, "high": None}, done=True)

    async def fetch(self, remote_id: str) -> RemoteRecord | None:
        resp = await self.call(ApiRequest("GET", f"{PATH}/{self._id(remote_id)}"))
        if resp.status in (404, 410):
            return None
        self._check(resp, "get deal")
        record = deal_record(resp.body.get("data"))
        return None if record.deleted else record

    async def push(self, change: LocalChange) -> RemoteRecord:
        if change.deleted:
            if change.remote_id is None:
                raise PushRefused("Pipedrive delete deal: a deal that was never pushed cannot be deleted upstream")
            resp = await self.call(ApiRequest("DELETE", f"{PATH}/{self._id(change.remote_id)}"))
            self._check(resp, "delete deal")
            data = {**change.data, "id": int(change.remote_id), "is_deleted": True}
            return RemoteRecord(change.remote_id, data, self.connector.clock.time(), deleted=True)
        body = {k: change.data[k] for k in WRITABLE if k in change.data}
        if change.remote_id is None:
            if not body.get("title"):
                raise PushRefused("Pipedrive create deal: a new deal needs a title")
            resp = await self.call(ApiRequest("POST", PATH, json=body))
            self._check(resp, "create deal", expect=(200, 201))
        else:
            resp = await self.call(ApiRequest("PATCH", f"{PATH}/{self._id(change.remote_id)}", json=body))
            self._check(resp, "update deal")
        return deal_record(resp.body.get("data"))

    @staticmethod
    def _id(remote_id: str) -> int:
        if not str(remote_id).isdigit():
            raise PushRefused(f"Pipedrive deal ids are numbers, not {str(remote_id)[:30]!r}")
        return int(remote_id)

    @staticmethod
    def _check(resp: ApiResponse, what: str, expect: tuple[int, ...] = (200,)) -> None:
        if resp.status in expect and isinstance(resp.body, dict) and resp.body.get("success") is True:
            return
        message = resp.body.get("error") if isinstance(resp.body, dict) else None
        error = StreamError if what in ("list deals", "get deal") else PushRefused
        raise error(f"Pipedrive {what}: {resp.status} {str(message or 'unexpected answer')[:200]}")
