"""Pipedrive API emulator, v1 and v2 (reference: apis-crm.md §3).

One server plays the company domain ``https://<company>.pipedrive.com``: ``/api/v1/...`` and ``/api/v2/...``
(plus the legacy ``/v1/...`` of api.pipedrive.com), and the OAuth server of oauth.pipedrive.com
(``/oauth/authorize``, ``/oauth/token`` with Basic client auth, ``/oauth/revoke``) whose token answers carry
``api_domain`` = this server's origin. Base URL (``emu.base_url``) is the origin.

Auth: an API token in ``x-api-token`` (or the legacy ``?api_token=`` query, a knob) or an OAuth access token
as ``Authorization: Bearer``; any accepted token works either way, and the way it came decides its burst class.
OAuth grants carry scopes (``deals:read``/``deals:full``, ``users:read``); API tokens have the user's full access.

Rate model (§3.4), every answer past auth carrying its headers:
    burst     per token, rolling 2 s window: 20 (api_token) / 80 (OAuth) by default;
              ``x-ratelimit-limit``, ``x-ratelimit-remaining``, ``x-ratelimit-reset`` (seconds until room)
    budget    a daily token budget per company (every token and user shares it), reset at UTC midnight;
              each endpoint costs tokens (v1: 2 a GET, 20 a list, 10 a write; v2 half of that, at least 1);
              ``x-daily-ratelimit-token-remaining`` [unverified name: ``budget_header`` knob]
    writes    ``x-daily-requests-left``: the legacy fair-use count of POST/PUT/PATCH/DELETE by api_token,
              10,000 per user per UTC day
    Over any of them: 429 ``{"success":false,"error":...,"errorCode":429,...}`` with ``Retry-After`` (seconds);
    nothing is charged for a refused request.

Data: one company, ``deals`` generated from the seed (timestamps before the emulator's clock at first use);
``GET /api/v2/deals`` with ``limit`` (100, max 500), opaque keyset ``cursor``, ``updated_since`` (inclusive),
``updated_until`` (exclusive), ``sort_by`` id|update_time|add_time, ``sort_direction``, ``status``
(open|won|lost|deleted; without it deleted deals are left out); ``GET/PATCH/DELETE /api/v2/deals/{id}``,
``POST /api/v2/deals``. ``edit_deal``/``delete_deal`` are other clients' changes, for sync tests;
``webhook_delivery`` builds the v2 webhook POST (Basic auth) a change would cause.

Error bodies (v1 style, §3.5): ``{"success":false,"error":"<message>","error_info":"<hint>","data":null,
"additional_data":null}``; 401 also has ``errorCode``. 400 validation, 403 scope, 404 unknown deal or path,
410 a deleted deal's PATCH, 500/502/503 faults.
"""

from __future__ import annotations

import base64
import json
import math
import random
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from .base import (ADJECTIVES, FIRST_NAMES, LAST_NAMES, NOUNS, Call, Emulator, Reply, Route, TokenRecord,
                   TokenStatus, WindowState, decode_cursor, digest_int, encode_cursor, int_param, json_response,
                   pick, read_body, seeded)
from .oauth import AuthorizationServer, Dialect, OAuthServerOptions

INFO = "Please check developers.pipedrive.com for more information about Pipedrive API."
DAY = 86400
STATUSES = ("open", "won", "lost")
WRITABLE = {"title": str, "value": (int, float), "currency": str, "status": str, "owner_id": int,
            "person_id": int, "org_id": int, "pipeline_id": int, "stage_id": int, "probability": int,
            "expected_close_date": str}
READ_ONLY = ("add_time", "update_time", "stage_change_time", "id")
OAUTH_OPTIONS = dict(authorize_path="/oauth/authorize", token_path="/oauth/token", revoke_path="/oauth/revoke",
                     access_token_lifetime=3600.0, rotate_refresh_tokens=False, access_prefix="v1u:",
                     refresh_prefix="rt:")


class PipedriveOptions(BaseModel):
    """Knobs for the rate model (mostly unverified numbers) and the data set."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    burst_api_token: int = Field(20, ge=1, le=10_000)
    burst_oauth: int = Field(80, ge=1, le=10_000)
    burst_window: float = Field(2.0, gt=0, le=60)
    daily_budget: int = Field(30_000, ge=1)
    cost_get: int = Field(2, ge=0)
    cost_list: int = Field(20, ge=0)
    cost_write: int = Field(10, ge=0)
    v2_factor: float = Field(0.5, gt=0, le=1)
    daily_write_limit: int = Field(10_000, ge=1)
    budget_header: str = "x-daily-ratelimit-token-remaining"     # "" sends none
    accept_query_token: bool = True                              # legacy ?api_token= [unverified]
    deals: int = Field(60, ge=0, le=100_000)
    company: str = "emulated-co"


@dataclass
class Deal:
    id: int
    title: str
    value: float
    currency: str
    status: str
    owner_id: int
    person_id: int | None
    org_id: int | None
    stage_id: int
    add_time: int
    update_time: int
    pipeline_id: int = 1
    probability: int | None = None
    expected_close_date: str | None = None
    is_deleted: bool = False
    stage_change_time: int | None = None
    custom_fields: dict[str, Any] = field(default_factory=dict)


def rfc3339(epoch: float) -> str:
    return datetime.fromtimestamp(int(epoch), timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_rfc3339(text: str) -> float | None:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)).timestamp()


def error(status: int, message: str, **extra: Any) -> web.Response:
    return json_response({"success": False, "error": message, "error_info": INFO, "data": None,
                          "additional_data": None, **extra}, status)


class PipedriveDialect(Dialect):
    """RFC 6749 answers plus ``api_domain`` (the company domain the API is to be called on)."""

    def __init__(self, emu: PipedriveEmulator) -> None:
        self.emu = emu

    def token_ok(self, request: web.Request, body: dict[str, Any]) -> web.Response:
        return super().token_ok(request, {**body, "token_type": "Bearer", "api_domain": self.emu.origin})


class PipedriveEmulator(Emulator):
    """Pipedrive v1/v2 for one company. Example: ``emu = PipedriveEmulator(tokens=["abc123…"], seed=1)``."""

    service = "pipedrive"
    prefixes = ("",)
    default_rate = (1_000_000, 1.0)          # unused: the burst and budget below are Pipedrive's model
    default_scopes = ("deals:full", "users:read")
    options_model = PipedriveOptions
    fallback_auth = "none"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._deals: dict[int, Deal] | None = None
        self._bursts: dict[str, deque[float]] = {}
        self._budget = (0.0, 0)                   # (UTC day start, tokens spent)
        self._writes: dict[str, tuple[float, int]] = {}
        self.rejected = 0                         # 429s answered by the rate model (not the burst fault)
        super().__init__(*args, **kwargs)
        self.oauth = AuthorizationServer(self, OAuthServerOptions(**OAUTH_OPTIONS), dialect=PipedriveDialect(self))

    def mount(self, app: web.Application) -> None:
        self.oauth.mount(app)

    # --- identity and data ----------------------------------------------------------------------

    def user_of(self, record: TokenRecord) -> dict[str, Any]:
        h = digest_int("pipedrive-user", record.subject or record.token)
        first, last = pick(FIRST_NAMES, h), pick(LAST_NAMES, h >> 8)
        company_id = 7_000_000 + digest_int("company", self.seed, self.options.company) % 1_000_000
        return {"id": 10_000_000 + (h >> 16) % 9_000_000, "name": f"{first} {last}",
                "email": f"{first.lower()}.{last.lower()}@{self.options.company}.example", "phone": None,
                "lang": 1, "locale": "en_US", "default_currency": "EUR", "activated": True, "active_flag": True,
                "role_id": 1, "timezone_name": "Europe/Tallinn", "timezone_offset": "+02:00", "icon_url": None,
                "is_you": True, "is_deleted": False, "has_created_company": True, "access": [
                    {"app": "sales", "admin": True, "permission_set_id": "1"}],
                "company_id": company_id, "company_name": self.options.company.replace("-", " ").title(),
                "company_domain": self.options.company, "company_country": "EE", "company_industry": "software",
                "language": {"language_code": "en", "country_code": "US"},
                "last_login": "2026-01-05 09:00:00", "created": "2024-03-01 10:00:00",
                "modified": "2025-11-20 08:30:00"}

    @property
    def deals(self) -> dict[int, Deal]:
        if self._deals is None:
            rng = seeded(self.seed, "deals", self.options.company)
            now = int(self.clock())
            count = self.options.deals
            self._deals = {}
            for n in range(1, count + 1):
                added = now - 90 * DAY + n * (80 * DAY // max(1, count)) - rng.randrange(3600)
                self._deals[n] = Deal(n, f"{rng.choice(ADJECTIVES).title()} {rng.choice(NOUNS)} deal",
                                      float(rng.randrange(1, 500) * 100), "EUR", rng.choice(STATUSES),
                                      owner_id=10_000_001, person_id=rng.randrange(1, 40), org_id=rng.randrange(1, 12),
                                      stage_id=rng.randrange(1, 6), add_time=added,
                                      update_time=min(now - 60, added + rng.randrange(10 * DAY)))
        return self._deals

    def _touch(self, deal: Deal) -> None:
        deal.update_time = max(int(self.clock()), deal.update_time)

    def edit_deal(self, deal_id: int, **changes: Any) -> Deal:
        """Another client's edit (the UI, a colleague): the deal's update_time moves to now."""
        deal = self.deals[deal_id]
        for name, value in changes.items():
            setattr(deal, name, value)
        self._touch(deal)
        return deal

    def delete_deal(self, deal_id: int) -> None:
        """Another client's deletion: status ``deleted``, listed only with ``status=deleted``."""
        deal = self.deals[deal_id]
        deal.is_deleted, deal.status = True, "deleted"
        self._touch(deal)

    def webhook_delivery(self, deal_id: int, user: str, password: str, *, action: str = "change",
                         attempt: int = 1) -> tuple[dict[str, str], bytes]:
        """A v2 webhook POST about a deal, as Pipedrive sends it to a webhook created with ``http_auth_user``
        and ``http_auth_password``: HTTP Basic auth, JSON ``{"meta", "data", "previous"}``. A retry (``attempt``
        + 1) differs only in ``meta.attempt`` [unverified key]."""
        deal = self.deals[deal_id]
        meta = {"webhook_id": str(digest_int("webhook", self.seed) % 10**6), "action": action, "entity": "deal",
                "entity_id": str(deal.id), "company_id": str(7_000_000 + digest_int("company", self.seed,
                                                                                     self.options.company) % 1_000_000),
                "timestamp": rfc3339(deal.update_time), "change_source": "app", "version": "2.0",
                "correlation_id": f"{digest_int('corr', self.seed, deal.id, deal.update_time):016x}",
                "attempt": attempt}
        body = {"meta": meta, "data": None if action == "delete" else self.deal_json(deal),
                "previous": self.deal_json(deal) if action == "delete" else None}
        auth = base64.b64encode(f"{user}:{password}".encode()).decode()
        headers = {"Content-Type": "application/json", "Authorization": f"Basic {auth}"}
        return headers, json.dumps(body).encode()

    def deal_json(self, d: Deal) -> dict[str, Any]:
        return {"id": d.id, "title": d.title, "owner_id": d.owner_id, "person_id": d.person_id, "org_id": d.org_id,
                "pipeline_id": d.pipeline_id, "stage_id": d.stage_id, "value": d.value, "currency": d.currency,
                "add_time": rfc3339(d.add_time), "update_time": rfc3339(d.update_time),
                "stage_change_time": rfc3339(d.stage_change_time) if d.stage_change_time else None,
                "is_deleted": d.is_deleted, "is_archived": False, "status": d.status,
                "probability": d.probability, "lost_reason": None, "visible_to": 3, "close_time": None,
                "won_time": None, "lost_time": None, "expected_close_date": d.expected_close_date,
                "label_ids": [], "custom_fields": dict(d.custom_fields)}

    # --- the rate model -------------------------------------------------------------------------

    def _oauth(self, call: Call) -> bool:
        return (call.request.headers.get("Authorization") or "").lower().startswith("bearer ")

    def burst_limit(self, call: Call) -> int:
        return self.options.burst_oauth if self._oauth(call) else self.options.burst_api_token

    def _burst_times(self, token: str) -> deque[float]:
        times = self._bursts.setdefault(token, deque())
        horizon = self.clock() - self.options.burst_window
        while times and times[0] <= horizon:
            times.popleft()
        return times

    def burst_state(self, call: Call) -> WindowState:
        times = self._burst_times(call.token or "")
        now, limit = self.clock(), self.burst_limit(call)
        free_at = times[0] + self.options.burst_window if len(times) >= limit else now
        return WindowState(limit, len(times), free_at, now, len(times) < limit)

    def budget_left(self) -> int:
        day = math.floor(self.clock() / DAY) * DAY
        spent = self._budget[1] if self._budget[0] == day else 0
        return max(0, self.options.daily_budget - spent)

    def writes_left(self, token: str) -> int:
        day = math.floor(self.clock() / DAY) * DAY
        saved = self._writes.get(token)
        return self.options.daily_write_limit - (saved[1] if saved and saved[0] == day else 0)

    def cost(self, call: Call, kind: str) -> int:
        base = {"get": self.options.cost_get, "list": self.options.cost_list, "write": self.options.cost_write}[kind]
        if call.path.startswith("/api/v2/"):
            return max(1, math.ceil(base * self.options.v2_factor)) if base else 0
        return base

    @staticmethod
    def _ceil(seconds: float) -> int:
        return math.ceil(round(seconds, 3))         # whole seconds, without float noise from the clock's sums

    def _until_midnight(self) -> int:
        now = self.clock()
        return max(1, math.ceil(math.floor(now / DAY) * DAY + DAY - now))

    def _too_many(self, message: str, retry_after: int) -> Reply:
        self.rejected += 1
        response = error(429, message, errorCode=429)
        response.headers["Retry-After"] = str(retry_after)
        return Reply(response)

    def meter(self, call: Call, kind: str) -> None:
        """Charge the burst window, the company budget and (api_token writes) the fair-use count; or 429."""
        burst = self.burst_state(call)
        if not burst.allowed:
            raise self._too_many("Request over limit", max(1, self._ceil(burst.window_end - burst.now)))
        price = self.cost(call, kind)
        if price > self.budget_left():
            raise self._too_many("Daily API token budget exceeded", self._until_midnight())
        api_token_write = kind == "write" and not self._oauth(call)
        if api_token_write and self.writes_left(call.token or "") <= 0:
            raise self._too_many("Daily request limit exceeded", self._until_midnight())
        self._burst_times(call.token or "").append(self.clock())
        day = math.floor(self.clock() / DAY) * DAY
        self._budget = (day, (self._budget[1] if self._budget[0] == day else 0) + price)
        if api_token_write:
            used = self.options.daily_write_limit - self.writes_left(call.token or "")
            self._writes[call.token or ""] = (day, used + 1)

    def decorate(self, call: Call, response: web.StreamResponse) -> None:
        if not call.token:
            return
        burst = self.burst_state(call)
        response.headers["x-ratelimit-limit"] = str(burst.limit)
        response.headers["x-ratelimit-remaining"] = str(burst.remaining)
        times = self._burst_times(call.token)
        left = times[0] + self.options.burst_window - burst.now if times else 0.0
        response.headers["x-ratelimit-reset"] = str(max(0, self._ceil(left)))
        if self.options.budget_header:
            response.headers[self.options.budget_header] = str(self.budget_left())
        if not self._oauth(call):
            response.headers["x-daily-requests-left"] = str(max(0, self.writes_left(call.token)))

    # --- pipeline hooks -------------------------------------------------------------------------

    async def credentials(self, call: Call) -> str | None:
        header = call.request.headers.get("Authorization")
        if header is not None:
            scheme, _, value = header.strip().partition(" ")
            return value.strip() if scheme.lower() == "bearer" and value.strip() else ""
        token = call.request.headers.get("x-api-token")
        if token is None and self.options.accept_query_token:
            token = call.request.query.get("api_token")
        return token.strip() if token is not None else None

    def quotas(self, call: Call) -> list[Any]:
        # only the generic control-API window (set_rate_limit); Pipedrive's own model is `meter`
        return super().quotas(call) if self.rate_limit is not None else []

    def auth_failure(self, call: Call, status: TokenStatus) -> web.StreamResponse:
        if status is TokenStatus.MISSING:
            return error(401, "You need to be authorized to make this request.", errorCode=401)
        if status is TokenStatus.EXPIRED:
            return error(401, "Access token expired", errorCode=401)
        return error(401, "unauthorized access", errorCode=401)

    def rate_limited(self, call: Call, state: WindowState) -> web.StreamResponse:
        response = error(429, "Request over limit", errorCode=429)
        response.headers["Retry-After"] = str(state.retry_after)
        return response

    def burst_limited(self, call: Call) -> web.StreamResponse:
        response = error(429, "Request over limit", errorCode=429)
        response.headers["Retry-After"] = str(self.faults.burst_retry_after)
        return response

    def server_error(self, rng: random.Random) -> web.StreamResponse:
        roll = rng.random()
        if roll < 0.4:
            return error(500, "Internal server error")
        if roll < 0.7:
            return web.Response(status=502, content_type="text/html", text="<html><body>502 Bad Gateway</body></html>")
        return error(503, "Service temporarily unavailable")

    def not_found(self, call: Call) -> web.StreamResponse:
        return error(404, "Unknown method .")

    # --- endpoints ------------------------------------------------------------------------------

    def routes(self) -> list[Route]:
        return [
            Route("GET", "/api/v1/users/me", self._metered("get", self.get_me, "users:read")),
            Route("GET", "/v1/users/me", self._metered("get", self.get_me, "users:read")),
            Route("GET", "/api/v2/deals", self._metered("list", self.list_deals, "deals:read")),
            Route("POST", "/api/v2/deals", self._metered("write", self.create_deal, "deals:full")),
            Route("GET", "/api/v2/deals/{id}", self._metered("get", self.get_deal, "deals:read")),
            Route("PATCH", "/api/v2/deals/{id}", self._metered("write", self.update_deal, "deals:full")),
            Route("DELETE", "/api/v2/deals/{id}", self._metered("write", self.remove_deal, "deals:full")),
        ]

    def _metered(self, kind: str, handler: Any, scope: str) -> Any:
        async def run(call: Call) -> web.StreamResponse:
            self._check_scope(call, scope)
            self.meter(call, kind)
            return await handler(call)
        return run

    def _check_scope(self, call: Call, scope: str) -> None:
        record = call.record
        if record is None or record.subject is None:
            return                                  # an API token has all of its user's access
        granted = set(record.scopes)
        wanted = {scope, scope.split(":")[0] + ":full", "admin"}
        if not granted & wanted:
            raise Reply(error(403, f"Scope and URL mismatch: this endpoint needs {scope}", errorCode=403))

    async def get_me(self, call: Call) -> web.StreamResponse:
        assert call.record is not None
        return json_response({"success": True, "data": self.user_of(call.record)})

    def _deal(self, call: Call, *, allow_deleted: bool = True) -> Deal:
        raw = call.request.match_info.get("id", "")
        deal = self.deals.get(int(raw)) if raw.isdigit() else None
        if deal is None:
            raise Reply(error(404, "Deal not found"))
        if deal.is_deleted and not allow_deleted:
            raise Reply(error(410, "Deal is deleted"))
        return deal

    async def get_deal(self, call: Call) -> web.StreamResponse:
        return json_response({"success": True, "data": self.deal_json(self._deal(call))})

    async def list_deals(self, call: Call) -> web.StreamResponse:
        p = call.params
        limit = int_param(p.get("limit"), 100, 1, 500)
        sort_by = p.get("sort_by", "id")
        direction = p.get("sort_direction", "asc")
        if sort_by not in ("id", "update_time", "add_time") or direction not in ("asc", "desc"):
            raise Reply(error(400, "Validation failed: sort_by must be id, update_time or add_time; "
                                   "sort_direction asc or desc"))
        since, until = self._time_param(p, "updated_since"), self._time_param(p, "updated_until")
        status = p.get("status")
        if status is not None and status not in (*STATUSES, "deleted"):
            raise Reply(error(400, "Validation failed: status must be open, won, lost or deleted"))
        pipeline = int_param(p.get("pipeline_id"), 0, 1, 10**12) or None
        rows = [d for d in self.deals.values()
                if (d.status == status if status else not d.is_deleted)
                and (pipeline is None or d.pipeline_id == pipeline)
                and (since is None or d.update_time >= since) and (until is None or d.update_time < until)]
        key = (lambda d: (getattr(d, sort_by), d.id)) if sort_by != "id" else (lambda d: (d.id, d.id))
        rows.sort(key=key, reverse=direction == "desc")
        after = self._cursor(p.get("cursor"))
        if after is not None:
            rows = [d for d in rows if (key(d) > after if direction == "asc" else key(d) < after)]
        page = rows[:limit]
        nxt = encode_cursor("pd:" + f"{key(page[-1])[0]}:{page[-1].id}") if len(rows) > limit else None
        return json_response({"success": True, "data": [self.deal_json(d) for d in page],
                              "additional_data": {"next_cursor": nxt}})

    @staticmethod
    def _time_param(params: dict[str, Any], name: str) -> float | None:
        raw = params.get(name)
        if raw is None:
            return None
        moment = parse_rfc3339(str(raw))
        if moment is None:
            raise Reply(error(400, f"Validation failed: {name} must be an RFC 3339 date-time"))
        return moment

    @staticmethod
    def _cursor(raw: Any) -> tuple[int, int] | None:
        if raw is None:
            return None
        payload = decode_cursor(str(raw), "pd:")
        parts = payload.split(":") if payload else []
        if len(parts) != 2 or not all(x.lstrip("-").isdigit() for x in parts):
            raise Reply(error(400, "Validation failed: cursor is invalid"))
        return int(parts[0]), int(parts[1])

    async def _fields(self, call: Call) -> dict[str, Any]:
        try:
            body = json.loads(await read_body(call.request, self.max_body) or b"null")
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise Reply(error(400, "Validation failed: the body must be a JSON object"))
        for name in READ_ONLY:
            if name in body:
                raise Reply(error(400, f"Validation failed: {name} is not accepted"))
        out = {}
        for name, value in body.items():
            kind = WRITABLE.get(name)
            if kind is None:
                raise Reply(error(400, f"Validation failed: unknown field {name[:40]}"))
            if value is not None and not isinstance(value, kind) or isinstance(value, bool):
                raise Reply(error(400, f"Validation failed: {name} has the wrong type"))
            out[name] = value
        if "status" in out and out["status"] not in STATUSES:
            raise Reply(error(400, "Validation failed: status must be open, won or lost"))
        if "title" in out and not (isinstance(out["title"], str) and out["title"].strip()):
            raise Reply(error(400, "Validation failed: title must not be empty"))
        return out

    async def create_deal(self, call: Call) -> web.StreamResponse:
        fields = await self._fields(call)
        if "title" not in fields:
            raise Reply(error(400, "Validation failed: title: Required"))
        now = int(self.clock())
        deal_id = max(self.deals, default=0) + 1
        owner = self.user_of(call.record)["id"] if call.record else 0
        deal = Deal(deal_id, fields.pop("title"), 0.0, "EUR", "open", owner, None, None, 1, now, now)
        for name, value in fields.items():
            setattr(deal, name, value)
        self.deals[deal_id] = deal
        return json_response({"success": True, "data": self.deal_json(deal)}, 201)

    async def update_deal(self, call: Call) -> web.StreamResponse:
        deal = self._deal(call, allow_deleted=False)
        fields = await self._fields(call)
        if "stage_id" in fields and fields["stage_id"] != deal.stage_id:
            deal.stage_change_time = int(self.clock())
        for name, value in fields.items():
            setattr(deal, name, value)
        self._touch(deal)
        return json_response({"success": True, "data": self.deal_json(deal)})

    async def remove_deal(self, call: Call) -> web.StreamResponse:
        deal = self._deal(call, allow_deleted=False)
        self.delete_deal(deal.id)
        return json_response({"success": True, "data": {"id": deal.id}})
