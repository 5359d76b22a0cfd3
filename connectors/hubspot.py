"""HubSpot CRM v3 connector (shared/reference/apis-crm.md §2).

Dialect: ``Authorization: Bearer <private-app token | OAuth access token>`` on ``https://api.hubapi.com``;
identity ``GET /account-info/v3/details`` (portalId, accountType, timeZone, uiDomain). Lists page with
``paging.next.after`` sent back as ``after`` (the query parameter of a GET, the body field of a search POST).

Rate limits: a burst window (``X-HubSpot-RateLimit-Max`` / ``-Remaining`` per
``-Interval-Milliseconds``, 10 s) and a daily one (``X-HubSpot-RateLimit-Daily`` / ``-Daily-Remaining``, reset
at midnight in the account's time zone; UTC is assumed here, the later of the two for accounts west of it is not
knowable without the account details). The signal hands the gate the binding one of the two: the daily
remaining (reset at the next UTC midnight) when it is the smaller, else the burst remaining with a reset one
interval ahead (HubSpot's window rolls, so one interval from the last answer is the safe bound). The gate
counts that allowance down per call, so it stops before HubSpot refuses.

The CRM search endpoint is limited on its own (``SEARCH_PER_SECOND`` per token, published) and its answers
carry no rate-limit headers, so search calls are their own route for the gate (``rate_scope``): the connector
counts its search answers in a sliding second and announces what is left of the published limit, and a search
429 (policy SECONDLY) holds back searches only, not the app's other calls.

Classification (``{"status":"error","message","category",...}`` bodies)::

    401 INVALID_AUTHENTICATION / EXPIRED_AUTHENTICATION      AUTH_FAILED
    403 MISSING_SCOPES and other 403s                        AUTH_FAILED
    429 policyName DAILY                                     RATE_LIMIT_EXCEEDED  until the next (UTC) midnight
    429 TEN_SECONDLY_ROLLING / SECONDLY / other              RATE_LIMIT_EXCEEDED  Retry-After, else the interval
    5xx (INTERNAL_ERROR, the edge's 502/504 pages)           SERVICE_UNAVAILABLE
    400 VALIDATION_ERROR, 404, 409 CONFLICT                   handed back (the caller's answer)
"""

from __future__ import annotations

import datetime
from collections import deque
from collections.abc import Mapping
from typing import Any

from connectors.base import AccountIdentity, ApiRequest, ApiResponse, Connector, RateSignal
from connectors.catalogue import SERVICES
from connectors.http import parse_int, parse_retry_after
from connectors.oauth.provider import OAuthProvider
from domain.errors import IntegrationError, IntegrationFailure

BURST_INTERVAL = 10.0          # seconds, when the answer does not say
SEARCH_WAIT = 1.0              # the search endpoint's own limit is per second
SEARCH_PER_SECOND = 4          # the published search limit per token (newer docs may say 5: the lower is kept)
SEARCH_ROUTE = "crm-search"

SCOPES = {"contacts_read": "crm.objects.contacts.read", "contacts_write": "crm.objects.contacts.write",
          "oauth": "oauth"}

# HubSpot's authorization server (reference §2.2): the v1 token endpoint (deprecated on 16 Feb 2027, still the
# documented one), client id and secret in the form, code_verifier accepted; access tokens live 30 minutes and
# the refresh token does not rotate. Revocation is DELETE /oauth/v1/refresh-tokens/{token} (the "hubspot" style):
# it deletes the refresh token only; access tokens already issued work until they expire.
OAUTH = OAuthProvider(
    name="hubspot",
    authorize_url="https://app.hubspot.com/oauth/authorize",
    token_url="https://api.hubapi.com/oauth/v1/token",
    revocation_url="https://api.hubapi.com/oauth/v1/refresh-tokens/{token}",
    revocation_style="hubspot",
    default_scopes=(SCOPES["contacts_read"], SCOPES["contacts_write"], SCOPES["oauth"]),
    client_auth="client_secret_post",
    pkce=True,
    rotates_refresh_tokens=False,
    token_response="json",
)


def hs_error(body: Any) -> tuple[str, str | None, str | None]:
    """``(message, category, policyName)`` of a HubSpot error body; tolerant of anything else.

    >>> hs_error({"status": "error", "message": "You have reached your daily limit.", "errorType": "RATE_LIMIT",
    ...           "policyName": "DAILY"})
    ('You have reached your daily limit.', 'RATE_LIMIT', 'DAILY')
    """
    if not isinstance(body, dict):
        return "no message", None, None
    message = body.get("message") if isinstance(body.get("message"), str) else "no message"
    category = body.get("category") or body.get("errorType")
    policy = body.get("policyName")
    return message, category if isinstance(category, str) else None, policy if isinstance(policy, str) else None


def next_utc_midnight(now: float) -> float:
    """The next midnight UTC after ``now`` (epoch seconds), when HubSpot's daily window is taken to turn.

    >>> next_utc_midnight(86400.0 * 3 + 5)
    345600.0
    """
    day = datetime.datetime.fromtimestamp(now, datetime.timezone.utc).date() + datetime.timedelta(days=1)
    return datetime.datetime(day.year, day.month, day.day, tzinfo=datetime.timezone.utc).timestamp()


class HubSpotConnector(Connector):
    """``HubSpotConnector(ApiCredential.from_api_key(ApiKey("pat-na1-…")), app_id=…, base_url=None, …)``"""

    descriptor = SERVICES["hubspot"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._searches: deque[float] = deque()      # times of search answers within the last second

    def rate_scope(self, request: ApiRequest) -> str | None:
        return SEARCH_ROUTE if request.method == "POST" and request.path.endswith("/search") else None

    def _search_signal(self, now: float) -> RateSignal:
        """What is left of the published search limit, from this connector's own answers in the last second.

        Counted at answer time (after the send), so a call ages out no earlier than it would at HubSpot.
        """
        self._searches.append(now)
        while self._searches and self._searches[0] <= now - 1.0:
            self._searches.popleft()
        return RateSignal(limit=SEARCH_PER_SECOND, remaining=max(0, SEARCH_PER_SECOND - len(self._searches)),
                          reset_at=self._searches[0] + 1.0, resource=SEARCH_ROUTE, scope=SEARCH_ROUTE)

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.credential.bearer}"}

    def _interval(self, headers: Mapping[str, str]) -> float:
        millis = parse_int(headers.get("x-hubspot-ratelimit-interval-milliseconds"))
        return millis / 1000.0 if millis and millis > 0 else BURST_INTERVAL

    def rate_signal(self, status: int, headers: Mapping[str, str], body: Any) -> RateSignal:
        now = self.clock.time()
        searched = isinstance(body, dict) and isinstance(body.get("total"), int) and "results" in body
        if status == 429:
            failure = self._rate_limited(headers, body)
            if hs_error(body)[2] == "SECONDLY":
                return RateSignal(remaining=0, retry_after=failure.retry_after, resource=SEARCH_ROUTE,
                                  scope=SEARCH_ROUTE)
            return RateSignal(remaining=0, retry_after=failure.retry_after, resource="hubspot")
        if searched and status == 200:
            return self._search_signal(now)
        burst = parse_int(headers.get("x-hubspot-ratelimit-remaining"))
        daily = parse_int(headers.get("x-hubspot-ratelimit-daily-remaining"))
        if daily is not None and (burst is None or daily <= burst):
            return RateSignal(limit=parse_int(headers.get("x-hubspot-ratelimit-daily")), remaining=daily,
                              reset_at=next_utc_midnight(now), resource="daily")
        if burst is None:
            return RateSignal()
        return RateSignal(limit=parse_int(headers.get("x-hubspot-ratelimit-max")), remaining=burst,
                          reset_at=now + self._interval(headers), resource="ten_secondly")

    def _rate_limited(self, headers: Mapping[str, str], body: Any) -> IntegrationFailure:
        now = self.clock.time()
        message, _, policy = hs_error(body)
        wait = parse_retry_after(headers.get("retry-after"), now=now)
        if policy == "DAILY":
            wait = wait or max(1.0, next_utc_midnight(now) - now)
        elif policy == "SECONDLY":
            wait = wait or SEARCH_WAIT
        else:
            wait = wait or self._interval(headers)
        return self.failure(IntegrationError.RATE_LIMIT_EXCEEDED, message, status=429, code=policy or "RATE_LIMIT",
                            retry_after=wait)

    def classify(self, status: int, headers: Mapping[str, str], body: Any) -> IntegrationFailure | None:
        message, category, _ = hs_error(body)
        if status == 401:
            return self.failure(IntegrationError.AUTHENTICATION_FAILED, message, status=status, code=category)
        if status == 403:
            return self.failure(IntegrationError.AUTHENTICATION_FAILED, f"forbidden: {message}", status=status,
                                code=category)
        if status == 429:
            return self._rate_limited(headers, body)
        if status >= 500:
            reason = message if message != "no message" else "server error"
            return self.failure(IntegrationError.SERVICE_UNAVAILABLE, reason, status=status, code=category)
        return None

    def identity_from(self, body: Any, headers: Mapping[str, str] | None = None) -> AccountIdentity:
        if not isinstance(body, dict) or not isinstance(body.get("portalId"), int):
            raise self.failure(IntegrationError.INVALID_CONFIGURATION,
                               "the identity endpoint did not return a HubSpot account; check the base URL",
                               status=None)
        details = {key: body.get(key) for key in ("portalId", "accountType", "timeZone", "uiDomain",
                                                  "dataHostingLocation", "companyCurrency")}
        return AccountIdentity(str(body["portalId"]), f"HubSpot portal {body['portalId']}", details)

    def next_request(self, response: ApiResponse) -> ApiRequest | None:
        body, request = response.body, response.request
        paging = body.get("paging") if isinstance(body, dict) else None
        nxt = paging.get("next") if isinstance(paging, dict) else None
        after = nxt.get("after") if isinstance(nxt, dict) else None
        if not isinstance(after, str) or not after or request is None:
            return None
        if request.method == "POST" and isinstance(request.json, dict):     # a search: the cursor is in the body
            return ApiRequest("POST", request.path, request.params, {**request.json, "after": after}, request.headers)
        return request.with_params(after=after)
