"""Jira Cloud REST API v3 connector (shared/reference/apis-storage-dev.md §6).

Two ways in, two base URLs:

- API token: HTTP Basic ``email:api_token`` against the site, ``https://SITE.atlassian.net/rest/api/3``. The key
  is given as ``email:api_token`` (or the token alone with the credential attribute ``email``). A key without an
  email is sent as ``Authorization: Bearer`` (a Jira Data Center personal access token).
- OAuth 2.0 (3LO): ``Authorization: Bearer`` against the gateway, ``https://api.atlassian.com/ex/jira/{cloudId}
  /rest/api/3``. The cloud id comes from the credential attribute ``cloud_id`` or, before the first call, from
  ``GET https://api.atlassian.com/oauth/token/accessible-resources`` (the site named by the attribute ``site`` if
  set, else the first one). ``base_url`` may be the gateway root (default) or a full ``.../ex/jira/{id}/rest/api/3``.

A base URL without ``/rest/api/`` gets ``/rest/api/3`` appended, so ``https://acme.atlassian.net`` works; the
catalogue's placeholder ``https://your-domain.atlassian.net/rest/api/3`` counts as no base URL.
Identity ``GET /myself`` (accountId, displayName, emailAddress, timeZone). Pagination: ``nextPageToken`` of
``/search/jql`` (GET parameter or POST body), else ``startAt``/``isLast``/``values`` of the other lists.

Rate limits: a points pool per hour for OAuth apps (``Beta-RateLimit``/``RateLimit: "tenant-app-quota";r=<left>;
t=<seconds>`` with its ``-Policy`` ``q=<quota>``), per-second request limits (``X-RateLimit-Limit``/``-Remaining``)
and per-issue write limits. Any of them answers 429 with ``Retry-After``, ``X-RateLimit-Reset`` (ISO 8601) and
``RateLimit-Reason``; some 503s carry Retry-After too. The points pool, when named, is the signal the gate learns.

Classification (everything else, e.g. 400 ``{"errorMessages": [], "errors": {"summary": "..."}}`` or 404, is the
caller's answer)::

    401 (site: errorMessages; gateway: {"code": 401, "message": "Unauthorized; scope does not match"})  AUTH_FAILED
    403 {"errorMessages": ["You do not have permission ..."]}                                          AUTH_FAILED
    429                                        RATE_LIMIT_EXCEEDED  Retry-After, else reset - now, else 60 s
    5xx                                        SERVICE_UNAVAILABLE  (Retry-After kept when sent)

>>> cred = ApiCredential.from_api_key(ApiKey("ada@example.com:ATATT3x…"))                  # doctest: +SKIP
>>> jira = JiraConnector(cred, app_id="int_…", base_url="https://acme.atlassian.net", transport=t)  # doctest: +SKIP
>>> jira.base_url                                                                           # doctest: +SKIP
'https://acme.atlassian.net/rest/api/3'
"""

from __future__ import annotations

import asyncio
import base64
import urllib.parse
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from connectors.base import AccountIdentity, ApiRequest, ApiResponse, Connector, RateSignal
from connectors.catalogue import SERVICES
from connectors.http import normalize_base_url, parse_float, parse_int, parse_retry_after
from connectors.oauth.provider import OAuthProvider
from domain.errors import IntegrationError, IntegrationFailure
from domain.values import AuthMode

SCOPES = ("read:jira-user", "read:jira-work", "write:jira-work", "manage:jira-webhook", "offline_access")
GATEWAY = "https://api.atlassian.com"
RESOURCES_PATH = "/oauth/token/accessible-resources"
API_PATH = "/rest/api/3"
DEFAULT_WAIT = 60.0

# Atlassian 3LO (reference §6 Auth): audience=api.atlassian.com and prompt=consent on the authorize URL; refresh
# tokens rotate on every refresh (offline_access needed for one); neither PKCE, device grant nor revocation is
# documented, so none is used. The token endpoint documents JSON bodies; the shared client sends the RFC 6749
# form encoding, which the emulator accepts as well (see the final report of issue 7).
OAUTH = OAuthProvider(
    name="jira",
    authorize_url="https://auth.atlassian.com/authorize",
    token_url="https://auth.atlassian.com/oauth/token",
    revocation_style="none",
    default_scopes=("read:jira-user", "read:jira-work", "write:jira-work", "offline_access"),
    extra_authorize_params={"audience": "api.atlassian.com", "prompt": "consent"},
    client_auth="client_secret_post",
    pkce=False,
    rotates_refresh_tokens=True,
    old_refresh_token_survives_rotation=False,
    token_response="json",
)


def jira_message(body: Any) -> str:
    """One line from Jira's ErrorCollection or the gateway's ``{"code", "message"}``.

    >>> jira_message({"errorMessages": [], "errors": {"summary": "You must specify a summary of the issue."}})
    'summary: You must specify a summary of the issue.'
    >>> jira_message({"code": 401, "message": "Unauthorized; scope does not match"})
    'Unauthorized; scope does not match'
    """
    if isinstance(body, str):
        return body.strip()[:300] or "no message"
    if not isinstance(body, dict):
        return "no message"
    parts = [str(m) for m in body.get("errorMessages") or [] if m]
    errors = body.get("errors")
    if isinstance(errors, dict):
        parts += [f"{field}: {text}" for field, text in errors.items()]
    if not parts and isinstance(body.get("message"), str):
        parts.append(body["message"])
    return "; ".join(parts) or "no message"


def parse_reset(value: str | None) -> float | None:
    """``X-RateLimit-Reset``: ISO 8601 (``2026-01-31T14:05Z``) or, leniently, epoch seconds."""
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        return parse_float(value)
    return (moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)).timestamp()


def quota_fields(value: str | None) -> dict[str, int]:
    """The integer parameters of a RateLimit structured header, ``"tenant-app-quota";r=17842;t=2107``.

    >>> quota_fields('"tenant-app-quota";r=17842;t=2107')
    {'r': 17842, 't': 2107}
    >>> quota_fields(None)
    {}
    """
    out: dict[str, int] = {}
    for part in (value or "").split(";")[1:]:
        name, _, raw = part.strip().partition("=")
        number = parse_int(raw)
        if name and number is not None:
            out[name.strip().lower()] = number
    return out


def _api_base(url: str) -> str:
    return url if "/rest/api/" in url + "/" else url + API_PATH


class JiraConnector(Connector):
    """``JiraConnector(ApiCredential.from_api_key(ApiKey("me@x.com:token")), app_id=…, base_url=SITE, transport=t)``"""

    descriptor = SERVICES["jira"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        attrs = self._credential.attributes
        self.cloud_id: str | None = None
        self.site: str | None = attrs.get("site") if isinstance(attrs.get("site"), str) else None
        self._gateway: str | None = None
        self._discovery = asyncio.Lock()
        given = kwargs.get("base_url")
        if given and normalize_base_url(given) == normalize_base_url(self.descriptor.default_base_url):
            given = None         # the catalogue's placeholder site (integd's fallback) means "none given"
        if self._credential.mode is AuthMode.API_KEY:
            if not given:
                raise self.failure(IntegrationError.INVALID_CONFIGURATION, "an API token needs the site as base_url "
                                   "(https://SITE.atlassian.net)", status=None)
            self.base_url = _api_base(self.base_url)
            return
        root = self.base_url if given else GATEWAY
        if "/rest/api/" in root + "/":
            self.cloud_id = urllib.parse.unquote(root.split("/ex/jira/")[1].split("/")[0]) if "/ex/jira/" in root \
                else None
            self.base_url = root
            return
        self._gateway = root
        self.base_url = root
        cloud_id = attrs.get("cloud_id")
        if isinstance(cloud_id, str) and cloud_id:
            self._use_site(cloud_id)

    def _use_site(self, cloud_id: str) -> None:
        self.cloud_id = cloud_id
        self.base_url = f"{self._gateway}/ex/jira/{urllib.parse.quote(cloud_id, safe='')}{API_PATH}"

    # ---- auth ---------------------------------------------------------------------------------------------
    def auth_headers(self) -> dict[str, str]:
        credential = self.credential
        if credential.mode is AuthMode.OAUTH2:
            return {"Authorization": f"Bearer {credential.bearer}"}
        key, email = credential.bearer, credential.attributes.get("email")
        if not email and ":" in key:
            email, _, key = key.rpartition(":")
        if not email:
            return {"Authorization": f"Bearer {key}"}          # Data Center personal access token
        pair = base64.b64encode(f"{email}:{key}".encode()).decode()
        return {"Authorization": f"Basic {pair}"}

    async def _attempt_authorized(self, request: ApiRequest, attempt: int, *, interactive: bool,
                                  max_wait: float | None = None) -> ApiResponse:
        if self._gateway is not None and self.cloud_id is None:
            await self._discover(interactive=interactive, max_wait=max_wait)
        return await super()._attempt_authorized(request, attempt, interactive=interactive, max_wait=max_wait)

    async def _discover(self, *, interactive: bool, max_wait: float | None) -> None:
        """The cloud id of the site this OAuth grant reaches (module docstring); once per connector."""
        async with self._discovery:
            if self.cloud_id is not None:
                return
            resp = await super()._attempt_authorized(ApiRequest("GET", RESOURCES_PATH), 1, interactive=interactive,
                                                     max_wait=max_wait)
            sites = [s for s in resp.body if isinstance(s, dict) and isinstance(s.get("id"), str)] \
                if resp.ok and isinstance(resp.body, list) else []
            if self.site:
                sites = [s for s in sites if str(s.get("url", "")).rstrip("/") == self.site.rstrip("/")]
            if not sites:
                wanted = f" named {self.site}" if self.site else ""
                raise self.failure(IntegrationError.INVALID_CONFIGURATION,
                                   f"the OAuth grant reaches no Jira site{wanted} (accessible-resources)",
                                   status=resp.status)
            self.site = sites[0].get("url") if isinstance(sites[0].get("url"), str) else self.site
            self._use_site(sites[0]["id"])

    # ---- dialect ------------------------------------------------------------------------------------------
    def _retry_after(self, status: int, headers: Mapping[str, str]) -> float | None:
        if status not in (429, 503):
            return None
        return parse_retry_after(headers.get("retry-after"), now=self.clock.time())

    def rate_signal(self, status: int, headers: Mapping[str, str], body: Any) -> RateSignal:
        """The points pool when the answer names it (``[Beta-]RateLimit``), else the request-rate headers.

        ``Beta-Retry-After`` on a successful answer says a call would have been refused had the quota been
        enforced; it is honoured as a wait all the same, so that enforcement finds the app already paced.
        """
        now = self.clock.time()
        retry_after = self._retry_after(status, headers)
        if retry_after is None:
            retry_after = parse_retry_after(headers.get("beta-retry-after"), now=now)
        reason = headers.get("ratelimit-reason") or headers.get("x-beta-ratelimit-reason")
        pool = quota_fields(headers.get("ratelimit") or headers.get("beta-ratelimit"))
        if pool.get("r") is not None and pool.get("t") is not None:
            policy = quota_fields(headers.get("ratelimit-policy") or headers.get("beta-ratelimit-policy"))
            return RateSignal(limit=policy.get("q"), remaining=pool["r"], reset_at=now + pool["t"],
                              retry_after=retry_after, resource=reason or "tenant-app-quota")
        return RateSignal(limit=parse_int(headers.get("x-ratelimit-limit")),
                          remaining=parse_int(headers.get("x-ratelimit-remaining")),
                          reset_at=parse_reset(headers.get("x-ratelimit-reset")),
                          retry_after=retry_after, resource=reason)

    def classify(self, status: int, headers: Mapping[str, str], body: Any) -> IntegrationFailure | None:
        message = jira_message(body)
        if status == 401:
            return self.failure(IntegrationError.AUTHENTICATION_FAILED, message, status=status)
        if status == 403:
            return self.failure(IntegrationError.AUTHENTICATION_FAILED, f"forbidden: {message}", status=status)
        if status == 429:
            wait = self._retry_after(status, headers)
            if wait is None:
                wait = self.until(parse_reset(headers.get("x-ratelimit-reset"))) or DEFAULT_WAIT
            reason = headers.get("ratelimit-reason")
            return self.failure(IntegrationError.RATE_LIMIT_EXCEEDED, f"rate limited ({reason or 'no reason'}): "
                                f"{message}", status=status, code=reason, retry_after=wait)
        if status >= 500:
            text = message if isinstance(body, dict) and message != "no message" else "server error"
            return self.failure(IntegrationError.SERVICE_UNAVAILABLE, text, status=status,
                                retry_after=self._retry_after(status, headers))
        return None

    def identity_from(self, body: Any, headers: Mapping[str, str] | None = None) -> AccountIdentity:
        if not isinstance(body, dict) or not isinstance(body.get("accountId"), str):
            raise self.failure(IntegrationError.INVALID_CONFIGURATION, "the identity endpoint did not return a "
                               "Jira user; check the base URL (https://SITE.atlassian.net)", status=None)
        details = {key: body.get(key) for key in ("accountId", "accountType", "emailAddress", "displayName",
                                                  "active", "timeZone", "locale")}
        details.update(cloud_id=self.cloud_id, site=self.site)
        name, email = body.get("displayName"), body.get("emailAddress")
        display = f"{name} <{email}>" if name and email else str(name or email or body["accountId"])
        return AccountIdentity(body["accountId"], display, details)

    def next_request(self, response: ApiResponse) -> ApiRequest | None:
        body, request = response.body, response.request
        if not isinstance(body, dict) or request is None:
            return None
        token = body.get("nextPageToken")
        if isinstance(token, str) and token:
            if request.method == "POST":
                payload = dict(request.json) if isinstance(request.json, dict) else {}
                return ApiRequest("POST", request.path, request.params, {**payload, "nextPageToken": token},
                                  request.headers)
            return request.with_params(nextPageToken=token)
        values = body.get("values")
        if body.get("isLast") is False and isinstance(values, list) and values:
            start = parse_int(str(body.get("startAt", 0))) or 0
            return request.with_params(startAt=start + len(values))
        return None
