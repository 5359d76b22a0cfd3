"""The Microsoft Graph dialect shared by Outlook, OneDrive and Teams (shared/reference/apis-messaging.md §2, §5;
apis-storage-dev.md §3).

Dialect: ``Authorization: Bearer <access token>`` (Microsoft identity platform v2); base URL
``https://graph.microsoft.com/v1.0``; collections answer ``{"value": [...], "@odata.nextLink": "<absolute URL>"}``
and the next page is that URL followed exactly as given (it carries ``$skiptoken``; a link leading off the
base URL is refused). Delta rounds end with ``@odata.deltaLink`` instead, which is not a next page. Errors::

    {"error": {"code": "InvalidAuthenticationToken", "message": "...",
               "innerError": {"date": "...", "request-id": "...", "client-request-id": "..."}}}

Classification (anything else, e.g. 404 itemNotFound or 400 invalidRequest, is the caller's answer)::

    401 (InvalidAuthenticationToken, unauthenticated)                    AUTH_FAILED
    403 (ErrorAccessDenied, accessDenied, Authorization_RequestDenied)   AUTH_FAILED
    429 (TooManyRequests, activityLimitReached, ApplicationThrottled)    RATE_LIMIT_EXCEEDED  Retry-After (may be
                                                                          fractional: "2.128")
    503 / 509 / other 5xx (serviceNotAvailable, generalException)        SERVICE_UNAVAILABLE  Retry-After if sent

OAuth: :data:`MICROSOFT_OAUTH` is the identity platform with the tenant in the URL (``common`` by default,
``for_tenant`` changes it), ``offline_access`` among the scopes (no refresh token without it), PKCE S256,
refresh tokens that rotate while the old one keeps working, and the device-code grant. There is no RFC 7009
revocation endpoint.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from connectors.base import (AccountIdentity, ApiRequest, ApiResponse, Connector, RateSignal,
                             request_from_url)
from connectors.http import parse_retry_after
from connectors.oauth.provider import OAuthProvider
from domain.errors import IntegrationError, IntegrationFailure

AUTHORITY = "https://login.microsoftonline.com"
DEFAULT_TENANT = "common"


def microsoft_oauth(name: str, scopes: tuple[str, ...]) -> OAuthProvider:
    """The Microsoft identity platform v2 for one service (its scopes), tenant ``{tenant}`` still to fill.

    The URLs keep the ``{tenant}`` placeholder: the user of ``OAUTH`` calls ``for_tenant(t)`` with the configured
    tenant, ``DEFAULT_TENANT`` ("common") when none is configured. ``offline_access`` is always among the default
    scopes (no refresh token without it). Refresh tokens rotate on every use and the old one keeps working
    (entra-docs refresh-tokens); no RFC 7009 endpoint exists, so revocation is "none".

    >>> microsoft_oauth("outlook", ("Mail.Read",)).for_tenant("contoso.com").token_url
    'https://login.microsoftonline.com/contoso.com/oauth2/v2.0/token'
    """
    if "offline_access" not in scopes:
        scopes = (*scopes, "offline_access")
    base = AUTHORITY + "/{tenant}/oauth2/v2.0"
    return OAuthProvider(name, base + "/authorize", base + "/token", device_authorization_url=base + "/devicecode",
                         revocation_url=None, revocation_style="none", default_scopes=scopes,
                         extra_authorize_params={"response_mode": "query"}, client_auth="client_secret_post",
                         pkce=True, rotates_refresh_tokens=True, old_refresh_token_survives_rotation=True,
                         token_response="json")


def graph_error(body: Any) -> tuple[str, str | None, str | None]:
    """``(message, code, inner code)`` from Graph's error envelope; tolerant of anything else.

    >>> graph_error({"error": {"code": "TooManyRequests", "message": "Please retry again later.",
    ...                        "innerError": {"code": "429"}}})
    ('Please retry again later.', 'TooManyRequests', '429')
    """
    err = body.get("error") if isinstance(body, dict) else None
    if not isinstance(err, dict):
        return "no message", None, None
    message = err.get("message") if isinstance(err.get("message"), str) and err["message"] else "no message"
    code = err.get("code") if isinstance(err.get("code"), str) else None
    inner = err.get("innerError") or err.get("innererror")
    inner_code = inner.get("code") if isinstance(inner, dict) and isinstance(inner.get("code"), str) else None
    return message, code, inner_code


class GraphConnector(Connector):
    """Base of the Graph connectors; subclasses set ``descriptor`` (and may refine ``identity_from``)."""

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.credential.bearer}"}

    def _retry_after(self, status: int, headers: Mapping[str, str]) -> float | None:
        if status in (429, 503, 509) or status >= 500:
            return parse_retry_after(headers.get("retry-after"), now=self.clock.time())
        return None

    def rate_signal(self, status: int, headers: Mapping[str, str], body: Any) -> RateSignal:
        # RateLimit-* appear on OneDrive/SharePoint answers past ~80 % of the budget (preview)
        remaining = headers.get("ratelimit-remaining")
        reset = headers.get("ratelimit-reset")
        signal_remaining = int(remaining) if remaining is not None and remaining.strip().isdigit() else None
        reset_at = self.clock.time() + float(reset) if reset is not None and reset.strip().isdigit() else None
        limit = headers.get("ratelimit-limit")
        return RateSignal(limit=int(limit) if limit is not None and limit.strip().isdigit() else None,
                          remaining=signal_remaining, reset_at=reset_at,
                          retry_after=self._retry_after(status, headers))

    def classify(self, status: int, headers: Mapping[str, str], body: Any) -> IntegrationFailure | None:
        message, code, inner = graph_error(body)
        if status in (401, 403):
            return self.failure(IntegrationError.AUTHENTICATION_FAILED,
                                f"{code}: {message}" if code else message, status=status, code=code)
        if status == 429:
            return self.failure(IntegrationError.RATE_LIMIT_EXCEEDED, f"{code or 'TooManyRequests'}: {message}",
                                status=status, code=code or inner, retry_after=self._retry_after(status, headers))
        if status >= 500 or status == 509:
            text = f"{code}: {message}" if code else "server error"
            return self.failure(IntegrationError.SERVICE_UNAVAILABLE, text, status=status, code=code,
                                retry_after=self._retry_after(status, headers))
        return None

    def next_request(self, response: ApiResponse) -> ApiRequest | None:
        body, request = response.body, response.request
        link = body.get("@odata.nextLink") if isinstance(body, dict) else None
        if not isinstance(link, str) or not link:
            return None
        headers = request.headers if request is not None else None
        return request_from_url(link, self.base_url, headers=headers)

    def identity_from(self, body: Any, headers: Mapping[str, str] | None = None) -> AccountIdentity:
        """The user of ``GET /me``: id, displayName, userPrincipalName, mail (may be null)."""
        if not isinstance(body, dict) or not isinstance(body.get("id"), str) or not body["id"]:
            raise self.failure(IntegrationError.INVALID_CONFIGURATION,
                               "the identity endpoint did not return a Microsoft Graph user; check the base URL",
                               status=None)
        return user_identity(body)


def user_identity(user: Mapping[str, Any]) -> AccountIdentity:
    """An AccountIdentity from a Graph user (or identity) object."""
    upn = user.get("userPrincipalName") or user.get("mail") or user.get("email")
    name = user.get("displayName")
    display = f"{upn} ({name})" if upn and name else str(upn or name or user["id"])
    details = {key: user.get(key) for key in ("id", "displayName", "userPrincipalName")}
    details["mail"] = user.get("mail") or user.get("email")
    return AccountIdentity(str(user["id"]), display, details)
