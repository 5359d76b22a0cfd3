"""Slack Web API connector (shared/reference/apis-messaging.md §4).

Dialect: methods are ``{base}/<method.name>`` (base ``https://slack.com/api``), a bot token as
``Authorization: Bearer xoxb-…``. Identity ``POST /auth.test`` (team, user, bot_id; scopes from the
``x-oauth-scopes`` header). Most errors arrive as HTTP 200 with ``{"ok": false, "error": "<code>"}``, so
classification reads the body. Pagination: ``cursor`` from ``response_metadata.next_cursor``.

Classification (anything else, e.g. channel_not_found or invalid_cursor, is the caller's answer)::

    not_authed invalid_auth token_revoked token_expired account_inactive
    missing_scope not_allowed_token_type invalid_refresh_token           AUTH_FAILED
    HTTP 429 / ratelimited / rate_limited                              RATE_LIMIT_EXCEEDED (Retry-After)
    service_unavailable internal_error fatal_error request_timeout
    team_added_to_org / HTTP 5xx                                       SERVICE_UNAVAILABLE

Limits are per method and workspace (tiers 1-4); the catalogue's default is Tier 3.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from connectors.base import AccountIdentity, ApiRequest, ApiResponse, Connector, RateSignal
from connectors.catalogue import SERVICES
from connectors.http import parse_retry_after
from connectors.oauth.provider import OAuthProvider
from domain.errors import IntegrationError, IntegrationFailure

# OAuth v2 (reference §4 Auth): comma-separated scopes, oauth.v2.access for code and refresh, answers in the
# {"ok": ...} envelope; token rotation is opt-in per Slack app and, when on, the old refresh token is revoked as
# the new one is issued. Revocation is auth.revoke with the token itself. No device grant.
OAUTH = OAuthProvider(
    name="slack",
    authorize_url="https://slack.com/oauth/v2/authorize",
    token_url="https://slack.com/api/oauth.v2.access",
    revocation_url="https://slack.com/api/auth.revoke",
    revocation_style="slack",
    default_scopes=("channels:read", "channels:history", "users:read", "chat:write"),
    scope_separator=",",
    client_auth="client_secret_basic",
    pkce=True,
    rotates_refresh_tokens=True,
    old_refresh_token_survives_rotation=False,
    token_response="slack",
)

AUTH_ERRORS = {
    "not_authed": "no token was sent",
    "invalid_auth": "the token is not valid",
    "token_revoked": "the token has been revoked",
    "token_expired": "the token has expired",
    "account_inactive": "the user or workspace is deactivated",
    "missing_scope": "the token lacks a scope this method needs",
    "not_allowed_token_type": "this token type may not call this method",
    "invalid_refresh_token": "the refresh token is not valid",
}
SERVICE_ERRORS = {
    "service_unavailable": "the service is temporarily unavailable",
    "internal_error": "internal error",
    "fatal_error": "fatal error",
    "request_timeout": "the request timed out at Slack",
    "team_added_to_org": "the workspace is being migrated",
}
RATE_ERRORS = frozenset({"ratelimited", "rate_limited"})


def _error_code(body: Any) -> str | None:
    if isinstance(body, dict) and body.get("ok") is False:
        code = body.get("error")
        return code if isinstance(code, str) else "unknown_error"
    return None


class SlackConnector(Connector):
    """``SlackConnector(ApiCredential.from_api_key(ApiKey("xoxb-…")), app_id=…, base_url=None, transport=t)``"""

    descriptor = SERVICES["slack"]

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.credential.bearer}"}

    def identity_request(self) -> ApiRequest:
        return ApiRequest("POST", self.descriptor.identity_endpoint)

    def rate_signal(self, status: int, headers: Mapping[str, str], body: Any) -> RateSignal:
        if status == 429 or _error_code(body) in RATE_ERRORS:
            return RateSignal(retry_after=parse_retry_after(headers.get("retry-after"), now=self.clock.time()))
        return RateSignal()

    def classify(self, status: int, headers: Mapping[str, str], body: Any) -> IntegrationFailure | None:
        code = _error_code(body)
        if code in AUTH_ERRORS:
            return self._fail(IntegrationError.AUTHENTICATION_FAILED, code, AUTH_ERRORS[code], status)
        if status == 429 or code in RATE_ERRORS:
            retry_after = parse_retry_after(headers.get("retry-after"), now=self.clock.time())
            return self.failure(IntegrationError.RATE_LIMIT_EXCEEDED, f"{code or 'ratelimited'}: rate limited",
                                status=status, code=code or "ratelimited", retry_after=retry_after)
        if code in SERVICE_ERRORS:
            return self._fail(IntegrationError.SERVICE_UNAVAILABLE, code, SERVICE_ERRORS[code], status)
        if status >= 500:
            return self.failure(IntegrationError.SERVICE_UNAVAILABLE, "server error", status=status, code=code)
        return None

    def _fail(self, category: IntegrationError, code: str, reason: str, status: int) -> IntegrationFailure:
        # HTTP 200 is the normal carrier of Slack's errors: the status adds nothing to the message
        return self.failure(category, f"{code} ({reason})", status=status, code=code, show_status=status != 200)

    def identity_from(self, body: Any, headers: Mapping[str, str] | None = None) -> AccountIdentity:
        if not isinstance(body, dict) or body.get("ok") is not True or not body.get("team_id") \
                or not body.get("user_id"):
            code = _error_code(body)
            reason = f"answered {code}" if code else "did not return a Slack identity"
            raise self.failure(IntegrationError.INVALID_CONFIGURATION,
                               f"auth.test {reason}; check the base URL", status=None, code=code)
        scopes_header = (headers or {}).get("x-oauth-scopes")
        scopes = [s.strip() for s in scopes_header.split(",") if s.strip()] if scopes_header else []
        details = {key: body.get(key) for key in ("team", "team_id", "user", "user_id", "bot_id", "url")}
        details["scopes"] = scopes
        display = f"{body.get('user') or body['user_id']} @ {body.get('team') or body['team_id']}"
        return AccountIdentity(f"{body['team_id']}:{body['user_id']}", display, details)

    def next_request(self, response: ApiResponse) -> ApiRequest | None:
        body, request = response.body, response.request
        meta = body.get("response_metadata") if isinstance(body, dict) else None
        cursor = meta.get("next_cursor") if isinstance(meta, dict) else None
        if not isinstance(cursor, str) or not cursor or request is None:
            return None
        if isinstance(request.json, dict):
            return ApiRequest(request.method, request.path, request.params, {**request.json, "cursor": cursor},
                              request.headers)
        return request.with_params(cursor=cursor)
