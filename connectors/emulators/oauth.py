"""A standards-conformant OAuth 2.0 authorization server that any emulator mounts (RFC 6749, 7636, 8628, 7009).

``AuthorizationServer(emu, OAuthServerOptions(...), dialect=...)`` adds its routes to the emulator's app
(through ``Emulator.mount``) at configurable paths, so each emulator mimics its provider's URL shapes:

    GET  {authorize}     client_id, redirect_uri (exact match against the registered ones; a loopback IP
                         redirect matches on any port, RFC 8252 §7.3), response_type=code, state echoed,
                         PKCE S256 (required when configured). Auto-approves as ``options.user`` and 302s to
                         the redirect with code and state; ``options.deny`` redirects with error=access_denied.
    POST {token}         authorization_code (single-use codes, 10 min, redirect_uri and code_verifier checked),
                         refresh_token (rotation and old-token survival configurable), device_code grant
                         (authorization_pending, slow_down with interval +5 s, expired_token, access_denied).
                         Client auth by HTTP Basic (parts form-urlencoded, §2.3.1) or body, never both.
    POST {device}        RFC 8628 device authorization.
    POST|DELETE {revoke} RFC 7009 (200 even for unknown tokens) or the provider's shape (dialect).
    POST /_emulator/oauth/approve {"user_code", "deny"?}   the person at the browser, for tests
    GET  /_emulator/oauth/state                              counters and knobs, never a token

Issued access tokens become API tokens of the emulator (``emu.add_token(subject=..., expires_at=...)``), so
an expired one gets the provider's own 401. Knobs (``options``, assignable at run time): token endpoint
``token_fault`` = "error_500" | "garbage" | "hang"; access token lifetime; rotation. ``token_requests`` counts
every request that reached the token endpoint (the single-flight proof reads it).

Errors: token endpoint errors follow RFC 6749 §5.2 (``{"error", "error_description"}``, 400, 401 for a failed
Basic client auth) unless the dialect answers in the provider's own shape (GitHub: HTTP 200 and form-encoded
unless ``Accept: application/json``; Slack: ``{"ok": false, "error": "<slack code>"}``). Inside the module,
``Refusal`` carries the RFC code, a description and the provider's own code.

Trust model: a test double. Tokens live in memory; the state endpoint reports counts only.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import secrets
import urllib.parse
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from .base import CONTROL_PREFIX, BodyTooLarge, json_response, read_body

if TYPE_CHECKING:
    from .base import Emulator

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
CODE_LIFETIME = 600.0
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "[::1]", "::1"})


class OAuthServerOptions(BaseModel):
    """Paths and behaviour; assignments are validated (``server.options.rotate_refresh_tokens = True``)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    authorize_path: str = "/authorize"
    token_path: str = "/token"
    device_path: str | None = None                    # None: no device grant
    revoke_path: str | None = "/revoke"
    revoke_method: Literal["POST", "DELETE"] = "POST"
    verification_uri: str = "https://example.com/device"
    pkce_required: bool = False
    access_token_lifetime: float | None = Field(3600.0, gt=0)   # None: tokens never expire
    issue_refresh_token: bool = True
    rotate_refresh_tokens: bool = False
    old_refresh_token_survives_rotation: bool = True
    device_interval: int = Field(5, ge=0, le=60)
    device_expires_in: int = Field(900, ge=1)
    access_prefix: str = "at_"
    refresh_prefix: str = "rt_"
    user: str = "oauth-test-user"
    deny: bool = False
    token_fault: Literal["none", "error_500", "garbage", "hang"] = "none"


class Refusal(Exception):
    """A token/device/revoke endpoint error: RFC 6749 code, description, the provider's own code if any."""

    def __init__(self, error: str, description: str, *, native: str | None = None, status: int = 400) -> None:
        super().__init__(description)
        self.error, self.description, self.native, self.status = error, description, native, status


@dataclass
class Client:
    client_id: str
    secret: str | None              # None: a public client (PKCE, no secret)
    redirect_uris: tuple[str, ...]


@dataclass
class Code:
    client_id: str
    redirect_uri: str
    scopes: tuple[str, ...]
    challenge: str | None
    issued_at: float
    used: bool = False


@dataclass
class Grant:
    client_id: str
    scopes: tuple[str, ...]
    subject: str
    via_device: bool = False
    refresh_tokens: set[str] = field(default_factory=set)
    access_tokens: set[str] = field(default_factory=set)


@dataclass
class DeviceCode:
    client_id: str
    scopes: tuple[str, ...]
    user_code: str
    expires_at: float
    interval: int
    last_poll: float | None = None
    decision: Literal["pending", "approved", "denied"] = "pending"


def s256(verifier: str) -> str:
    """RFC 7636 S256: BASE64URL(SHA256(verifier)) without padding."""
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode("ascii")).digest()).rstrip(b"=").decode()


def redirect_matches(registered: str, given: str) -> bool:
    """Exact match, except that a loopback IP redirect matches on any port (RFC 8252 §7.3)."""
    if registered == given:
        return True
    r, g = urllib.parse.urlsplit(registered), urllib.parse.urlsplit(given)
    if r.scheme != "http" or g.scheme != "http" or r.hostname is None or g.hostname is None:
        return False
    host_r = f"[{r.hostname}]" if ":" in r.hostname else r.hostname
    host_g = f"[{g.hostname}]" if ":" in g.hostname else g.hostname
    return (host_r in LOOPBACK_HOSTS and host_r == host_g and r.path == g.path and r.query == g.query)


class Dialect:
    """RFC 6749 answers; providers override for their shapes."""

    def token_ok(self, request: web.Request, body: dict[str, Any]) -> web.Response:
        return json_response(body, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})

    def token_error(self, request: web.Request, refusal: Refusal) -> web.Response:
        headers = {"Cache-Control": "no-store"}
        if refusal.status == 401:
            headers["WWW-Authenticate"] = 'Basic realm="oauth"'
        return json_response({"error": refusal.error, "error_description": refusal.description},
                             refusal.status, headers)

    def revoked(self, request: web.Request) -> web.Response:
        return web.Response(status=200)

    def revoke_error(self, request: web.Request, refusal: Refusal) -> web.Response:
        return self.token_error(request, refusal)

    async def revocation_token(self, server: AuthorizationServer, request: web.Request) -> str | None:
        """RFC 7009: client auth, then ``token`` from the form."""
        form = await server.form(request)
        server.client(request, form)
        if "token" not in form:
            raise Refusal("invalid_request", "token is required")
        return form["token"]


class GitHubDialect(Dialect):
    """GitHub: errors with HTTP 200; form-encoded unless the client asks for JSON; its own error codes."""

    _CODES = {"invalid_refresh_token": "bad_refresh_token", "invalid_code": "bad_verification_code",
              "bad_client_secret": "incorrect_client_credentials", "invalid_client_id": "incorrect_client_credentials",
              "bad_redirect_uri": "redirect_uri_mismatch"}

    @staticmethod
    def _wants_json(request: web.Request) -> bool:
        return "application/json" in request.headers.get("Accept", "")

    def _answer(self, request: web.Request, body: dict[str, Any]) -> web.Response:
        if self._wants_json(request):
            return json_response(body)
        text = urllib.parse.urlencode({k: v for k, v in body.items() if v is not None})
        return web.Response(text=text, content_type="application/x-www-form-urlencoded")

    def token_ok(self, request: web.Request, body: dict[str, Any]) -> web.Response:
        return self._answer(request, body)

    def token_error(self, request: web.Request, refusal: Refusal) -> web.Response:
        code = self._CODES.get(refusal.native or "", refusal.native or refusal.error)
        return self._answer(request, {"error": code, "error_description": refusal.description})

    def revoked(self, request: web.Request) -> web.Response:
        return web.Response(status=204)

    def revoke_error(self, request: web.Request, refusal: Refusal) -> web.Response:
        """The REST API's shape, not the token endpoint's: 401 Bad credentials, 422 bad body."""
        status = 401 if refusal.error == "invalid_client" else 422
        return json_response({"message": "Bad credentials" if status == 401 else refusal.description,
                              "documentation_url": "https://docs.github.com/rest/apps/oauth-applications"}, status)

    async def revocation_token(self, server: AuthorizationServer, request: web.Request) -> str | None:
        """DELETE /applications/{client_id}/token, Basic client auth, JSON {"access_token": ...}."""
        client = server.client(request, {})
        if client.client_id != request.match_info.get("client_id"):
            raise Refusal("invalid_client", "client id in the path differs from the credentials", status=401)
        try:
            body = await request.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or not isinstance(body.get("access_token"), str):
            raise Refusal("invalid_request", "body must be JSON {\"access_token\": ...}", status=422)
        return body["access_token"]


class SlackDialect(Dialect):
    """Slack: the {"ok": ...} envelope with HTTP 200, Slack's own error codes."""

    _CODES = {"invalid_client": "invalid_client_id", "unsupported_grant_type": "invalid_grant_type",
              "invalid_request": "invalid_arguments", "invalid_grant": "invalid_code"}

    def token_ok(self, request: web.Request, body: dict[str, Any]) -> web.Response:
        return json_response({"ok": True, **body})

    def token_error(self, request: web.Request, refusal: Refusal) -> web.Response:
        return json_response({"ok": False, "error": refusal.native or self._CODES.get(refusal.error, refusal.error)})

    def revoked(self, request: web.Request) -> web.Response:
        return json_response({"ok": True, "revoked": True})

    async def revocation_token(self, server: AuthorizationServer, request: web.Request) -> str | None:
        """auth.revoke: the token revokes itself (bearer header or ``token`` field)."""
        header = request.headers.get("Authorization", "")
        if header.lower().startswith("bearer "):
            return header[7:].strip()
        token = (await server.form(request)).get("token")
        if not token:
            raise Refusal("invalid_request", "no token", native="not_authed")
        return token


class AuthorizationServer:
    """The OAuth endpoints of one emulator. Example::

        emu = GitHubEmulator(seed=1)
        emu.oauth.register_client("Iv1.abc", "s3cret", ["http://127.0.0.1/callback"])
        base = await emu.start()          # authorize at emu.origin + emu.oauth.options.authorize_path
    """

    def __init__(self, emu: Emulator, options: OAuthServerOptions | None = None, *,
                 dialect: Dialect | None = None, issued_scopes: tuple[str, ...] | None = None) -> None:
        self.emu = emu
        self.options = options or OAuthServerOptions()
        self.dialect = dialect or Dialect()
        self.issued_scopes = issued_scopes
        self.clients: dict[str, Client] = {}
        self.codes: dict[str, Code] = {}
        self.grants: dict[str, Grant] = {}          # refresh or access token -> grant
        self.devices: dict[str, DeviceCode] = {}    # device_code -> state
        self.token_requests = 0
        self.revocations = 0
        self._hang = asyncio.Event()                # never set: a hung token endpoint until the server stops

    # ---- set-up --------------------------------------------------------------------------------
    def register_client(self, client_id: str, secret: str | None, redirect_uris: list[str] | tuple[str, ...]) -> None:
        """Accept ``client_id`` (with ``secret``; None for a public client) and its redirect URIs."""
        self.clients[client_id] = Client(client_id, secret, tuple(redirect_uris))

    def url(self, path: str) -> str:
        return self.emu.origin + path

    def mount(self, app: web.Application) -> None:
        o = self.options
        app.router.add_get(o.authorize_path, self.authorize)
        app.router.add_post(o.token_path, self._guard(self.token))
        if o.device_path:
            app.router.add_post(o.device_path, self._guard(self.device))
        if o.revoke_path:
            app.router.add_route(o.revoke_method, o.revoke_path, self._guard(self.revoke))
        app.router.add_post(CONTROL_PREFIX + "/oauth/approve", self.approve_endpoint)
        app.router.add_get(CONTROL_PREFIX + "/oauth/state", self.state_endpoint)

    def _guard(self, handler: Any) -> Any:
        async def run(request: web.Request) -> web.StreamResponse:
            try:
                return await handler(request)
            except Refusal as refusal:
                return self.dialect.token_error(request, refusal)
        return run

    # ---- authorize -----------------------------------------------------------------------------
    async def authorize(self, request: web.Request) -> web.StreamResponse:
        q = request.query
        client = self.clients.get(q.get("client_id", ""))
        if client is None:
            return web.Response(status=400, text="unknown client_id\n")
        redirect = q.get("redirect_uri", "")
        if not any(redirect_matches(r, redirect) for r in client.redirect_uris):
            return web.Response(status=400, text="redirect_uri does not match a registered one\n")
        state = q.get("state")
        if q.get("response_type") != "code":
            return self._back(redirect, state, error="unsupported_response_type")
        challenge, method = q.get("code_challenge"), q.get("code_challenge_method", "plain")
        if challenge and method != "S256":
            return self._back(redirect, state, error="invalid_request", description="only S256 is accepted")
        if self.options.pkce_required and not challenge:
            return self._back(redirect, state, error="invalid_request", description="PKCE code_challenge required")
        if self.options.deny:
            return self._back(redirect, state, error="access_denied", description="the user refused")
        code = secrets.token_urlsafe(24)
        scopes = tuple(s for s in q.get("scope", "").replace(",", " ").split() if s)
        self.codes[code] = Code(client.client_id, redirect, scopes, challenge, self.emu.clock())
        return self._back(redirect, state, code=code)

    @staticmethod
    def _back(redirect: str, state: str | None, **params: str) -> web.StreamResponse:
        items = {k: v for k, v in params.items()}
        if state is not None:
            items["state"] = state
        sep = "&" if urllib.parse.urlsplit(redirect).query else "?"
        raise web.HTTPFound(redirect + sep + urllib.parse.urlencode(items))

    # ---- token ---------------------------------------------------------------------------------
    async def form(self, request: web.Request) -> dict[str, str]:
        try:
            raw = await read_body(request, 64 * 1024)
            pairs = urllib.parse.parse_qsl(raw.decode(), keep_blank_values=True, strict_parsing=bool(raw))
        except (BodyTooLarge, UnicodeDecodeError, ValueError):
            raise Refusal("invalid_request", "the body must be application/x-www-form-urlencoded") from None
        form: dict[str, str] = {}
        for k, v in pairs:
            if k in form:
                raise Refusal("invalid_request", f"parameter {k} repeated")
            form[k] = v
        return form

    def client(self, request: web.Request, form: dict[str, str], *, secret_optional: bool = False) -> Client:
        header = request.headers.get("Authorization", "")
        basic = header[6:].strip() if header.lower().startswith("basic ") else None
        if basic is not None and "client_secret" in form:
            raise Refusal("invalid_request", "client credentials sent by more than one method")
        if basic is not None:
            try:
                cid, _, secret = base64.b64decode(basic, validate=True).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                raise Refusal("invalid_client", "malformed Basic credentials", status=401) from None
            cid, secret = urllib.parse.unquote_plus(cid), urllib.parse.unquote_plus(secret)
        else:
            cid, secret = form.get("client_id", ""), form.get("client_secret")
        client = self.clients.get(cid)
        if client is None:
            raise Refusal("invalid_client", "unknown client", native="invalid_client_id",
                          status=401 if basic is not None else 400)
        if client.secret is not None and secret != client.secret and not (secret_optional and secret is None):
            raise Refusal("invalid_client", "client authentication failed", native="bad_client_secret",
                          status=401 if basic is not None else 400)
        return client

    async def token(self, request: web.Request) -> web.StreamResponse:
        self.token_requests += 1
        fault = self.options.token_fault
        if fault == "error_500":
            return web.Response(status=500, text="Internal Server Error\n")
        if fault == "garbage":
            return web.Response(status=200, text="<html>not a token</html>", content_type="text/html")
        if fault == "hang":
            await self._hang.wait()
        form = await self.form(request)
        grant_type = form.get("grant_type", "authorization_code" if "code" in form else "")
        if grant_type == "authorization_code":
            return self.dialect.token_ok(request, self._exchange_code(self.client(request, form), form))
        if grant_type == "refresh_token":
            return self.dialect.token_ok(request, self._refresh(request, form))
        if grant_type == DEVICE_GRANT:
            return self.dialect.token_ok(request, self._poll(self.client(request, form, secret_optional=True), form))
        raise Refusal("unsupported_grant_type", f"grant_type {grant_type[:40]!r} is not supported")

    def _exchange_code(self, client: Client, form: dict[str, str]) -> dict[str, Any]:
        code = self.codes.get(form.get("code", ""))
        now = self.emu.clock()
        if code is None or code.client_id != client.client_id:
            raise Refusal("invalid_grant", "unknown authorization code", native="invalid_code")
        if code.used:
            raise Refusal("invalid_grant", "authorization code already used", native="invalid_code")
        if now - code.issued_at > CODE_LIFETIME:
            raise Refusal("invalid_grant", "authorization code expired", native="invalid_code")
        if form.get("redirect_uri") != code.redirect_uri:
            raise Refusal("invalid_grant", "redirect_uri differs from the authorization request",
                          native="bad_redirect_uri")
        if code.challenge is not None:
            verifier = form.get("code_verifier", "")
            if not 43 <= len(verifier) <= 128 or s256(verifier) != code.challenge:
                raise Refusal("invalid_grant", "code_verifier does not match", native="invalid_code_verifier")
        code.used = True
        return self._issue(Grant(client.client_id, code.scopes, self.options.user))

    def _refresh(self, request: web.Request, form: dict[str, str]) -> dict[str, Any]:
        token = form.get("refresh_token", "")
        grant = self.grants.get(token)
        client = self.client(request, form, secret_optional=bool(grant and grant.via_device))
        if grant is None or token not in grant.refresh_tokens or grant.client_id != client.client_id:
            raise Refusal("invalid_grant", "refresh token is invalid, expired or revoked",
                          native="invalid_refresh_token")
        if self.options.rotate_refresh_tokens and not self.options.old_refresh_token_survives_rotation:
            grant.refresh_tokens.discard(token)
        return self._issue(grant, rotate=self.options.rotate_refresh_tokens)

    def _issue(self, grant: Grant, *, rotate: bool = True) -> dict[str, Any]:
        o = self.options
        now = self.emu.clock()
        access = o.access_prefix + secrets.token_urlsafe(24)
        scopes = self.issued_scopes if self.issued_scopes is not None else grant.scopes
        expires_at = now + o.access_token_lifetime if o.access_token_lifetime else None
        self.emu.add_token(access, scopes or None, subject=grant.subject, expires_at=expires_at)
        grant.access_tokens.add(access)
        self.grants[access] = grant
        body: dict[str, Any] = {"access_token": access, "token_type": "bearer",
                                "scope": " ".join(grant.scopes)}
        if o.access_token_lifetime:
            body["expires_in"] = int(o.access_token_lifetime)
        if o.issue_refresh_token:
            if rotate or not grant.refresh_tokens:
                refresh = o.refresh_prefix + secrets.token_urlsafe(24)
                grant.refresh_tokens.add(refresh)
                self.grants[refresh] = grant
            else:
                refresh = next(iter(grant.refresh_tokens))
            body["refresh_token"] = refresh
        return body

    # ---- device grant --------------------------------------------------------------------------
    async def device(self, request: web.Request) -> web.StreamResponse:
        form = await self.form(request)
        client = self.client(request, form, secret_optional=True)
        o = self.options
        device_code = secrets.token_hex(20)
        user_code = "{}-{}".format(*(secrets.token_hex(2).upper() for _ in range(2)))
        scopes = tuple(s for s in form.get("scope", "").replace(",", " ").split() if s)
        self.devices[device_code] = DeviceCode(client.client_id, scopes, user_code,
                                               self.emu.clock() + o.device_expires_in, o.device_interval)
        return json_response({"device_code": device_code, "user_code": user_code,
                              "verification_uri": o.verification_uri, "expires_in": o.device_expires_in,
                              "interval": o.device_interval})

    def _poll(self, client: Client, form: dict[str, str]) -> dict[str, Any]:
        state = self.devices.get(form.get("device_code", ""))
        now = self.emu.clock()
        if state is None or state.client_id != client.client_id:
            raise Refusal("invalid_grant", "unknown device code", native="incorrect_device_code")
        if now >= state.expires_at:
            raise Refusal("expired_token", "the device code has expired")
        if state.decision == "denied":
            del self.devices[form["device_code"]]
            raise Refusal("access_denied", "the user refused")
        if state.decision == "pending":
            too_soon = state.last_poll is not None and now - state.last_poll < state.interval
            state.last_poll = now
            if too_soon:
                state.interval += 5
                raise Refusal("slow_down", f"polling too fast; interval is now {state.interval}s")
            raise Refusal("authorization_pending", "the user has not finished yet")
        del self.devices[form["device_code"]]
        return self._issue(Grant(client.client_id, state.scopes, self.options.user, via_device=True))

    def approve(self, user_code: str, *, deny: bool = False) -> bool:
        """The person at the verification page enters ``user_code`` and approves (or denies)."""
        for state in self.devices.values():
            if state.user_code == user_code.upper() and state.decision == "pending":
                state.decision = "denied" if deny else "approved"
                return True
        return False

    async def approve_endpoint(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or not isinstance(body.get("user_code"), str):
            return json_response({"error": "body must be {\"user_code\": \"XXXX-XXXX\", \"deny\"?: bool}"}, 400)
        if not self.approve(body["user_code"], deny=bool(body.get("deny"))):
            return json_response({"error": "no pending device authorization with that user code"}, 404)
        return json_response({"approved": not body.get("deny")})

    async def state_endpoint(self, _: web.Request) -> web.Response:
        return json_response({"token_requests": self.token_requests, "revocations": self.revocations,
                              "clients": len(self.clients), "pending_devices": len(self.devices),
                              "options": self.options.model_dump()})

    # ---- revocation ----------------------------------------------------------------------------
    async def revoke(self, request: web.Request) -> web.StreamResponse:
        self.revocations += 1
        try:
            token = await self.dialect.revocation_token(self, request)
        except Refusal as refusal:
            return self.dialect.revoke_error(request, refusal)
        grant = self.grants.get(token or "")
        if grant is not None:
            self.revoke_grant(grant)
        return self.dialect.revoked(request)

    def revoke_grant(self, grant: Grant) -> None:
        """Revoking any token of a grant revokes the whole grant (RFC 7009 §2.1 allows it)."""
        for token in grant.access_tokens:
            record = self.emu.tokens.get(token)
            if record is not None:
                record.revoked = True
        for token in grant.refresh_tokens | grant.access_tokens:
            self.grants.pop(token, None)
        grant.refresh_tokens.clear()
