"""Salesforce accounts and contacts as streams (reference: apis-crm.md §1.6, §1.7, §1.9).

Pull: SOQL ``SELECT <fields> FROM Account [WHERE SystemModstamp >= T] ORDER BY SystemModstamp ASC``, then
``nextRecordsUrl`` while ``done`` is false (batch size asked with ``Sforce-Query-Options: batchSize=N``, 200 to
2,000). ``T`` is the newest SystemModstamp of the previous pass truncated to the second: ``>=`` brings the
records at exactly T again and the store's content hash drops them, so a record saved in the same second as
the last one seen is never lost.

Deletions: a delta pass ends with getDeleted (``sobjects/{T}/deleted/?start=&end=``) from where the last pass
ended to the server's now (its ``Date`` header), and the records it names become tombstones; its
``latestDateCovered`` is the next start. A start the delete log no longer covers (``earliestDateAvailable``
later than it) or one past the replication window (400 INVALID_REPLICATION_DATE, 30 days) raises
:class:`CursorExpired`: the runner resyncs in full and sweeps. A full pass records the server time it began as
the start of the next getDeleted window.

Cursor: ``{"since": ISO | None, "deleted_since": ISO | None, "next": nextRecordsUrl | None, "started": ISO,
"max": ISO, "full"?: true, "pass"?: token}``.

Push: create ``POST sobjects/{T}/`` (201 {"id"}); update ``PATCH sobjects/{T}/{id}`` with
``If-Unmodified-Since: <base LastModifiedDate>``, so a record edited upstream since the base is refused with 412
PRECONDITION_FAILED (:class:`PushRefused`, conflict) instead of overwritten. The base is the change's, or the
version ``fetch`` last read if newer (:func:`settled_base`: the runner fetches and settles a conflict before it
pushes, so a ``local_wins`` write goes through, and only an edit racing in after that read is refused);
delete ``DELETE`` (a record already gone counts as deleted). A write is followed by a GET of the record for its
new LastModifiedDate, which is the record's ``modified``.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from email.utils import formatdate, parsedate_to_datetime
from typing import Any, ClassVar

from connectors.base import ApiRequest, ApiResponse, request_from_url
from connectors.salesforce import DATA, sf_error
from connectors.streams.base import (CursorExpired, LocalChange, Page, PushRefused, RemoteRecord, Stream,
                                     StreamError)

_LABEL = re.compile(r"^[A-Za-z0-9_.-]{1,80}$")


def parse_time(text: Any, what: str = "SystemModstamp") -> float:
    """``2023-01-02T04:54:04.000+0000`` (Salesforce's form) or any ISO-8601 with an offset, as epoch seconds."""
    if isinstance(text, str):
        fixed = re.sub(r"([+-]\d\d)(\d\d)$", r"\1:\2", text.strip()).replace("Z", "+00:00")
        try:
            moment = datetime.fromisoformat(fixed)
            if moment.tzinfo is not None:
                return moment.timestamp()
        except ValueError:
            pass
    raise StreamError(f"Salesforce answered no valid {what} ({str(text)[:40]!r})")


def soql_time(epoch: float) -> str:
    """An unquoted SOQL dateTime literal, seconds truncated: ``2023-01-02T04:54:04Z``."""
    return datetime.fromtimestamp(int(epoch), timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def settled_base(base: float | None, read: float | None) -> float | None:
    """The version a push may overwrite: the change's base, or the version this stream read just before if newer.

    The runner reads the record (``fetch``) right before it pushes and settles any conflict between that version
    and the change's base itself (a ``local_wins`` policy pushes over it); the write must then only be refused if
    the record moved again after that read.

    >>> settled_base(10.0, 12.0), settled_base(10.0, None), settled_base(None, 12.0)
    (12.0, 10.0, None)
    """
    if base is None:
        return None
    return base if read is None else max(base, read)


class SalesforceObjects(Stream):
    """Base of the sObject streams; ``resource`` names the org (a label such as ``"default"``)."""

    service = "salesforce"
    sobject: ClassVar[str] = ""
    fields: ClassVar[tuple[str, ...]] = ()
    writable: ClassVar[tuple[str, ...]] = ()
    required: ClassVar[str] = ""
    tombstones = True
    can_fetch = True
    can_update = True
    can_delete = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._read: dict[str, float] = {}        # record id -> LastModifiedDate of the version last fetched

    @classmethod
    def check_resource(cls, resource: str) -> str:
        if not isinstance(resource, str) or not _LABEL.match(resource):
            raise ValueError("a Salesforce stream's resource names the org: 1-80 letters, digits, '.', '_' or '-' "
                             "(for example 'default')")
        return resource

    @property
    def _sobjects(self) -> str:
        return f"{DATA}/sobjects/{self.sobject}"

    def _headers(self) -> dict[str, str]:
        return {"Sforce-Query-Options": f"batchSize={max(200, min(2000, self.page_size))}"}

    def record(self, row: Any) -> RemoteRecord:
        if not isinstance(row, dict) or not isinstance(row.get("Id"), str):
            raise StreamError(f"Salesforce returned a {self.sobject} without an Id")
        data = {name: row.get(name) for name in self.fields}
        return RemoteRecord(row["Id"], data, parse_time(row.get("LastModifiedDate"), "LastModifiedDate"))

    # ---- pull ---------------------------------------------------------------------------------------
    async def pull(self, cursor: dict[str, Any]) -> Page:
        full = bool(cursor.get("full")) or not cursor.get("since")
        if cursor.get("next"):
            resp = await self.call(request_from_url(cursor["next"], self.connector.base_url, headers=self._headers()))
        else:
            soql = f"SELECT {', '.join(self.fields)} FROM {self.sobject}"
            if not full:
                soql += f" WHERE SystemModstamp >= {soql_time(parse_time(cursor['since']))}"
            soql += " ORDER BY SystemModstamp ASC"
            resp = await self.call(ApiRequest("GET", f"{DATA}/query", params={"q": soql}, headers=self._headers()))
        self._check(resp, "query", StreamError)
        body = resp.body
        if not isinstance(body, dict) or not isinstance(body.get("records"), list):
            raise StreamError("Salesforce query did not return records")
        records = [self.record(r) for r in body["records"]]
        started = cursor.get("started") or soql_time(self._server_now(resp))
        newest = body["records"][-1].get("SystemModstamp") if body["records"] else cursor.get("max")
        keep = {k: cursor[k] for k in ("full", "pass", "since", "deleted_since") if k in cursor}
        if body.get("done") is False and isinstance(body.get("nextRecordsUrl"), str):
            return Page(records, {**keep, "next": body["nextRecordsUrl"], "started": started, "max": newest},
                        done=False)
        since = soql_time(parse_time(newest)) if newest else cursor.get("since") or started
        if full:
            return Page(records, {"since": since, "deleted_since": started}, done=True)
        tombstones, covered = await self._deleted(cursor.get("deleted_since") or started, self._server_now(resp))
        return Page(records + tombstones, {"since": since, "deleted_since": covered}, done=True, requests=2)

    def _server_now(self, resp: ApiResponse) -> float:
        try:
            return parsedate_to_datetime(resp.headers["date"]).timestamp()
        except (KeyError, TypeError, ValueError):
            return self.connector.clock.time()

    async def _deleted(self, start: str, now: float) -> tuple[list[RemoteRecord], str]:
        begin = parse_time(start, "deleted_since")
        params = {"start": soql_time(begin), "end": soql_time(max(now, begin))}
        resp = await self.call(ApiRequest("GET", f"{self._sobjects}/deleted/", params=params))
        if resp.status == 400 and sf_error(resp.body)[1] == "INVALID_REPLICATION_DATE":
            raise CursorExpired(f"Salesforce getDeleted: the window start {start} is too old "
                                f"({sf_error(resp.body)[0][:120]}); a full resync is needed")
        self._check(resp, "getDeleted", StreamError)
        body = resp.body if isinstance(resp.body, dict) else {}
        earliest = body.get("earliestDateAvailable")
        if isinstance(earliest, str) and parse_time(earliest, "earliestDateAvailable") > begin:
            raise CursorExpired(f"Salesforce getDeleted: the delete log starts at {earliest}, after {start}; "
                                "deletions before it are too old to know, a full resync is needed")
        tombstones = []
        for item in body.get("deletedRecords") or []:
            if isinstance(item, dict) and isinstance(item.get("id"), str):
                when = parse_time(item.get("deletedDate"), "deletedDate")
                tombstones.append(RemoteRecord(item["id"], {}, when, deleted=True))
        covered = body.get("latestDateCovered")
        return tombstones, soql_time(parse_time(covered, "latestDateCovered")) if covered else params["end"]

    # ---- read one, push -----------------------------------------------------------------------------
    async def fetch(self, remote_id: str) -> RemoteRecord | None:
        resp = await self.call(ApiRequest("GET", f"{self._sobjects}/{self._id(remote_id)}",
                                          params={"fields": ",".join(self.fields)}))
        if resp.status == 404:
            return None
        self._check(resp, "get record", StreamError)
        found = self.record(resp.body)
        if len(self._read) < 10_000:
            self._read[remote_id] = found.modified
        return found

    async def push(self, change: LocalChange) -> RemoteRecord:
        body = {k: change.data[k] for k in self.writable if k in change.data}
        if change.deleted:
            if change.remote_id is None:
                raise PushRefused(f"a Salesforce {self.sobject} that was never pushed cannot be deleted upstream")
            resp = await self.call(ApiRequest("DELETE", f"{self._sobjects}/{self._id(change.remote_id)}"))
            if resp.status != 404:
                self._check(resp, "delete record", PushRefused, expect=204)
            return RemoteRecord(change.remote_id, {}, self.connector.clock.time(), deleted=True)
        if change.remote_id is None:
            if not body.get(self.required):
                raise PushRefused(f"Salesforce create {self.sobject}: a new record needs {self.required}")
            resp = await self.call(ApiRequest("POST", f"{self._sobjects}/", json=body))
            self._check(resp, "create record", PushRefused, expect=201)
            remote_id = resp.body.get("id") if isinstance(resp.body, dict) else None
            if not isinstance(remote_id, str):
                raise StreamError("Salesforce create record answered without an id")
        else:
            remote_id = self._id(change.remote_id)
            base = settled_base(change.base_modified, self._read.pop(remote_id, None))
            headers = {"If-Unmodified-Since": formatdate(base, usegmt=True)} if base is not None else None
            resp = await self.call(ApiRequest("PATCH", f"{self._sobjects}/{remote_id}", json=body, headers=headers))
            if resp.status == 412:
                raise PushRefused(f"Salesforce update {self.sobject} {remote_id}: conflict, the record was modified "
                                  "upstream after the version this change is based on (412 PRECONDITION_FAILED)")
            self._check(resp, "update record", PushRefused, expect=204)
        current = await self.fetch(remote_id)
        if current is None:
            raise StreamError(f"Salesforce {self.sobject} {remote_id} vanished right after the write")
        return current

    @staticmethod
    def _id(remote_id: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9]{15,18}", remote_id or ""):
            raise PushRefused(f"not a Salesforce record id: {str(remote_id)[:30]!r}")
        return remote_id

    def _check(self, resp: ApiResponse, what: str, error: type[StreamError], expect: int = 200) -> None:
        if resp.status == expect:
            return
        message, code = sf_error(resp.body)
        raise error(f"Salesforce {what} ({self.sobject}): {resp.status} {code or ''} {message[:200]}".strip())


class SalesforceAccounts(SalesforceObjects):
    """``SalesforceAccounts(connector, "default", page_size=200)``"""

    name = "accounts"
    sobject = "Account"
    fields = ("Id", "Name", "Phone", "Website", "Industry", "BillingCity", "Description", "CreatedDate",
              "LastModifiedDate", "SystemModstamp")
    writable = ("Name", "Phone", "Website", "Industry", "BillingCity", "Description")
    required = "Name"


class SalesforceContacts(SalesforceObjects):
    """``SalesforceContacts(connector, "default", page_size=200)``"""

    name = "contacts"
    sobject = "Contact"
    fields = ("Id", "FirstName", "LastName", "Email", "Phone", "Title", "AccountId", "CreatedDate",
              "LastModifiedDate", "SystemModstamp")
    writable = ("FirstName", "LastName", "Email", "Phone", "Title", "AccountId")
    required = "LastName"
