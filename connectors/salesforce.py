"""Salesforce REST API connector (shared/reference/apis-crm.md §1).

Dialect: ``Authorization: Bearer <access token>`` from an OAuth 2.0 grant (authorization code with PKCE);
the API base is the org's ``instance_url`` from the token response (stored as the credential attribute
``instance_url``; it wins over the configured base URL, which defaults to the login host). REST paths are
``/services/data/v59.0/...``; identity ``GET /services/oauth2/userinfo`` (user_id, organization_id,
preferred_username). Query results page by ``nextRecordsUrl`` (a path on the instance) while ``done`` is
false.

Rate limits: a rolling 24-hour org allowance. Every REST answer says ``Sforce-Limit-Info: api-usage=N/M``;
the signal hands the gate ``remaining = M - N`` with a reset time ``ALLOWANCE_RECHECK`` ahead (a rolling
window has no reset moment: calls age out one by one, so the gate holds off and asks again later), and the
gate counts its allowance down per call, so a spent allowance sends nothing more. No 429, no Retry-After.

Classification (error bodies are arrays ``[{"message", "errorCode", "fields"?}]``)::

    401 INVALID_SESSION_ID ("Session expired or invalid")       AUTH_FAILED (the token source refreshes once)
    403 REQUEST_LIMIT_EXCEEDED "TotalRequests ..."              RATE_LIMIT_EXCEEDED  retry_after ALLOWANCE_RECHECK
    403 REQUEST_LIMIT_EXCEEDED "ConcurrentRequests ..."         RATE_LIMIT_EXCEEDED  retry_after CONCURRENT_WAIT
    403 otherwise (INSUFFICIENT_ACCESS, API_DISABLED_FOR_ORG)   AUTH_FAILED
    5xx (UNKNOWN_EXCEPTION, SERVER_UNAVAILABLE)                 SERVICE_UNAVAILABLE
    400, 404, 409, 412 ...                                       handed back (the caller's answer)

>>> cred = ApiCredential.from_tokens("00D…", "5Aep…", instance_url="https://acme.my.salesforce.com")  # doctest: +SKIP
>>> sf = SalesforceConnector(cred, app_id="int_…", base_url=None, transport=HttpTransport())  # doctest: +SKIP
>>> sf.base_url                                                                               # doctest: +SKIP
'https://acme.my.salesforce.com'
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from connectors.base import AccountIdentity, ApiRequest, ApiResponse, Connector, RateSignal, request_from_url
from connectors.catalogue import SERVICES
from connectors.http import normalize_base_url
from connectors.oauth.provider import OAuthProvider
from domain.errors import IntegrationError, IntegrationFailure

API_VERSION = "v59.0"
DATA = f"/services/data/{API_VERSION}"
ALLOWANCE_RECHECK = 900.0     # rolling day: when spent, hold off 15 min, then one call tells the new usage
CONCURRENT_WAIT = 20.0        # long-running calls are those over 20 s: one of them will have ended by then
_USAGE = re.compile(r"api-usage=(\d+)/(\d+)")

SCOPES = {"api": "api", "refresh": "refresh_token", "offline": "offline_access", "openid": "openid"}

# Salesforce's authorization server (reference §1.2): PKCE S256 on the web-server flow; the secret in the body;
# refresh-token rotation is a connected-app setting, so the client stores whatever refresh token comes back and
# treats the old one as dead once rotated; no expires_in (a 401 INVALID_SESSION_ID triggers the refresh).
OAUTH = OAuthProvider(
    name="salesforce",
    authorize_url="https://login.salesforce.com/services/oauth2/authorize",
    token_url="https://login.salesforce.com/services/oauth2/token",
    revocation_url="https://login.salesforce.com/services/oauth2/revoke",
    revocation_style="rfc7009",
    default_scopes=(SCOPES["api"], SCOPES["refresh"]),
    client_auth="client_secret_post",
    pkce=True,
    rotates_refresh_tokens=True,
    old_refresh_token_survives_rotation=False,
    token_response="json",
)


def sf_error(body: Any) -> tuple[str, str | None]:
    """``(message, errorCode)`` of Salesforce's error array (or an OAuth-style object); tolerant.

    >>> sf_error([{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}])
    ('Session expired or invalid', 'INVALID_SESSION_ID')
    >>> sf_error("<html>")
    ('no message', None)
    """
    first = body[0] if isinstance(body, list) and body and isinstance(body[0], dict) else body
    if not isinstance(first, dict):
        return "no message", None
    message = first.get("message") or first.get("error_description")
    code = first.get("errorCode") or first.get("error")
    return (message if isinstance(message, str) else "no message"), (code if isinstance(code, str) else None)


def api_usage(headers: Mapping[str, str]) -> tuple[int, int] | None:
    """``(used, allocation)`` from ``Sforce-Limit-Info``.

    >>> api_usage({"sforce-limit-info": "api-usage=25/15000"})
    (25, 15000)
    """
    match = _USAGE.search(headers.get("sforce-limit-info", ""))
    return (int(match.group(1)), int(match.group(2))) if match else None


class SalesforceConnector(Connector):
    """``SalesforceConnector(ApiCredential.from_tokens(at, rt, instance_url=…), app_id=…, base_url=None, …)``"""

    descriptor = SERVICES["salesforce"]

    @property  # type: ignore[override]
    def base_url(self) -> str:
        """The org's instance (the token response's ``instance_url``) when known, else the configured base."""
        instance = self.credential.attributes.get("instance_url")
        if isinstance(instance, str) and instance:
            return normalize_base_url(instance)
        return self._configured_base

    @base_url.setter
    def base_url(self, value: str) -> None:
        self._configured_base = value

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.credential.bearer}"}

    def rate_signal(self, status: int, headers: Mapping[str, str], body: Any) -> RateSignal:
        now = self.clock.time()
        usage = api_usage(headers)
        message, code = sf_error(body) if status == 403 else ("", None)
        if code == "REQUEST_LIMIT_EXCEEDED":
            wait = CONCURRENT_WAIT if "Concurrent" in message else ALLOWANCE_RECHECK
            return RateSignal(limit=usage[1] if usage else None, remaining=0, retry_after=wait,
                              resource="api-usage")
        if usage is None:
            return RateSignal()
        used, allocation = usage
        return RateSignal(limit=allocation, remaining=max(0, allocation - used), reset_at=now + ALLOWANCE_RECHECK,
                          resource="api-usage")

    def classify(self, status: int, headers: Mapping[str, str], body: Any) -> IntegrationFailure | None:
        message, code = sf_error(body)
        if status == 401:
            return self.failure(IntegrationError.AUTHENTICATION_FAILED, message, status=status, code=code)
        if status == 403 and code == "REQUEST_LIMIT_EXCEEDED":
            wait = CONCURRENT_WAIT if "Concurrent" in message else ALLOWANCE_RECHECK
            return self.failure(IntegrationError.RATE_LIMIT_EXCEEDED, message, status=status, code=code,
                                retry_after=wait)
        if status == 403:
            return self.failure(IntegrationError.AUTHENTICATION_FAILED, f"forbidden: {message}", status=status,
                                code=code)
        if status >= 500:
            reason = message if message != "no message" else "server error"
            return self.failure(IntegrationError.SERVICE_UNAVAILABLE, reason, status=status, code=code)
        return None

    def identity_from(self, body: Any, headers: Mapping[str, str] | None = None) -> AccountIdentity:
        if not isinstance(body, dict) or not isinstance(body.get("user_id"), str) \
                or not isinstance(body.get("organization_id"), str):
            raise self.failure(IntegrationError.INVALID_CONFIGURATION,
                               "the identity endpoint did not return a Salesforce user; check the base URL",
                               status=None)
        details = {key: body.get(key) for key in ("user_id", "organization_id", "preferred_username", "name",
                                                  "email", "zoneinfo", "user_type")}
        details["instance_url"] = self.base_url
        display = body.get("preferred_username") or body.get("name") or body["user_id"]
        return AccountIdentity(f"{body['organization_id']}/{body['user_id']}", str(display), details)

    def next_request(self, response: ApiResponse) -> ApiRequest | None:
        body = response.body
        if not isinstance(body, dict) or body.get("done") is not False:
            return None
        link = body.get("nextRecordsUrl")
        if not isinstance(link, str) or not link:
            return None
        headers = response.request.headers if response.request is not None else None
        return request_from_url(link, self.base_url, headers=headers)
