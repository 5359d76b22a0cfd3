"""GitLab REST API v4 connector (shared/reference/apis-storage-dev.md §5).

Dialect: a personal (or project/group) access token in ``PRIVATE-TOKEN: <token>``; an OAuth access token in
``Authorization: Bearer <token>``. Any base URL: ``https://gitlab.com/api/v4`` or a self-managed
``https://HOST/api/v4`` (the OAuth endpoints follow the same host through ``OAUTH.with_auth_base``).
Identity ``GET /user`` (id, username, name, state). Pagination follows ``Link: <...>; rel="next"`` (offset and
keyset alike: keyset links carry the cursor), else the ``x-next-page`` header of offset pages.

Rate-limit signals (on every answer of a throttled instance): ``RateLimit-Limit``, ``-Remaining``,
``-Reset`` (Unix time), ``-Observed``, ``-Name``; a 429 adds ``Retry-After`` (seconds) and ``RateLimit-ResetTime``
and has the plain-text body ``Retry later``. Application limits (issue creation, notes) answer 429 while the
headers still show quota left, so a 429 is always a rate limit whatever the headers say.

Classification (everything else, e.g. 400 validation or 404 ``{"message": "404 Project Not Found"}``, is the
caller's answer)::

    401 {"message": "401 Unauthorized"}                          AUTH_FAILED
    403 {"error": "insufficient_scope", "scope": ...}            AUTH_FAILED (code insufficient_scope)
    403 {"message": "403 Forbidden - ..."}                       AUTH_FAILED
    429 "Retry later"                                            RATE_LIMIT_EXCEEDED  Retry-After, else reset - now,
                                                                                      else 60 s
    5xx (front-end 502/503 pages included)                       SERVICE_UNAVAILABLE

OAuth (reference §5 Auth): Doorkeeper on the instance; access tokens live 2 h; refresh tokens rotate and the old
pair dies at once; PKCE; device grant on ``/oauth/authorize_device`` (17.2+); RFC 7009 revocation.

>>> cred = ApiCredential.from_api_key(ApiKey("glpat-…"))                                   # doctest: +SKIP
>>> gitlab = GitLabConnector(cred, app_id="int_…", base_url="https://git.example.com/api/v4",
...                          transport=HttpTransport())                                      # doctest: +SKIP
>>> (await gitlab.authenticate()).display                                                    # doctest: +SKIP
'ada (Ada Lovelace)'
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from connectors.base import AccountIdentity, ApiRequest, ApiResponse, Connector, RateSignal, request_from_url
from connectors.catalogue import SERVICES
from connectors.http import parse_float, parse_int, parse_link_header, parse_retry_after
from connectors.oauth.provider import OAuthProvider
from domain.errors import IntegrationError, IntegrationFailure
from domain.values import AuthMode

SCOPES = ("api", "read_api", "read_user", "read_repository", "write_repository")

OAUTH = OAuthProvider(
    name="gitlab",
    authorize_url="https://gitlab.com/oauth/authorize",
    token_url="https://gitlab.com/oauth/token",
    device_authorization_url="https://gitlab.com/oauth/authorize_device",
    revocation_url="https://gitlab.com/oauth/revoke",
    revocation_style="rfc7009",
    default_scopes=("api", "read_user"),
    client_auth="client_secret_post",
    pkce=True,
    rotates_refresh_tokens=True,
    old_refresh_token_survives_rotation=False,
    token_response="json",
)

DEFAULT_WAIT = 60.0       # a 429 without Retry-After or reset: GitLab's throttles work per minute


def gitlab_message(body: Any) -> tuple[str, str | None]:
    """``(message, error code)`` from GitLab's bodies: ``{"message": str | {field: [..]}}`` or ``{"error": ...}``.

    >>> gitlab_message({"message": {"title": ["can't be blank"]}})
    ("title can't be blank", None)
    >>> gitlab_message({"error": "insufficient_scope", "error_description": "needs api"})
    ('needs api', 'insufficient_scope')
    >>> gitlab_message("Retry later\\n")
    ('Retry later', None)
    """
    if isinstance(body, str):
        return (body.strip() or "no message"), None
    if not isinstance(body, dict):
        return "no message", None
    message = body.get("message")
    if isinstance(message, dict):
        parts = [f"{field} {'; '.join(map(str, v)) if isinstance(v, list) else v}" for field, v in message.items()]
        return "; ".join(parts) or "no message", None
    error = body.get("error") if isinstance(body.get("error"), str) else None
    if isinstance(message, str) and message:
        return message, error
    description = body.get("error_description")
    return (description if isinstance(description, str) and description else error or "no message"), error


class GitLabConnector(Connector):
    """``GitLabConnector(ApiCredential.from_api_key(ApiKey("glpat-…")), app_id=…, base_url=None, transport=t)``"""

    descriptor = SERVICES["gitlab"]

    def auth_headers(self) -> dict[str, str]:
        credential = self.credential
        if credential.mode is AuthMode.API_KEY:
            return {"PRIVATE-TOKEN": credential.bearer}
        return {"Authorization": f"Bearer {credential.bearer}"}

    def _retry_after(self, status: int, headers: Mapping[str, str]) -> float | None:
        if status in (429, 503):
            return parse_retry_after(headers.get("retry-after"), now=self.clock.time())
        return None

    def rate_signal(self, status: int, headers: Mapping[str, str], body: Any) -> RateSignal:
        return RateSignal(limit=parse_int(headers.get("ratelimit-limit")),
                          remaining=parse_int(headers.get("ratelimit-remaining")),
                          reset_at=parse_float(headers.get("ratelimit-reset")),
                          retry_after=self._retry_after(status, headers),
                          resource=headers.get("ratelimit-name"))

    def classify(self, status: int, headers: Mapping[str, str], body: Any) -> IntegrationFailure | None:
        message, code = gitlab_message(body)
        if status == 401:
            return self.failure(IntegrationError.AUTHENTICATION_FAILED, message, status=status, code=code,
                                show_status="401" not in message)
        if status == 403:
            reason = f"token lacks scope {body.get('scope')}" if code == "insufficient_scope" and \
                isinstance(body, dict) and body.get("scope") else f"forbidden: {message}"
            return self.failure(IntegrationError.AUTHENTICATION_FAILED, reason, status=status, code=code)
        if status == 429:
            wait = self._retry_after(status, headers)
            if wait is None:
                wait = self.until(parse_float(headers.get("ratelimit-reset"))) or DEFAULT_WAIT
            return self.failure(IntegrationError.RATE_LIMIT_EXCEEDED,
                                f"rate limited ({headers.get('ratelimit-name') or 'application limit'}): {message}",
                                status=status, code=headers.get("ratelimit-name"), retry_after=wait)
        if status >= 500:
            reason = message if code or (isinstance(body, dict) and message != "no message") else "server error"
            return self.failure(IntegrationError.SERVICE_UNAVAILABLE, reason, status=status,
                                retry_after=self._retry_after(status, headers))
        return None

    def identity_from(self, body: Any, headers: Mapping[str, str] | None = None) -> AccountIdentity:
        if not isinstance(body, dict) or not isinstance(body.get("username"), str) or "id" not in body:
            raise self.failure(IntegrationError.INVALID_CONFIGURATION,
                               "the identity endpoint did not return a GitLab user; check the base URL "
                               "(https://HOST/api/v4)", status=None)
        details = {key: body.get(key) for key in ("id", "username", "name", "state", "web_url")}
        details["email"] = body.get("email") or body.get("public_email")
        name = body.get("name")
        display = f"{body['username']} ({name})" if isinstance(name, str) and name else body["username"]
        return AccountIdentity(str(body["id"]), display, details)

    def next_request(self, response: ApiResponse) -> ApiRequest | None:
        headers = response.request.headers if response.request is not None else None
        link = parse_link_header(response.headers.get("link")).get("next")
        if link is not None:
            return request_from_url(link, self.base_url, headers=headers)
        next_page = response.headers.get("x-next-page", "").strip()
        if next_page.isdigit() and response.request is not None:
            return response.request.with_params(page=next_page)
        return None
