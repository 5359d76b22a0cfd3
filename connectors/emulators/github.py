"""GitHub REST API emulator (reference: apis-storage-dev.md §4).

Base URL `http://127.0.0.1:PORT`, also answering under `/api/v3` (the GitHub Enterprise shape).
Auth `Authorization: Bearer <t>` (or the legacy `token <t>`, a knob). Every answer that got past the
fault layer carries `x-ratelimit-limit/-remaining/-used/-reset/-resource`; an exhausted window answers
403 (knob: 429) with `x-ratelimit-remaining: 0`; the burst fault is a secondary limit with `retry-after`.
Users derive from their token, repositories and issues from the seed; issues are writable in memory.

Sync support (issue 6): volumes up to 200,000 issues per repository (`issues_per_repo`, `issue_interval`);
issue lists carry an `ETag` and answer `If-None-Match` with a 304 that costs no quota; `changes_per_list` edits
issues while a sync pages through them; `delete_issue` is an admin's deletion (the issue then answers 410 and
leaves every list without a trace, as on GitHub); `GET /repos/{o}/{r}/issues/{n}` reads one issue.

Error answers (all JSON with `message`, `documentation_url`, `status`):
    401 Requires authentication | Bad credentials     404 Not Found     400 Problems parsing JSON
    422 Validation Failed (errors[resource, field, code])     403/429 rate limits     500/502/503 faults
"""

from __future__ import annotations

import base64
import bisect
import hashlib
import json
import random
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from .base import (
    ADJECTIVES, FIRST_NAMES, LAST_NAMES, NOUNS, Call, Emulator, Quota, Reply, Route, TokenRecord, TokenStatus,
    WindowState, bearer_token, digest_int, int_param, json_response, link_header, pick, read_body, seeded,
)
from .oauth import AuthorizationServer, GitHubDialect, OAuthServerOptions

# GitHub App user tokens (reference §4 Auth): access 8 h, refresh rotates and the old one dies at once.
OAUTH_OPTIONS = dict(authorize_path="/login/oauth/authorize", token_path="/login/oauth/access_token",
                     device_path="/login/device/code", revoke_path="/applications/{client_id}/token",
                     revoke_method="DELETE", verification_uri="https://github.com/login/device",
                     access_token_lifetime=28800.0, rotate_refresh_tokens=True,
                     old_refresh_token_survives_rotation=False, access_prefix="ghu_", refresh_prefix="ghr_")

DOCS = "https://docs.github.com/rest"
RATE_DOCS = "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api"
SECONDARY_DOCS = RATE_DOCS + "#about-secondary-rate-limits"
API_VERSION = "2022-11-28"
DATA_EPOCH = 1672531200  # 2023-01-01T00:00:00Z: generated history starts here, independent of the clock
LABELS = ("bug", "enhancement", "documentation", "question", "good first issue")
DAY = 86400


class GitHubOptions(BaseModel):
    """Knobs for facts the reference marks unverified or that tests want to vary."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    rate_limit_status: Literal[403, 429] = 403
    accept_token_scheme: bool = True  # legacy `Authorization: token <t>` [unverified]
    anonymous_limit: int = Field(60, ge=1)
    anonymous_window: float = Field(3600.0, gt=0)
    repos_per_user: int = Field(45, ge=0, le=1000)
    issues_per_repo: int = Field(57, ge=0, le=200_000)
    issue_interval: int = Field(3600, ge=1, le=86400)  # seconds between generated issues' creation
    changes_per_list: int = Field(0, ge=0, le=1000)  # issues edited before each issue list is answered
    etags: bool = True  # issue lists carry an ETag and honour If-None-Match (304, not counted)
    pull_request_every: int = Field(5, ge=0)  # every Nth issue is a pull request (0: none)


def iso(epoch: float) -> str:
    t = time.gmtime(int(epoch))   # not datetime.strftime: that was most of the cost of a 100-issue page
    return f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}T{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}Z"


def parse_iso(text: str) -> int | None:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return int((moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)).timestamp())


def node_id(kind: str, number: int) -> str:
    """GitHub's legacy global node id: base64 of `0<len>:<Kind><id>`."""
    return base64.b64encode(f"0{len(kind)}:{kind}{number}".encode()).decode()


def error(status: int, message: str, docs: str = DOCS, **extra: Any) -> web.Response:
    return json_response({"message": message, **extra, "documentation_url": docs, "status": str(status)}, status)


def invalid(resource: str, field_name: str, code: str) -> Reply:
    errors = [{"resource": resource, "code": code, "field": field_name}]
    return Reply(error(422, "Validation Failed", DOCS + "/issues/issues", errors=errors))


@dataclass
class User:
    login: str
    id: int
    name: str

    def brief(self, api: str) -> dict[str, Any]:
        return {"login": self.login, "id": self.id, "node_id": node_id("User", self.id),
                "avatar_url": f"https://avatars.githubusercontent.com/u/{self.id}?v=4",
                "url": f"{api}/users/{self.login}", "html_url": f"https://github.com/{self.login}",
                "type": "User", "site_admin": False}


@dataclass
class Issue:
    id: int
    number: int
    title: str
    body: str | None
    user: User
    created: int
    updated: int
    state: str = "open"
    state_reason: str | None = None
    closed: int | None = None
    labels: list[str] = field(default_factory=list)
    assignees: list[str] = field(default_factory=list)
    comments: int = 0
    is_pull: bool = False


@dataclass
class Repo:
    id: int
    name: str
    owner: User
    private: bool
    created: int
    updated: int
    issues: list[Issue] | None = None  # generated on first use
    mutations: int = 0  # bumped on every write, so cached orderings know they are stale
    deleted: set[int] = field(default_factory=set)  # numbers of issues an admin deleted

    @property
    def full_name(self) -> str:
        return f"{self.owner.login}/{self.name}"


def derive_user(token: str) -> User:
    """The identity behind a token: deterministic, so a token always means the same user."""
    h = digest_int("github-user", token)
    login = f"{pick(ADJECTIVES, h)}-{pick(NOUNS, h >> 8)}-{(h >> 16) % 1000}"
    return User(login, 1_000_000 + (h >> 24) % 90_000_000, f"{pick(FIRST_NAMES, h >> 40)} {pick(LAST_NAMES, h >> 48)}")


class GitHubEmulator(Emulator):
    """GitHub REST v3. Example: ``emu = GitHubEmulator(tokens=["ghp_demo123"], seed=1)``."""

    service = "github"
    prefixes = ("", "/api/v3")
    default_rate = (5000, 3600.0)
    default_scopes = ("repo", "read:user", "user:email")
    options_model = GitHubOptions
    fallback_auth = "optional"  # GitHub refuses a bad token even on a path it does not serve

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.users: dict[str, User] = {}  # token -> user
        self.repos: dict[tuple[str, str], Repo] = {}  # (owner, name) lower-cased -> repo
        self._request_ids = 0
        self._orders: dict[tuple[int, str], tuple[int, list[Issue], list[int]]] = {}
        self._rendered: dict[tuple[int, int], tuple[tuple[Any, ...], str]] = {}
        super().__init__(*args, **kwargs)
        self.oauth = AuthorizationServer(self, OAuthServerOptions(**OAUTH_OPTIONS), dialect=GitHubDialect())

    def mount(self, app: web.Application) -> None:
        self.oauth.mount(app)

    # --- data -----------------------------------------------------------------------------------

    def on_token_added(self, record: TokenRecord) -> None:
        user = derive_user(record.subject or record.token)   # one OAuth grant's tokens are one user
        self.users[record.token] = user
        if any(owner == user.login.lower() for owner, _ in self.repos):
            return
        rng = seeded(self.seed, "repos", user.login)
        for index in range(self.options.repos_per_user):
            name = f"{rng.choice(ADJECTIVES)}-{rng.choice(NOUNS)}-{index}"
            created = DATA_EPOCH + rng.randrange(300 * DAY)
            repo_id = 100_000_000 + digest_int("repo", user.login, name) % 800_000_000
            repo = Repo(repo_id, name, user, index % 4 == 3, created, created + rng.randrange(200 * DAY))
            self.repos[(user.login.lower(), name.lower())] = repo

    def _issues(self, repo: Repo) -> list[Issue]:
        if repo.issues is None:
            rng = seeded(self.seed, "issues", repo.full_name)
            repo.issues = [self._generated_issue(repo, n, rng) for n in range(1, self.options.issues_per_repo + 1)]
        return repo.issues

    def _generated_issue(self, repo: Repo, number: int, rng: random.Random) -> Issue:
        step = self.options.issue_interval
        created = repo.created + number * step + rng.randrange(step)
        issue = Issue(self._issue_id(repo, number), number, f"{rng.choice(ADJECTIVES).title()} {rng.choice(NOUNS)} "
                      f"misbehaves ({number})", f"Steps to reproduce #{number}.", repo.owner, created,
                      created + rng.randrange(120 * DAY), labels=rng.sample(LABELS, rng.randrange(3)),
                      comments=rng.randrange(12))
        every = self.options.pull_request_every
        issue.is_pull = bool(every) and number % every == 0
        if rng.random() < 0.3:
            issue.state, issue.state_reason, issue.closed = "closed", "completed", issue.updated
        return issue

    @staticmethod
    def _issue_id(repo: Repo, number: int) -> int:
        return 1_000_000_000 + digest_int("issue", repo.id, number) % 8_000_000_000

    # --- rendering ------------------------------------------------------------------------------

    def _api(self, call: Call) -> str:
        """The API base the caller used (plain or /api/v3), so URLs in bodies lead back to it."""
        prefix = "/api/v3" if call.request.path.startswith("/api/v3/") else ""
        return self.origin + prefix

    def _repo_json(self, repo: Repo, api: str) -> dict[str, Any]:
        issues = repo.issues
        open_count = sum(1 for i in issues if i.state == "open") if issues is not None else None
        return {"id": repo.id, "node_id": node_id("Repository", repo.id), "name": repo.name,
                "full_name": repo.full_name, "private": repo.private, "owner": repo.owner.brief(api),
                "html_url": f"https://github.com/{repo.full_name}", "description": f"The {repo.name} project",
                "fork": False, "url": f"{api}/repos/{repo.full_name}", "created_at": iso(repo.created),
                "updated_at": iso(repo.updated), "pushed_at": iso(repo.updated), "default_branch": "main",
                "visibility": "private" if repo.private else "public", "archived": False, "language": "Python",
                "has_issues": True, "open_issues_count": open_count if open_count is not None else
                self.options.issues_per_repo, "permissions": {"admin": True, "push": True, "pull": True}}

    def _issue_json(self, repo: Repo, issue: Issue, api: str) -> dict[str, Any]:
        url = f"{api}/repos/{repo.full_name}/issues/{issue.number}"
        html = f"https://github.com/{repo.full_name}/{'pull' if issue.is_pull else 'issues'}/{issue.number}"
        body: dict[str, Any] = {
            "url": url, "repository_url": f"{api}/repos/{repo.full_name}", "comments_url": url + "/comments",
            "html_url": html, "id": issue.id, "node_id": node_id("Issue", issue.id), "number": issue.number,
            "title": issue.title, "user": issue.user.brief(api), "state": issue.state, "locked": False,
            "labels": [{"id": digest_int("label", name) % 10**9, "name": name, "color": "d73a4a", "default": True}
                       for name in issue.labels],
            "assignee": None, "assignees": [{"login": login} for login in issue.assignees], "milestone": None,
            "comments": issue.comments, "created_at": iso(issue.created), "updated_at": iso(issue.updated),
            "closed_at": iso(issue.closed) if issue.closed else None, "author_association": "OWNER",
            "body": issue.body, "state_reason": issue.state_reason,
        }
        if issue.assignees:
            body["assignee"] = body["assignees"][0]
        if issue.is_pull:
            body["pull_request"] = {"url": f"{api}/repos/{repo.full_name}/pulls/{issue.number}", "html_url": html}
        return body

    def _page(self, call: Call, items: list[Any]) -> tuple[list[Any], dict[str, str]]:
        per_page = int_param(call.params.get("per_page"), 30, 1, 100)
        page = int_param(call.params.get("page"), 1, 1, 10**6)
        link = link_header(call.request.url, page, per_page, len(items))
        return items[(page - 1) * per_page: page * per_page], ({"Link": link} if link else {})

    # --- endpoints ------------------------------------------------------------------------------

    def routes(self) -> list[Route]:
        return [
            Route("GET", "/user", self.get_user),
            Route("GET", "/rate_limit", self.get_rate_limit, auth="optional", counted=False),
            Route("GET", "/user/repos", self.list_user_repos),
            Route("GET", "/repos/{owner}/{repo}", self.get_repo, auth="optional"),
            Route("GET", "/repos/{owner}/{repo}/issues", self.list_issues, auth="optional", counted=False),
            Route("GET", "/repos/{owner}/{repo}/issues/{number}", self.get_issue, auth="optional"),
            Route("POST", "/repos/{owner}/{repo}/issues", self.create_issue),
            Route("PATCH", "/repos/{owner}/{repo}/issues/{number}", self.update_issue),
        ]

    async def get_user(self, call: Call) -> web.StreamResponse:
        user, api = self.users[call.token or ""], self._api(call)
        owned = [r for (owner, _), r in self.repos.items() if owner == user.login.lower()]
        return json_response({**user.brief(api), "name": user.name, "company": None, "blog": "",
                              "location": None, "email": f"{user.login}@example.com", "bio": None,
                              "public_repos": sum(1 for r in owned if not r.private), "followers": 0,
                              "following": 0, "created_at": iso(DATA_EPOCH), "updated_at": iso(DATA_EPOCH)})

    async def get_rate_limit(self, call: Call) -> web.StreamResponse:
        state = self.counter.peek(self.quotas(call)[0])
        core = {"limit": state.limit, "used": state.used, "remaining": state.remaining, "reset": state.reset,
                "resource": "core"}
        return json_response({"resources": {"core": core}, "rate": core})

    async def list_user_repos(self, call: Call) -> web.StreamResponse:
        login = self.users[call.token or ""].login.lower()
        visibility = call.params.get("visibility", "all")
        repos = [r for (owner, _), r in self.repos.items() if owner == login
                 and (visibility not in ("public", "private") or r.private == (visibility == "private"))]
        sort = call.params.get("sort", "full_name")
        key = {"created": lambda r: r.created, "updated": lambda r: r.updated,
               "pushed": lambda r: r.updated}.get(sort, lambda r: r.full_name.lower())
        default_direction = "asc" if sort not in ("created", "updated", "pushed") else "desc"
        repos.sort(key=key, reverse=call.params.get("direction", default_direction) == "desc")
        page, headers = self._page(call, repos)
        api = self._api(call)
        return json_response([self._repo_json(r, api) for r in page], headers=headers)

    def _visible_repo(self, call: Call) -> Repo:
        info = call.request.match_info
        repo = self.repos.get((info["owner"].lower(), info["repo"].lower()))
        caller = self.users.get(call.token or "")
        if repo is None or (repo.private and (caller is None or caller.login != repo.owner.login)):
            raise Reply(self.not_found(call))  # GitHub hides private repos behind 404, not 403
        return repo

    async def get_repo(self, call: Call) -> web.StreamResponse:
        return json_response(self._repo_json(self._visible_repo(call), self._api(call)))

    def _ordered(self, repo: Repo, sort: str) -> tuple[list[Issue], list[int]]:
        """Issues in `sort` order, ascending, with their sort keys; cached until the repository changes."""
        cached = self._orders.get((repo.id, sort))
        if cached is not None and cached[0] == repo.mutations:
            return cached[1], cached[2]
        attr = sort if sort in ("updated", "comments") else "created"
        issues = sorted(self._issues(repo), key=lambda i: (getattr(i, attr), i.number))
        keys = [getattr(i, attr) for i in issues]
        self._orders[(repo.id, sort)] = (repo.mutations, issues, keys)
        return issues, keys

    async def list_issues(self, call: Call) -> web.StreamResponse:
        repo = self._visible_repo(call)
        params = call.params
        state = params.get("state", "open")
        if state not in ("open", "closed", "all"):
            raise invalid("Issue", "state", "invalid")
        since = parse_iso(params["since"]) if "since" in params else None
        if "since" in params and since is None:
            raise invalid("Issue", "since", "invalid")
        self._edit_some(repo)
        wanted_labels = {x for x in params.get("labels", "").split(",") if x}
        sort = params.get("sort", "created")
        issues, keys = self._ordered(repo, sort)
        if since is not None and sort == "updated":
            issues = issues[bisect.bisect_left(keys, since):]
        elif since is not None:
            issues = [i for i in issues if i.updated >= since]
        if state != "all" or wanted_labels:
            issues = [i for i in issues if (state == "all" or i.state == state) and wanted_labels <= set(i.labels)]
        if params.get("direction", "desc") != "asc":
            issues = issues[::-1]
        page, headers = self._page(call, issues)
        api = self._api(call)
        body = "[" + ",".join(self._issue_text(repo, i, api) for i in page) + "]"
        if self.options.etags:
            etag = '"' + hashlib.sha256(body.encode()).hexdigest()[:40] + '"'
            headers["ETag"] = etag
            if call.request.headers.get("If-None-Match") in (etag, "W/" + etag):
                return web.Response(status=304, headers=headers)  # a 304 is not counted (reference §4)
        refusal = self._charge(call)
        if refusal is not None:
            return refusal
        return web.Response(text=body, headers=headers, content_type="application/json", charset="utf-8")

    def _issue_text(self, repo: Repo, issue: Issue, api: str) -> str:
        """An issue's JSON text, cached until the issue changes (rendering dominated large list pages)."""
        key = (api, issue.updated, issue.state, issue.title, issue.body, tuple(issue.labels),
               tuple(issue.assignees), issue.comments, issue.closed)
        cached = self._rendered.get((repo.id, issue.number))
        if cached is not None and cached[0] == key:
            return cached[1]
        text = json.dumps(self._issue_json(repo, issue, api), separators=(",", ":"))
        self._rendered[(repo.id, issue.number)] = (key, text)
        return text

    def _edit_some(self, repo: Repo) -> None:
        """The `changes_per_list` knob: someone edits issues while a sync is paging."""
        count = self.options.changes_per_list
        if not count:
            return
        issues = self._issues(repo)
        rng = seeded(self.seed, "edits", repo.full_name, repo.mutations)
        for issue in rng.sample(issues, min(count, len(issues))):
            self.edit_issue(repo.owner.login, repo.name, issue.number, title=issue.title.split(" [")[0]
                            + f" [edit {repo.mutations}]")

    def _repo_named(self, owner: str, name: str) -> Repo:
        repo = self.repos.get((owner.lower(), name.lower()))
        if repo is None:
            raise KeyError(f"no repository {owner}/{name}")
        return repo

    def edit_issue(self, owner: str, name: str, number: int, **changes: Any) -> dict[str, Any]:
        """Edit an issue as another GitHub user would (``title=...``, ``state=...``); returns its new JSON."""
        repo = self._repo_named(owner, name)
        issue = next((i for i in self._issues(repo) if i.number == number), None)
        if issue is None:
            raise KeyError(f"no issue {owner}/{name}#{number}")
        self._apply(issue, changes)
        issue.updated = max(int(self.clock()), issue.updated + 1)
        repo.mutations += 1
        return self._issue_json(repo, issue, self.origin)

    def delete_issue(self, owner: str, name: str, number: int) -> None:
        """An admin deletes an issue: it vanishes from lists and answers 410 Gone."""
        repo = self._repo_named(owner, name)
        issues = self._issues(repo)
        kept = [i for i in issues if i.number != number]
        if len(kept) == len(issues):
            raise KeyError(f"no issue {owner}/{name}#{number}")
        repo.issues = kept
        repo.deleted.add(number)
        repo.mutations += 1

    async def get_issue(self, call: Call) -> web.StreamResponse:
        repo = self._visible_repo(call)
        number = call.request.match_info["number"]
        if number.isdigit() and int(number) in repo.deleted:
            raise Reply(error(410, "This issue was deleted"))
        issue = next((i for i in self._issues(repo) if number.isdigit() and i.number == int(number)), None)
        if issue is None:
            raise Reply(self.not_found(call))
        return json_response(self._issue_json(repo, issue, self._api(call)))

    async def _json_object(self, call: Call) -> dict[str, Any]:
        try:
            body = json.loads(await read_body(call.request, self.max_body) or b"null")
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise Reply(error(400, "Problems parsing JSON"))
        return body

    async def create_issue(self, call: Call) -> web.StreamResponse:
        repo = self._visible_repo(call)
        body = await self._json_object(call)
        if "title" not in body or body["title"] in (None, ""):
            raise invalid("Issue", "title", "missing_field")
        issues = self._issues(repo)
        now = int(self.clock())
        number = max((i.number for i in issues), default=0) + 1
        issue = Issue(self._issue_id(repo, number), number, "", None, self.users[call.token or ""], now, now)
        self._apply(issue, body)
        issues.append(issue)
        repo.mutations += 1
        data = self._issue_json(repo, issue, self._api(call))
        return json_response(data, status=201, headers={"Location": data["url"]})

    async def update_issue(self, call: Call) -> web.StreamResponse:
        repo = self._visible_repo(call)
        number = call.request.match_info["number"]
        issue = next((i for i in self._issues(repo) if number.isdigit() and i.number == int(number)), None)
        if issue is None:
            raise Reply(self.not_found(call))
        body = await self._json_object(call)
        if "title" in body and body["title"] in (None, ""):
            raise invalid("Issue", "title", "missing_field")
        self._apply(issue, body)
        issue.updated = max(int(self.clock()), issue.updated)
        repo.mutations += 1
        return json_response(self._issue_json(repo, issue, self._api(call)))

    def _apply(self, issue: Issue, body: dict[str, Any]) -> None:
        """Validate then apply the writable fields GitHub documents for create/update."""
        if "title" in body and (not isinstance(body["title"], (str, int)) or len(str(body["title"])) > 256):
            raise invalid("Issue", "title", "invalid")
        text = body.get("body")
        if text is not None and (not isinstance(text, str) or len(text) > 65536):
            raise invalid("Issue", "body", "invalid")
        if "state" in body and body["state"] not in ("open", "closed"):
            raise invalid("Issue", "state", "invalid")
        for name in ("labels", "assignees"):
            if name in body and not isinstance(body[name], list):
                raise invalid("Issue", name, "invalid")
        if "title" in body:
            issue.title = str(body["title"])
        if "body" in body:
            issue.body = body["body"]
        if "labels" in body:
            issue.labels = [x["name"] if isinstance(x, dict) else str(x) for x in body["labels"]]
        if "assignees" in body:
            issue.assignees = [str(x) for x in body["assignees"]]
        if body.get("state") == "closed" and issue.state != "closed":
            issue.state, issue.closed = "closed", int(self.clock())
            issue.state_reason = body.get("state_reason") or "completed"
        elif body.get("state") == "open" and issue.state != "open":
            issue.state, issue.closed, issue.state_reason = "open", None, "reopened"

    # --- dialect hooks --------------------------------------------------------------------------

    async def credentials(self, call: Call) -> str | None:
        schemes = ("bearer", "token") if self.options.accept_token_scheme else ("bearer",)
        return bearer_token(call.request, schemes)

    def quotas(self, call: Call) -> list[Quota]:
        if call.token:
            limit, window = (self.rate_limit.limit, self.rate_limit.window) if self.rate_limit else self.default_rate
            return [Quota(f"user:{self.users[call.token].id}", limit, window)]
        return [Quota(f"ip:{call.request.remote}", self.options.anonymous_limit, self.options.anonymous_window)]

    def auth_failure(self, call: Call, status: TokenStatus) -> web.StreamResponse:
        if status is TokenStatus.MISSING:
            return error(401, "Requires authentication")
        return error(401, "Bad credentials")

    def _request_id(self) -> str:
        self._request_ids += 1
        return f"{self.seed % 65536:04X}:{self._request_ids:06X}:{digest_int(self.seed, self._request_ids) % 2**32:08X}"

    def rate_limited(self, call: Call, state: WindowState) -> web.StreamResponse:
        status = self.options.rate_limit_status
        who = f"user ID {self.users[call.token].id}" if call.token else str(call.request.remote)
        message = f"API rate limit exceeded for {who}."
        if not call.token:
            message += (" (But here's the good news: Authenticated requests get a higher rate limit."
                        " Check out the documentation for more details.)")
        return error(status, message, RATE_DOCS)

    def burst_limited(self, call: Call) -> web.StreamResponse:
        status = self.options.rate_limit_status
        response = error(status, "You have exceeded a secondary rate limit. Please wait a few minutes before "
                         "you try again.", SECONDARY_DOCS)
        response.headers["retry-after"] = str(self.faults.burst_retry_after)
        return response

    def server_error(self, rng: random.Random) -> web.StreamResponse:
        kind = rng.choice((500, 502, 503))
        if kind == 500:
            return json_response({"message": "Server Error"}, 500)
        if kind == 502:
            return web.Response(status=502, content_type="text/html",
                                text="<html><body><h1>502 Bad Gateway</h1>\nThe server returned an invalid or "
                                     "incomplete response.\n</body></html>\n")
        return web.Response(status=503, content_type="text/plain",
                            text="No server is currently available to service your request. Sorry about that. "
                                 "Please try resubmitting your request and contact us if the problem persists.\n")

    def not_found(self, call: Call) -> web.StreamResponse:
        return error(404, "Not Found")

    def decorate(self, call: Call, response: web.StreamResponse) -> None:
        state = call.quota or self.counter.peek(self.quotas(call)[0])
        headers = response.headers
        headers["x-ratelimit-limit"] = str(state.limit)
        headers["x-ratelimit-remaining"] = str(state.remaining)
        headers["x-ratelimit-used"] = str(state.used)
        headers["x-ratelimit-reset"] = str(state.reset)
        headers["x-ratelimit-resource"] = "core"
        headers["x-github-media-type"] = "github.v3; format=json"
        headers["x-github-api-version-selected"] = call.request.headers.get("X-GitHub-Api-Version", API_VERSION)
        headers["x-github-request-id"] = self._request_id()
        if call.record is not None:
            headers["X-OAuth-Scopes"] = ", ".join(call.record.scopes)
            headers["X-Accepted-OAuth-Scopes"] = "repo" if call.route.path.startswith("/repos") else ""
