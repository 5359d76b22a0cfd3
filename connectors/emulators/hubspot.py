"""HubSpot emulator: CRM v3 contacts, account info and HubSpot's OAuth endpoints (reference: apis-crm.md §2).

Base URL ``http://127.0.0.1:PORT`` (``https://api.hubapi.com``)::

    GET    /account-info/v3/details                 portalId, accountType, timeZone, uiDomain, ...
    GET    /integrations/v1/me                      the legacy identity
    GET    /crm/v3/objects/contacts                 ?limit (<= 100) &after &properties &archived -> paging.next
    POST   /crm/v3/objects/contacts/search          filterGroups/sorts/properties/limit (<= 200)/after;
                                                    at most ``search_cap`` (10,000) results in all: past it, 400
    GET    /crm/v3/objects/contacts/{id}            ?properties &archived
    POST   /crm/v3/objects/contacts                 201; a duplicate email is 409 CONFLICT
    PATCH  /crm/v3/objects/contacts/{id}            200 with the record
    DELETE /crm/v3/objects/contacts/{id}            204 (archived: it leaves searches, lists with archived=true)

Auth ``Authorization: Bearer <private-app token | OAuth access token>``; scopes ``crm.objects.contacts.read`` /
``.write`` per route (403 MISSING_SCOPES). OAuth (shared ``AuthorizationServer``): ``/oauth/authorize``,
``POST /oauth/v1/token`` (access tokens live 1800 s; the refresh token stays; errors carry the legacy
``status``/``message`` fields, e.g. BAD_REFRESH_TOKEN), ``DELETE /oauth/v1/refresh-tokens/{token}`` (the
refresh token only: issued access tokens keep working), ``GET /oauth/v1/access-tokens/{token}``.

Limits per token: a burst window (``burst_per_10s``, 100, headers ``X-HubSpot-RateLimit-Max/-Remaining/
-Interval-Milliseconds``) and a day (``daily``, 250,000, ``X-HubSpot-RateLimit-Daily/-Daily-Remaining``; absent
for OAuth tokens unless ``daily_headers_for_oauth`` [unverified]); the search endpoint has its own
``search_per_second`` (4) and, by default, no rate-limit headers [unverified]. Over a limit: 429
``{"status":"error","message":...,"errorType":"RATE_LIMIT","correlationId","policyName":"TEN_SECONDLY_ROLLING"
|"DAILY"|"SECONDLY","requestId"}`` and no Retry-After unless ``send_retry_after`` [unverified].

Errors: ``{"status":"error","message","correlationId","category",...}``: 401 INVALID_AUTHENTICATION /
EXPIRED_AUTHENTICATION (with ``context.expire time``), 403 MISSING_SCOPES, 400 VALIDATION_ERROR, 404
OBJECT_NOT_FOUND, 409 CONFLICT, 500 INTERNAL_ERROR, 502/504 HTML from the edge.
"""

from __future__ import annotations

import json
import random
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, ClassVar

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from .base import (FIRST_NAMES, LAST_NAMES, NOUNS, BodyTooLarge, Call, Emulator, Quota, Reply, Route, TokenStatus,
                   WindowState, int_param, json_response, read_body, seeded)
from .oauth import AuthorizationServer, Dialect, OAuthServerOptions, Refusal

CONTACTS = "/crm/v3/objects/contacts"
READ, WRITE = "crm.objects.contacts.read", "crm.objects.contacts.write"
DATA_EPOCH = 1672531200
DEFAULT_PROPS = ("createdate", "email", "firstname", "hs_object_id", "lastmodifieddate", "lastname")
PROPERTIES = frozenset({"email", "firstname", "lastname", "phone", "company", "jobtitle", "lifecyclestage",
                        "createdate", "lastmodifieddate", "hs_object_id"})
READ_ONLY = frozenset({"createdate", "lastmodifieddate", "hs_object_id"})
OAUTH_OPTIONS = dict(authorize_path="/oauth/authorize", token_path="/oauth/v1/token",
                     revoke_path="/oauth/v1/refresh-tokens/{token}", revoke_method="DELETE",
                     access_token_lifetime=1800.0, rotate_refresh_tokens=False, access_prefix="CKX",
                     refresh_prefix="na1-")


class HubSpotOptions(BaseModel):
    """Knobs for the published limits and what the reference marks unverified."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    burst_per_10s: int = Field(100, ge=1)           # Free/Starter private apps
    daily: int = Field(250_000, ge=1)
    search_per_second: int = Field(4, ge=1)
    search_cap: int = Field(10_000, ge=1)           # results one search may page through
    search_headers: bool = False                    # [unverified]: search answers without rate-limit headers
    daily_headers_for_oauth: bool = False           # [unverified]: daily headers only for private apps
    send_retry_after: bool = False                  # [unverified]: no Retry-After is documented for 429s
    contacts: int = Field(60, ge=0, le=50_000)
    time_zone: str = "US/Eastern"


def iso_ms(epoch_ms: int) -> str:
    """HubSpot's timestamps: ``2023-01-01T00:00:00.000Z``."""
    return datetime.fromtimestamp(epoch_ms / 1000, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + \
        f"{epoch_ms % 1000:03d}Z"


def to_ms(value: Any) -> int | None:
    """A filter value for a date property: epoch milliseconds (number or digits) or ISO-8601."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, str):
        if value.isdigit():
            return int(value)
        try:
            return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() * 1000)
        except ValueError:
            return None
    return None


def hs_error(status: int, message: str, category: str, headers: dict[str, str] | None = None,
             **more: Any) -> web.Response:
    return json_response({"status": "error", "message": message, "correlationId": str(uuid.uuid4()),
                          "category": category, **more}, status, headers)


def invalid(message: str, **more: Any) -> Reply:
    return Reply(hs_error(400, message, "VALIDATION_ERROR", **more))


@dataclass
class Contact:
    id: str
    props: dict[str, str | None]
    created: int                  # epoch ms
    updated: int
    archived_at: int | None = None

    def render(self, names: list[str] | tuple[str, ...]) -> dict[str, Any]:
        props = {n: self.value(n) for n in names}
        out: dict[str, Any] = {"id": self.id, "properties": props, "createdAt": iso_ms(self.created),
                               "updatedAt": iso_ms(self.updated), "archived": self.archived_at is not None}
        if self.archived_at is not None:
            out["archivedAt"] = iso_ms(self.archived_at)
        return out

    def value(self, name: str) -> str | None:
        if name == "lastmodifieddate":
            return iso_ms(self.updated)
        if name == "createdate":
            return iso_ms(self.created)
        if name == "hs_object_id":
            return self.id
        return self.props.get(name)


_COMPARE = {"EQ": lambda a, b: a == b, "NEQ": lambda a, b: a != b, "LT": lambda a, b: a < b,
            "LTE": lambda a, b: a <= b, "GT": lambda a, b: a > b, "GTE": lambda a, b: a >= b}


def matches(contact: Contact, flt: dict[str, Any]) -> bool:
    """One search filter; a filter HubSpot would refuse raises Reply(400)."""
    name, op = flt.get("propertyName"), flt.get("operator", "EQ")
    if not isinstance(name, str) or name not in PROPERTIES:
        raise invalid(f"There was a problem with the request: unknown property {str(name)[:40]!r}")
    raw = contact.value(name)
    if op == "HAS_PROPERTY":
        return raw is not None
    if op == "NOT_HAS_PROPERTY":
        return raw is None
    dated = name in ("lastmodifieddate", "createdate")
    have: Any = (contact.updated if name == "lastmodifieddate" else contact.created) if dated else (raw or "")

    def want(value: Any) -> Any:
        if dated:
            ms = to_ms(value)
            if ms is None:
                raise invalid(f"{name} filter value {str(value)[:40]!r} is not a date (epoch ms or ISO-8601)")
            return ms
        return str(value)
    if op in _COMPARE:
        return raw is not None and _COMPARE[op](have, want(flt.get("value")))
    if op == "BETWEEN":
        return raw is not None and want(flt.get("value")) <= have <= want(flt.get("highValue"))
    if op in ("IN", "NOT_IN"):
        values = [want(v) for v in flt.get("values") or []]
        return (have in values) == (op == "IN")
    if op in ("CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN"):
        token = str(flt.get("value", "")).strip("*").lower()
        return (token in str(raw or "").lower()) == (op == "CONTAINS_TOKEN")
    raise invalid(f"Unknown operator {str(op)[:30]!r}")


class HubSpotDialect(Dialect):
    """HubSpot's token endpoint: RFC 6749 errors plus the legacy ``status``/``message`` fields; revocation is
    ``DELETE /oauth/v1/refresh-tokens/{token}`` (204) and touches the refresh token only."""

    def token_error(self, request: web.Request, refusal: Refusal) -> web.Response:
        legacy = {"invalid_grant": "BAD_REFRESH_TOKEN", "invalid_client": "BAD_CLIENT_ID"}.get(refusal.error,
                                                                                                 "BAD_REQUEST")
        if refusal.native == "invalid_refresh_token":
            refusal = Refusal("invalid_grant", "refresh token is invalid, expired or revoked", status=400)
        return json_response({"error": refusal.error, "error_description": refusal.description,
                              "status": legacy, "message": refusal.description}, refusal.status)

    def revoked(self, request: web.Request) -> web.Response:
        return web.Response(status=204)

    async def revocation_token(self, server: AuthorizationServer, request: web.Request) -> str | None:
        token = request.match_info.get("token", "")
        grant = server.grants.get(token)
        if grant is None or token not in grant.refresh_tokens:
            raise Refusal("invalid_grant", "refresh token not found", status=404)
        grant.refresh_tokens.discard(token)      # the access tokens already issued keep working
        server.grants.pop(token, None)
        return None


class HubSpotEmulator(Emulator):
    """``HubSpotEmulator(tokens=["pat-na1-…"], seed=1)`` (module docstring)."""

    service: ClassVar[str] = "hubspot"
    prefixes = ("",)
    default_rate = (100, 10.0)
    default_scopes = (READ, WRITE, "oauth")
    options_model = HubSpotOptions
    fallback_auth = "none"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.portal_id = 20_000_000 + seeded(self.seed, "hubspot-portal").randrange(10_000_000)
        self.contacts: dict[str, Contact] = {}
        self._next_id = 1001
        rng = seeded(self.seed, "hubspot-contacts")
        for n in range(self.options.contacts):
            first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
            made = (DATA_EPOCH + n * 3600 + rng.randrange(3600)) * 1000 + rng.randrange(1000)
            self._add({"email": f"{first.lower()}.{last.lower()}{n}@{rng.choice(NOUNS)}.example",
                       "firstname": first, "lastname": last, "phone": None, "company": None,
                       "jobtitle": None, "lifecyclestage": "lead"}, made, made + rng.randrange(86_400_000 * 30))
        self.oauth = AuthorizationServer(self, OAuthServerOptions(**OAUTH_OPTIONS), dialect=HubSpotDialect())

    def _add(self, props: dict[str, Any], created: int, updated: int) -> Contact:
        contact = Contact(str(self._next_id), dict(props), created, updated)
        self._next_id += 1
        self.contacts[contact.id] = contact
        return contact

    def mount(self, app: web.Application) -> None:
        self.oauth.mount(app)

    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    # --- changes by other users ---------------------------------------------------------------------------

    def update_contact(self, contact_id: str, **props: Any) -> None:
        """Edit a contact as someone else would (lastmodifieddate moves to now)."""
        contact = self.contacts[contact_id]
        contact.props.update(props)
        contact.updated = max(self.now_ms(), contact.updated + 1)

    def archive_contact(self, contact_id: str) -> None:
        """Delete (archive) a contact as someone else would."""
        contact = self.contacts[contact_id]
        contact.archived_at = contact.updated = max(self.now_ms(), contact.updated + 1)

    def touch_many(self, count: int, at_ms: int | None = None) -> list[str]:
        """Modify ``count`` live contacts at one moment each a millisecond apart (a bulk import)."""
        start = at_ms if at_ms is not None else self.now_ms()
        live = [c for c in self.contacts.values() if c.archived_at is None][:count]
        for n, contact in enumerate(live):
            contact.updated = start + n
        return [c.id for c in live]

    # --- hooks ---------------------------------------------------------------------------------------------

    def routes(self) -> list[Route]:
        return [
            Route("GET", "/account-info/v3/details", self.details),
            Route("GET", "/integrations/v1/me", self.me),
            Route("GET", "/oauth/v1/access-tokens/{token}", self.token_info, auth="none", counted=False),
            Route("GET", CONTACTS, self._scoped(self.list_contacts, READ)),
            Route("POST", CONTACTS + "/search", self._scoped(self.search, READ)),
            Route("POST", CONTACTS, self._scoped(self.create, WRITE)),
            Route("GET", CONTACTS + "/{id}", self._scoped(self.get_contact, READ)),
            Route("PATCH", CONTACTS + "/{id}", self._scoped(self.update, WRITE)),
            Route("DELETE", CONTACTS + "/{id}", self._scoped(self.archive, WRITE)),
        ]

    def _is_search(self, call: Call) -> bool:
        return call.path.endswith("/search")

    def quotas(self, call: Call) -> list[Quota]:
        if not call.token:
            return []
        if self.rate_limit is not None:
            return [Quota(f"token:{call.token}", self.rate_limit.limit, self.rate_limit.window)]
        quotas = [Quota(f"burst:{call.token}", self.options.burst_per_10s, 10.0),
                  Quota(f"daily:{call.token}", self.options.daily, 86400.0)]
        if self._is_search(call):
            quotas.append(Quota(f"search:{call.token}", self.options.search_per_second, 1.0))
        return quotas

    def _states(self, call: Call) -> dict[str, WindowState]:
        return {q.key.split(":")[0]: self.counter.peek(q) for q in self.quotas(call)}

    def decorate(self, call: Call, response: web.StreamResponse) -> None:
        response.headers["x-hubspot-correlation-id"] = str(uuid.uuid4())
        if not call.token or (self._is_search(call) and not self.options.search_headers):
            return
        states = self._states(call)
        burst = states.get("burst") or states.get("token")
        if burst is not None:
            response.headers.update({"X-HubSpot-RateLimit-Interval-Milliseconds": str(int(
                (self.rate_limit.window if self.rate_limit else 10.0) * 1000)),
                "X-HubSpot-RateLimit-Max": str(burst.limit), "X-HubSpot-RateLimit-Remaining": str(burst.remaining)})
        daily = states.get("daily")
        oauth = call.record is not None and call.record.subject is not None
        if daily is not None and (not oauth or self.options.daily_headers_for_oauth):
            response.headers["X-HubSpot-RateLimit-Daily"] = str(daily.limit)
            response.headers["X-HubSpot-RateLimit-Daily-Remaining"] = str(daily.remaining)

    def rate_limited(self, call: Call, state: WindowState) -> web.StreamResponse:
        states = self._states(call)
        if "daily" in states and not states["daily"].allowed:
            policy, message = "DAILY", "You have reached your daily limit."
        elif "search" in states and not states["search"].allowed:
            policy, message = "SECONDLY", "You have reached your secondly limit."
        else:
            policy, message = "TEN_SECONDLY_ROLLING", "You have reached your ten_secondly_rolling limit."
        headers = {"Retry-After": str(state.retry_after)} if self.options.send_retry_after else None
        return json_response({"status": "error", "message": message, "errorType": "RATE_LIMIT",
                              "correlationId": str(uuid.uuid4()), "policyName": policy,
                              "requestId": uuid.uuid4().hex}, 429, headers)

    def burst_limited(self, call: Call) -> web.StreamResponse:
        return json_response({"status": "error", "message": "You have reached your ten_secondly_rolling limit.",
                              "errorType": "RATE_LIMIT", "correlationId": str(uuid.uuid4()),
                              "policyName": "TEN_SECONDLY_ROLLING", "requestId": uuid.uuid4().hex}, 429,
                             {"Retry-After": str(self.faults.burst_retry_after)})

    def auth_failure(self, call: Call, status: TokenStatus) -> web.StreamResponse:
        if status is TokenStatus.EXPIRED and call.request.headers.get("Authorization"):
            record = self.tokens.get((call.request.headers["Authorization"].partition(" ")[2]).strip())
            expired = record.expires_at if record and record.expires_at else self.clock()
            ago = max(1, int(self.clock() - expired))
            return hs_error(401, f"The OAuth token used to make this call expired {ago} second(s) ago.",
                            "EXPIRED_AUTHENTICATION", context={"expire time": [iso_ms(int(expired * 1000))]})
        return hs_error(401, "Authentication credentials not found. This API supports OAuth 2.0 authentication "
                             "and you can find more details at https://developers.hubspot.com/docs/methods/auth/"
                             "oauth-overview", "INVALID_AUTHENTICATION")

    def server_error(self, rng: random.Random) -> web.StreamResponse:
        if rng.random() < 0.5:
            return hs_error(500, "internal error", "INTERNAL_ERROR")
        return web.Response(status=502, content_type="text/html",
                            text="<html><head><title>502 Bad Gateway</title></head><body>cloudflare</body></html>")

    def not_found(self, call: Call) -> web.StreamResponse:
        return web.Response(status=404, text="", content_type="text/html")

    def too_large(self, call: Call) -> web.StreamResponse:
        return hs_error(413, "Request entity too large", "VALIDATION_ERROR")

    def _scoped(self, handler: Any, scope: str) -> Any:
        async def run(call: Call) -> web.StreamResponse:
            record = call.record
            if record is not None and scope not in record.scopes and not (scope == READ and WRITE in record.scopes):
                return hs_error(403, "This app hasn't been granted all required scopes to make this call. Read more "
                                     "about required scopes here: https://developers.hubspot.com/scopes.",
                                "MISSING_SCOPES", errors=[{"message": "One or more of the following scopes are "
                                                                      "required.",
                                                           "context": {"requiredGranularScopes": [scope]}}])
            return await handler(call)
        return run

    # --- handlers -------------------------------------------------------------------------------------------

    async def details(self, call: Call) -> web.StreamResponse:
        return json_response({"portalId": self.portal_id, "accountType": "STANDARD", "timeZone": self.options.time_zone,
                              "companyCurrency": "USD", "additionalCurrencies": [], "utcOffset": "-05:00",
                              "utcOffsetMilliseconds": -18_000_000, "uiDomain": "app.hubspot.com",
                              "dataHostingLocation": "na1"})

    async def me(self, call: Call) -> web.StreamResponse:
        return json_response({"portalId": self.portal_id, "timeZone": self.options.time_zone, "currency": "USD",
                              "utcOffsetMilliseconds": -18_000_000, "utcOffset": "-05:00"})

    async def token_info(self, call: Call) -> web.StreamResponse:
        token = call.request.match_info["token"]
        record = self.tokens.get(token)
        if record is None or self.tokens.status(token, self.clock()) is not TokenStatus.VALID:
            return hs_error(404, "Token not found", "OBJECT_NOT_FOUND")
        left = int(record.expires_at - self.clock()) if record.expires_at else 0
        return json_response({"token": token, "user": "oauth-test-user@example.com", "hub_domain": "example.com",
                              "scopes": list(record.scopes), "hub_id": self.portal_id, "app_id": 1234567,
                              "expires_in": left, "user_id": 7654321, "token_type": "access"})

    def _props(self, raw: Any) -> list[str]:
        if raw is None or raw == "":
            return list(DEFAULT_PROPS)
        names = raw.split(",") if isinstance(raw, str) else raw
        if not isinstance(names, list):
            raise invalid("properties must be a list of property names")
        return [str(n).strip() for n in names if str(n).strip()]

    async def list_contacts(self, call: Call) -> web.StreamResponse:
        archived = call.params.get("archived", "false") == "true"
        found = sorted((c for c in self.contacts.values() if (c.archived_at is not None) == archived),
                       key=lambda c: int(c.id))
        limit = int_param(call.params.get("limit"), 10, 1, 100)
        after = call.params.get("after", "")
        start = next((i for i, c in enumerate(found) if int(c.id) >= int(after)), len(found)) \
            if after.isdigit() else 0
        if after and not after.isdigit():
            raise invalid(f"after must be a paging cursor, got {after[:20]!r}")
        page = found[start:start + limit]
        body: dict[str, Any] = {"results": [c.render(self._props(call.params.get("properties"))) for c in page]}
        if start + limit < len(found):
            nxt = found[start + limit].id
            link = call.request.url.update_query({"after": nxt})
            body["paging"] = {"next": {"after": nxt, "link": str(link)}}
        return json_response(body)

    async def _json(self, call: Call) -> dict[str, Any]:
        try:
            body = json.loads(await read_body(call.request, self.max_body) or b"null")
        except (ValueError, BodyTooLarge):
            body = None
        if not isinstance(body, dict):
            raise invalid("Invalid input JSON on line 1, column 1: the body must be a JSON object")
        return body

    async def search(self, call: Call) -> web.StreamResponse:
        body = await self._json(call)
        groups = body.get("filterGroups") or []
        if not isinstance(groups, list) or len(groups) > 5 or sum(len(g.get("filters") or []) for g in groups
                                                                  if isinstance(g, dict)) > 25:
            raise invalid("filterGroups: at most 5 groups and 25 filters in total")
        found = [c for c in self.contacts.values() if c.archived_at is None and
                 (not groups or any(all(matches(c, f) for f in g.get("filters") or []) for g in groups))]
        for sort in reversed(body.get("sorts") or []):
            name = sort.get("propertyName") if isinstance(sort, dict) else None
            if name not in PROPERTIES:
                raise invalid(f"sorts: unknown property {str(name)[:40]!r}")
            key = (lambda c: c.updated) if name == "lastmodifieddate" else (
                (lambda c: c.created) if name == "createdate" else (lambda c, n=name: c.value(n) or ""))
            found.sort(key=key, reverse=sort.get("direction") == "DESCENDING")
        if not body.get("sorts"):
            found.sort(key=lambda c: int(c.id))
        limit = int_param(body.get("limit"), 10, 1, 200)
        after = str(body.get("after") or "0")
        if not after.isdigit():
            raise invalid(f"after must be a number, got {after[:20]!r}")
        start = int(after)
        if start + limit > self.options.search_cap:
            raise invalid(f"Cannot page beyond {self.options.search_cap} results: after + limit may not pass "
                          f"{self.options.search_cap}")
        page = found[start:start + limit]
        out: dict[str, Any] = {"total": len(found),
                               "results": [c.render(self._props(body.get("properties"))) for c in page]}
        if start + limit < len(found):
            out["paging"] = {"next": {"after": str(start + limit)}}
        return json_response(out)

    def _contact(self, call: Call, *, archived: bool = False) -> Contact:
        contact = self.contacts.get(call.request.match_info["id"])
        if contact is None or (contact.archived_at is not None) != archived:
            raise Reply(hs_error(404, "resource not found", "OBJECT_NOT_FOUND"))
        return contact

    async def get_contact(self, call: Call) -> web.StreamResponse:
        contact = self._contact(call, archived=call.params.get("archived") == "true")
        return json_response(contact.render(self._props(call.params.get("properties"))))

    def _checked(self, props: Any) -> dict[str, Any]:
        if not isinstance(props, dict):
            raise invalid("properties must be an object of name -> value")
        bad = [n for n in props if n not in PROPERTIES or n in READ_ONLY]
        if bad:
            details = [{"isValid": False, "message": f'Property "{n}" does not exist' if n not in PROPERTIES
                        else f'Property "{n}" is read-only', "error": "PROPERTY_DOESNT_EXIST" if n not in
                        PROPERTIES else "READ_ONLY_VALUE", "name": n} for n in bad]
            raise invalid(f"Property values were not valid: {json.dumps(details)}")
        return {n: (None if v is None else str(v)) for n, v in props.items()}

    def _duplicate(self, email: Any, own: str | None = None) -> None:
        clash = next((c for c in self.contacts.values() if email and c.props.get("email") == email
                      and c.archived_at is None and c.id != own), None)
        if clash is not None:
            raise Reply(hs_error(409, f"Contact already exists. Existing ID: {clash.id}", "CONFLICT"))

    async def create(self, call: Call) -> web.StreamResponse:
        props = self._checked((await self._json(call)).get("properties"))
        self._duplicate(props.get("email"))
        now = self.now_ms()
        contact = self._add(props, now, now)
        return json_response(contact.render(list(DEFAULT_PROPS) + [n for n in props if n not in DEFAULT_PROPS]), 201)

    async def update(self, call: Call) -> web.StreamResponse:
        contact = self._contact(call)
        props = self._checked((await self._json(call)).get("properties"))
        self._duplicate(props.get("email"), contact.id)
        contact.props.update(props)
        contact.updated = max(self.now_ms(), contact.updated + 1)
        return json_response(contact.render(list(DEFAULT_PROPS) + [n for n in props if n not in DEFAULT_PROPS]))

    async def archive(self, call: Call) -> web.StreamResponse:
        self.archive_contact(self._contact(call).id)
        return web.Response(status=204)
