"""Pipedrive connector, API v1 and v2 (shared/reference/apis-crm.md §3).

Base URL: the company's host, without a version: ``https://<company>.pipedrive.com`` (the ``api_domain`` of an
OAuth token response; taken from the credential's ``api_domain`` attribute when no base URL is configured) or
``https://api.pipedrive.com``. Any configured ``.../v1``, ``.../api/v1`` or ``.../api/v2`` suffix is cut off,
and request paths carry the version: ``/api/v2/deals``, and ``/v1/...`` on api.pipedrive.com or ``/api/v1/...``
on a company host (:meth:`PipedriveConnector.v1`). Identity ``GET {v1}/users/me`` (v1-only endpoint).

Auth: API token in the ``x-api-token`` header (what the docs ask for; never the legacy ``?api_token=`` query,
which would put the secret in URLs and logs), OAuth access token as ``Authorization: Bearer``.

Rate model (the token budget), told to the gate as one RateSignal per answer, the most constraining of::

    burst     x-ratelimit-limit / -remaining / -reset (seconds)         remaining 0 -> wait for the reset
    budget    x-daily-ratelimit-token-remaining (company tokens left)   remaining = tokens // DEAREST_CALL
                                                                        calls until UTC midnight
    429       Retry-After (else x-ratelimit-reset, else 2 s)            the gate waits that long

The budget is counted in tokens and calls cost different amounts, which a call-counting gate cannot know; so
the budget is expressed in calls of the dearest kind this connector makes (a search, 40 tokens): the gate
stops early by at most one such call, and never sends a call the budget cannot pay for. It is reported when it
allows fewer calls than the burst window, so the gate always hears the tighter of the two. No change to CallGate
was needed (a gate that counts a provider's ``remaining`` down per admitted call also keeps concurrent callers
within it). ``x-daily-requests-left`` (the legacy count of api_token writes) is not turned into a block: it
limits writes only, and the gate would hold back reads too; its 429 carries a Retry-After like the others.

Classification (everything else, including 400, 404, 410 and 422, is handed back)::

    401                                  AUTH_FAILED           "Pipedrive: unauthorized access (401)"
    402                                  INVALID_CONFIGURATION  payment required (the company's plan)
    403 mentioning a limit / Retry-After RATE_LIMIT_EXCEEDED   (persistent abuse)
    403 otherwise                        AUTH_FAILED           scope or permission
    429                                  RATE_LIMIT_EXCEEDED   retry_after as above
    5xx                                  SERVICE_UNAVAILABLE
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from connectors.base import AccountIdentity, ApiRequest, Connector, RateSignal
from connectors.catalogue import SERVICES
from connectors.http import parse_float, parse_int, parse_retry_after
from connectors.oauth.provider import OAuthProvider
from domain.errors import IntegrationError, IntegrationFailure

SCOPES = {"deals_read": "deals:read", "deals_full": "deals:full", "users_read": "users:read",
          "base": "base"}

# OAuth (reference §3.2): Basic client auth at the token endpoint; no PKCE documented; the refresh answer may
# carry a new refresh token (stored whatever comes back); the token answer's api_domain is the API host.
OAUTH = OAuthProvider(
    name="pipedrive",
    authorize_url="https://oauth.pipedrive.com/oauth/authorize",
    token_url="https://oauth.pipedrive.com/oauth/token",
    revocation_url="https://oauth.pipedrive.com/oauth/revoke",
    default_scopes=(SCOPES["deals_full"], SCOPES["users_read"]),
    client_auth="client_secret_basic",
    pkce=False,
    rotates_refresh_tokens=False,
)

DEAREST_CALL = 40            # tokens: a search (the reference's example costs: GET 2, list 20, update 10)
BURST_WAIT = 2.0             # the burst window, when a 429 says nothing else
BUDGET_HEADER = "x-daily-ratelimit-token-remaining"
_VERSION_SUFFIXES = ("/api/v1", "/api/v2", "/v1", "/v2", "/api")
DAY = 86400.0


def split_base(url: str) -> tuple[str, str]:
    """(host root, v1 prefix) of a configured base URL.

    >>> split_base("https://api.pipedrive.com/v1")
    ('https://api.pipedrive.com', '/v1')
    >>> split_base("https://acme.pipedrive.com/api/v1")
    ('https://acme.pipedrive.com', '/api/v1')
    """
    root = url.rstrip("/")
    for suffix in _VERSION_SUFFIXES:
        if root.endswith(suffix):
            return root[: -len(suffix)], "/v1" if suffix == "/v1" else "/api/v1"
    return root, "/api/v1"


def _message(body: Any) -> str:
    if isinstance(body, dict):
        for key in ("error", "message"):
            if isinstance(body.get(key), str) and body[key]:
                return body[key]
    return "no message"


class PipedriveConnector(Connector):
    """``PipedriveConnector(ApiCredential.from_api_key(ApiKey("…")), app_id=…, base_url=None, transport=t)``

    >>> deals = await connector.send_request(ApiRequest("GET", "/api/v2/deals", params={"limit": 100}))
    ...                                                                                  # doctest: +SKIP
    """

    descriptor = SERVICES["pipedrive"]

    def __init__(self, credential: Any, *, base_url: str | None = None, **kwargs: Any) -> None:
        domain = getattr(credential, "attributes", {}).get("api_domain") if base_url is None else None
        super().__init__(credential, base_url=base_url or (domain if isinstance(domain, str) else None),
                         **kwargs)
        self.base_url, self.v1_prefix = split_base(self.base_url)

    def v1(self, path: str) -> str:
        """A v1 path on this host: ``v1("/users/me")`` is ``/api/v1/users/me`` on a company domain."""
        return self.v1_prefix + path

    def identity_request(self) -> ApiRequest:
        return ApiRequest("GET", self.v1(self.descriptor.identity_endpoint))

    def auth_headers(self) -> dict[str, str]:
        credential = self.credential
        if "access_token" in credential.secrets:
            return {"Authorization": f"Bearer {credential.bearer}"}
        return {"x-api-token": credential.bearer}

    def rate_signal(self, status: int, headers: Mapping[str, str], body: Any) -> RateSignal:
        now = self.clock.time()
        retry_after = None
        reset = parse_float(headers.get("x-ratelimit-reset"))
        if status == 429 or (status == 403 and "retry-after" in headers):
            retry_after = parse_retry_after(headers.get("retry-after"), now=now)
            if retry_after is None:
                retry_after = reset if reset else BURST_WAIT
        burst = parse_int(headers.get("x-ratelimit-remaining"))
        budget = parse_int(headers.get(BUDGET_HEADER))
        affordable = None if budget is None else max(0, budget) // DEAREST_CALL
        if affordable is not None and (burst is None or affordable < burst):
            midnight = math.floor(now / DAY) * DAY + DAY
            return RateSignal(limit=None, remaining=affordable, reset_at=midnight, retry_after=retry_after,
                              resource="daily_token_budget")
        return RateSignal(limit=parse_int(headers.get("x-ratelimit-limit")), remaining=burst,
                          reset_at=now + reset if reset is not None else None, retry_after=retry_after,
                          resource="burst")

    def classify(self, status: int, headers: Mapping[str, str], body: Any) -> IntegrationFailure | None:
        message = _message(body)
        if status == 401:
            return self.failure(IntegrationError.AUTHENTICATION_FAILED, message, status=status)
        if status == 402:
            return self.failure(IntegrationError.INVALID_CONFIGURATION, f"payment required: {message}",
                                status=status)
        if status == 429 or (status == 403 and ("retry-after" in headers or "limit" in message.lower())):
            signal = self.rate_signal(status, headers, body)
            return self.failure(IntegrationError.RATE_LIMIT_EXCEEDED, message, status=status,
                                retry_after=signal.retry_after or BURST_WAIT)
        if status == 403:
            return self.failure(IntegrationError.AUTHENTICATION_FAILED, f"forbidden: {message}", status=status)
        if status >= 500:
            reason = message if message != "no message" else "server error"
            return self.failure(IntegrationError.SERVICE_UNAVAILABLE, reason, status=status)
        return None

    def identity_from(self, body: Any, headers: Mapping[str, str] | None = None) -> AccountIdentity:
        user = body.get("data") if isinstance(body, dict) and body.get("success") is True else None
        if not isinstance(user, dict) or "id" not in user or not isinstance(user.get("email"), str):
            raise self.failure(IntegrationError.INVALID_CONFIGURATION,
                               "the identity endpoint did not return a Pipedrive user; check the base URL",
                               status=None)
        details = {k: user.get(k) for k in ("id", "name", "email", "company_id", "company_name",
                                            "company_domain", "timezone_name", "locale")}
        company = user.get("company_name") or user.get("company_domain")
        display = f"{user.get('name') or user['email']} <{user['email']}>" + (f" @ {company}" if company else "")
        return AccountIdentity(str(user["id"]), display, details)

