"""Jira Cloud REST API v3 emulator (reference: apis-storage-dev.md §6), one site with its gateway.

Base URLs: the site shape `http://127.0.0.1:PORT/rest/api/3` (API tokens: `Authorization: Basic
base64(email:token)`; a plain Bearer token is accepted there too, as Jira Data Center's personal access tokens
are) and the OAuth gateway shape `http://127.0.0.1:PORT/ex/jira/{cloudId}/rest/api/3` (Bearer only). OAuth 2.0
(3LO) on the same origin: `/authorize`, `/oauth/token` (JSON bodies, as Atlassian documents, or form-encoded),
access tokens for 1 h, refresh tokens rotate (`old_refresh_token_survives_rotation` is a knob, off), and
`GET /oauth/token/accessible-resources` lists the site (`id` = cloud id, `url`, `scopes`).

Rate limits, the three systems of Atlassian's rate-limiting page (facts beyond the reference from Atlassian's
community posts of 2025-2026, see the issue 7 report):
- request rate (per second, per token; default 100/s, or `set_rate_limit`): every answer that passed auth
  carries `X-RateLimit-Limit` and `X-RateLimit-Remaining` of this window; an empty one answers 429
  `RateLimit-Reason: jira-burst-based`.
- points (per hour, a pool for the site and app): each request costs 1 point plus 1 per object returned (writes
  only the 1). It applies to OAuth (3LO) traffic, not API tokens (knob `points_for_api_tokens`). Answers carry
  `Beta-RateLimit-Policy: "tenant-app-quota";q=<quota>;w=3600` and `Beta-RateLimit: "tenant-app-quota";r=<left>;
  t=<seconds to reset>` as seen in the wild (knob `quota_headers="ietf"`: the draft's unprefixed `RateLimit-Policy`
  / `RateLimit`). An empty pool answers 429 `jira-quota-tenant-based` when `points_enforced`; otherwise (the
  warning phase) the call succeeds with `Beta-Retry-After`, `X-Beta-RateLimit-Reason`, `X-Beta-RateLimit-Reset`
  and `X-Beta-RateLimit-NearLimit`: what would have happened.
- per-issue writes: the burst fault answers 429 `jira-per-issue-on-write`.
Every 429 carries `Retry-After` and `X-RateLimit-Reset` (`yyyy-MM-ddTHH:mmZ`, request time + Retry-After).

Data: projects `projects` (keys) with `issues_per_project` issues each; every account (derived from the token or
the OAuth grant's subject) has an email, a display name and a time zone, in which JQL dates are read.
Endpoints: `/myself`, `/project`, `/project/{key}`, `GET|POST /search/jql` (JQL slice of `jira_jql`, keyset
`nextPageToken` valid 7 days, `fields` default `id`, `maxResults` default 50, max 100 or 5,000 for id/key only),
`GET|PUT|DELETE /issue/{idOrKey}` (DELETE: 403 unless `delete_permission`), `POST /issue` (v3: description
must be ADF). Test helpers: `edit_issue`, `delete_issue`, `account_email`, `webhook_delivery` (a signed admin
webhook POST).

Error answers (ErrorCollection `{"errorMessages": [...], "errors": {...}}` unless said):
    401 site: "Client must be authenticated to access this resource."   gateway: {"code":401,"message":...}
    401 gateway, scope missing: {"code":401,"message":"Unauthorized; scope does not match"}
    403 "You do not have permission to delete issues in this project."   400 JQL / field validation
    404 "Issue does not exist or you do not have permission to see it."
    429 rate limits   500 ErrorCollection   502 HTML   503 with Retry-After
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import math
import random
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from . import jira_jql
from .base import (
    ADJECTIVES, FIRST_NAMES, LAST_NAMES, NOUNS, BodyTooLarge, Call, Emulator, Quota, Reply, Route, TokenRecord,
    TokenStatus, WindowState, bearer_token, decode_cursor, digest_int, encode_cursor, int_param, json_response, pick,
    read_body, seeded,
)
from .oauth import AuthorizationServer, Dialect, OAuthServerOptions, Refusal

OAUTH_OPTIONS = dict(authorize_path="/authorize", token_path="/oauth/token", device_path=None, revoke_path=None,
                     access_token_lifetime=3600.0, rotate_refresh_tokens=True,
                     old_refresh_token_survives_rotation=False, access_prefix="eyJraWQi.", refresh_prefix="eyJyZWYi.")
RESOURCES = "/oauth/token/accessible-resources"
SCOPES = ("read:jira-user", "read:jira-work", "write:jira-work", "manage:jira-webhook", "offline_access")
DATA_EPOCH = 1672531200
DAY = 86400
TOKEN_LIFETIME = 7 * DAY
ZONES = ("UTC", "Europe/Berlin", "America/New_York", "Asia/Tokyo", "Australia/Sydney")
STATUSES = (("To Do", "new"), ("In Progress", "indeterminate"), ("Done", "done"))
NOT_FOUND = "Issue does not exist or you do not have permission to see it."


class JiraOptions(BaseModel):
    """Knobs for what the reference marks unverified, and for tests."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    projects: list[str] = Field(default_factory=lambda: ["DEMO", "OPS"], min_length=1, max_length=20)
    issues_per_project: int = Field(30, ge=0, le=50_000)
    issue_interval: int = Field(3600, ge=1, le=86400)
    points_per_hour: int = Field(65_000, ge=1)                     # [unverified] the exact quota is unpublished
    points_for_api_tokens: bool = False     # Atlassian: API-token traffic keeps the older burst limits only
    points_enforced: bool = True            # False: the warning phase (Beta-Retry-After on a 200)
    quota_headers: Literal["beta", "ietf"] = "beta"
    check_email: bool = True               # Basic auth: the email must be the token's account's
    site_accepts_bearer: bool = True       # Data Center style PATs on the site URL
    delete_permission: bool = False        # most users may not delete issues: DELETE answers 403
    # a dead refresh token: RFC 6749's 400 invalid_grant, or the 403 unauthorized_client "refresh_token is
    # invalid" that the reference reports from the wild [unverified]
    refresh_failure: Literal["invalid_grant", "unauthorized_client"] = "invalid_grant"


def jira_time(epoch: float) -> str:
    """Jira's timestamps: ``2023-01-01T00:00:00.000+0000``."""
    t = time.gmtime(int(epoch))
    return (f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}T{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}."
            f"{int(round((epoch % 1) * 1000)) % 1000:03d}+0000")


def errors(status: int, messages: list[str] | None = None, fields: dict[str, str] | None = None,
           headers: dict[str, str] | None = None) -> web.Response:
    return json_response({"errorMessages": messages or [], "errors": fields or {}}, status, headers)


def adf(text: str) -> dict[str, Any]:
    return {"type": "doc", "version": 1,
            "content": [{"type": "paragraph", "content": [{"type": "text", "text": text}]}]}


@dataclass
class Account:
    account_id: str
    name: str
    email: str
    zone: str

    def brief(self) -> dict[str, Any]:
        return {"accountId": self.account_id, "displayName": self.name, "active": True, "accountType": "atlassian"}


@dataclass
class Issue:
    id: int
    project: str
    number: int
    summary: str
    description: dict[str, Any] | None
    issuetype: str
    status: int
    reporter: Account
    created: float
    updated: float
    labels: list[str] = field(default_factory=list)

    @property
    def key(self) -> str:
        return f"{self.project}-{self.number}"


def derive_account(seed_text: str) -> Account:
    h = digest_int("jira-account", seed_text)
    first, last = pick(FIRST_NAMES, h >> 8), pick(LAST_NAMES, h >> 16)
    hexed = f"{h:016x}{digest_int('jira-id', seed_text):016x}"
    return Account(f"557058:{hexed[:8]}-{hexed[8:12]}-{hexed[12:16]}-{hexed[16:20]}-{hexed[20:32]}",
                   f"{first} {last}", f"{first.lower()}.{last.lower()}{h % 100}@example.com", pick(ZONES, h >> 24))


class AtlassianDialect(Dialect):
    """RFC 6749 answers, except a dead refresh token when the emulator's ``refresh_failure`` knob says 403."""

    def __init__(self, emu: JiraEmulator) -> None:
        self.emu = emu

    def token_error(self, request: web.Request, refusal: Refusal) -> web.Response:
        if refusal.native == "invalid_refresh_token" and self.emu.options.refresh_failure == "unauthorized_client":
            return json_response({"error": "unauthorized_client", "error_description": "refresh_token is invalid"},
                                 403, {"Cache-Control": "no-store"})
        return super().token_error(request, refusal)


class AtlassianTokenServer(AuthorizationServer):
    """The shared authorization server, also reading the JSON bodies Atlassian documents for its token endpoint."""

    async def form(self, request: web.Request) -> dict[str, str]:
        if "json" not in request.headers.get("Content-Type", ""):
            return await super().form(request)
        try:
            raw = json.loads(await read_body(request, 64 * 1024) or b"null")
        except (BodyTooLarge, ValueError):
            raw = None
        if not isinstance(raw, dict) or not all(isinstance(v, str) for v in raw.values()):
            raise Refusal("invalid_request", "the body must be a JSON object of strings")
        return raw


class JiraEmulator(Emulator):
    """Jira Cloud. Example: ``emu = JiraEmulator(tokens=["ATATT3x-demo"], seed=1)``; ``emu.account_email(t)``."""

    service = "jira"
    prefixes = ("/rest/api/3",)
    default_rate = (100, 1.0)
    default_scopes = SCOPES
    options_model = JiraOptions
    fallback_auth = "optional"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.accounts: dict[str, Account] = {}
        self.issues: dict[int, Issue] = {}
        self._points: dict[float, int] = {}
        self._costs: dict[int, int] = {}
        self._deliveries = 0
        super().__init__(*args, **kwargs)
        h = digest_int("jira-site", self.seed)
        hexed = f"{h:016x}{digest_int('jira-cloud', self.seed):016x}"
        self.cloud_id = f"{hexed[:8]}-{hexed[8:12]}-{hexed[12:16]}-{hexed[16:20]}-{hexed[20:32]}"
        self.site_url = f"https://{pick(ADJECTIVES, h)}-{pick(NOUNS, h >> 8)}.atlassian.net"
        self.prefixes = ("/rest/api/3", f"/ex/jira/{self.cloud_id}/rest/api/3")
        self.oauth = AtlassianTokenServer(self, OAuthServerOptions(**OAUTH_OPTIONS), dialect=AtlassianDialect(self))
        self._generate()

    def mount(self, app: web.Application) -> None:
        self.oauth.mount(app)
        app.router.add_get(RESOURCES, self.accessible_resources)

    # --- data -----------------------------------------------------------------------------------

    def on_token_added(self, record: TokenRecord) -> None:
        self.accounts[record.token] = derive_account(record.subject or record.token)

    def account_email(self, token: str) -> str:
        """The email to pair with an API token in Basic auth."""
        return self.accounts[token].email

    def _generate(self) -> None:
        reporter = derive_account(f"reporter-{self.seed}")
        for p_index, project in enumerate(self.options.projects):
            rng = seeded(self.seed, "jira-issues", project)
            step = self.options.issue_interval
            for n in range(1, self.options.issues_per_project + 1):
                created = DATA_EPOCH + p_index * DAY + n * step + rng.randrange(step)
                issue = Issue(10000 + p_index * 100_000 + n, project, n,
                              f"{rng.choice(ADJECTIVES).title()} {rng.choice(NOUNS)} fails ({project}-{n})",
                              adf(f"Reported on the {rng.choice(NOUNS)} screen."), rng.choice(("Task", "Bug")),
                              rng.randrange(3), reporter, created, created + rng.randrange(60 * DAY),
                              rng.sample(["backend", "ui", "customer"], rng.randrange(3)))
                self.issues[issue.id] = issue

    def _find(self, id_or_key: str) -> Issue | None:
        if id_or_key.isdigit():
            return self.issues.get(int(id_or_key))
        return next((i for i in self.issues.values() if i.key == id_or_key.upper()), None)

    def edit_issue(self, key: str, **changes: Any) -> Issue:
        """Another user edits an issue (``summary=...``, ``labels=[...]``, ``status=2``); ``updated`` moves on."""
        issue = self._find(key)
        if issue is None:
            raise KeyError(f"no issue {key}")
        for name, value in changes.items():
            setattr(issue, name, value)
        issue.updated = max(self.clock(), issue.updated + 1)
        return issue

    def webhook_delivery(self, key: str, secret: str, event: str = "jira:issue_updated") -> tuple[dict[str, str], bytes]:
        """An admin webhook POST for the issue, signed ``X-Hub-Signature: sha256=<hex HMAC of the body>``."""
        issue = self._find(key)
        if issue is None:
            raise KeyError(f"no issue {key}")
        body = json.dumps({"timestamp": int(self.clock() * 1000), "webhookEvent": event,
                           "issue": {"id": str(issue.id), "key": issue.key,
                                     "fields": {"summary": issue.summary, "updated": jira_time(issue.updated)}},
                           "user": issue.reporter.brief()}).encode()
        signature = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        self._deliveries += 1
        delivery = f"{digest_int('jira-delivery', self.seed, self._deliveries) % 10**12}"
        return {"Content-Type": "application/json", "X-Hub-Signature": f"sha256={signature}",
                "X-Atlassian-Webhook-Identifier": delivery}, body

    def delete_issue(self, key: str) -> None:
        """Someone with the permission deletes an issue: it leaves every search and answers 404."""
        issue = self._find(key)
        if issue is None:
            raise KeyError(f"no issue {key}")
        del self.issues[issue.id]

    # --- rendering ------------------------------------------------------------------------------

    def _api(self, call: Call) -> str:
        gateway = call.request.path.startswith("/ex/jira/")
        return self.origin + (self.prefixes[1] if gateway else self.prefixes[0])

    def _fields(self, issue: Issue, api: str) -> dict[str, Any]:
        name, category = STATUSES[issue.status]
        return {
            "summary": issue.summary, "description": issue.description, "labels": list(issue.labels),
            "created": jira_time(issue.created), "updated": jira_time(issue.updated),
            "issuetype": {"name": issue.issuetype, "subtask": False},
            "status": {"name": name, "statusCategory": {"key": category}},
            "project": {"id": str(10000 + self.options.projects.index(issue.project))
                        if issue.project in self.options.projects else "0", "key": issue.project,
                        "self": f"{api}/project/{issue.project}"},
            "reporter": issue.reporter.brief(), "assignee": None, "priority": {"name": "Medium"},
        }

    def _issue_json(self, issue: Issue, api: str, wanted: list[str] | None) -> dict[str, Any]:
        if wanted is not None and set(wanted) <= {"id"}:
            return {"id": str(issue.id)}
        body: dict[str, Any] = {"expand": "", "id": str(issue.id), "self": f"{api}/issue/{issue.id}",
                                "key": issue.key}
        every = self._fields(issue, api)
        if wanted is None or {"*all", "*navigable"} & set(wanted):
            body["fields"] = every
        else:
            body["fields"] = {k: v for k, v in every.items() if k in wanted}
        return body

    # --- endpoints ------------------------------------------------------------------------------

    def routes(self) -> list[Route]:
        return [
            Route("GET", "/myself", self.myself),
            Route("GET", "/project", self.list_projects),
            Route("GET", "/project/{key}", self.get_project),
            Route("GET", "/search/jql", self.search),
            Route("POST", "/search/jql", self.search),
            Route("POST", "/issue", self.create_issue),
            Route("GET", "/issue/{key}", self.get_issue),
            Route("PUT", "/issue/{key}", self.update_issue),
            Route("DELETE", "/issue/{key}", self.remove_issue),
        ]

    def _require(self, call: Call, scope: str) -> None:
        if call.record is not None and scope not in call.record.scopes:
            raise Reply(json_response({"code": 401, "message": "Unauthorized; scope does not match"}, 401))

    def _cost(self, call: Call, objects: int) -> None:
        self._costs[id(call)] = self._costs.get(id(call), 0) + objects

    async def myself(self, call: Call) -> web.StreamResponse:
        self._require(call, "read:jira-user")
        account = self.accounts[call.token or ""]
        self._cost(call, 1)
        return json_response({**account.brief(), "self": f"{self._api(call)}/user?accountId={account.account_id}",
                              "emailAddress": account.email, "timeZone": account.zone, "locale": "en_US",
                              "groups": {"size": 1, "items": []}})

    def _project_json(self, key: str, api: str) -> dict[str, Any]:
        return {"id": str(10000 + self.options.projects.index(key)), "key": key, "name": f"{key.title()} project",
                "self": f"{api}/project/{key}", "projectTypeKey": "software", "simplified": False}

    async def list_projects(self, call: Call) -> web.StreamResponse:
        self._require(call, "read:jira-work")
        self._cost(call, len(self.options.projects))
        return json_response([self._project_json(k, self._api(call)) for k in self.options.projects])

    async def get_project(self, call: Call) -> web.StreamResponse:
        self._require(call, "read:jira-work")
        key = call.request.match_info["key"].upper()
        if key not in self.options.projects:
            raise Reply(errors(404, [f"No project could be found with key '{key}'."]))
        self._cost(call, 1)
        return json_response(self._project_json(key, self._api(call)))

    async def _search_params(self, call: Call) -> dict[str, Any]:
        if call.request.method == "GET":
            params: dict[str, Any] = dict(call.params)
            if "fields" in params:
                params["fields"] = [f.strip() for f in params["fields"].split(",") if f.strip()]
            return params
        body = await self._json(call)
        if "fields" in body and not (isinstance(body["fields"], list) and all(isinstance(f, str) for f in body["fields"])):
            raise Reply(errors(400, ["'fields' must be an array of strings."]))
        return body

    async def search(self, call: Call) -> web.StreamResponse:
        self._require(call, "read:jira-work")
        params = await self._search_params(call)
        jql = params.get("jql")
        if not isinstance(jql, str):
            raise Reply(errors(400, ["The JQL query is required."]))
        account = self.accounts[call.token or ""]
        try:
            query = jira_jql.parse(jql, tz=jira_jql.tz_of(account.zone), now=self.clock())
        except jira_jql.JqlError as exc:
            raise Reply(errors(400, [str(exc)])) from None
        wanted = params.get("fields") or ["id"]
        id_only = set(wanted) <= {"id", "key"}
        limit = int_param(params.get("maxResults"), 50, 1, 5000 if id_only else 100)
        ordered = self._ordered(query)
        start = self._resume(params.get("nextPageToken"), jql, ordered, query)
        page = ordered[start:start + limit]
        api = self._api(call)
        body: dict[str, Any] = {"issues": [self._issue_json(i, api, wanted) for i in page]}
        if start + limit < len(ordered) and page:
            body["nextPageToken"] = self._token(jql, query, page[-1])
            body["isLast"] = False
        else:
            body["isLast"] = True
        self._cost(call, len(page))
        return json_response(body)

    @staticmethod
    def _sort_key(issue: Issue, order: list[tuple[str, bool]]) -> tuple[float, ...]:
        values = []
        for name, descending in order or [("id", False)]:
            value = float(issue.id if name == "id" else getattr(issue, name))
            values.append(-value if descending else value)
        return (*values, float(issue.id))

    def _ordered(self, query: jira_jql.Query) -> list[Issue]:
        def value(issue: Issue, name: str) -> Any:
            return {"project": issue.project, "key": issue.key, "id": str(issue.id), "status":
                    STATUSES[issue.status][0], "labels": issue.labels, "issuetype": issue.issuetype,
                    "updated": issue.updated, "created": issue.created}[name]
        hits = [i for i in self.issues.values() if all(jira_jql.matches(c, value(i, c.field)) for c in query.clauses)]
        return sorted(hits, key=lambda i: self._sort_key(i, query.order))

    def _token(self, jql: str, query: jira_jql.Query, last: Issue) -> str:
        position = json.dumps([digest_int(jql) % 10**12, self.clock(), list(self._sort_key(last, query.order))])
        return encode_cursor("jql:" + position)

    def _resume(self, token: Any, jql: str, ordered: list[Issue], query: jira_jql.Query) -> int:
        """Keyset: the first issue after the position the token names (so edits mid-walk never skip one)."""
        if token in (None, ""):
            return 0
        payload = decode_cursor(str(token), "jql:")
        try:
            digest, issued, position = json.loads(payload or "")
            stale = digest != digest_int(jql) % 10**12 or self.clock() - float(issued) > TOKEN_LIFETIME
            after = tuple(float(x) for x in position)
        except (ValueError, TypeError):
            stale, after = True, ()
        if stale:
            raise Reply(errors(400, ["The provided next page token is invalid or expired."]))
        return next((n for n, i in enumerate(ordered) if self._sort_key(i, query.order) > after), len(ordered))

    def _issue_or_404(self, call: Call) -> Issue:
        issue = self._find(call.request.match_info["key"])
        if issue is None:
            raise Reply(errors(404, [NOT_FOUND]))
        return issue

    async def get_issue(self, call: Call) -> web.StreamResponse:
        self._require(call, "read:jira-work")
        issue = self._issue_or_404(call)
        wanted = [f.strip() for f in call.params["fields"].split(",")] if call.params.get("fields") else None
        self._cost(call, 1)
        return json_response(self._issue_json(issue, self._api(call), wanted))

    async def _json(self, call: Call) -> dict[str, Any]:
        try:
            body = json.loads(await read_body(call.request, self.max_body) or b"null")
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise Reply(errors(400, ["Unexpected character: the request body must be a JSON object."]))
        return body

    def _validated(self, fields: Any, *, creating: bool) -> dict[str, Any]:
        if not isinstance(fields, dict):
            raise Reply(errors(400, ["The request must contain 'fields' or 'update'."]))
        problems: dict[str, str] = {}
        if creating:
            project = fields.get("project") if isinstance(fields.get("project"), dict) else {}
            if str(project.get("key", "")).upper() not in self.options.projects:
                problems["project"] = "valid project is required"
            if not isinstance(fields.get("issuetype"), dict) or fields["issuetype"].get("name") not in ("Task", "Bug"):
                problems["issuetype"] = "Specify an issue type"
        summary = fields.get("summary")
        if (creating or "summary" in fields) and (not isinstance(summary, str) or not summary.strip()):
            problems["summary"] = "You must specify a summary of the issue."
        elif isinstance(summary, str) and len(summary) > 255:
            problems["summary"] = "Summary must be less than 255 characters."
        description = fields.get("description")
        if description is not None and not (isinstance(description, dict) and description.get("type") == "doc"):
            problems["description"] = "Operation value must be an Atlassian Document (see the Atlassian Document Format)."
        labels = fields.get("labels")
        if labels is not None and not (isinstance(labels, list) and all(isinstance(x, str) and " " not in x
                                                                          for x in labels)):
            problems["labels"] = "Labels must be strings without spaces."
        if "status" in fields:
            problems["status"] = "Field 'status' cannot be set. It is not on the appropriate screen, or unknown."
        if problems:
            raise Reply(errors(400, [], problems))
        return fields

    async def create_issue(self, call: Call) -> web.StreamResponse:
        self._require(call, "write:jira-work")
        fields = self._validated((await self._json(call)).get("fields"), creating=True)
        project = fields["project"]["key"].upper()
        number = max((i.number for i in self.issues.values() if i.project == project), default=0) + 1
        now = self.clock()
        issue = Issue(10000 + self.options.projects.index(project) * 100_000 + number, project, number,
                      fields["summary"], fields.get("description"), fields["issuetype"]["name"], 0,
                      self.accounts[call.token or ""], now, now, list(fields.get("labels") or []))
        self.issues[issue.id] = issue
        return json_response({"id": str(issue.id), "key": issue.key, "self": f"{self._api(call)}/issue/{issue.id}"},
                             201)

    async def update_issue(self, call: Call) -> web.StreamResponse:
        self._require(call, "write:jira-work")
        issue = self._issue_or_404(call)
        fields = self._validated((await self._json(call)).get("fields"), creating=False)
        for name in ("summary", "description", "labels"):
            if name in fields:
                setattr(issue, name, list(fields[name]) if name == "labels" else fields[name])
        issue.updated = max(self.clock(), issue.updated + 0.001)
        return web.Response(status=204)

    async def remove_issue(self, call: Call) -> web.StreamResponse:
        self._require(call, "write:jira-work")
        issue = self._issue_or_404(call)
        if not self.options.delete_permission:
            raise Reply(errors(403, ["You do not have permission to delete issues in this project."]))
        del self.issues[issue.id]
        return web.Response(status=204)

    async def accessible_resources(self, request: web.Request) -> web.StreamResponse:
        token = bearer_token(request)
        if self.tokens.status(token, self.clock()) is not TokenStatus.VALID:
            return json_response({"code": 401, "message": "Unauthorized"}, 401)
        record = self.tokens.get(token or "")
        assert record is not None
        return json_response([{"id": self.cloud_id, "name": self.site_url.split("//")[1].split(".")[0],
                               "url": self.site_url, "scopes": list(record.scopes),
                               "avatarUrl": "https://site-admin-avatar-cdn.prod.public.atl-paas.net/avatars/240/"
                                            "rocket.png"}])

    # --- dialect hooks --------------------------------------------------------------------------

    def _gateway(self, call: Call) -> bool:
        return call.request.path.startswith("/ex/jira/")

    async def credentials(self, call: Call) -> str | None:
        header = call.request.headers.get("Authorization")
        if header is None:
            return None
        scheme, _, value = header.strip().partition(" ")
        if scheme.lower() == "bearer":
            return value.strip() if (self._gateway(call) or self.options.site_accepts_bearer) else ""
        if scheme.lower() != "basic" or self._gateway(call):
            return ""
        try:
            email, _, token = base64.b64decode(value.strip(), validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return ""
        account = self.accounts.get(token)
        if account is None or (self.options.check_email and email.lower() != account.email):
            return ""
        return token

    def quotas(self, call: Call) -> list[Quota]:
        limit, window = (self.rate_limit.limit, self.rate_limit.window) if self.rate_limit else self.default_rate
        key = f"account:{self.accounts[call.token].account_id}" if call.token else f"ip:{call.request.remote}"
        return [Quota(key, limit, window)]

    def _points_window(self) -> tuple[float, int]:
        start = math.floor(self.clock() / 3600.0) * 3600.0
        return start, self._points.get(start, 0)

    def _pays_points(self, call: Call) -> bool:
        return bool(call.token) and (self._gateway(call) or self.options.points_for_api_tokens)

    def _charge(self, call: Call) -> web.StreamResponse | None:
        refusal = super()._charge(call)
        if refusal is not None:
            return refusal
        start, used = self._points_window()
        if self._pays_points(call) and used >= self.options.points_per_hour and self.options.points_enforced:
            return self._too_many(call, max(1, math.ceil(start + 3600 - self.clock())), "jira-quota-tenant-based")
        self._cost(call, 1)
        return None

    @staticmethod
    def _reset_stamp(moment: float) -> str:
        t = time.gmtime(moment)
        return f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}T{t.tm_hour:02d}:{t.tm_min:02d}Z"

    def _too_many(self, call: Call, retry_after: int, reason: str) -> web.Response:
        headers = {"Retry-After": str(retry_after), "RateLimit-Reason": reason,
                   "X-RateLimit-Reset": self._reset_stamp(self.clock() + retry_after)}
        return errors(429, ["Rate limit exceeded."], headers=headers)

    def auth_failure(self, call: Call, status: TokenStatus) -> web.StreamResponse:
        if self._gateway(call):
            return json_response({"code": 401, "message": "Unauthorized"}, 401)
        return errors(401, ["Client must be authenticated to access this resource."],
                      headers={"WWW-Authenticate": 'OAuth realm="https%3A%2F%2Fexample.atlassian.net"'})

    def rate_limited(self, call: Call, state: WindowState) -> web.StreamResponse:
        return self._too_many(call, state.retry_after, "jira-burst-based")

    def burst_limited(self, call: Call) -> web.StreamResponse:
        return self._too_many(call, self.faults.burst_retry_after, "jira-per-issue-on-write")

    def server_error(self, rng: random.Random) -> web.StreamResponse:
        kind = rng.choice((500, 502, 503))
        if kind == 500:
            return errors(500, ["Internal server error"])
        if kind == 502:
            return web.Response(status=502, content_type="text/html",
                                text="<html><body><h1>502 Bad Gateway</h1></body></html>\n")
        return web.Response(status=503, content_type="text/plain", text="Service Unavailable\n",
                            headers={"Retry-After": "1"})

    def not_found(self, call: Call) -> web.StreamResponse:
        return errors(404, [f"null for uri: {urllib.parse.quote(call.request.path)}"])

    def decorate(self, call: Call, response: web.StreamResponse) -> None:
        cost = self._costs.pop(id(call), 0)
        if call.route.auth == "none" or not call.token:
            return
        headers = response.headers
        burst = call.quota or self.counter.peek(self.quotas(call)[0])
        headers["X-RateLimit-Limit"] = str(burst.limit)
        headers["X-RateLimit-Remaining"] = str(burst.remaining)
        if not self._pays_points(call):
            return
        start, used = self._points_window()
        if cost:
            used = self._points[start] = used + cost
        quota = self.options.points_per_hour
        left, reset_in = max(0, quota - used), max(1, math.ceil(start + 3600 - self.clock()))
        prefix = "Beta-" if self.options.quota_headers == "beta" else ""
        headers[f"{prefix}RateLimit-Policy"] = f'"tenant-app-quota";q={quota};w=3600'
        headers[f"{prefix}RateLimit"] = f'"tenant-app-quota";r={left};t={reset_in}'
        near = "true" if left < quota * 0.2 else "false"
        if self.options.points_enforced:
            headers["X-RateLimit-NearLimit"] = near
        elif left == 0 and response.status < 400:          # the warning phase: what would have been a 429
            headers["Beta-Retry-After"] = str(reset_in)
            headers["X-Beta-RateLimit-Reason"] = "jira-quota-tenant-based"
            headers["X-Beta-RateLimit-Reset"] = self._reset_stamp(start + 3600)
            headers["X-Beta-RateLimit-NearLimit"] = "true"
        else:
            headers["X-Beta-RateLimit-NearLimit"] = near
