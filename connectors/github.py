"""GitHub REST API connector (shared/reference/apis-storage-dev.md §4).

Dialect: ``Authorization: Bearer <PAT or OAuth token>``, ``Accept: application/vnd.github+json``,
``X-GitHub-Api-Version: 2022-11-28``; any base URL (GitHub Enterprise Server: ``https://HOST/api/v3``).
Identity ``GET /user`` (login, id, name; scopes from ``X-OAuth-Scopes``). Pagination follows the
``Link: <...>; rel="next"`` header, never built by hand.

Classification (everything else, including 404 and 422, is handed back as a response)::

    401                                           AUTH_FAILED          "GitHub: Bad credentials (401)"
    403/429 with x-ratelimit-remaining: 0         RATE_LIMIT_EXCEEDED  retry_after = Retry-After, else reset - now
    403/429 "secondary rate limit" / other 429    RATE_LIMIT_EXCEEDED  retry_after = Retry-After, else 60 s
    403 otherwise                                 AUTH_FAILED          "GitHub: forbidden: <message> (403)"
    5xx                                           SERVICE_UNAVAILABLE
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from connectors.base import (AccountIdentity, ApiResponse, ApiRequest, Connector, RateSignal,
                             request_from_url)
from connectors.catalogue import SERVICES
from connectors.http import parse_float, parse_int, parse_link_header, parse_retry_after
from connectors.oauth.provider import OAuthProvider
from domain.errors import IntegrationError, IntegrationFailure

# OAuth (reference §4 Auth): GitHub App user tokens expire (8 h) and rotate their refresh token, the old one
# dying at once; the token endpoint answers form-encoded unless asked for JSON; device flow on /login/device/code.
# Revocation is DELETE {api}/applications/{client_id}/token with Basic client auth. Re-rooted at a GitHub
# Enterprise host the API lives under /api/v3, so set the revocation URL's base accordingly (see OAuthProvider).
OAUTH = OAuthProvider(
    name="github",
    authorize_url="https://github.com/login/oauth/authorize",
    token_url="https://github.com/login/oauth/access_token",
    device_authorization_url="https://github.com/login/device/code",
    revocation_url="https://api.github.com/applications/{client_id}/token",
    revocation_style="github",
    default_scopes=("repo", "read:user"),
    client_auth="client_secret_post",
    pkce=True,
    rotates_refresh_tokens=True,
    old_refresh_token_survives_rotation=False,
    token_response="form",
)

SECONDARY_WAIT = 60.0        # the docs: without Retry-After or reset, wait at least a minute
API_VERSION = "2022-11-28"


def _message(body: Any) -> str:
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return body["message"]
    return "no message"


class GitHubConnector(Connector):
    """``GitHubConnector(ApiCredential.from_api_key(ApiKey("ghp_…")), app_id=…, base_url=None, transport=t)``"""

    descriptor = SERVICES["github"]

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.credential.bearer}"}

    def default_headers(self) -> dict[str, str]:
        return {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": API_VERSION}

    def rate_signal(self, status: int, headers: Mapping[str, str], body: Any) -> RateSignal:
        retry_after = None
        if status in (403, 429, 503):
            retry_after = parse_retry_after(headers.get("retry-after"), now=self.clock.time())
        return RateSignal(limit=parse_int(headers.get("x-ratelimit-limit")),
                          remaining=parse_int(headers.get("x-ratelimit-remaining")),
                          reset_at=parse_float(headers.get("x-ratelimit-reset")),
                          retry_after=retry_after, resource=headers.get("x-ratelimit-resource"))

    def classify(self, status: int, headers: Mapping[str, str], body: Any) -> IntegrationFailure | None:
        message = _message(body)
        if status == 401:
            return self.failure(IntegrationError.AUTHENTICATION_FAILED, message, status=status)
        if status in (403, 429):
            limited = self._rate_limited(status, headers, message)
            if limited is not None:
                return limited
            return self.failure(IntegrationError.AUTHENTICATION_FAILED, f"forbidden: {message}", status=status)
        if status >= 500:
            reason = message if message != "no message" else "server error"
            return self.failure(IntegrationError.SERVICE_UNAVAILABLE, reason, status=status)
        return None

    def _rate_limited(self, status: int, headers: Mapping[str, str], message: str) -> IntegrationFailure | None:
        now = self.clock.time()
        retry_after = parse_retry_after(headers.get("retry-after"), now=now)
        exhausted = parse_int(headers.get("x-ratelimit-remaining")) == 0
        secondary = "rate limit" in message.lower()
        if not (exhausted or secondary or status == 429 or retry_after is not None):
            return None
        if retry_after is None and exhausted:
            retry_after = self.until(parse_float(headers.get("x-ratelimit-reset")))
        if retry_after is None:
            retry_after = SECONDARY_WAIT
        kind = "primary rate limit exhausted" if exhausted else message
        return self.failure(IntegrationError.RATE_LIMIT_EXCEEDED, kind, status=status, retry_after=retry_after)

    def identity_from(self, body: Any, headers: Mapping[str, str] | None = None) -> AccountIdentity:
        if not isinstance(body, dict) or not isinstance(body.get("login"), str) or "id" not in body:
            raise self.failure(IntegrationError.INVALID_CONFIGURATION,
                               "the identity endpoint did not return a GitHub user; check the base URL",
                               status=None)
        scopes_header = (headers or {}).get("x-oauth-scopes")
        scopes = [s.strip() for s in scopes_header.split(",") if s.strip()] if scopes_header else []
        details = {"login": body["login"], "id": body["id"], "name": body.get("name"),
                   "type": body.get("type"), "scopes": scopes}
        name = body.get("name")
        display = f"{body['login']} ({name})" if isinstance(name, str) and name else body["login"]
        return AccountIdentity(str(body["id"]), display, details)

    def next_request(self, response: ApiResponse) -> ApiRequest | None:
        link = parse_link_header(response.headers.get("link")).get("next")
        if link is None:
            return None
        headers = response.request.headers if response.request is not None else None
        return request_from_url(link, self.base_url, headers=headers)
