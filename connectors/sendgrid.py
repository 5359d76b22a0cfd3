"""SendGrid v3 connector (shared/reference/apis-messaging.md §3).

Dialect: ``Authorization: Bearer SG.…`` (API keys only), base ``https://api.sendgrid.com/v3``. Identity
``GET /scopes`` (the key's permissions); on connect also ``GET /user/profile`` when the key holds
``user.profile.read``. Every answer carries ``X-RateLimit-Limit/-Remaining/-Reset`` (epoch seconds); a
429 has no documented Retry-After, so the wait is until the reset.

Classification (404, 400 validation errors and the like are the caller's answer)::

    401   AUTH_FAILED          "SendGrid: The provided authorization grant is invalid, expired, or revoked (401)"
    403   AUTH_FAILED          "SendGrid: the API key lacks permission for this endpoint: access forbidden (403)"
    429   RATE_LIMIT_EXCEEDED  retry_after = Retry-After, else X-RateLimit-Reset - now
    5xx   SERVICE_UNAVAILABLE

Pagination comes in three styles by endpoint; ``next_request`` tries them in order: a ``_metadata.next``
URL, a ``Link: rel="next"`` header, then ``limit``/``offset`` (a full page means there may be another).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from connectors.base import (AccountIdentity, ApiRequest, ApiResponse, Connector, RateSignal,
                             request_from_url)
from connectors.catalogue import SERVICES
from connectors.http import parse_float, parse_int, parse_link_header, parse_retry_after
from domain.errors import IntegrationError, IntegrationFailure

PROFILE_SCOPE = "user.profile.read"
PROFILE_FIELDS = ("first_name", "last_name", "company", "username", "user_id", "country")


def _message(body: Any) -> str:
    if isinstance(body, dict):
        errors = body.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            message = errors[0].get("message")
            if isinstance(message, str) and message:
                return message
    return "no message"


class SendGridConnector(Connector):
    """``SendGridConnector(ApiCredential.from_api_key(ApiKey("SG.…")), app_id=…, base_url=None, transport=t)``"""

    descriptor = SERVICES["sendgrid"]

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.credential.bearer}"}

    def rate_signal(self, status: int, headers: Mapping[str, str], body: Any) -> RateSignal:
        retry_after = None
        if status in (429, 503):
            retry_after = parse_retry_after(headers.get("retry-after"), now=self.clock.time())
        return RateSignal(limit=parse_int(headers.get("x-ratelimit-limit")),
                          remaining=parse_int(headers.get("x-ratelimit-remaining")),
                          reset_at=parse_float(headers.get("x-ratelimit-reset")), retry_after=retry_after)

    def classify(self, status: int, headers: Mapping[str, str], body: Any) -> IntegrationFailure | None:
        if status == 401:
            return self.failure(IntegrationError.AUTHENTICATION_FAILED, _message(body), status=status)
        if status == 403:
            return self.failure(IntegrationError.AUTHENTICATION_FAILED,
                                f"the API key lacks permission for this endpoint: {_message(body)}", status=status)
        if status == 429:
            retry_after = parse_retry_after(headers.get("retry-after"), now=self.clock.time())
            if retry_after is None:
                retry_after = self.until(parse_float(headers.get("x-ratelimit-reset")))
            return self.failure(IntegrationError.RATE_LIMIT_EXCEEDED, _message(body), status=status,
                                retry_after=retry_after)
        if status >= 500:
            message = _message(body)
            return self.failure(IntegrationError.SERVICE_UNAVAILABLE,
                                message if message != "no message" else "server error", status=status)
        return None

    def _key_id(self) -> str:
        """The non-secret id part of an ``SG.<id>.<secret>`` key; a short digest for other shapes."""
        parts = self.credential.bearer.split(".")
        if len(parts) == 3 and parts[0] == "SG" and parts[1] and parts[2] and parts[1] not in parts[2]:
            return parts[1]
        return hashlib.sha256(self.credential.bearer.encode()).hexdigest()[:12]

    def identity_from(self, body: Any, headers: Mapping[str, str] | None = None) -> AccountIdentity:
        scopes = body.get("scopes") if isinstance(body, dict) else None
        if not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes):
            raise self.failure(IntegrationError.INVALID_CONFIGURATION,
                               "/scopes did not return a SendGrid scope list; check the base URL", status=None)
        key_id = self._key_id()
        return AccountIdentity(f"apikey:{key_id}", f"API key {key_id}", {"scopes": sorted(scopes),
                                                                         "key_id": key_id})

    async def authenticate(self) -> AccountIdentity:
        """The key's scopes, enriched with the account profile when the key may read it."""
        identity = await super().authenticate()
        if PROFILE_SCOPE not in identity.details["scopes"]:
            return identity
        try:
            resp = await self.send_request(ApiRequest("GET", "/user/profile"), interactive=True)
        except IntegrationFailure as exc:
            # the key itself is proven good by /scopes; a failing profile only loses the nicer name
            return AccountIdentity(identity.account_id, identity.display,
                                   {**identity.details, "profile_error": exc.category.value})
        profile = resp.body if resp.ok and isinstance(resp.body, dict) else {}
        details = {**identity.details, **{k: profile[k] for k in PROFILE_FIELDS if k in profile}}
        name = " ".join(str(profile[k]) for k in ("first_name", "last_name") if profile.get(k))
        account_id = f"user:{profile['user_id']}" if "user_id" in profile else identity.account_id
        display = profile.get("username") or name or identity.display
        if profile.get("company"):
            display = f"{display} ({profile['company']})"
        return AccountIdentity(account_id, self.safe(display, 120), details)

    def next_request(self, response: ApiResponse) -> ApiRequest | None:
        body, request = response.body, response.request
        headers = request.headers if request is not None else None
        meta = body.get("_metadata") if isinstance(body, dict) else None
        if isinstance(meta, dict) and isinstance(meta.get("next"), str) and meta["next"]:
            return request_from_url(meta["next"], self.base_url, headers=headers)
        link = parse_link_header(response.headers.get("link")).get("next")
        if link is not None:
            return request_from_url(link, self.base_url, headers=headers)
        return _next_offset(request, body)


def _next_offset(request: ApiRequest | None, body: Any) -> ApiRequest | None:
    """limit/offset paging: a page as long as ``limit`` may have a successor at ``offset + limit``."""
    if request is None or not isinstance(body, list):
        return None
    params = request.params or {}
    try:
        limit = int(params["limit"])  # type: ignore[arg-type]
        offset = int(params.get("offset", 0))  # type: ignore[arg-type]
    except (KeyError, TypeError, ValueError):
        return None
    if limit < 1 or len(body) < limit:
        return None
    return request.with_params(offset=offset + limit)
