"""The Google API dialect shared by Gmail and Google Drive (shared/reference/apis-messaging.md §1,
apis-storage-dev.md §1).

Dialect: ``Authorization: Bearer <access token>`` from an OAuth 2.0 grant; JSON answers; pagination by
``nextPageToken`` in the body, sent back as the ``pageToken`` parameter of the same request (an empty or
absent token ends the walk). Errors carry Google's envelope::

    {"error": {"code": 403, "message": "...", "status": "PERMISSION_DENIED",
               "errors": [{"domain": "usageLimits", "reason": "userRateLimitExceeded", "message": "..."}]}}

Classification (everything else, e.g. 400 badRequest or 404 notFound, is the caller's answer)::

    401 (authError, "Invalid Credentials", UNAUTHENTICATED)               AUTH_FAILED
    429, or 403 with reason rateLimitExceeded / userRateLimitExceeded /   RATE_LIMIT_EXCEEDED
      quotaExceeded / RESOURCE_EXHAUSTED                                   (Retry-After when sent)
    403 dailyLimitExceeded                                                 RATE_LIMIT_EXCEEDED (until tomorrow)
    403 otherwise (insufficientPermissions, forbidden, PERMISSION_DENIED)  AUTH_FAILED
    5xx (backendError, internalError, UNAVAILABLE)                         SERVICE_UNAVAILABLE

Google documents no Retry-After; when one is sent (our emulator can, as a knob) it is honoured, otherwise
the retry policy's exponential backoff applies, as Google's guides ask.

OAuth: :data:`GOOGLE_OAUTH` is the real authorization server (accounts.google.com / oauth2.googleapis.com):
``access_type=offline`` and ``prompt=consent`` so that a refresh token is issued on every consent, PKCE
S256, no refresh-token rotation, RFC 7009 revocation, a device endpoint (limited scopes only).
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any

from connectors.base import ApiRequest, ApiResponse, Connector, RateSignal
from connectors.http import parse_retry_after
from connectors.oauth.provider import OAuthProvider
from domain.errors import IntegrationError, IntegrationFailure

RATE_REASONS = frozenset({"rateLimitExceeded", "userRateLimitExceeded", "quotaExceeded",
                          "concurrentLimitExceeded", "RATE_LIMIT_EXCEEDED"})
DAILY_REASONS = frozenset({"dailyLimitExceeded", "dailyLimitExceededUnreg"})
AUTH_URL = "https://accounts.google.com/o/oauth2/v2/auth"
TOKEN_URL = "https://oauth2.googleapis.com/token"
REVOKE_URL = "https://oauth2.googleapis.com/revoke"
DEVICE_URL = "https://oauth2.googleapis.com/device/code"
USERINFO_URL = "https://openidconnect.googleapis.com/v1/userinfo"


def google_oauth(name: str, scopes: tuple[str, ...]) -> OAuthProvider:
    """Google's authorization server for one service (its scopes): offline access, forced consent, PKCE.

    ``prompt=consent`` because Google issues a refresh token only on a consent screen: without it a second
    connect of the same account would get an access token alone. No rotation: a refresh answer omits
    ``refresh_token`` and the original one stays valid.

    >>> google_oauth("gmail", ("https://mail.google.com/",)).extra_authorize_params["access_type"]
    'offline'
    """
    return OAuthProvider(name, AUTH_URL, TOKEN_URL, device_authorization_url=DEVICE_URL, revocation_url=REVOKE_URL,
                         revocation_style="rfc7009", default_scopes=scopes,
                         extra_authorize_params={"access_type": "offline", "prompt": "consent",
                                                 "include_granted_scopes": "true"},
                         client_auth="client_secret_post", pkce=True, rotates_refresh_tokens=False,
                         token_response="json")


def google_error(body: Any) -> tuple[str, str | None, str | None]:
    """``(message, first reason, status)`` from Google's error envelope; tolerant of anything else.

    >>> google_error({"error": {"code": 401, "message": "Invalid Credentials", "status": "UNAUTHENTICATED",
    ...                         "errors": [{"reason": "authError"}]}})
    ('Invalid Credentials', 'authError', 'UNAUTHENTICATED')
    >>> google_error("<html>502</html>")
    ('no message', None, None)
    """
    err = body.get("error") if isinstance(body, dict) else None
    if not isinstance(err, dict):
        return "no message", None, None
    message = err.get("message") if isinstance(err.get("message"), str) else "no message"
    reason = None
    errors = err.get("errors")
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        first = errors[0].get("reason")
        reason = first if isinstance(first, str) else None
    status = err.get("status") if isinstance(err.get("status"), str) else None
    return message, reason, status


def seconds_to_pacific_midnight(now: float) -> float:
    """Google's daily quotas reset at midnight Pacific time (UTC-8 standard, -7 summer; -8 is the later one).

    >>> seconds_to_pacific_midnight(0.0)      # 1970-01-01 00:00 UTC is 16:00 the day before in UTC-8
    28800.0
    """
    pacific = datetime.timezone(datetime.timedelta(hours=-8))
    moment = datetime.datetime.fromtimestamp(now, pacific)
    midnight = (moment + datetime.timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return max(1.0, (midnight - moment).total_seconds())


class GoogleConnector(Connector):
    """Base of the Google connectors; subclasses set ``descriptor`` and ``identity_from``."""

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.credential.bearer}"}

    def _retry_after(self, status: int, headers: Mapping[str, str]) -> float | None:
        if status in (403, 429, 503):
            return parse_retry_after(headers.get("retry-after"), now=self.clock.time())
        return None

    def rate_signal(self, status: int, headers: Mapping[str, str], body: Any) -> RateSignal:
        return RateSignal(retry_after=self._retry_after(status, headers))

    def classify(self, status: int, headers: Mapping[str, str], body: Any) -> IntegrationFailure | None:
        message, reason, state = google_error(body)
        code = reason or state
        if status == 401:
            return self.failure(IntegrationError.AUTHENTICATION_FAILED, message, status=status, code=code)
        if status == 429 or (status == 403 and (reason in RATE_REASONS or state == "RESOURCE_EXHAUSTED")):
            return self.failure(IntegrationError.RATE_LIMIT_EXCEEDED, f"{reason or 'rate limited'}: {message}",
                                status=status, code=code, retry_after=self._retry_after(status, headers))
        if status == 403 and reason in DAILY_REASONS:
            wait = self._retry_after(status, headers) or seconds_to_pacific_midnight(self.clock.time())
            return self.failure(IntegrationError.RATE_LIMIT_EXCEEDED, f"{reason}: {message}", status=status,
                                code=code, retry_after=wait)
        if status == 403:
            return self.failure(IntegrationError.AUTHENTICATION_FAILED, f"forbidden: {message}",
                                status=status, code=code)
        if status >= 500:
            reason_text = message if message != "no message" else "server error"
            return self.failure(IntegrationError.SERVICE_UNAVAILABLE, reason_text, status=status, code=code,
                                retry_after=self._retry_after(status, headers))
        return None

    def next_request(self, response: ApiResponse) -> ApiRequest | None:
        body, request = response.body, response.request
        token = body.get("nextPageToken") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token or request is None:
            return None
        return request.with_params(pageToken=token)

    def not_google(self, what: str) -> IntegrationFailure:
        return self.failure(IntegrationError.INVALID_CONFIGURATION,
                            f"the identity endpoint did not return {what}; check the base URL", status=None)

