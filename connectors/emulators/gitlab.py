"""GitLab REST API v4 emulator (reference: apis-storage-dev.md §5).

Base URL `http://127.0.0.1:PORT/api/v4` (the self-managed shape; gitlab.com is the same paths on another host).
Auth: `PRIVATE-TOKEN: <t>` (personal access tokens), `Authorization: Bearer <t>` (OAuth, or a PAT), or the
`private_token` / `access_token` query parameters. OAuth (Doorkeeper) on the same origin: `/oauth/authorize`,
`/oauth/token`, `/oauth/authorize_device`, `/oauth/revoke`; access tokens live 2 h, refresh tokens rotate and the
old pair dies at once.

Rate limits (the `throttle_authenticated_api` model): a fixed window per user (default 2,000 per 60 s), and on
every answer that passed auth `RateLimit-Limit`, `-Name`, `-Observed`, `-Remaining`, `-Reset` (Unix time). An
exhausted window answers 429 with the plain-text body `Retry later`, `Retry-After` (seconds) and
`RateLimit-ResetTime` (HTTP date). The burst fault is an application limit (issue creation, 200/min): also 429
`Retry later` with `Retry-After`, while the informational headers still show quota left, as on GitLab. The knob
`rate_limit_headers=False` mimics an instance with the user throttle off (no headers at all).

Data: every token's user has `projects_per_user` projects (`namespace/name`), each with `issues_per_project`
issues generated from the seed. Issues: `GET /projects/:id/issues` (`state`, `updated_after`, `updated_before`,
`order_by` created_at|updated_at, `sort`, `per_page` max 100; offset pages with `x-page`/`x-next-page`/`x-total`
and `Link`, or `pagination=keyset` with a `Link rel="next"` carrying `cursor=`), `GET/PUT/DELETE
/projects/:id/issues/:iid`, `POST /projects/:id/issues`. `:id` is the numeric id or the URL-encoded path.
Test helpers: `edit_issue` (another user edits), `delete_issue` (an owner deletes), `hook_delivery`
(an Issue Hook webhook POST: headers and body).

Error answers:
    401 {"message":"401 Unauthorized"}     403 {"error":"insufficient_scope",...,"scope":"api"}
    404 {"message":"404 Project Not Found"} | {"message":"404 Issue Not Found"} | {"error":"404 Not Found"}
    400 {"error":"title is missing"} | {"message":{"title":["is too long (maximum is 255 characters)"]}}
    400 {"message":"400 Bad request - invalid cursor"}      429 Retry later      500/502/503 faults
"""

from __future__ import annotations

import email.utils
import json
import random
import time
import urllib.parse
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from .base import (
    ADJECTIVES, FIRST_NAMES, LAST_NAMES, NOUNS, Call, Emulator, Quota, Reply, Route, TokenRecord, TokenStatus,
    WindowState, bearer_token, decode_cursor, digest_int, encode_cursor, int_param, json_response, pick, read_body,
    seeded,
)
from .oauth import AuthorizationServer, OAuthServerOptions

OAUTH_OPTIONS = dict(authorize_path="/oauth/authorize", token_path="/oauth/token",
                     device_path="/oauth/authorize_device", revoke_path="/oauth/revoke",
                     verification_uri="https://gitlab.example.com/oauth/device", access_token_lifetime=7200.0,
                     rotate_refresh_tokens=True, old_refresh_token_survives_rotation=False, device_expires_in=300,
                     access_prefix="gloas-", refresh_prefix="glort-")
DATA_EPOCH = 1672531200        # 2023-01-01T00:00:00Z: generated history starts here
DAY = 86400
READ_SCOPES = frozenset({"api", "read_api"})
USER_SCOPES = frozenset({"api", "read_api", "read_user"})
LABELS = ("bug", "feature", "ui", "backend", "docs")


class GitLabOptions(BaseModel):
    """Knobs for facts the reference leaves open or that tests want to vary."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    rate_limit_headers: bool = True          # False: an instance with the user throttle disabled
    projects_per_user: int = Field(3, ge=1, le=100)
    issues_per_project: int = Field(42, ge=0, le=100_000)
    issue_interval: int = Field(3600, ge=1, le=86400)
    # keyset pagination on project issue lists: added by gitlab-org/gitlab MR 199887 (2025; orders id, title,
    # created_at, updated_at...); older instances answer offset pages, which False reproduces
    keyset_issues: bool = True


def iso(epoch: float) -> str:
    """GitLab's timestamps: UTC with milliseconds, ``2023-01-01T00:00:00.000Z``."""
    t = time.gmtime(int(epoch))
    return (f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}T{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}."
            f"{int(round((epoch % 1) * 1000)):03d}Z")


def parse_iso(text: str) -> float | None:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)).timestamp()


def message(status: int, text: str) -> web.Response:
    return json_response({"message": f"{status} {text}"}, status)


@dataclass
class User:
    id: int
    username: str
    name: str

    def brief(self, web_base: str) -> dict[str, Any]:
        return {"id": self.id, "username": self.username, "name": self.name, "state": "active",
                "avatar_url": None, "web_url": f"{web_base}/{self.username}"}


@dataclass
class Issue:
    id: int
    iid: int
    title: str
    description: str | None
    author: User
    created: float
    updated: float
    state: str = "opened"
    closed: float | None = None
    labels: list[str] = field(default_factory=list)


@dataclass
class Project:
    id: int
    path: str            # "namespace/name"
    owner: User
    created: float
    issues: list[Issue] = field(default_factory=list)
    next_iid: int = 1


def derive_user(token: str) -> User:
    h = digest_int("gitlab-user", token)
    username = f"{pick(ADJECTIVES, h)}.{pick(NOUNS, h >> 8)}{(h >> 16) % 100}"
    return User(1000 + (h >> 24) % 9_000_000, username, f"{pick(FIRST_NAMES, h >> 40)} {pick(LAST_NAMES, h >> 48)}")


class GitLabEmulator(Emulator):
    """GitLab REST v4. Example: ``emu = GitLabEmulator(tokens=["glpat-demo1234567890"], seed=1)``."""

    service = "gitlab"
    prefixes = ("/api/v4",)
    default_rate = (2000, 60.0)
    default_scopes = ("api", "read_user")
    options_model = GitLabOptions
    fallback_auth = "optional"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.users: dict[str, User] = {}
        self.projects: dict[int, Project] = {}
        self._deliveries = 0
        super().__init__(*args, **kwargs)
        self.oauth = AuthorizationServer(self, OAuthServerOptions(**OAUTH_OPTIONS))

    def mount(self, app: web.Application) -> None:
        self.oauth.mount(app)

    # --- data -----------------------------------------------------------------------------------

    def on_token_added(self, record: TokenRecord) -> None:
        user = derive_user(record.subject or record.token)
        self.users[record.token] = user
        if any(p.owner.id == user.id for p in self.projects.values()):
            return
        rng = seeded(self.seed, "projects", user.username)
        for index in range(self.options.projects_per_user):
            path = f"{user.username}/{rng.choice(ADJECTIVES)}-{rng.choice(NOUNS)}-{index}"
            project = Project(100 + digest_int("project", path) % 90_000_000, path, user,
                              DATA_EPOCH + rng.randrange(100 * DAY))
            self._generate_issues(project)
            self.projects[project.id] = project

    def _generate_issues(self, project: Project) -> None:
        rng = seeded(self.seed, "issues", project.path)
        step = self.options.issue_interval
        for iid in range(1, self.options.issues_per_project + 1):
            created = project.created + iid * step + rng.randrange(step)
            issue = Issue(self._issue_id(project, iid), iid,
                          f"{rng.choice(ADJECTIVES).title()} {rng.choice(NOUNS)} breaks ({iid})",
                          f"Seen on the {rng.choice(NOUNS)} page.", project.owner, created,
                          created + rng.randrange(90 * DAY), labels=rng.sample(LABELS, rng.randrange(3)))
            if rng.random() < 0.3:
                issue.state, issue.closed = "closed", issue.updated
            project.issues.append(issue)
        project.next_iid = self.options.issues_per_project + 1

    @staticmethod
    def _issue_id(project: Project, iid: int) -> int:
        return 1_000_000 + digest_int("issue", project.id, iid) % 900_000_000

    def project_of(self, token: str, index: int = 0) -> Project:
        """The `index`-th project of the user behind `token` (tests and the demo)."""
        user = self.users[token]
        return [p for p in self.projects.values() if p.owner.id == user.id][index]

    def _issue(self, project: Project, iid: int) -> Issue:
        found = next((i for i in project.issues if i.iid == iid), None)
        if found is None:
            raise KeyError(f"no issue {project.path}#{iid}")
        return found

    def edit_issue(self, project_id: int, iid: int, **changes: Any) -> Issue:
        """Another user edits an issue (``title=...``, ``state="closed"``); its ``updated_at`` moves on."""
        issue = self._issue(self.projects[project_id], iid)
        self._apply(issue, changes)
        issue.updated = max(self.clock(), issue.updated + 1)
        return issue

    def hook_delivery(self, project_id: int, iid: int, secret: str) -> tuple[dict[str, str], bytes]:
        """An "Issue Hook" delivery for the issue, as GitLab would POST it to a hook with ``secret``.

        Headers: ``X-Gitlab-Event``, ``X-Gitlab-Token`` (the secret verbatim), ``X-Gitlab-Event-UUID``,
        ``Idempotency-Key`` (one per event, kept by retries), ``X-Gitlab-Webhook-UUID`` (one per request),
        ``X-Gitlab-Instance``.
        """
        project = self.projects[project_id]
        issue = self._issue(project, iid)
        self._deliveries += 1
        event = f"{digest_int('event', self.seed, self._deliveries):032x}"
        body = {"object_kind": "issue", "event_type": "issue", "user": issue.author.brief(self.origin),
                "project": {"id": project.id, "path_with_namespace": project.path},
                "object_attributes": {"id": issue.id, "iid": issue.iid, "title": issue.title, "state": issue.state,
                                      "updated_at": iso(issue.updated), "action": "update"}}
        def uuid(text: str) -> str:
            return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:32]}"
        request = f"{digest_int('request', self.seed, self._deliveries):032x}"
        headers = {"Content-Type": "application/json", "X-Gitlab-Event": "Issue Hook", "X-Gitlab-Token": secret,
                   "X-Gitlab-Event-UUID": uuid(event), "Idempotency-Key": uuid(event[::-1]),
                   "X-Gitlab-Webhook-UUID": uuid(request), "X-Gitlab-Instance": self.origin}
        return headers, json.dumps(body).encode()

    def delete_issue(self, project_id: int, iid: int) -> None:
        """An owner deletes an issue: it leaves every list and answers 404."""
        project = self.projects[project_id]
        project.issues.remove(self._issue(project, iid))

    # --- rendering ------------------------------------------------------------------------------

    def _web(self) -> str:
        return self.origin

    def _issue_json(self, project: Project, issue: Issue) -> dict[str, Any]:
        web_base = self._web()
        return {
            "id": issue.id, "iid": issue.iid, "project_id": project.id, "title": issue.title,
            "description": issue.description, "state": issue.state, "created_at": iso(issue.created),
            "updated_at": iso(issue.updated), "closed_at": iso(issue.closed) if issue.closed else None,
            "closed_by": None, "labels": list(issue.labels), "milestone": None, "assignees": [], "assignee": None,
            "author": issue.author.brief(web_base), "type": "ISSUE", "user_notes_count": 0,
            "confidential": False, "issue_type": "issue",
            "web_url": f"{web_base}/{project.path}/-/issues/{issue.iid}",
            "references": {"short": f"#{issue.iid}", "relative": f"#{issue.iid}",
                           "full": f"{project.path}#{issue.iid}"},
        }

    def _project_json(self, project: Project) -> dict[str, Any]:
        namespace, _, name = project.path.partition("/")
        return {"id": project.id, "name": name, "path": name, "path_with_namespace": project.path,
                "name_with_namespace": f"{project.owner.name} / {name}", "default_branch": "main",
                "visibility": "private", "created_at": iso(project.created),
                "last_activity_at": iso(max([project.created, *(i.updated for i in project.issues)])),
                "web_url": f"{self._web()}/{project.path}", "namespace": {"path": namespace, "kind": "user"}}

    # --- endpoints ------------------------------------------------------------------------------

    def routes(self) -> list[Route]:
        return [
            Route("GET", "/user", self.get_user),
            Route("GET", "/personal_access_tokens/self", self.get_token_self),
            Route("GET", "/projects", self.list_projects),
            Route("GET", "/projects/{id}", self.get_project),
            Route("GET", "/projects/{id}/issues", self.list_issues),
            Route("POST", "/projects/{id}/issues", self.create_issue),
            Route("GET", "/projects/{id}/issues/{iid}", self.get_issue),
            Route("PUT", "/projects/{id}/issues/{iid}", self.update_issue),
            Route("DELETE", "/projects/{id}/issues/{iid}", self.remove_issue),
        ]

    def _require(self, call: Call, allowed: frozenset[str], needed: str) -> None:
        scopes = set(call.record.scopes) if call.record is not None else set()
        if not scopes & allowed:
            raise Reply(json_response({"error": "insufficient_scope", "error_description": "The request requires "
                                       "higher privileges than provided by the access token.", "scope": needed},
                                      403, {"WWW-Authenticate": 'Bearer realm="Protected by OAuth 2.0", '
                                            'error="insufficient_scope"'}))

    async def get_user(self, call: Call) -> web.StreamResponse:
        self._require(call, USER_SCOPES, "api read_user")
        user = self.users[call.token or ""]
        return json_response({**user.brief(self._web()), "email": f"{user.username}@example.com",
                              "public_email": "", "created_at": iso(DATA_EPOCH), "bio": "", "locked": False,
                              "bot": False, "two_factor_enabled": False})

    async def get_token_self(self, call: Call) -> web.StreamResponse:
        record = call.record
        assert record is not None
        return json_response({"id": digest_int("pat", record.token) % 10**6, "name": "integd",
                              "revoked": False, "active": True, "scopes": list(record.scopes),
                              "user_id": self.users[record.token].id, "expires_at": None})

    async def list_projects(self, call: Call) -> web.StreamResponse:
        self._require(call, READ_SCOPES, "api read_api")
        user = self.users[call.token or ""]
        projects = sorted((p for p in self.projects.values() if p.owner.id == user.id), key=lambda p: p.id)
        page, headers = self._offset(call, projects)
        return json_response([self._project_json(p) for p in page], headers=headers)

    def _project(self, call: Call) -> Project:
        raw = urllib.parse.unquote(call.request.match_info["id"])
        user = self.users.get(call.token or "")
        project = (self.projects.get(int(raw)) if raw.isdigit()
                   else next((p for p in self.projects.values() if p.path.lower() == raw.lower()), None))
        if project is None or user is None or project.owner.id != user.id:
            raise Reply(message(404, "Project Not Found"))   # private projects hide behind 404
        return project

    async def get_project(self, call: Call) -> web.StreamResponse:
        self._require(call, READ_SCOPES, "api read_api")
        return json_response(self._project_json(self._project(call)))

    def _offset(self, call: Call, items: list[Any]) -> tuple[list[Any], dict[str, str]]:
        per_page = int_param(call.params.get("per_page"), 20, 1, 100)
        page = int_param(call.params.get("page"), 1, 1, 10**6)
        total = len(items)
        pages = max(1, -(-total // per_page))
        headers = {"x-page": str(page), "x-per-page": str(per_page), "x-total": str(total),
                   "x-total-pages": str(pages), "x-next-page": str(page + 1) if page < pages else "",
                   "x-prev-page": str(page - 1) if page > 1 else ""}
        query = {k: v for k, v in call.request.url.query.items() if k not in ("page", "per_page", "private_token",
                                                                              "access_token")}
        rels = [("next", page + 1)] if page < pages else []
        rels += [("prev", page - 1)] if page > 1 else []
        rels += [("first", 1), ("last", pages)]
        headers["Link"] = ", ".join(f'<{call.request.url.with_query({**query, "page": str(n), "per_page": str(per_page)})}>'
                                    f'; rel="{rel}"' for rel, n in rels)
        return items[(page - 1) * per_page: page * per_page], headers

    def _filtered(self, call: Call, project: Project) -> tuple[list[Issue], str]:
        params = call.params
        state = params.get("state", "all")
        if state not in ("opened", "closed", "all"):
            raise Reply(json_response({"error": "state does not have a valid value"}, 400))
        order_by = params.get("order_by", "created_at")
        if order_by not in ("created_at", "updated_at"):
            raise Reply(json_response({"error": "order_by does not have a valid value"}, 400))
        bounds = []
        for name in ("updated_after", "updated_before", "created_after", "created_before"):
            if name in params:
                moment = parse_iso(params[name])
                if moment is None:
                    raise Reply(json_response({"error": f"{name} is invalid"}, 400))
                bounds.append((name, moment))
        issues = [i for i in project.issues if state == "all" or i.state == state]
        for name, moment in bounds:
            attr = "updated" if name.startswith("updated") else "created"
            after = name.endswith("_after")
            issues = [i for i in issues if (getattr(i, attr) >= moment if after else getattr(i, attr) <= moment)]
        attr = "updated" if order_by == "updated_at" else "created"
        issues.sort(key=lambda i: (getattr(i, attr), i.id), reverse=params.get("sort", "desc") == "desc")
        return issues, attr

    async def list_issues(self, call: Call) -> web.StreamResponse:
        self._require(call, READ_SCOPES, "api read_api")
        project = self._project(call)
        issues, attr = self._filtered(call, project)
        if call.params.get("pagination") == "keyset" and self.options.keyset_issues:
            page, headers = self._keyset(call, issues, attr)
        else:
            page, headers = self._offset(call, issues)
        return json_response([self._issue_json(project, i) for i in page], headers=headers)

    def _keyset(self, call: Call, issues: list[Issue], attr: str) -> tuple[list[Issue], dict[str, str]]:
        """Keyset pages: the cursor names the last (sort value, id) returned; the next page starts after it."""
        per_page = int_param(call.params.get("per_page"), 20, 1, 100)
        descending = call.params.get("sort", "desc") == "desc"
        start = 0
        if "cursor" in call.params:
            payload = decode_cursor(call.params["cursor"], "gl:")
            try:
                value, last_id = (float(x) for x in (payload or "").split(":"))
            except ValueError:
                raise Reply(message(400, "Bad request - invalid cursor")) from None
            after = [(getattr(i, attr), i.id) < (value, last_id) if descending else
                     (getattr(i, attr), i.id) > (value, last_id) for i in issues]
            start = after.index(True) if True in after else len(issues)
        page = issues[start:start + per_page]
        headers: dict[str, str] = {}
        if start + per_page < len(issues) and page:
            last = page[-1]
            query = {k: v for k, v in call.request.url.query.items() if k not in ("cursor", "private_token",
                                                                                  "access_token")}
            query["cursor"] = encode_cursor(f"gl:{getattr(last, attr)!r}:{last.id}")
            headers["Link"] = f'<{call.request.url.with_query(query)}>; rel="next"'
        return page, headers

    def _found(self, call: Call) -> tuple[Project, Issue]:
        project = self._project(call)
        raw = call.request.match_info["iid"]
        issue = next((i for i in project.issues if raw.isdigit() and i.iid == int(raw)), None)
        if issue is None:
            raise Reply(message(404, "Issue Not Found"))
        return project, issue

    async def get_issue(self, call: Call) -> web.StreamResponse:
        self._require(call, READ_SCOPES, "api read_api")
        project, issue = self._found(call)
        return json_response(self._issue_json(project, issue))

    async def _body(self, call: Call) -> dict[str, Any]:
        raw = await read_body(call.request, self.max_body)
        if "json" in call.request.headers.get("Content-Type", ""):
            try:
                body = json.loads(raw or b"null")
            except ValueError:
                body = None
            if not isinstance(body, dict):
                raise Reply(json_response({"error": "The provided content-type 'application/json' is not "
                                           "supported by the body"}, 400))
            return body
        return dict(urllib.parse.parse_qsl(raw.decode(errors="replace"))) | dict(call.params)

    async def create_issue(self, call: Call) -> web.StreamResponse:
        self._require(call, frozenset({"api"}), "api")
        project = self._project(call)
        body = await self._body(call)
        if not body.get("title"):
            raise Reply(json_response({"error": "title is missing"}, 400))
        now = self.clock()
        issue = Issue(self._issue_id(project, project.next_iid), project.next_iid, "", None,
                      self.users[call.token or ""], now, now)
        self._apply(issue, body)
        project.next_iid += 1
        project.issues.append(issue)
        return json_response(self._issue_json(project, issue), status=201)

    async def update_issue(self, call: Call) -> web.StreamResponse:
        self._require(call, frozenset({"api"}), "api")
        project, issue = self._found(call)
        body = await self._body(call)
        if "title" in body and not body["title"]:
            raise Reply(json_response({"message": {"title": ["can't be blank"]}}, 400))
        self._apply(issue, body)
        issue.updated = max(self.clock(), issue.updated + 0.001)
        return json_response(self._issue_json(project, issue))

    async def remove_issue(self, call: Call) -> web.StreamResponse:
        self._require(call, frozenset({"api"}), "api")
        project, issue = self._found(call)
        project.issues.remove(issue)
        return web.Response(status=204)

    def _apply(self, issue: Issue, body: dict[str, Any]) -> None:
        """Validate, then apply the fields GitLab documents for create and edit."""
        title = body.get("title")
        if title is not None and (not isinstance(title, str) or len(title) > 255):
            raise Reply(json_response({"message": {"title": ["is too long (maximum is 255 characters)"]}}, 400))
        description = body.get("description")
        if description is not None and (not isinstance(description, str) or len(description) > 1_048_576):
            raise Reply(json_response({"message": {"description": ["is too long"]}}, 400))
        event = body.get("state_event") or ({"closed": "close", "opened": "reopen"}.get(body.get("state", "")))
        if event is not None and event not in ("close", "reopen"):
            raise Reply(json_response({"error": "state_event does not have a valid value"}, 400))
        labels = body.get("labels")
        if labels is not None and not isinstance(labels, (str, list)):
            raise Reply(json_response({"error": "labels is invalid"}, 400))
        if title is not None:
            issue.title = title
        if "description" in body:
            issue.description = description
        if labels is not None:
            issue.labels = [x.strip() for x in (labels.split(",") if isinstance(labels, str) else map(str, labels))
                            if x.strip()]
        if event == "close" and issue.state != "closed":
            issue.state, issue.closed = "closed", self.clock()
        elif event == "reopen" and issue.state != "opened":
            issue.state, issue.closed = "opened", None

    # --- dialect hooks --------------------------------------------------------------------------

    async def credentials(self, call: Call) -> str | None:
        request = call.request
        private = request.headers.get("PRIVATE-TOKEN")
        if private is not None:
            return private.strip()
        bearer = bearer_token(request)
        if bearer is not None:
            return bearer
        return request.query.get("private_token") or request.query.get("access_token")

    def quotas(self, call: Call) -> list[Quota]:
        if not call.token:
            return [Quota(f"ip:{call.request.remote}", 500, 60.0)]
        limit, window = (self.rate_limit.limit, self.rate_limit.window) if self.rate_limit else self.default_rate
        return [Quota(f"user:{self.users[call.token].id}", limit, window)]

    def auth_failure(self, call: Call, status: TokenStatus) -> web.StreamResponse:
        return json_response({"message": "401 Unauthorized"}, 401,
                             {"WWW-Authenticate": 'Bearer realm="Protected by OAuth 2.0", error="invalid_token"'})

    def _retry_later(self, retry_after: int) -> web.Response:
        reset = self.clock() + retry_after
        return web.Response(status=429, text="Retry later\n", content_type="text/plain",
                            headers={"Retry-After": str(retry_after),
                                     "RateLimit-ResetTime": email.utils.formatdate(reset, usegmt=True)})

    def rate_limited(self, call: Call, state: WindowState) -> web.StreamResponse:
        return self._retry_later(state.retry_after)

    def burst_limited(self, call: Call) -> web.StreamResponse:
        return self._retry_later(self.faults.burst_retry_after)

    def server_error(self, rng: random.Random) -> web.StreamResponse:
        kind = rng.choice((500, 502, 503))
        if kind == 500:
            return json_response({"message": "500 Internal Server Error"}, 500)
        if kind == 502:
            return web.Response(status=502, content_type="text/html",
                                text="<!DOCTYPE html><html><head><title>GitLab is not responding (502)</title>"
                                     "</head><body><h1>502</h1><p>Whoops, GitLab is taking too much time to "
                                     "respond.</p></body></html>\n")
        return web.Response(status=503, content_type="text/html",
                            text="<html><body><h1>503 Service Unavailable</h1>No server is available to handle "
                                 "this request.</body></html>\n")

    def not_found(self, call: Call) -> web.StreamResponse:
        return json_response({"error": "404 Not Found"}, 404)

    def decorate(self, call: Call, response: web.StreamResponse) -> None:
        if not self.options.rate_limit_headers or call.route.auth == "none":
            return
        quotas = self.quotas(call)
        state = call.quota or self.counter.peek(quotas[0])
        headers = response.headers
        headers["RateLimit-Name"] = "throttle_authenticated_api" if call.token else "throttle_unauthenticated_api"
        headers["RateLimit-Limit"] = str(state.limit)
        headers["RateLimit-Observed"] = str(state.used)
        headers["RateLimit-Remaining"] = str(state.remaining)
        headers["RateLimit-Reset"] = str(state.reset)
