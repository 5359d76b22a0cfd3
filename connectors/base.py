"""The service abstraction (the seed's IExternalService): value types and the Connector pipeline.

Every provider call goes through :meth:`Connector.send_request`, one pass per attempt::

    ApiRequest (validated) -> tenacity attempt -> gate.acquire -> transport.send -> rate_signal
        -> gate.observe -> classify -> observer(CallRecord) -> ApiResponse | raise IntegrationFailure

Exceptions that leave a connector (the daemon maps each one; nothing else escapes)::

    IntegrationFailure(category, status, provider_code, retry_after)   the provider or the way to it failed
        AUTH_FAILED            401, 403 that is not rate limiting, Slack's auth error codes
        RATE_LIMIT_EXCEEDED    429 / provider-specific rate answers (retried, Retry-After honoured)
        SERVICE_UNAVAILABLE    5xx, undecodable or oversized answers (retried)
        NETWORK_ERROR          timeouts, refused or reset connections (retried)
        INVALID_CONFIGURATION  a bad request, base URL or credential mode; an identity endpoint that is not
                               the provider's (never retried)
    RateLimitExceededException / UsageLimitExceededException   our own gate refused an interactive call

OAuth apps: the connector takes a ``TokenSource`` (integd's token manager) instead of a fixed bearer. Before each
attempt it awaits ``ensure_fresh()`` (a refresh shared by every concurrent caller when the token is expired); on
an AUTH_FAILED answer it calls ``on_unauthorized(generation)`` once and retries once with the new token, then
gives up (the app becomes unauthorized through the usual failure path).

A 4xx that is neither auth nor rate limiting (404, 422, Slack's channel_not_found) is NOT a failure of the
integration: the caller asked for that endpoint, so it gets the ApiResponse with its status.

Trust model: the credential is sent only to the connector's own base URL (request paths are relative and
checked; pagination links leading elsewhere are refused; plain http only to loopback hosts). Provider text
that reaches a message is truncated and scrubbed of the credential's secrets; CallRecord paths carry query
values of secret-looking names as ``[redacted]``.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import time
import urllib.parse
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any, ClassVar, Protocol

from connectors.http import HttpTransport, decode_body, normalize_base_url, origin, parse_url
from connectors.limits import CallGate
from connectors.retry import retrying
from domain.clock import Clock, SystemClock
from domain.errors import (IntegrationError, IntegrationFailure, RateLimitExceededException,
                           UsageLimitExceededException)
from domain.model import ApiCredential, HealthCheckResult
from domain.values import AuthMode, RateLimit, RetryPolicy, ServiceCategory

CONFIG = IntegrationError.INVALID_CONFIGURATION
METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"})
_REFUSED_HEADERS = frozenset({"authorization", "proxy-authorization", "host", "cookie", "content-length",
                              "transfer-encoding", "connection"})
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,100}$")
_SECRET_PARAM = re.compile(r"token|key|secret|passw|signature|^sig$|^auth(orization)?$|^code$|credential|session",
                           re.I)
_INTERACTIVE_WAIT = 5.0      # when there is no gate to say otherwise


def _bad(message: str) -> IntegrationFailure:
    return IntegrationFailure(CONFIG, message)


@dataclass(frozen=True)
class ServiceDescriptor:
    """A catalogue entry: what a provider is and the limits it publishes."""

    name: str
    display_name: str
    category: ServiceCategory
    auth_modes: tuple[AuthMode, ...]
    default_base_url: str
    rate_limit: RateLimit
    scopes: tuple[str, ...]
    identity_endpoint: str
    docs_url: str
    implemented: bool

    def as_dict(self) -> dict[str, Any]:
        """JSON-able, for ``services.list``: ``{"name": "github", "category": "development", ...}``."""
        return {"name": self.name, "display_name": self.display_name, "category": self.category.value,
                "auth_modes": [m.value for m in self.auth_modes], "default_base_url": self.default_base_url,
                "rate_limit": self.rate_limit.as_dict(), "scopes": list(self.scopes),
                "identity_endpoint": self.identity_endpoint, "docs_url": self.docs_url,
                "implemented": self.implemented}


def _param_value(name: str, value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return str(value)
    raise _bad(f"request parameter {name!r} must be a string, number or list of them, "
               f"not {type(value).__name__}")


@dataclass(frozen=True)
class ApiRequest:
    """One call the caller wants made, relative to the connector's base URL.

    >>> ApiRequest("GET", "/user/repos", params={"per_page": 100}).query_items()
    [('per_page', '100')]
    >>> ApiRequest("GET", "https://evil.example/x")
    Traceback (most recent call last):
    ...
    domain.errors.IntegrationFailure: request path must be relative and start with '/' (got 'https://evil.example/x')
    """

    method: str
    path: str
    params: Mapping[str, str | int | list] | None = None
    json: Any = None
    headers: Mapping[str, str] | None = None
    data: bytes | None = None       # a raw body (Dropbox uploads); the caller sets its Content-Type header

    def __post_init__(self) -> None:
        method = self.method.upper() if isinstance(self.method, str) else ""
        if method not in METHODS:
            raise _bad(f"request method must be one of {', '.join(sorted(METHODS))} (got {str(self.method)[:10]!r})")
        object.__setattr__(self, "method", method)
        path, query = self._checked_path(self.path)
        object.__setattr__(self, "path", path)
        object.__setattr__(self, "params", self._checked_params(query))
        if self.json is not None:
            try:
                json.dumps(self.json)
            except (TypeError, ValueError) as exc:
                raise _bad("request body is not JSON-serialisable") from exc
        if self.data is not None and (not isinstance(self.data, bytes) or self.json is not None):
            raise _bad("a raw request body must be bytes and cannot be sent together with a JSON body")
        object.__setattr__(self, "headers", self._checked_headers())

    @staticmethod
    def _checked_path(path: Any) -> tuple[str, list[tuple[str, str]]]:
        if not isinstance(path, str) or not path.startswith("/"):
            raise _bad(f"request path must be relative and start with '/' (got {str(path)[:60]!r})")
        if len(path) > 2048 or any(ord(c) < 33 or c in "\\#\x7f" for c in path):
            raise _bad("request path must be under 2048 characters, without spaces, control characters, "
                       "backslashes or fragments")
        path, _, query = path.partition("?")
        plain = urllib.parse.unquote(path)
        if "//" in plain or any(seg in (".", "..") for seg in plain.split("/")):
            raise _bad("request path must not contain '//', '.' or '..' segments")
        return path, urllib.parse.parse_qsl(query, keep_blank_values=True)

    def _checked_params(self, from_path: list[tuple[str, str]]) -> dict[str, str | list[str]]:
        if self.params is not None and not isinstance(self.params, Mapping):
            raise _bad("request params must be an object of name -> value")
        out: dict[str, str | list[str]] = {}
        for name, value in from_path:
            prev = out.get(name)
            out[name] = value if prev is None else [*(prev if isinstance(prev, list) else [prev]), value]
        for name, value in (self.params or {}).items():
            if not isinstance(name, str) or not name:
                raise _bad("request parameter names must be non-empty strings")
            if value is None:
                raise _bad(f"request parameter {name!r} has no value")
            out[name] = ([_param_value(name, v) for v in value] if isinstance(value, (list, tuple))
                         else _param_value(name, value))
        return out

    def _checked_headers(self) -> dict[str, str]:
        if self.headers is not None and not isinstance(self.headers, Mapping):
            raise _bad("request headers must be an object of name -> value")
        out = {}
        for name, value in (self.headers or {}).items():
            if not isinstance(name, str) or not _HEADER_NAME.match(name):
                raise _bad(f"invalid request header name {str(name)[:40]!r}")
            if name.lower() in _REFUSED_HEADERS:
                raise _bad(f"request header {name!r} is set by the connector and cannot be given")
            if not isinstance(value, str) or any(ord(c) < 32 and c != "\t" for c in value):
                raise _bad(f"request header {name!r} must be a string without control characters")
            out[name] = value
        return out

    def query_items(self) -> list[tuple[str, str]]:
        """The parameters as (name, value) pairs, a list value repeating its name."""
        items: list[tuple[str, str]] = []
        for name, value in (self.params or {}).items():
            items += [(name, v) for v in value] if isinstance(value, list) else [(name, value)]
        return items

    def with_params(self, **changes: Any) -> ApiRequest:
        """A copy with some parameters replaced (pagination)."""
        return ApiRequest(self.method, self.path, {**(self.params or {}), **changes}, self.json, self.headers,
                          self.data)


Pager = Callable[["ApiResponse"], "ApiRequest | None"]


@dataclass
class ApiResponse:
    """The provider's answer. ``headers`` have lower-case names; ``body`` is parsed JSON, else text."""

    status: int
    headers: dict[str, str]
    body: Any
    latency: float
    attempts: int
    request: ApiRequest | None = field(default=None, repr=False)
    pager: Pager | None = field(default=None, repr=False, compare=False)

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def next_page(self) -> ApiRequest | None:
        """The request for the next page in the connector's pagination dialect, None on the last page."""
        return self.pager(self) if self.pager is not None and self.ok else None


@dataclass(frozen=True)
class RateSignal:
    """What the provider said about its limits on one answer."""

    limit: int | None = None
    remaining: int | None = None
    reset_at: float | None = None       # epoch seconds
    retry_after: float | None = None    # seconds
    resource: str | None = None
    # Per-route limits (Discord): ``scope`` names the route a signal is about (the connector's ``rate_scope``
    # fills it in), ``resource`` then names the provider's bucket shared by routes; a signal with a scope
    # holds back only calls of routes in that bucket. ``global_limit`` marks a limit on every route at once.
    scope: str | None = None
    global_limit: bool = False


@dataclass(frozen=True)
class AccountIdentity:
    """Who the credential belongs to, non-secret: ``AccountIdentity("1234", "octocat", {"scopes": [...]})``."""

    account_id: str
    display: str
    details: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class CallRecord:
    """One attempt, for structured logs and metrics; ``path`` has secret query values redacted."""

    app_id: str
    service: str
    method: str
    path: str
    status: int | None
    latency: float
    attempt: int
    outcome: str          # "ok" or an IntegrationError value
    error: str | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


CallObserver = Callable[[CallRecord], None]


class TokenSource(Protocol):
    """Where an OAuth app's connector gets its current credential (implemented by integd's token manager).

    ``generation`` grows by one with every new access token, so a caller that was refused can tell whether
    someone else already refreshed since it sent its request.
    """

    @property
    def credential(self) -> ApiCredential: ...

    @property
    def generation(self) -> int: ...

    async def ensure_fresh(self) -> None:
        """Refresh first if the access token is expired (or about to be); raises IntegrationFailure."""

    async def on_unauthorized(self, generation: int) -> bool:
        """The provider refused the token of ``generation``: True if a newer one is ready to retry with."""


def request_from_url(url: str, base_url: str, *, method: str = "GET",
                     headers: Mapping[str, str] | None = None) -> ApiRequest:
    """Turn a provider's absolute next-page URL back into a relative request, refusing other hosts.

    >>> request_from_url("https://api.github.com/user/repos?page=2", "https://api.github.com").params
    {'page': '2'}
    """
    base = parse_url(base_url)
    target = parse_url(urllib.parse.urljoin(base_url + "/", url))
    prefix = base.path.rstrip("/")
    if origin(target) != origin(base) or not (target.path == prefix or target.path.startswith(prefix + "/")):
        raise _bad(f"next-page link leads outside the base URL ({target.hostname}); not followed")
    params: dict[str, Any] = {}
    for name, value in urllib.parse.parse_qsl(target.query, keep_blank_values=True):
        prev = params.get(name)
        params[name] = value if prev is None else [*(prev if isinstance(prev, list) else [prev]), value]
    return ApiRequest(method, target.path[len(prefix):] or "/", params, headers=headers)



class Connector(ABC):
    """The seed's service abstraction: one object per connected app, safe to use concurrently.

    >>> connector = GitHubConnector(credential, app_id="int_…", base_url=None, transport=HttpTransport(),
    ...                             gate=gate)                                        # doctest: +SKIP
    >>> identity = await connector.authenticate()                                       # doctest: +SKIP
    >>> resp = await connector.send_request(ApiRequest("GET", "/user/repos"))          # doctest: +SKIP
    >>> resp.next_page()                                                                # doctest: +SKIP
    ApiRequest(method='GET', path='/user/repos', params={'page': '2'}, ...)
    """

    descriptor: ClassVar[ServiceDescriptor]

    def __init__(self, credential: ApiCredential, *, app_id: str, base_url: str | None,
                 transport: HttpTransport, gate: CallGate | None = None,
                 retry: RetryPolicy = RetryPolicy.exponential_backoff(), timeout: float = 30.0,
                 observer: CallObserver | None = None, clock: Clock | None = None,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 rng: random.Random | None = None, token_source: TokenSource | None = None) -> None:
        name = self.descriptor.display_name
        if not isinstance(credential, ApiCredential):
            raise _bad(f"{name} connector needs an ApiCredential")
        if credential.mode not in self.descriptor.auth_modes:
            raise _bad(f"{name} does not accept {credential.mode.value} credentials")
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout <= 120:
            raise _bad(f"timeout must be between 0 and 120 seconds, got {timeout!r}")
        self._credential, self.app_id, self.token_source = credential, app_id, token_source
        self.base_url = normalize_base_url(base_url or self.descriptor.default_base_url)
        self.transport, self.gate, self.retry = transport, gate, retry
        self.timeout, self.observer = float(timeout), observer
        self.clock: Clock = clock or SystemClock()
        self._sleep, self._rng = sleep, rng
        self._secrets = sorted((v for v in credential.secrets.values() if isinstance(v, str) and len(v) >= 4),
                               key=len, reverse=True)

    @property
    def name(self) -> str:
        return self.descriptor.display_name

    @property
    def credential(self) -> ApiCredential:
        """The credential to send now: the token source's current one for OAuth apps."""
        return self.token_source.credential if self.token_source is not None else self._credential

    # ---- the public interface -------------------------------------------------------------------------
    async def authenticate(self) -> AccountIdentity:
        """Validate the credential against the identity endpoint (retrying transient failures only)."""
        resp = await self.send_request(self.identity_request(), interactive=True)
        return self._identity(resp)

    async def send_request(self, request: ApiRequest, *, interactive: bool = True) -> ApiResponse:
        """THE pipeline (module docstring). Interactive calls never wait long: they raise instead."""
        if not isinstance(request, ApiRequest):
            raise _bad("send_request takes an ApiRequest")
        max_wait = None
        if interactive:
            max_wait = self.gate.max_interactive_wait if self.gate is not None else _INTERACTIVE_WAIT
        attempts = 0
        response: ApiResponse | None = None
        async for attempt in retrying(self.retry, sleep=self._sleep, max_wait=max_wait, rng=self._rng):
            with attempt:
                attempts += 1
                response = await self._attempt_authorized(request, attempts, interactive=interactive)
        if response is None:       # tenacity either returned a result or raised; this guards refactors
            raise IntegrationFailure(IntegrationError.SERVICE_UNAVAILABLE, f"{self.name}: no response")
        return response

    async def validate_connection(self) -> HealthCheckResult:
        """One check of the identity endpoint, no retries, never raising: a classified HealthCheckResult.

        Our own gate is passed in background mode but never waited on longer than the timeout; if it would
        be, the result says so (category rate_limit, with retry_after) rather than calling the provider.
        """
        checked_at, started = self.clock.time(), time.monotonic()
        try:
            resp = await self._attempt_authorized(self.identity_request(), 1, interactive=False,
                                                  max_wait=self.timeout)
            self._identity(resp)
        except IntegrationFailure as f:
            return HealthCheckResult(ok=False, latency=time.monotonic() - started, checked_at=checked_at,
                                     category=f.category, message=str(f), status=f.status,
                                     provider_code=f.provider_code, retry_after=f.retry_after)
        except (RateLimitExceededException, UsageLimitExceededException) as refusal:
            return HealthCheckResult(ok=False, latency=0.0, checked_at=checked_at,
                                     category=IntegrationError.RATE_LIMIT_EXCEEDED,
                                     message=f"check not sent: {refusal}", retry_after=refusal.retry_after,
                                     sent=False)
        return HealthCheckResult(ok=True, latency=resp.latency, checked_at=checked_at, status=resp.status)

    def get_rate_limit(self) -> RateLimit:
        """The provider's published default limit (the descriptor's)."""
        return self.descriptor.rate_limit

    async def pages(self, request: ApiRequest, *, interactive: bool = False,
                    max_pages: int | None = None) -> AsyncIterator[ApiResponse]:
        """Every page from ``request`` on, following the dialect's next-page rule.

        >>> async for page in connector.pages(ApiRequest("GET", "/user/repos")):   # doctest: +SKIP
        ...     handle(page.body)
        """
        nxt: ApiRequest | None = request
        count = 0
        while nxt is not None and (max_pages is None or count < max_pages):
            resp = await self.send_request(nxt, interactive=interactive)
            count += 1
            yield resp
            nxt = resp.next_page()

    # ---- dialect hooks --------------------------------------------------------------------------------
    @abstractmethod
    def auth_headers(self) -> dict[str, str]:
        """Headers that carry the credential (never overridable by callers)."""

    @abstractmethod
    def rate_signal(self, status: int, headers: Mapping[str, str], body: Any) -> RateSignal:
        """What this answer says about the provider's limits."""

    @abstractmethod
    def classify(self, status: int, headers: Mapping[str, str], body: Any) -> IntegrationFailure | None:
        """The failure this answer represents, or None if it is an answer to hand back."""

    @abstractmethod
    def identity_from(self, body: Any, headers: Mapping[str, str] | None = None) -> AccountIdentity:
        """The account behind the credential, from the identity endpoint's answer."""

    def default_headers(self) -> dict[str, str]:
        """Headers a caller may override (Accept, API version)."""
        return {"Accept": "application/json"}

    def identity_request(self) -> ApiRequest:
        return ApiRequest("GET", self.descriptor.identity_endpoint)

    def next_request(self, response: ApiResponse) -> ApiRequest | None:
        """The next page's request (the pagination dialect); None when there is none."""
        return None

    def request_url(self, request: ApiRequest) -> str:
        """The absolute URL of a request; Dropbox sends uploads to its content host instead of the API host."""
        return self.base_url + request.path

    def sends_credential(self, request: ApiRequest) -> bool:
        """False for a provider endpoint that must be called without the credential (Dropbox's longpoll)."""
        return True

    def rate_scope(self, request: ApiRequest) -> str | None:
        """The provider's rate-limit route of a request when limits are per route (Discord), else None.

        The gate then holds back only calls in a bucket the provider said is empty (RateSignal.scope).
        """
        return None

    # ---- helpers for dialects -------------------------------------------------------------------------
    def safe(self, text: Any, limit: int = 300) -> str:
        """Provider text fit for a message: the credential's secrets removed, printable, bounded."""
        text = str(text)
        secrets = self._secrets
        if self.token_source is not None:
            secrets = sorted({*secrets, *(v for v in self.credential.secrets.values() if len(v) >= 4)},
                             key=len, reverse=True)
        for secret in secrets:
            text = text.replace(secret, "[redacted]")
        text = "".join(c if c.isprintable() else " " for c in text).strip()
        return text if len(text) <= limit else text[: limit - 1] + "…"

    def failure(self, category: IntegrationError, message: str, *, status: int | None,
                code: str | None = None, retry_after: float | None = None,
                show_status: bool = True) -> IntegrationFailure:
        """``IntegrationFailure`` with the conventional message ``"<Provider>: <reason> (<status>)"``."""
        suffix = f" ({status})" if status is not None and show_status else ""
        return IntegrationFailure(category, f"{self.name}: {self.safe(message)}{suffix}", status=status,
                                  provider_code=self.safe(code, 80) if code else None, retry_after=retry_after)

    def until(self, reset_at: float | None) -> float | None:
        """Seconds from now until an epoch reset time (at least one), None without one."""
        return None if reset_at is None else max(1.0, reset_at - self.clock.time())

    def safe_path(self, request: ApiRequest) -> str:
        """The request's path and query with values of secret-looking parameters redacted."""
        items = []
        for name, value in request.query_items():
            hidden = _SECRET_PARAM.search(name) or any(s in value for s in self._secrets)
            shown = "[redacted]" if hidden else urllib.parse.quote(value, safe="")
            items.append(f"{urllib.parse.quote(name, safe='')}={shown}")
        return self.safe(request.path + ("?" + "&".join(items) if items else ""), 500)

    # ---- one attempt ----------------------------------------------------------------------------------
    async def _attempt_authorized(self, request: ApiRequest, attempt: int, *, interactive: bool,
                                  max_wait: float | None = None) -> ApiResponse:
        """One attempt; for an OAuth app a refused token gets one refresh and one retry (module docstring)."""
        source = self.token_source
        if source is None:
            return await self._attempt(request, attempt, interactive=interactive, max_wait=max_wait)
        await source.ensure_fresh()
        generation = source.generation
        try:
            return await self._attempt(request, attempt, interactive=interactive, max_wait=max_wait)
        except IntegrationFailure as failure:
            if failure.category is not IntegrationError.AUTHENTICATION_FAILED:
                raise
            if not await source.on_unauthorized(generation):
                raise
        return await self._attempt(request, attempt, interactive=interactive, max_wait=max_wait)

    async def _attempt(self, request: ApiRequest, attempt: int, *, interactive: bool,
                       max_wait: float | None = None) -> ApiResponse:
        scope = self.rate_scope(request)
        if self.gate is not None:
            if scope is None:
                await self.gate.acquire(interactive=interactive, max_wait=max_wait)
            else:
                await self.gate.acquire(interactive=interactive, max_wait=max_wait, scope=scope)
        started = time.monotonic()
        answered = False
        try:
            raw = await self.transport.send(request.method, self.request_url(request),
                                            params=request.query_items() or None, json=request.json,
                                            headers=self._headers(request), timeout=self.timeout,
                                            data=request.data)
            answered = True
        except IntegrationFailure as exc:
            failure = IntegrationFailure(exc.category, self.safe(f"{self.name}: {exc}"), status=exc.status,
                                         provider_code=exc.provider_code, retry_after=exc.retry_after)
            self._record(request, attempt, None, time.monotonic() - started, failure)
            raise failure from exc
        finally:
            if not answered and self.gate is not None and scope is not None:
                self.gate.release(scope)     # failed or cancelled: the route's call is no longer in flight
        body = decode_body(raw)
        if self.gate is not None:
            signal = self.rate_signal(raw.status, raw.headers, body)
            if scope is not None and signal.scope is None and not signal.global_limit:
                signal = replace(signal, scope=scope)
            self.gate.observe(signal)
        failure = self.classify(raw.status, raw.headers, body)
        self._record(request, attempt, raw.status, raw.latency, failure)
        if failure is not None:
            raise failure
        return ApiResponse(raw.status, raw.headers, body, raw.latency, attempt, request, self.next_request)

    def _headers(self, request: ApiRequest) -> dict[str, str]:
        out = self.default_headers()
        for name, value in (request.headers or {}).items():
            for existing in [k for k in out if k.lower() == name.lower()]:
                del out[existing]
            out[name] = value
        if self.sends_credential(request):
            out.update(self.auth_headers())
        return out

    def _identity(self, resp: ApiResponse) -> AccountIdentity:
        if not resp.ok:
            raise self.failure(CONFIG, f"identity endpoint {self.descriptor.identity_endpoint} answered "
                                       f"{resp.status}; check the base URL", status=resp.status)
        return self.identity_from(resp.body, resp.headers)

    def _record(self, request: ApiRequest, attempt: int, status: int | None, latency: float,
                failure: IntegrationFailure | None) -> None:
        if self.observer is None:
            return
        self.observer(CallRecord(
            app_id=self.app_id, service=self.descriptor.name, method=request.method,
            path=self.safe_path(request), status=status, latency=latency, attempt=attempt,
            outcome="ok" if failure is None else failure.category.value,
            error=None if failure is None else str(failure)))
