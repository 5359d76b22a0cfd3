"""Dropbox API v2 connector (shared/reference/apis-storage-dev.md §2).

Dialect: every route is ``POST`` with a JSON argument body (``/2/<namespace>/<route>``), the answer is JSON.
Three hosts: RPC routes on ``api.dropboxapi.com``; uploads and downloads on ``content.dropboxapi.com`` (the
argument travels as JSON in the ``Dropbox-API-Arg`` header, the body is the file's bytes); the longpoll on
``notify.dropboxapi.com`` **without** the Authorization header. With a non-default base URL (an emulator, a
proxy) every route goes to that one base. Identity ``POST /users/get_current_account`` (no argument).
Pagination: ``has_more`` + ``cursor`` in the body, continued with ``POST /files/list_folder/continue``.

Classification (everything else, e.g. 400 bad input as plain text or 409 route errors such as
``path/not_found/`` and ``reset/``, is the caller's answer)::

    401 invalid_access_token / expired_access_token / missing_scope /      AUTH_FAILED (tag as provider code)
        user_suspended / route_access_denied ...
    403 AccessError                                                         AUTH_FAILED
    429 too_many_requests / too_many_write_operations                       RATE_LIMIT_EXCEEDED, retry_after
                                                                            from the body, else Retry-After
    5xx                                                                     SERVICE_UNAVAILABLE

Rate limits: Dropbox publishes no numbers and sends no remaining/reset headers; its only signal is the 429's
``retry_after``, which the gate honours (nothing is sent to Dropbox until it has passed).

OAuth: PKCE (S256), ``token_access_type=offline`` for a refresh token that never rotates (a refresh answer
has no ``refresh_token``; the original stays valid until revoked). Revocation is the API route
``POST /2/auth/token/revoke`` called with the access token itself (it kills the whole grant), not an RFC 7009
endpoint, so the descriptor says ``revocation_style="none"`` and :meth:`DropboxConnector.revoke` does it.

>>> cred = ApiCredential.from_tokens("sl.u.AbC…", "rt-…", expires_at=1_700_014_400.0)     # doctest: +SKIP
>>> dbx = DropboxConnector(cred, app_id="int_…", base_url=None, transport=HttpTransport())  # doctest: +SKIP
>>> (await dbx.authenticate()).display                                                     # doctest: +SKIP
'Franz Ferdinand (franz@example.com)'
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Mapping
from typing import Any

from connectors.base import AccountIdentity, ApiRequest, ApiResponse, Connector, RateSignal
from connectors.catalogue import SERVICES
from connectors.http import parse_retry_after
from connectors.oauth.provider import OAuthProvider
from domain.errors import IntegrationError, IntegrationFailure

SCOPES = ("account_info.read", "files.metadata.read", "files.content.read", "files.content.write")

OAUTH = OAuthProvider(
    name="dropbox",
    authorize_url="https://www.dropbox.com/oauth2/authorize",
    token_url="https://api.dropboxapi.com/oauth2/token",
    revocation_url=None,
    revocation_style="none",
    default_scopes=SCOPES,
    extra_authorize_params={"token_access_type": "offline"},
    client_auth="client_secret_post",
    pkce=True,
    rotates_refresh_tokens=False,
    token_response="json",
)

API_HOST, CONTENT_HOST, NOTIFY_HOST = "api.dropboxapi.com", "content.dropboxapi.com", "notify.dropboxapi.com"
CONTENT_ROUTES = frozenset({"/files/upload", "/files/download", "/files/upload_session/start",
                            "/files/upload_session/append_v2", "/files/upload_session/finish",
                            "/files/get_thumbnail_v2"})
NOAUTH_ROUTES = frozenset({"/files/list_folder/longpoll"})
LIST_ROUTES = frozenset({"/files/list_folder", "/files/list_folder/continue"})
DEFAULT_RETRY_AFTER = 1.0       # RateLimitError.retry_after defaults to 1 (auth.stone)


def dropbox_error(body: Any) -> tuple[str, str | None]:
    """``(error_summary or text, first .tag)`` from a Dropbox error answer; tolerant of plain text.

    >>> dropbox_error({"error_summary": "path/not_found/..", "error": {".tag": "path", "path": {".tag": "not_found"}}})
    ('path/not_found/..', 'path')
    >>> dropbox_error("Error in call to API function \\"files/list_folder\\": request body: could not decode input")[1]
    """
    if isinstance(body, dict):
        err = body.get("error")
        tag = err.get(".tag") if isinstance(err, dict) else None
        if isinstance(err, dict) and tag is None and isinstance(err.get("reason"), dict):
            tag = err["reason"].get(".tag")          # RateLimitError: {"reason": {".tag": ...}, "retry_after"}
        summary = body.get("error_summary")
        text = summary if isinstance(summary, str) and summary else (tag or "no message")
        return text, tag if isinstance(tag, str) else None
    if isinstance(body, str) and body.strip():
        return body.strip(), None
    return "no message", None


def api_arg(argument: Mapping[str, Any]) -> str:
    """The ``Dropbox-API-Arg`` header value: JSON with every non-ASCII character escaped (HTTP headers).

    >>> api_arg({"path": "/Résumé.txt", "mode": "add"})
    '{"path":"/R\\\\u00e9sum\\\\u00e9.txt","mode":"add"}'
    """
    return json.dumps(argument, separators=(",", ":"), ensure_ascii=True)


class DropboxConnector(Connector):
    """``DropboxConnector(ApiCredential.from_tokens(access, refresh), app_id=…, base_url=None, transport=t)``"""

    descriptor = SERVICES["dropbox"]

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.credential.bearer}"}

    def identity_request(self) -> ApiRequest:
        return ApiRequest("POST", self.descriptor.identity_endpoint)

    def request_url(self, request: ApiRequest) -> str:
        parts = urllib.parse.urlsplit(self.base_url)
        if parts.hostname != API_HOST:
            return self.base_url + request.path        # an emulator or proxy serves every host's routes
        host = CONTENT_HOST if request.path in CONTENT_ROUTES else NOTIFY_HOST if request.path in NOAUTH_ROUTES \
            else API_HOST
        return urllib.parse.urlunsplit((parts.scheme, host, parts.path, "", "")) + request.path

    def sends_credential(self, request: ApiRequest) -> bool:
        return request.path not in NOAUTH_ROUTES

    def _retry_after(self, status: int, headers: Mapping[str, str], body: Any) -> float | None:
        if status not in (429, 503):
            return None
        err = body.get("error") if isinstance(body, dict) else None
        value = err.get("retry_after") if isinstance(err, dict) else None
        if isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value < 86400:
            return float(value)
        header = parse_retry_after(headers.get("retry-after"), now=self.clock.time())
        return header if header is not None else (DEFAULT_RETRY_AFTER if status == 429 else None)

    def rate_signal(self, status: int, headers: Mapping[str, str], body: Any) -> RateSignal:
        return RateSignal(retry_after=self._retry_after(status, headers, body))

    def classify(self, status: int, headers: Mapping[str, str], body: Any) -> IntegrationFailure | None:
        text, tag = dropbox_error(body)
        if status == 401:
            return self.failure(IntegrationError.AUTHENTICATION_FAILED, text, status=status, code=tag)
        if status == 403:
            return self.failure(IntegrationError.AUTHENTICATION_FAILED, f"access denied: {text}", status=status,
                                code=tag)
        if status == 429:
            return self.failure(IntegrationError.RATE_LIMIT_EXCEEDED, text, status=status,
                                code=tag or "too_many_requests",
                                retry_after=self._retry_after(status, headers, body))
        if status >= 500:
            reason = text if text != "no message" else "server error"
            return self.failure(IntegrationError.SERVICE_UNAVAILABLE, reason, status=status, code=tag,
                                retry_after=self._retry_after(status, headers, body))
        return None

    def identity_from(self, body: Any, headers: Mapping[str, str] | None = None) -> AccountIdentity:
        if not isinstance(body, dict) or not isinstance(body.get("account_id"), str) \
                or not body["account_id"].startswith("dbid:"):
            raise self.failure(IntegrationError.INVALID_CONFIGURATION,
                               "the identity endpoint did not return a Dropbox account; check the base URL",
                               status=None)
        name = body.get("name") if isinstance(body.get("name"), dict) else {}
        display_name, email = name.get("display_name"), body.get("email")
        display = f"{display_name} ({email})" if display_name and email else (email or display_name
                                                                               or body["account_id"])
        details = {"account_id": body["account_id"], "email": email, "display_name": display_name,
                   "account_type": (body.get("account_type") or {}).get(".tag")
                   if isinstance(body.get("account_type"), dict) else None,
                   "country": body.get("country"), "disabled": body.get("disabled")}
        return AccountIdentity(body["account_id"], str(display), details)

    def next_request(self, response: ApiResponse) -> ApiRequest | None:
        body, request = response.body, response.request
        if request is None or request.path not in LIST_ROUTES or not isinstance(body, dict):
            return None
        cursor = body.get("cursor")
        if body.get("has_more") is not True or not isinstance(cursor, str) or not cursor:
            return None
        return ApiRequest("POST", "/files/list_folder/continue", json={"cursor": cursor}, headers=request.headers)

    async def revoke(self) -> bool:
        """``POST /2/auth/token/revoke`` with the current access token: the grant (and its refresh token) dies."""
        answer = await self.send_request(ApiRequest("POST", "/auth/token/revoke"), interactive=True)
        return answer.ok

    async def upload(self, path: str, content: bytes, *, mode: str | dict[str, str] = "add",
                     autorename: bool = False, strict_conflict: bool = False) -> ApiResponse:
        """``POST /files/upload`` (content host): ``mode`` "add", "overwrite" or ``{".tag": "update",
        "update": rev}`` (overwrite only if the file is still at ``rev``; else 409 ``path/conflict``)."""
        if not isinstance(content, bytes) or len(content) > 150 * 1024 * 1024:
            raise self.failure(IntegrationError.INVALID_CONFIGURATION,
                               "upload content must be bytes of at most 150 MiB (use an upload session)",
                               status=None)
        arg = {"path": path, "mode": mode, "autorename": autorename, "mute": False,
               "strict_conflict": strict_conflict}
        headers = {"Dropbox-API-Arg": api_arg(arg), "Content-Type": "application/octet-stream"}
        return await self.send_request(ApiRequest("POST", "/files/upload", headers=headers, data=content),
                                       interactive=False)
