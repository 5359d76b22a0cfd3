"""Discord REST API v10 connector (shared/reference/apis-messaging.md §6).

Dialect: ``Authorization: Bot <token>`` for a bot token (the API-key mode), ``Bearer <token>`` for an OAuth user
token; ``User-Agent: DiscordBot ($url, $version)`` on every call (others may be blocked by Cloudflare); the
version in the path (``/api/v10``). Identity ``GET /users/@me``. Channel messages page by snowflake: ``before``
(default, newest first) or ``after`` (an incremental walk), ``limit`` at most 100.

Rate limits (the reason for RateSignal.scope): every answer carries its route's bucket —
``X-RateLimit-Bucket`` (opaque id shared by routes), ``-Limit``, ``-Remaining``, ``-Reset`` (epoch) and
``-Reset-After`` (seconds, preferred: no clock skew). Buckets are per top-level resource, so a bucket exhausted
on one channel must not hold back another channel or another route: :meth:`DiscordConnector.rate_scope` names
the route (method + path with its major parameter kept, other ids folded) and the gate keeps one block per
bucket. A 429 carries ``retry_after`` (float seconds) in its JSON body; ``X-RateLimit-Global: true`` (or
``"global": true``) means the bot's global limit (50/s), which holds back every route.

Classification (everything else, e.g. 400 ``50035`` Invalid Form Body or 404 ``10003`` Unknown Channel /
``10008`` Unknown Message, is the caller's answer)::

    401 (code 0 / 40001 Unauthorized)                         AUTH_FAILED
    403 (50001 Missing Access, 50013 Missing Permissions)     AUTH_FAILED (code as provider code); but 50005
                                                               (another user's message) and other refusals of
                                                               one action are the caller's answer
    429 (per-route, shared or global)                          RATE_LIMIT_EXCEEDED, retry_after from the body
    5xx (502: no gateway available, wait and retry)            SERVICE_UNAVAILABLE

OAuth (:data:`OAUTH`): authorization code with PKCE, 7-day access tokens, a new refresh token on every refresh
(whether the old one dies is not documented, so it is treated as dead), RFC 7009 revocation that kills the whole
authorization, a device endpoint (documented for the Social SDK). Bot tokens never expire and have no refresh.

>>> bot = DiscordConnector(ApiCredential.from_api_key(ApiKey("MTE4…")), app_id="int_…", base_url=None,
...                        transport=HttpTransport())                                      # doctest: +SKIP
>>> (await bot.authenticate()).display                                                     # doctest: +SKIP
'integd-bot (bot)'
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from connectors.base import AccountIdentity, ApiRequest, ApiResponse, Connector, RateSignal
from connectors.catalogue import SERVICES
from connectors.http import parse_float, parse_int, parse_retry_after
from connectors.oauth.provider import OAuthProvider
from domain.errors import IntegrationError, IntegrationFailure
from domain.values import AuthMode

SCOPES = ("identify", "guilds", "email", "guilds.members.read", "bot", "applications.commands")

OAUTH = OAuthProvider(
    name="discord",
    authorize_url="https://discord.com/oauth2/authorize",
    token_url="https://discord.com/api/oauth2/token",
    device_authorization_url="https://discord.com/api/v10/oauth2/device/authorize",
    revocation_url="https://discord.com/api/oauth2/token/revoke",
    revocation_style="rfc7009",
    default_scopes=("identify", "guilds"),
    client_auth="client_secret_post",
    pkce=True,
    rotates_refresh_tokens=True,
    old_refresh_token_survives_rotation=False,
    token_response="json",
)

USER_AGENT = "DiscordBot (https://github.com/integd/integd, 0.1)"
MAJOR = frozenset({"channels", "guilds", "webhooks"})
# 403s that refuse one action on one message, not the credential: the caller gets the answer
ACTION_REFUSALS = frozenset({"50005", "50019", "50021"})
_SNOWFLAKE = re.compile(r"^\d{1,20}$")
_MESSAGES = re.compile(r"^/channels/\d{1,20}/messages$")


def discord_error(body: Any) -> tuple[str, str | None]:
    """``(message, code)`` from Discord's error JSON; tolerant of anything else.

    >>> discord_error({"code": 50001, "message": "Missing Access"})
    ('Missing Access', '50001')
    >>> discord_error("<html>502 Bad Gateway</html>")
    ('no message', None)
    """
    if not isinstance(body, dict):
        return "no message", None
    message = body.get("message") if isinstance(body.get("message"), str) else "no message"
    code = body.get("code")
    return message, str(code) if isinstance(code, int) and not isinstance(code, bool) else None


def route_key(method: str, path: str) -> str:
    """The rate-limit route of a call: major parameters kept, other ids (and webhook tokens) folded.

    >>> route_key("GET", "/channels/123/messages/456")
    'GET /channels/123/messages/{id}'
    >>> route_key("POST", "/webhooks/9/s3cr3t-token")
    'POST /webhooks/9/{token}'
    """
    parts = path.strip("/").split("/")
    out = []
    for i, part in enumerate(parts):
        major = i > 0 and parts[i - 1] in MAJOR and i == 1
        if major:
            out.append(part)
        elif i == 2 and parts[0] == "webhooks":
            out.append("{token}")                 # a secret: never part of a key that may be logged
        else:
            out.append("{id}" if _SNOWFLAKE.match(part) else part)
    return f"{method} /" + "/".join(out)


class DiscordConnector(Connector):
    """``DiscordConnector(ApiCredential.from_api_key(ApiKey(bot_token)), app_id=…, base_url=None, transport=t)``
    or with ``ApiCredential.from_tokens(access, refresh)`` for an OAuth user token."""

    descriptor = SERVICES["discord"]

    def auth_headers(self) -> dict[str, str]:
        scheme = "Bot" if self.credential.mode is AuthMode.API_KEY else "Bearer"
        return {"Authorization": f"{scheme} {self.credential.bearer}"}

    def default_headers(self) -> dict[str, str]:
        return {"Accept": "application/json", "User-Agent": USER_AGENT}

    def rate_scope(self, request: ApiRequest) -> str | None:
        return route_key(request.method, request.path)

    def _retry_after(self, status: int, headers: Mapping[str, str], body: Any) -> float | None:
        if status not in (429, 502, 503):
            return None
        value = body.get("retry_after") if isinstance(body, dict) else None
        if isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value < 86400:
            return float(value)
        return parse_retry_after(headers.get("retry-after"), now=self.clock.time())

    @staticmethod
    def _global(status: int, headers: Mapping[str, str], body: Any) -> bool:
        return status == 429 and (headers.get("x-ratelimit-global", "").lower() == "true"
                                  or (isinstance(body, dict) and body.get("global") is True))

    def rate_signal(self, status: int, headers: Mapping[str, str], body: Any) -> RateSignal:
        now = self.clock.time()
        reset_after = parse_float(headers.get("x-ratelimit-reset-after"))
        reset_at = now + reset_after if reset_after is not None else parse_float(headers.get("x-ratelimit-reset"))
        return RateSignal(limit=parse_int(headers.get("x-ratelimit-limit")),
                          remaining=parse_int(headers.get("x-ratelimit-remaining")), reset_at=reset_at,
                          retry_after=self._retry_after(status, headers, body),
                          resource=headers.get("x-ratelimit-bucket"),
                          global_limit=self._global(status, headers, body))

    def classify(self, status: int, headers: Mapping[str, str], body: Any) -> IntegrationFailure | None:
        message, code = discord_error(body)
        if status == 401:
            return self.failure(IntegrationError.AUTHENTICATION_FAILED, message, status=status, code=code)
        if status == 403 and code not in ACTION_REFUSALS:
            return self.failure(IntegrationError.AUTHENTICATION_FAILED, f"forbidden: {message}", status=status,
                                code=code)
        if status == 429:
            scope = "global" if self._global(status, headers, body) else headers.get("x-ratelimit-scope", "user")
            return self.failure(IntegrationError.RATE_LIMIT_EXCEEDED, f"{message} ({scope} limit)", status=status,
                                code=code or scope, retry_after=self._retry_after(status, headers, body))
        if status >= 500:
            reason = message if message != "no message" else "server error"
            return self.failure(IntegrationError.SERVICE_UNAVAILABLE, reason, status=status, code=code,
                                retry_after=self._retry_after(status, headers, body))
        return None

    def identity_from(self, body: Any, headers: Mapping[str, str] | None = None) -> AccountIdentity:
        if not isinstance(body, dict) or not isinstance(body.get("id"), str) or not _SNOWFLAKE.match(body["id"]) \
                or not isinstance(body.get("username"), str):
            raise self.failure(IntegrationError.INVALID_CONFIGURATION,
                               "the identity endpoint did not return a Discord user; check the base URL",
                               status=None)
        bot = body.get("bot") is True
        details = {"id": body["id"], "username": body["username"], "global_name": body.get("global_name"),
                   "bot": bot, "verified": body.get("verified"), "mfa_enabled": body.get("mfa_enabled")}
        display = body["username"] + (" (bot)" if bot else "")
        return AccountIdentity(body["id"], display, details)

    def next_request(self, response: ApiResponse) -> ApiRequest | None:
        request, body = response.request, response.body
        if request is None or request.method != "GET" or not _MESSAGES.match(request.path):
            return None
        params = request.params or {}
        limit = parse_int(str(params.get("limit", "50"))) or 50
        ids = [int(m["id"]) for m in body if isinstance(m, dict) and isinstance(m.get("id"), str)
               and _SNOWFLAKE.match(m["id"])] if isinstance(body, list) else []
        if len(ids) < limit or not ids or "around" in params:
            return None
        rest = {k: v for k, v in params.items() if k not in ("before", "after")}
        if "after" in params:
            return ApiRequest("GET", request.path, {**rest, "after": str(max(ids))}, headers=request.headers)
        return ApiRequest("GET", request.path, {**rest, "before": str(min(ids))}, headers=request.headers)
