"""Salesforce emulator: one org's REST API and its OAuth endpoints (reference: apis-crm.md §1).

Base URL ``http://127.0.0.1:PORT`` (the org's instance and its login host on one origin: the token response's
``instance_url`` is that origin). The API lives under ``/services/data/v{N}.0/`` (any version 29.0 or later)::

    GET  /services/data/                                 versions list (not counted against the allowance)
    GET  /services/data/vN/limits/                       {"DailyApiRequests": {"Max", "Remaining"}, ...}
    GET  /services/data/vN/query?q=SOQL                  {"totalSize","done","records","nextRecordsUrl"?}
    GET  /services/data/vN/query/{locator}               the next batch (``Sforce-Query-Options: batchSize``)
    GET  /services/data/vN/sobjects/{T}/deleted/?start=&end=   getDeleted
    GET  /services/data/vN/sobjects/{T}/updated/?start=&end=   getUpdated
    GET|PATCH|DELETE /services/data/vN/sobjects/{T}/{id}  PATCH honours ``If-Unmodified-Since`` (412)
    POST /services/data/vN/sobjects/{T}/                 201 {"id","success":true,"errors":[]}
    GET  /services/oauth2/userinfo                       OpenID-style identity (not counted)

OAuth (the shared ``AuthorizationServer``): ``/services/oauth2/authorize`` (PKCE S256; ``pkce_required``),
``/services/oauth2/token`` (answers ``access_token, instance_url, id, issued_at, signature, token_type`` and no
``expires_in``; access tokens live ``access_token_lifetime`` = 7200 s, the default session timeout; refresh
token rotation is a knob, off by default as in a connected app; a dead refresh token is ``invalid_grant``
"expired access/refresh token"), ``/services/oauth2/revoke`` (RFC 7009 shape, 400 ``invalid_token``).

Limits: a rolling 24-hour allowance per org (``daily_api_requests``, default 15,000 as Developer Edition
[unverified]); every REST answer carries ``Sforce-Limit-Info: api-usage=<used>/<max>``; over it, 403
``[{"message":"TotalRequests Limit exceeded.","errorCode":"REQUEST_LIMIT_EXCEEDED"}]``. The burst fault is the
concurrent-request limit (403 REQUEST_LIMIT_EXCEEDED "ConcurrentRequests ..."). No 429, no Retry-After.

Errors: a JSON array of ``{"message","errorCode","fields"?}``: 401 INVALID_SESSION_ID, 400 MALFORMED_QUERY /
INVALID_FIELD / INVALID_QUERY_LOCATOR / INVALID_REPLICATION_DATE / JSON_PARSER_ERROR, 404 NOT_FOUND, 412
PRECONDITION_FAILED, 403 API_DISABLED_FOR_ORG (knob ``api_enabled``), 500 UNKNOWN_EXCEPTION, 503 SERVER_UNAVAILABLE.

The getDeleted window: a start more than ``replication_window_days`` (30) ago is 400 INVALID_REPLICATION_DATE;
the delete log keeps ``deleted_retention_days`` (15) and ``earliestDateAvailable`` says where it now starts.
``update_record`` / ``delete_record`` change data as another user would.
"""

from __future__ import annotations

import json
import random
import re
import secrets
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any, ClassVar

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from .base import (ADJECTIVES, FIRST_NAMES, LAST_NAMES, NOUNS, BodyTooLarge, Call, Emulator, Quota, Reply, Route,
                   TokenStatus, WindowState, digest_int, json_response, pick, read_body, seeded)
from .oauth import AuthorizationServer, Dialect, OAuthServerOptions, Refusal

DATA = "/services/data/v{version:[0-9]+\\.0}"
DATA_EPOCH = 1672531200          # 2023-01-01T00:00:00Z
DAY = 86400.0
ID_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
KEY_PREFIX = {"Account": "001", "Contact": "003"}
FIELDS = {
    "Account": ("Id", "Name", "Phone", "Website", "Industry", "BillingCity", "Description", "CreatedDate",
                "LastModifiedDate", "SystemModstamp", "IsDeleted"),
    "Contact": ("Id", "FirstName", "LastName", "Email", "Phone", "Title", "AccountId", "CreatedDate",
                "LastModifiedDate", "SystemModstamp", "IsDeleted"),
}
READ_ONLY = {"Id", "CreatedDate", "LastModifiedDate", "SystemModstamp", "IsDeleted"}
OAUTH_OPTIONS = dict(authorize_path="/services/oauth2/authorize", token_path="/services/oauth2/token",
                     revoke_path="/services/oauth2/revoke", access_token_lifetime=7200.0,
                     rotate_refresh_tokens=False, old_refresh_token_survives_rotation=False,
                     access_prefix="00D5g000004Xyz!AR", refresh_prefix="5Aep861")


class SalesforceOptions(BaseModel):
    """Knobs for what the reference leaves open."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    daily_api_requests: int = Field(15000, ge=1)           # Developer Edition [unverified]
    accounts: int = Field(60, ge=0, le=20000)
    contacts: int = Field(40, ge=0, le=20000)
    query_batch_size: int = Field(2000, ge=200, le=2000)   # default batch; Sforce-Query-Options can lower it
    replication_window_days: int = Field(30, ge=1)         # getDeleted/getUpdated: how far back start may be
    deleted_retention_days: int = Field(15, ge=1)          # the delete log (earliestDateAvailable)
    api_enabled: bool = True                               # False: 403 API_DISABLED_FOR_ORG (an edition without API)


def sf_time(epoch: float) -> str:
    """Salesforce's datetime form: ``2023-01-01T00:00:00.000+0000``."""
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + \
        f"{int(round(epoch * 1000)) % 1000:03d}+0000"


def parse_sf_time(text: str) -> float | None:
    """SOQL literals and getDeleted parameters: ISO-8601 with Z or an offset; None if not one."""
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment.timestamp() if moment.tzinfo is not None else None


def errors(status: int, message: str, code: str, fields: list[str] | None = None,
           headers: dict[str, str] | None = None) -> web.Response:
    item: dict[str, Any] = {"message": message, "errorCode": code}
    if fields is not None:
        item["fields"] = fields
    return json_response([item], status, headers)


def sf_id(kind: str, n: int) -> str:
    h = digest_int("sf-id", kind, n)
    body = "".join(ID_CHARS[(h >> (6 * i)) % 62] for i in range(9))
    return f"{KEY_PREFIX[kind]}5g00000{body}"[:18].ljust(18, "A")


@dataclass
class SObject:
    kind: str
    fields: dict[str, Any]
    modified: float            # LastModifiedDate = SystemModstamp here (no system-only changes)
    created: float

    def render(self, names: list[str]) -> dict[str, Any]:
        out: dict[str, Any] = {"attributes": {"type": self.kind,
                                              "url": f"/services/data/v59.0/sobjects/{self.kind}/{self.fields['Id']}"}}
        for name in names:
            if name in ("LastModifiedDate", "SystemModstamp"):
                out[name] = sf_time(self.modified)
            elif name == "CreatedDate":
                out[name] = sf_time(self.created)
            elif name == "IsDeleted":
                out[name] = False
            else:
                out[name] = self.fields.get(name)
        return out


@dataclass
class Org:
    id: str
    records: dict[str, dict[str, SObject]] = field(default_factory=lambda: {"Account": {}, "Contact": {}})
    deleted: dict[str, list[tuple[str, float]]] = field(default_factory=lambda: {"Account": [], "Contact": []})
    purged_at: dict[str, float] = field(default_factory=dict)  # the recycle bin emptied early, per type
    calls: deque[float] = field(default_factory=deque)            # arrival times inside the rolling day
    cursors: dict[str, tuple[list[dict[str, Any]], int]] = field(default_factory=dict)  # locator -> (rows, batch)


def generate_org(seed: int, accounts: int, contacts: int) -> Org:
    rng = seeded(seed, "salesforce")
    org = Org("00D5g000004" + "".join(rng.choice(ID_CHARS) for _ in range(7)))
    for n in range(accounts):
        made = DATA_EPOCH + n * 3600 + rng.randrange(3600)
        name = f"{rng.choice(ADJECTIVES).title()} {rng.choice(NOUNS).title()} {n}"
        fields = {"Id": sf_id("Account", n), "Name": name, "Phone": f"+1 555 01{n % 100:02d}",
                  "Website": f"https://{name.split()[1].lower()}{n}.example", "Industry": rng.choice(
                      ("Technology", "Retail", "Energy", "Banking")), "BillingCity": rng.choice(
                      ("Paris", "Lisbon", "Austin", "Osaka")), "Description": None}
        org.records["Account"][fields["Id"]] = SObject("Account", fields, made + rng.randrange(30 * 86400), made)
    account_ids = list(org.records["Account"])
    for n in range(contacts):
        made = DATA_EPOCH + n * 5400 + rng.randrange(3600)
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        fields = {"Id": sf_id("Contact", n), "FirstName": first, "LastName": last,
                  "Email": f"{first.lower()}.{last.lower()}{n}@example.com", "Phone": None,
                  "Title": rng.choice(("CEO", "Engineer", "Buyer", None)),
                  "AccountId": account_ids[n % len(account_ids)] if account_ids else None}
        org.records["Contact"][fields["Id"]] = SObject("Contact", fields, made + rng.randrange(30 * 86400), made)
    return org


_SOQL = re.compile(r"^\s*SELECT\s+(?P<fields>.+?)\s+FROM\s+(?P<kind>\w+)"
                   r"(?:\s+WHERE\s+(?P<wfield>\w+)\s*(?P<op>>=|<=|>|<|=)\s*(?P<value>\S+))?"
                   r"(?:\s+ORDER\s+BY\s+(?P<order>\w+)(?:\s+(?P<dir>ASC|DESC))?)?"
                   r"(?:\s+LIMIT\s+(?P<limit>\d+))?\s*$", re.I | re.S)
_OPS = {">": lambda a, b: a > b, ">=": lambda a, b: a >= b, "<": lambda a, b: a < b,
        "<=": lambda a, b: a <= b, "=": lambda a, b: a == b}


class SalesforceDialect(Dialect):
    """Salesforce's token answers: ``instance_url``, ``id``, ``issued_at``, ``signature``, no ``expires_in``;
    a refresh answer carries a refresh token only when rotation is on."""

    def __init__(self, emu: SalesforceEmulator) -> None:
        self.emu = emu
        self._issued: set[str] = set()

    def token_ok(self, request: web.Request, body: dict[str, Any]) -> web.Response:
        body = dict(body)
        body.pop("expires_in", None)
        refresh = body.get("refresh_token")
        if refresh in self._issued:
            del body["refresh_token"]           # no rotation: the original refresh token stays the one
        elif refresh:
            self._issued.add(refresh)
        user = self.emu.user_id(self.emu.oauth.options.user)
        body.update({"instance_url": self.emu.origin, "token_type": "Bearer",
                     "id": f"{self.emu.origin}/id/{self.emu.org.id}/{user}",
                     "issued_at": str(int(self.emu.clock() * 1000)),
                     "signature": secrets.token_urlsafe(32)})
        return super().token_ok(request, body)

    def token_error(self, request: web.Request, refusal: Refusal) -> web.Response:
        if refusal.error == "invalid_grant" and refusal.native == "invalid_refresh_token":
            refusal = Refusal("invalid_grant", "expired access/refresh token", status=400)
        return super().token_error(request, refusal)

    async def revocation_token(self, server: AuthorizationServer, request: web.Request) -> str | None:
        form = await server.form(request)
        token = form.get("token") or request.query.get("token")
        if not token or token not in server.grants:
            raise Refusal("invalid_token", "invalid token")
        return token


class SalesforceEmulator(Emulator):
    """``SalesforceEmulator(tokens=["00D…!AR…"], seed=1)`` (module docstring)."""

    service: ClassVar[str] = "salesforce"
    prefixes = ("",)
    default_rate = (15000, DAY)
    default_scopes = ("api", "refresh_token", "openid")
    options_model = SalesforceOptions
    fallback_auth = "none"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.org = generate_org(self.seed, self.options.accounts, self.options.contacts)
        self.oauth = AuthorizationServer(self, OAuthServerOptions(**OAUTH_OPTIONS), dialect=SalesforceDialect(self))

    def mount(self, app: web.Application) -> None:
        self.oauth.mount(app)

    def user_id(self, subject: str) -> str:
        return "0055g" + "".join(pick(tuple(ID_CHARS), digest_int("sf-user", subject, i)) for i in range(13))

    # --- data changes by "another user" --------------------------------------------------------------

    def update_record(self, kind: str, record_id: str, **fields: Any) -> None:
        """Edit a record as someone else would (LastModifiedDate and SystemModstamp move to now)."""
        obj = self.org.records[kind][record_id]
        obj.fields.update(fields)
        obj.modified = self.clock()

    def delete_record(self, kind: str, record_id: str) -> None:
        """Delete a record into the recycle bin: it leaves queries and enters getDeleted."""
        del self.org.records[kind][record_id]
        self.org.deleted[kind].append((record_id, self.clock()))

    def purge_deleted(self, kind: str) -> None:
        """Empty the recycle bin now: the delete log starts afresh (``earliestDateAvailable`` moves to now)."""
        self.org.deleted[kind].clear()
        self.org.purged_at[kind] = self.clock()

    # --- pipeline hooks ------------------------------------------------------------------------------

    def routes(self) -> list[Route]:
        sob = DATA + "/sobjects/{kind}"
        return [
            Route("GET", "/services/data", self.versions, counted=False),
            Route("GET", "/services/data/", self.versions, counted=False),
            Route("GET", "/services/oauth2/userinfo", self.userinfo, counted=False),
            Route("GET", DATA + "/limits", self._api(self.limits)),
            Route("GET", DATA + "/limits/", self._api(self.limits)),
            Route("GET", DATA + "/query", self._api(self.query)),
            Route("GET", DATA + "/query/", self._api(self.query)),
            Route("GET", DATA + "/query/{locator}", self._api(self.query_more)),
            Route("GET", sob + "/deleted/", self._api(self.get_deleted)),
            Route("GET", sob + "/deleted", self._api(self.get_deleted)),
            Route("GET", sob + "/updated/", self._api(self.get_updated)),
            Route("GET", sob + "/updated", self._api(self.get_updated)),
            Route("POST", sob + "/", self._api(self.create)),
            Route("POST", sob, self._api(self.create)),
            Route("GET", sob + "/{id}", self._api(self.retrieve)),
            Route("PATCH", sob + "/{id}", self._api(self.update)),
            Route("DELETE", sob + "/{id}", self._api(self.delete)),
        ]

    def quotas(self, call: Call) -> list[Quota]:
        # the allowance is a rolling day, charged in _api; set_rate_limit adds a plain per-token window
        if self.rate_limit is None or not call.token:
            return []
        return [Quota(f"token:{call.token}", self.rate_limit.limit, self.rate_limit.window)]

    def _used(self) -> int:
        calls, horizon = self.org.calls, self.clock() - DAY
        while calls and calls[0] <= horizon:
            calls.popleft()
        return len(calls)

    def _api(self, handler: Any) -> Any:
        """Charge the org's rolling daily allowance (a refused call is not counted)."""
        async def run(call: Call) -> web.StreamResponse:
            if not self.options.api_enabled:
                return errors(403, "The REST API is not enabled for this Organization.", "API_DISABLED_FOR_ORG")
            if self._used() >= self.options.daily_api_requests:
                return errors(403, "TotalRequests Limit exceeded.", "REQUEST_LIMIT_EXCEEDED")
            self.org.calls.append(self.clock())
            return await handler(call)
        return run

    def decorate(self, call: Call, response: web.StreamResponse) -> None:
        if call.path.startswith("/services/data"):
            response.headers["Sforce-Limit-Info"] = f"api-usage={self._used()}/{self.options.daily_api_requests}"

    def auth_failure(self, call: Call, status: TokenStatus) -> web.StreamResponse:
        return errors(401, "Session expired or invalid", "INVALID_SESSION_ID",
                      headers={"WWW-Authenticate": 'Token realm="salesforce"'})

    def rate_limited(self, call: Call, state: WindowState) -> web.StreamResponse:
        return errors(403, "TotalRequests Limit exceeded.", "REQUEST_LIMIT_EXCEEDED")

    def burst_limited(self, call: Call) -> web.StreamResponse:
        return errors(403, "ConcurrentRequests (Concurrent API Requests) Limit exceeded.", "REQUEST_LIMIT_EXCEEDED")

    def server_error(self, rng: random.Random) -> web.StreamResponse:
        if rng.random() < 0.5:
            return errors(500, "An unexpected error occurred. Please include this ErrorId if you contact "
                               f"support: {rng.randrange(10**9)}-{rng.randrange(10**5)} (-{rng.randrange(10**9)})",
                          "UNKNOWN_EXCEPTION")
        return errors(503, "Server temporarily unavailable.", "SERVER_UNAVAILABLE")

    def not_found(self, call: Call) -> web.StreamResponse:
        return errors(404, "The requested resource does not exist", "NOT_FOUND")

    def too_large(self, call: Call) -> web.StreamResponse:
        return errors(413, "Request body too large", "REQUEST_ENTITY_TOO_LARGE")

    # --- handlers ------------------------------------------------------------------------------------

    async def versions(self, call: Call) -> web.StreamResponse:
        return json_response([{"label": f"Release {v}", "url": f"/services/data/v{v}.0", "version": f"{v}.0"}
                              for v in (57, 58, 59, 60)])

    async def userinfo(self, call: Call) -> web.StreamResponse:
        subject = (call.record.subject if call.record else None) or call.token or ""
        user = self.user_id(subject)
        h = digest_int("sf-person", subject)
        first, last = pick(FIRST_NAMES, h), pick(LAST_NAMES, h >> 8)
        mail = f"{first.lower()}.{last.lower()}@example.com"
        base = self.origin + "/services/data/v{version}/"
        return json_response({
            "sub": f"{self.origin}/id/{self.org.id}/{user}", "user_id": user, "organization_id": self.org.id,
            "preferred_username": mail, "nickname": first.lower(), "name": f"{first} {last}", "email": mail,
            "email_verified": True, "given_name": first, "family_name": last, "zoneinfo": "Europe/Paris",
            "locale": "en_US", "language": "en_US", "active": True, "user_type": "STANDARD",
            "utcOffset": 3600000, "updated_at": sf_time(DATA_EPOCH),
            "urls": {"rest": base, "sobjects": base + "sobjects/", "query": base + "query/",
                     "limits": base + "limits/", "profile": f"{self.origin}/{user}"}})

    async def limits(self, call: Call) -> web.StreamResponse:
        cap = self.options.daily_api_requests
        return json_response({"DailyApiRequests": {"Max": cap, "Remaining": max(0, cap - self._used())},
                              "ConcurrentAPIRequests": {"Max": 25, "Remaining": 25}})

    def _kind(self, call: Call, name: str | None = None) -> str:
        kind = name or call.request.match_info["kind"]
        if kind not in FIELDS:
            raise Reply(errors(404, f"The requested resource does not exist: sObject type '{kind}' is not "
                                    "supported.", "NOT_FOUND"))
        return kind

    def _batch(self, call: Call) -> int:
        header = call.request.headers.get("Sforce-Query-Options", "")
        match = re.search(r"batchSize=(\d+)", header)
        size = int(match.group(1)) if match else self.options.query_batch_size
        return max(200, min(2000, size)) if match else size

    async def query(self, call: Call) -> web.StreamResponse:
        q = call.params.get("q", "")
        m = _SOQL.match(q)
        if m is None:
            raise Reply(errors(400, "unexpected token: the query is not valid SOQL", "MALFORMED_QUERY"))
        kind = m["kind"].title() if m["kind"].lower() in ("account", "contact") else m["kind"]
        if kind not in FIELDS:
            raise Reply(errors(400, f"sObject type '{kind}' is not supported.", "INVALID_TYPE"))
        names = [f.strip() for f in m["fields"].split(",")]
        for name in names + [n for n in (m["wfield"], m["order"]) if n]:
            if name not in FIELDS[kind]:
                raise Reply(errors(400, f"No such column '{name}' on entity '{kind}'.", "INVALID_FIELD"))
        rows = list(self.org.records[kind].values())
        if m["wfield"]:
            rows = self._where(rows, m["wfield"], m["op"], m["value"])
        if m["order"]:
            rows.sort(key=lambda r: (self._value(r, m["order"]), r.fields["Id"]),
                      reverse=(m["dir"] or "ASC").upper() == "DESC")
        if m["limit"]:
            rows = rows[: int(m["limit"])]
        rendered = [r.render(names) for r in rows]
        return self._batch_answer(call, rendered, 0, self._batch(call))

    def _value(self, row: SObject, name: str) -> Any:
        if name in ("LastModifiedDate", "SystemModstamp"):
            return row.modified
        if name == "CreatedDate":
            return row.created
        return row.fields.get(name) or ""

    def _where(self, rows: list[SObject], name: str, op: str, literal: str) -> list[SObject]:
        if name in ("LastModifiedDate", "SystemModstamp", "CreatedDate"):
            value: Any = parse_sf_time(literal)
            if value is None:
                raise Reply(errors(400, f"value of filter criterion for field '{name}' must be of type dateTime "
                                        "and should not be enclosed in quotes", "INVALID_FIELD"))
        else:
            value = literal.strip("'")
        return [r for r in rows if _OPS[op](self._value(r, name), value)]

    def _batch_answer(self, call: Call, rows: list[dict[str, Any]], start: int, batch: int) -> web.Response:
        end = start + batch
        body: dict[str, Any] = {"totalSize": len(rows), "done": end >= len(rows), "records": rows[start:end]}
        if end < len(rows):
            locator = "01g5g" + secrets.token_hex(6).upper()
            self.org.cursors[locator] = (rows, batch)
            body["nextRecordsUrl"] = f"/services/data/v{call.request.match_info['version']}/query/{locator}-{end}"
        return json_response(body)

    async def query_more(self, call: Call) -> web.StreamResponse:
        locator, _, offset = call.request.match_info["locator"].rpartition("-")
        saved = self.org.cursors.get(locator)
        if saved is None or not offset.isdigit() or int(offset) > len(saved[0]):
            raise Reply(errors(400, "invalid query locator", "INVALID_QUERY_LOCATOR"))
        rows, batch = saved
        return self._batch_answer(call, rows, int(offset), batch)

    def _window(self, call: Call) -> tuple[float, float]:
        start, end = (parse_sf_time(call.params.get(k, "")) for k in ("start", "end"))
        if start is None or end is None:
            raise Reply(errors(400, "start and end must be ISO-8601 dateTimes", "INVALID_REPLICATION_DATE"))
        start, end = float(int(start) // 60 * 60), float(int(end) // 60 * 60)   # seconds are truncated
        now = self.clock()
        if start < now - self.options.replication_window_days * DAY:
            raise Reply(errors(400, f"startDate cannot be more than {self.options.replication_window_days} days "
                                    "ago", "INVALID_REPLICATION_DATE"))
        if end < start:
            raise Reply(errors(400, "startDate must chronologically precede endDate", "INVALID_REPLICATION_DATE"))
        return start, min(end, float(int(now) // 60 * 60))

    async def get_deleted(self, call: Call) -> web.StreamResponse:
        kind = self._kind(call)
        start, end = self._window(call)
        now = self.clock()
        earliest = now - self.options.deleted_retention_days * DAY
        earliest = max(earliest, self.org.purged_at.get(kind, earliest))
        log = self.org.deleted[kind] = [(i, t) for i, t in self.org.deleted[kind] if t >= earliest]
        found = [{"id": i, "deletedDate": sf_time(t)} for i, t in log if start <= t < end + 60]
        return json_response({"deletedRecords": found, "earliestDateAvailable": sf_time(earliest),
                              "latestDateCovered": sf_time(end)})

    async def get_updated(self, call: Call) -> web.StreamResponse:
        kind = self._kind(call)
        start, end = self._window(call)
        ids = [r.fields["Id"] for r in self.org.records[kind].values() if start <= r.modified < end + 60]
        return json_response({"ids": ids, "latestDateCovered": sf_time(end)})

    def _record(self, call: Call) -> SObject:
        kind = self._kind(call)
        found = self.org.records[kind].get(call.request.match_info["id"])
        if found is None:
            raise Reply(errors(404, "The requested resource does not exist", "NOT_FOUND"))
        return found

    async def retrieve(self, call: Call) -> web.StreamResponse:
        obj = self._record(call)
        wanted = [f.strip() for f in call.params.get("fields", "").split(",") if f.strip()] or list(FIELDS[obj.kind])
        bad = [f for f in wanted if f not in FIELDS[obj.kind]]
        if bad:
            raise Reply(errors(400, f"No such column '{bad[0]}' on sobject of type {obj.kind}", "INVALID_FIELD"))
        return json_response(obj.render(wanted))

    async def _fields(self, call: Call, kind: str) -> dict[str, Any]:
        try:
            body = json.loads(await read_body(call.request, self.max_body) or b"null")
        except (ValueError, BodyTooLarge):
            body = None
        if not isinstance(body, dict):
            raise Reply(errors(400, "The request body must be a JSON object", "JSON_PARSER_ERROR"))
        for name in body:
            if name not in FIELDS[kind]:
                raise Reply(errors(400, f"No such column '{name}' on sobject of type {kind}", "INVALID_FIELD",
                                   [name]))
            if name in READ_ONLY:
                raise Reply(errors(400, f"Unable to create/update fields: {name}. Please check the security "
                                        "settings of this field.", "INVALID_FIELD_FOR_INSERT_UPDATE", [name]))
        return body

    async def create(self, call: Call) -> web.StreamResponse:
        kind = self._kind(call)
        fields = await self._fields(call, kind)
        required = "Name" if kind == "Account" else "LastName"
        if not fields.get(required):
            raise Reply(errors(400, f"Required fields are missing: [{required}]", "REQUIRED_FIELD_MISSING",
                               [required]))
        n = len(self.org.records[kind]) + len(self.org.deleted[kind]) + 10_000
        record_id = sf_id(kind, n)
        now = self.clock()
        self.org.records[kind][record_id] = SObject(kind, {**fields, "Id": record_id}, now, now)
        return json_response({"id": record_id, "success": True, "errors": []}, 201)

    async def update(self, call: Call) -> web.StreamResponse:
        obj = self._record(call)
        fields = await self._fields(call, obj.kind)
        guard = call.request.headers.get("If-Unmodified-Since")
        if guard:
            try:
                limit = parsedate_to_datetime(guard).timestamp()
            except (TypeError, ValueError):
                raise Reply(errors(400, "If-Unmodified-Since is not an HTTP date", "MALFORMED_HEADER")) from None
            if int(obj.modified) > limit:        # HTTP dates have whole seconds
                raise Reply(errors(412, "The requested record has been modified since "
                                        f"{guard}", "PRECONDITION_FAILED"))
        obj.fields.update(fields)
        obj.modified = self.clock()
        return web.Response(status=204)

    async def delete(self, call: Call) -> web.StreamResponse:
        obj = self._record(call)
        self.delete_record(obj.kind, obj.fields["Id"])
        return web.Response(status=204)
