"""OAuth 2.0 client protocol without I/O: requests to send are built, responses received are parsed.

Every exchange (code, refresh, device authorization and polling, revocation) is a pure function from inputs to
a :class:`TokenRequest` and from ``(status, headers, body)`` to a result, so it is tested without a network and
any transport can carry it (``connectors.oauth.client`` does, over our HttpTransport). Authlib's pure helpers
supply the random tokens and the S256 challenge; the rest is written out because each provider bends the
standard (GitHub: form-encoded answers and errors with HTTP 200; Slack: the ``{"ok": ...}`` envelope).

Exceptions (all are ``IntegrationFailure``, so the daemon's one error table maps them; none carries a secret)::

    IntegrationFailure
     └── OAuthFailure(error)           the authorization server refused; ``error`` is its (RFC or native) code
          ├── GrantInvalid             invalid_grant & co: the code or refresh token is dead (AUTH_FAILED)
          ├── ClientInvalid            invalid_client & co: our client registration is wrong (CONFIG)
          ├── AuthorizationDenied      access_denied in a redirect or a device poll (AUTH_FAILED)
          ├── DeviceCodeExpired        expired_token while polling (AUTH_FAILED)
          └── TokenEndpointBroken      5xx, undecodable or incomplete answers (SERVICE_UNAVAILABLE, retryable)
    RedirectMismatch(InvalidConfiguration)   a pasted/received redirect: wrong state, no code, tampered

>>> verifier = new_verifier(); len(verifier) >= 43
True
"""

from __future__ import annotations

import base64
import json
import time
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from authlib.common.security import generate_token
from authlib.oauth2.rfc7636 import create_s256_code_challenge

from connectors.oauth.provider import OAuthProvider
from domain.errors import IntegrationError, IntegrationFailure, InvalidConfiguration

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
FORM = "application/x-www-form-urlencoded"
AUTH, CONFIG, DOWN = (IntegrationError.AUTHENTICATION_FAILED, IntegrationError.INVALID_CONFIGURATION,
                      IntegrationError.SERVICE_UNAVAILABLE)
# codes that mean "this grant (code or refresh token) is dead", across dialects
GRANT_ERRORS = frozenset({"invalid_grant", "bad_refresh_token", "invalid_refresh_token", "invalid_code",
                          "bad_verification_code", "invalid_code_verifier", "bad_redirect_uri",
                          "incorrect_device_code", "token_revoked", "token_expired", "redirect_uri_mismatch"})
CLIENT_ERRORS = frozenset({"invalid_client", "incorrect_client_credentials", "invalid_client_id",
                           "bad_client_secret", "unauthorized_client", "unsupported_grant_type",
                           "invalid_grant_type", "device_flow_disabled", "pkce_not_allowed", "invalid_scope",
                           "oauth_authorization_url_mismatch"})
_SAFE_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-:")


class OAuthFailure(IntegrationFailure):
    """The authorization server refused; ``error`` is its code (already safe: a short token of letters)."""

    def __init__(self, category: IntegrationError, message: str, *, error: str, status: int | None = None) -> None:
        super().__init__(category, message, status=status, provider_code=error)
        self.error = error


class GrantInvalid(OAuthFailure):
    pass


class ClientInvalid(OAuthFailure):
    pass


class AuthorizationDenied(OAuthFailure):
    pass


class DeviceCodeExpired(OAuthFailure):
    pass


class TokenEndpointBroken(OAuthFailure):
    pass


class RedirectMismatch(InvalidConfiguration):
    """The redirect given to complete a flow is not the one the flow expects."""


@dataclass(frozen=True)
class ClientCredentials:
    """Our registration at the provider. ``secret`` None: a public client (PKCE only)."""

    client_id: str
    secret: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class TokenRequest:
    """One HTTP request to make: ``transport.send(method, url, headers=headers, data=body)``."""

    method: str
    url: str
    headers: Mapping[str, str]
    body: bytes | None = field(default=None, repr=False)


@dataclass(frozen=True)
class TokenSet:
    """What a token endpoint granted; ``expires_at`` is epoch seconds (None: the token does not expire)."""

    access_token: str = field(repr=False)
    refresh_token: str | None = field(default=None, repr=False)
    expires_at: float | None = None
    scopes: tuple[str, ...] = ()
    token_type: str = "bearer"
    extra: Mapping[str, Any] = field(default_factory=dict)   # non-secret details (Slack team, bot user)


def new_verifier() -> str:
    """A PKCE code_verifier: 64 characters of [A-Za-z0-9] (RFC 7636 allows 43-128)."""
    return generate_token(64)


def new_state() -> str:
    return generate_token(32)


def challenge(verifier: str) -> str:
    """S256(verifier); RFC 7636 Appendix B's vector holds (tests)."""
    return create_s256_code_challenge(verifier)


def authorization_url(provider: OAuthProvider, client_id: str, redirect_uri: str, scopes: tuple[str, ...],
                      state: str, verifier: str | None) -> str:
    """The URL the person opens: response_type=code, state, PKCE S256 when the provider takes it."""
    params = {"client_id": client_id, "redirect_uri": redirect_uri, "response_type": "code", "state": state}
    if scopes:
        params[provider.scope_param] = provider.join_scopes(scopes)
    if provider.pkce and verifier:
        params.update(code_challenge=challenge(verifier), code_challenge_method="S256")
    params.update(provider.extra_authorize_params)
    split = urllib.parse.urlsplit(provider.authorize_url)
    query = (split.query + "&" if split.query else "") + urllib.parse.urlencode(params)
    return urllib.parse.urlunsplit((split.scheme, split.netloc, split.path, query, ""))


def code_from_redirect(pasted: str, expected_state: str, redirect_uri: str | None = None) -> str:
    """The authorization code from a redirect URL (state checked) or a bare pasted code.

    A redirect carrying ``error`` raises AuthorizationDenied (access_denied) or OAuthFailure; a state that is
    missing or differs, or a URL leading elsewhere than ``redirect_uri`` (scheme, host, path), raises
    RedirectMismatch. A bare code cannot carry the state: the flow id that the caller names binds it instead.
    """
    text = pasted.strip() if isinstance(pasted, str) else ""
    if not text or len(text) > 4096:
        raise RedirectMismatch("paste the whole redirect URL (or the bare code), 1-4096 characters",
                               field="redirect_url")
    if "://" not in text and "?" not in text and "=" not in text:
        if not set(text) <= _SAFE_CHARS | set("~/+="):
            raise RedirectMismatch("a bare code must be printable without spaces", field="code")
        return text
    split = urllib.parse.urlsplit(text if "://" in text else "http://x/?" + text.lstrip("?"))
    if redirect_uri is not None and "://" in text:
        want = urllib.parse.urlsplit(redirect_uri)
        if (split.scheme, split.hostname, split.path) != (want.scheme, want.hostname, want.path):
            raise RedirectMismatch("the URL is not this flow's redirect URI", field="redirect_url")
    query = dict(urllib.parse.parse_qsl(split.query, keep_blank_values=True))
    if "error" in query:
        raise _redirect_error(query["error"], query.get("error_description", ""))
    if query.get("state") != expected_state:
        raise RedirectMismatch("state does not match this flow (a stale, reused or tampered redirect)",
                               field="state")
    code = query.get("code")
    if not code:
        raise RedirectMismatch("the redirect carries no code", field="redirect_url")
    return code


def _redirect_error(error: str, description: str) -> OAuthFailure:
    code = _safe_code(error)
    if code == "access_denied":
        return AuthorizationDenied(AUTH, "authorization was refused at the provider (access_denied)",
                                   error=code)
    text = _safe_text(description)
    return OAuthFailure(CONFIG, f"the provider's authorization page answered {code}" + (f": {text}" if text else ""),
                        error=code)


def _client_auth(provider: OAuthProvider, client: ClientCredentials, form: dict[str, str],
                 headers: dict[str, str]) -> None:
    if client.secret is None or provider.client_auth == "none":
        form["client_id"] = client.client_id
    elif provider.client_auth == "client_secret_basic":
        # RFC 6749 §2.3.1: each part form-urlencoded before base64 (authlib's ClientAuth skips this)
        pair = f"{urllib.parse.quote_plus(client.client_id)}:{urllib.parse.quote_plus(client.secret)}"
        headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
    else:
        form.update(client_id=client.client_id, client_secret=client.secret)


def token_request(provider: OAuthProvider, client: ClientCredentials, grant: dict[str, str], *,
                  public: bool = False) -> TokenRequest:
    """A POST to the token endpoint with ``grant``'s fields and the client's authentication."""
    form = {k: v for k, v in grant.items() if v}
    headers = {"Content-Type": FORM, "Accept": "application/json"}
    _client_auth(provider, ClientCredentials(client.client_id, None) if public else client, form, headers)
    return TokenRequest("POST", provider.token_url, headers, urllib.parse.urlencode(form).encode())


def code_request(provider: OAuthProvider, client: ClientCredentials, code: str, redirect_uri: str,
                 verifier: str | None) -> TokenRequest:
    return token_request(provider, client, {"grant_type": "authorization_code", "code": code,
                                            "redirect_uri": redirect_uri, "code_verifier": verifier or ""})


def refresh_request(provider: OAuthProvider, client: ClientCredentials, refresh_token: str) -> TokenRequest:
    return token_request(provider, client, {"grant_type": "refresh_token", "refresh_token": refresh_token})


def device_request(provider: OAuthProvider, client: ClientCredentials, scopes: tuple[str, ...]) -> TokenRequest:
    if provider.device_authorization_url is None:
        raise InvalidConfiguration(f"{provider.name} has no device authorization grant; use loopback or paste",
                                   field="flow")
    form = {"client_id": client.client_id}
    if scopes:
        form["scope"] = provider.join_scopes(scopes)
    return TokenRequest("POST", provider.device_authorization_url, {"Content-Type": FORM,
                                                                    "Accept": "application/json"},
                        urllib.parse.urlencode(form).encode())


def device_poll_request(provider: OAuthProvider, client: ClientCredentials, device_code: str) -> TokenRequest:
    # RFC 8628 §3.4: client_id (GitHub: no secret); a confidential client still authenticates
    return token_request(provider, client, {"grant_type": DEVICE_GRANT, "device_code": device_code},
                         public=provider.name == "github")


def revocation_request(provider: OAuthProvider, client: ClientCredentials, token: str,
                       hint: Literal["access_token", "refresh_token"]) -> TokenRequest | None:
    """The request revoking ``token`` in the provider's style, or None if it offers no revocation."""
    url = provider.revocation_endpoint(client.client_id)
    if url is None:
        return None
    if provider.revocation_style == "github":
        pair = f"{client.client_id}:{client.secret or ''}"
        headers = {"Authorization": "Basic " + base64.b64encode(pair.encode()).decode(),
                   "Content-Type": "application/json", "Accept": "application/vnd.github+json"}
        return TokenRequest("DELETE", url, headers, json.dumps({"access_token": token}).encode())
    if provider.revocation_style == "slack":
        return TokenRequest("POST", url, {"Authorization": f"Bearer {token}", "Content-Type": FORM}, b"")
    if provider.revocation_style == "hubspot":
        # DELETE .../refresh-tokens/{token}: only a refresh token can be revoked (its access tokens live on)
        if hint != "refresh_token":
            return None
        return TokenRequest("DELETE", url.replace("{token}", urllib.parse.quote(token, safe="")), {}, None)
    form = {"token": token, "token_type_hint": hint}
    headers = {"Content-Type": FORM}
    _client_auth(provider, client, form, headers)
    return TokenRequest("POST", url, headers, urllib.parse.urlencode(form).encode())


def revocation_ok(provider: OAuthProvider, status: int, body: bytes) -> bool:
    """RFC 7009: 200 is done (even for an unknown token); GitHub and HubSpot 204; Slack ``{"ok": true}``."""
    if provider.revocation_style == "slack":
        parsed = _json(body)
        return status == 200 and isinstance(parsed, dict) and parsed.get("ok") is True
    return status in (200, 204)


# ---- parsing answers ------------------------------------------------------------------------------------
def _json(body: bytes) -> Any:
    try:
        return json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None


def _safe_code(value: Any) -> str:
    text = str(value)[:60]
    return text if text and set(text) <= _SAFE_CHARS else "unknown_error"


def _safe_text(value: Any) -> str:
    return "".join(c for c in str(value)[:200] if c.isprintable())


def _fields(provider: OAuthProvider, status: int, headers: Mapping[str, str], body: bytes) -> dict[str, Any]:
    ctype = headers.get("content-type", "")
    parsed: Any = None
    if "json" in ctype or body.lstrip()[:1] == b"{":
        parsed = _json(body)
    elif FORM in ctype or (provider.token_response == "form" and b"=" in body and b"<" not in body):
        try:
            parsed = dict(urllib.parse.parse_qsl(body.decode("utf-8"), keep_blank_values=True))
        except UnicodeDecodeError:
            parsed = None
    if not isinstance(parsed, dict):
        raise TokenEndpointBroken(DOWN, f"{provider.name}: the token endpoint's answer is not a token response "
                                        f"({status})", error="unparseable", status=status)
    if provider.token_response == "slack" and parsed.get("ok") is False and "error" not in parsed:
        parsed["error"] = "unknown_error"
    return parsed


def oauth_error(provider: OAuthProvider, fields: Mapping[str, Any], status: int) -> OAuthFailure:
    """The typed failure for an error answer (RFC 6749 §5.2 or the provider's dialect)."""
    code = _safe_code(fields.get("error"))
    text = _safe_text(fields.get("error_description") or "")
    message = f"{provider.name}: token endpoint refused ({code})" + (f": {text}" if text else "")
    if code in GRANT_ERRORS:
        return GrantInvalid(AUTH, message, error=code, status=status)
    if code in CLIENT_ERRORS:
        return ClientInvalid(CONFIG, message + "; check the client registration", error=code, status=status)
    if code == "access_denied":
        return AuthorizationDenied(AUTH, message, error=code, status=status)
    if code == "expired_token":
        return DeviceCodeExpired(AUTH, message, error=code, status=status)
    category = DOWN if status >= 500 or code in ("temporarily_unavailable", "server_error") else CONFIG
    return OAuthFailure(category, message, error=code, status=status)


def parse_token_response(provider: OAuthProvider, status: int, headers: Mapping[str, str], body: bytes,
                         *, now: float | None = None) -> TokenSet:
    """A TokenSet from a token endpoint answer, or the typed failure (module docstring)."""
    if status >= 500:
        raise TokenEndpointBroken(DOWN, f"{provider.name}: token endpoint unavailable ({status})",
                                  error="server_error", status=status)
    fields = _fields(provider, status, headers, body)
    if "error" in fields or status >= 400:
        raise oauth_error(provider, fields, status)
    access = fields.get("access_token")
    if not isinstance(access, str) or not access or len(access) > 4096:
        raise TokenEndpointBroken(DOWN, f"{provider.name}: the token response has no access_token ({status})",
                                  error="no_access_token", status=status)
    refresh = fields.get("refresh_token")
    expires_in = fields.get("expires_in")
    try:
        lifetime = float(expires_in) if expires_in not in (None, "", 0, "0") else None
    except (TypeError, ValueError):
        lifetime = None
    moment = time.time() if now is None else now
    scope = fields.get("scope") or ""
    scopes = tuple(s for s in str(scope).replace(",", " ").split() if s)
    # non-secret details; Salesforce's instance_url (the API base of the org) and identity URL among them,
    # Pipedrive's api_domain (the company host the API is called on)
    extra = {k: fields[k] for k in ("team", "bot_user_id", "app_id", "enterprise", "instance_url", "id",
                                    "api_domain") if k in fields}
    return TokenSet(access, refresh if isinstance(refresh, str) and refresh else None,
                    moment + lifetime if lifetime else None, scopes, str(fields.get("token_type") or "bearer"),
                    extra)


@dataclass(frozen=True)
class DeviceAuthorization:
    """RFC 8628 §3.2: what to show the person, and how to poll."""

    device_code: str = field(repr=False)
    user_code: str
    verification_uri: str
    verification_uri_complete: str | None
    expires_at: float
    interval: float


def parse_device_response(provider: OAuthProvider, status: int, headers: Mapping[str, str], body: bytes, *,
                          now: float) -> DeviceAuthorization:
    if status >= 500:
        raise TokenEndpointBroken(DOWN, f"{provider.name}: device endpoint unavailable ({status})",
                                  error="server_error", status=status)
    fields = _fields(provider, status, headers, body)
    if "error" in fields or status >= 400:
        raise oauth_error(provider, fields, status)
    try:
        device_code, user_code = str(fields["device_code"]), str(fields["user_code"])
        uri = str(fields.get("verification_uri") or fields["verification_url"])   # Google spells it _url
        expires_in = float(fields["expires_in"])
        interval = float(fields.get("interval", 5))       # RFC 8628: 5 when absent
    except (KeyError, TypeError, ValueError):
        raise TokenEndpointBroken(DOWN, f"{provider.name}: incomplete device authorization response",
                                  error="incomplete", status=status) from None
    return DeviceAuthorization(device_code, user_code, uri, fields.get("verification_uri_complete"),
                               now + expires_in, max(0.0, interval))


@dataclass
class DevicePoller:
    """RFC 8628 §3.5 polling as a state machine: ``request()``, wait ``interval``, ``receive(...)``.

    ``receive`` returns a TokenSet when granted and None to keep polling (authorization_pending; slow_down also
    adds 5 seconds to the interval, or takes the server's new interval if it says one); access_denied and
    expired_token raise; so does a poll past ``expires_at``.

    >>> # poller = DevicePoller(provider, client, auth); while (t := poller.receive(*send(poller.request()))) is None: ...
    """

    provider: OAuthProvider
    client: ClientCredentials
    authorization: DeviceAuthorization
    interval: float = -1.0

    def __post_init__(self) -> None:
        if self.interval < 0:
            self.interval = self.authorization.interval

    def request(self) -> TokenRequest:
        return device_poll_request(self.provider, self.client, self.authorization.device_code)

    def receive(self, status: int, headers: Mapping[str, str], body: bytes, *, now: float) -> TokenSet | None:
        try:
            return parse_token_response(self.provider, status, headers, body, now=now)
        except OAuthFailure as failure:
            if failure.error == "authorization_pending":
                return self._still_pending(now)
            if failure.error == "slow_down":
                fields = _json(body) if body.lstrip()[:1] == b"{" else None
                given = fields.get("interval") if isinstance(fields, dict) else None
                self.interval = float(given) if isinstance(given, (int, float)) and given > self.interval \
                    else self.interval + 5
                return self._still_pending(now)
            raise

    def _still_pending(self, now: float) -> None:
        if now >= self.authorization.expires_at:
            raise DeviceCodeExpired(AUTH, f"{self.provider.name}: the device code expired before approval",
                                    error="expired_token")
        return None
