"""Shared machinery of the provider emulators: tokens, quotas, faults, control API, lifecycle.

An emulator is an aiohttp server that speaks one provider's dialect closely enough that a connector
cannot tell it from the real service (URL shapes, auth header, rate-limit headers and answers, error
bodies, pagination). A provider module only supplies its dialect through the hooks of `Emulator`;
everything below is common to all of them.

Request pipeline, one pass per API request (control requests under `/_emulator/` skip it):

    arrival -> reset fault? -> 5xx fault? -> prepare (params) -> auth hook -> burst (secondary limit)?
            -> quota windows (count at arrival) -> route handler -> decorate (headers) -> latency -> reply

A hook or handler short-circuits the pipeline by raising `Reply(response)`: that is how a provider
answers 401, 404, 422 and so on in its own shape.

Errors of this module:

    ValueError
     └── EmulatorInputError     bad token, knob, option or host: the message names the field, never a secret
    Exception
     ├── Reply                  control flow: "answer with this response now" (never escapes a request)
     └── BodyTooLarge           a request body over the limit; the pipeline turns it into the provider's 413

Trust model: the emulator is a development and test double. It binds to loopback unless the caller
opts in (`allow_remote=True`), it keeps tokens in memory only, and it never echoes a token: the control
API reports counts and the CLI prints only the last four characters.
"""

from __future__ import annotations

import abc
import asyncio
import ipaddress
import json
import random
import socket
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, NamedTuple

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

# The building blocks (kit.py), re-exported: provider modules import them from here with the Emulator class.
from connectors.emulators.kit import (  # noqa: F401
    ADJECTIVES, BodyTooLarge, EmulatorInputError, FIRST_NAMES, LAST_NAMES, ManualClock, NOUNS, Quota, Reply,
    TokenRecord, TokenStatus, TokenStore, WindowCounter, WindowState, bearer_token, check_token, decode_cursor,
    digest_int, encode_cursor, hint, int_param, json_response, link_header, pick, read_body, seeded,
)

CONTROL_PREFIX = "/_emulator"




class FaultKnobs(BaseModel):
    """Faults injected into API requests; assignments are validated.

    Example: ``emu.faults.error_rate = 0.1`` answers one request in ten with a provider 5xx.
    """

    model_config = ConfigDict(validate_assignment=True, extra="forbid")

    latency: float = Field(0.0, ge=0.0, le=60.0, description="seconds added to every API response")
    error_rate: float = Field(0.0, ge=0.0, le=1.0, description="share of requests answered with a 5xx")
    reset_rate: float = Field(0.0, ge=0.0, le=1.0, description="share of connections dropped, no reply")
    rate_limit_burst: int = Field(0, ge=0, description="next N requests get the rate-limit answer")
    burst_retry_after: int = Field(1, ge=0, le=3600, description="Retry-After of the burst answers")


class RateLimitSpec(BaseModel):
    """A fixed-window quota: at most `limit` requests per `window` seconds."""

    model_config = ConfigDict(extra="forbid")

    limit: int = Field(ge=1, le=10_000_000)
    window: float = Field(gt=0.0, le=31 * 86400.0)


class TokenSpec(BaseModel):
    """Control-API body naming one token (and, when adding, optional scopes)."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    token: str = Field(min_length=1, max_length=512)
    scopes: list[str] | None = None



# --- routes and calls ---------------------------------------------------------------------------


class LoggedRequest(NamedTuple):
    method: str
    path: str  # relative to the API base URL, no query; a dropped connection logs status 0
    status: int


Handler = Callable[["Call"], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Route:
    """One API endpoint. `path` is relative to the API prefix, in aiohttp's pattern syntax.

    auth: "required" (no token -> provider's 401), "optional" (no token is anonymous, a bad one is
    still refused), "none" (not checked). counted: charges the quota windows.
    """

    method: str
    path: str
    handler: Handler
    auth: Literal["required", "optional", "none"] = "required"
    counted: bool = True
    name: str = ""


@dataclass
class Call:
    """One API request on its way through the pipeline."""

    request: web.Request
    route: Route
    path: str
    params: dict[str, Any] = field(default_factory=dict)
    token: str | None = None
    record: TokenRecord | None = None
    quota: WindowState | None = None


# --- the emulator -------------------------------------------------------------------------------


class Emulator(abc.ABC):
    """Base of every provider emulator; a subclass supplies the dialect through the hooks below.

    Example::

        emu = GitHubEmulator(tokens=["ghp_demo123"], seed=1)
        base = await emu.start()                 # "http://127.0.0.1:40123"
        emu.faults.rate_limit_burst = 2
        ...
        await emu.stop()
    """

    service: ClassVar[str]
    prefixes: ClassVar[tuple[str, ...]]  # the first one is the advertised base URL's path
    default_rate: ClassVar[tuple[int, float]]
    default_scopes: ClassVar[tuple[str, ...]] = ()
    options_model: ClassVar[type[BaseModel]]
    max_body: ClassVar[int] = 1024 * 1024
    fallback_auth: ClassVar[Literal["required", "optional", "none"]] = "none"  # auth of unknown paths

    def __init__(self, tokens: Iterable[str] = (), seed: int = 0, *, clock: Callable[[], float] = time.time,
                 options: dict[str, Any] | None = None) -> None:
        self.seed = seed
        self.clock = clock
        self.faults = FaultKnobs()
        try:
            self.options = self.options_model.model_validate(options or {})
        except ValidationError as exc:
            raise EmulatorInputError(describe(exc, f"{self.service} options")) from None
        self.tokens = TokenStore()
        self.counter = WindowCounter(clock)
        self.rate_limit: RateLimitSpec | None = None  # None: the provider's own limits
        self.request_log: list[LoggedRequest] = []
        self._rng = random.Random(seed)
        self._runner: web.AppRunner | None = None
        self._base_url: str | None = None
        self._origin: str | None = None
        for token in tokens:
            self.add_token(token)

    # --- public API -----------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """The API base URL; raises RuntimeError before `start()`."""
        if self._base_url is None:
            raise RuntimeError(f"{self.service} emulator is not started")
        return self._base_url

    @property
    def origin(self) -> str:
        """`http://host:port` without the API prefix; raises RuntimeError before `start()`."""
        if self._origin is None:
            raise RuntimeError(f"{self.service} emulator is not started")
        return self._origin

    def add_token(self, token: str, scopes: Iterable[str] | None = None, *, subject: str | None = None,
                  expires_at: float | None = None) -> None:
        """Accept `token` from now on, with `scopes` (default: the provider's usual full set).

        OAuth-issued tokens pass `subject` (the user the grant belongs to, so every token of one grant is the
        same account) and `expires_at` (after which the provider's own 401 answers).
        """
        record = self.tokens.add(token, self.default_scopes if scopes is None else scopes, subject=subject,
                                 expires_at=expires_at)
        self.on_token_added(record)

    def revoke(self, token: str) -> None:
        """Refuse `token` from now on as the provider refuses a revoked credential."""
        self.tokens.revoke(token)

    def set_rate_limit(self, limit: int, window: float) -> None:
        """Enforce exactly `limit` requests per `window` seconds per token, replacing the defaults.

        Windows are fixed and aligned to multiples of `window` since the epoch; counting starts afresh.
        Only requests that pass auth and the fault layer are counted (a 5xx, reset or burst answer is not).
        """
        try:
            self.rate_limit = RateLimitSpec(limit=limit, window=window)
        except ValidationError as exc:
            raise EmulatorInputError(describe(exc, "rate limit")) from None
        self.counter.clear()

    def hits(self, path: str) -> int:
        """How many API requests reached `path` (relative to the base URL, or with its prefix)."""
        wanted = self._relative(path if path.startswith("/") else "/" + path)
        return sum(1 for entry in self.request_log if entry.path == wanted)

    def state(self) -> dict[str, Any]:
        """What `GET /_emulator/state` reports: knobs, token counts, request counts, never a token."""
        return {
            "service": self.service,
            "base_url": self._base_url,
            "faults": self.faults.model_dump(),
            "options": self.options.model_dump(),
            "tokens": self.tokens.counts(),
            "rate_limit": self.rate_limit.model_dump() if self.rate_limit else None,
            "requests": {
                "total": len(self.request_log),
                "by_path": dict(Counter(e.path for e in self.request_log)),
                "by_status": {str(k): v for k, v in Counter(e.status for e in self.request_log).items()},
            },
        }

    async def start(self, host: str = "127.0.0.1", port: int = 0, *, allow_remote: bool = False) -> str:
        """Listen on host:port (0 = ephemeral) and return the API base URL."""
        if self._runner is not None:
            raise RuntimeError(f"{self.service} emulator is already started")
        check_host(host, allow_remote)
        sock = bind_socket(host, port)
        runner = web.AppRunner(self._build_app(), access_log=None, handle_signals=False, shutdown_timeout=1.0)
        try:
            await runner.setup()
            await web.SockSite(runner, sock).start()
        except BaseException:
            sock.close()
            await runner.cleanup()
            raise
        self._runner = runner
        bound = sock.getsockname()[1]
        shown = f"[{host}]" if ":" in host else host
        self._origin = f"http://{shown}:{bound}"
        self._base_url = self._origin + self.prefixes[0]
        return self._base_url

    async def stop(self) -> None:
        """Stop listening; safe to call twice."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    # --- hooks for providers --------------------------------------------------------------------

    @abc.abstractmethod
    def routes(self) -> list[Route]:
        """The provider's endpoints."""

    @abc.abstractmethod
    def auth_failure(self, call: Call, status: TokenStatus) -> web.StreamResponse:
        """The provider's answer to a missing, unknown or revoked token."""

    @abc.abstractmethod
    def rate_limited(self, call: Call, state: WindowState) -> web.StreamResponse:
        """The provider's answer when a quota window is exhausted."""

    @abc.abstractmethod
    def burst_limited(self, call: Call) -> web.StreamResponse:
        """The provider's answer for the `rate_limit_burst` fault (a secondary limit)."""

    @abc.abstractmethod
    def server_error(self, rng: random.Random) -> web.StreamResponse:
        """One of the provider's realistic 5xx answers."""

    @abc.abstractmethod
    def not_found(self, call: Call) -> web.StreamResponse:
        """The provider's answer for a path it does not serve."""

    async def prepare(self, call: Call) -> None:
        """Fill `call.params`; by default the query string."""
        call.params = dict(call.request.query)

    async def credentials(self, call: Call) -> str | None:
        """The token the request carries (None: none; '': an unusable header)."""
        return bearer_token(call.request)

    def quotas(self, call: Call) -> list[Quota]:
        """The windows this request charges; by default one per token."""
        limit, window = (self.rate_limit.limit, self.rate_limit.window) if self.rate_limit else self.default_rate
        return [Quota(f"token:{call.token}", limit, window)] if call.token else []

    def decorate(self, call: Call, response: web.StreamResponse) -> None:
        """Add the provider's headers to every answer that went through auth."""

    def on_token_added(self, record: TokenRecord) -> None:
        """Derive the identity and data of a newly accepted token."""

    def mount(self, app: web.Application) -> None:
        """Add routes outside the API pipeline (an authorization server); they take precedence over it."""

    # --- pipeline -------------------------------------------------------------------------------

    def _build_app(self) -> web.Application:
        app = web.Application()
        self.mount(app)
        add_control_routes(app, self)
        routes = self.routes()
        # aiohttp matches in registration order: every real route first, the catch-alls last
        for prefix in sorted(self.prefixes, key=len, reverse=True):
            for route in routes:
                app.router.add_route(route.method, prefix + route.path, self._endpoint(route))
        fallback = Route("*", "/{tail:.*}", self._not_found_handler, auth=self.fallback_auth, counted=False)
        for prefix in sorted(self.prefixes, key=len, reverse=True):
            app.router.add_route("*", prefix + "/{tail:.*}", self._endpoint(fallback))
        return app

    async def _not_found_handler(self, call: Call) -> web.StreamResponse:
        return self.not_found(call)

    def _relative(self, path: str) -> str:
        for prefix in sorted(self.prefixes, key=len, reverse=True):
            if prefix and (path == prefix or path.startswith(prefix + "/")):
                return path[len(prefix):] or "/"
        return path

    def _endpoint(self, route: Route) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def serve(request: web.Request) -> web.StreamResponse:
            call = Call(request, route, self._relative(request.path))
            try:
                response = await self._pipeline(call)
            except Reply as reply:
                response = reply.response
            except BodyTooLarge:
                response = self.too_large(call)
            self.request_log.append(LoggedRequest(request.method, call.path, response.status if response else 0))
            if self.faults.latency:
                await asyncio.sleep(self.faults.latency)
            if response is None:  # reset fault: close with no reply; the client sees a disconnect
                if request.transport is not None:
                    request.transport.close()
                return web.Response(status=204)
            return response

        return serve

    async def _pipeline(self, call: Call) -> web.StreamResponse | None:
        faults = self.faults
        if faults.reset_rate and self._rng.random() < faults.reset_rate:
            return None
        if faults.error_rate and self._rng.random() < faults.error_rate:
            return self.server_error(self._rng)
        try:
            response = await self._authorised(call)
        except Reply as reply:
            response = reply.response
        self.decorate(call, response)
        return response

    async def _authorised(self, call: Call) -> web.StreamResponse:
        await self.prepare(call)
        if call.route.auth != "none":
            refusal = await self._authenticate(call)
            if refusal is not None:
                return refusal
            if self.faults.rate_limit_burst > 0:
                self.faults.rate_limit_burst -= 1
                return self.burst_limited(call)
        if call.route.counted:
            refusal = self._charge(call)
            if refusal is not None:
                return refusal
        return await call.route.handler(call)

    async def _authenticate(self, call: Call) -> web.StreamResponse | None:
        """Set `call.token`/`call.record` for a valid token; the provider's refusal otherwise."""
        token = await self.credentials(call)
        status = self.tokens.status(token, self.clock())
        if status is TokenStatus.VALID:
            call.token, call.record = token, self.tokens.get(token or "")
            return None
        if call.route.auth == "optional" and status is TokenStatus.MISSING:
            return None  # anonymous access
        return self.auth_failure(call, status)

    def _charge(self, call: Call) -> web.StreamResponse | None:
        """Count the request in each of its windows, or refuse it if any window is full (then count none)."""
        quotas = self.quotas(call)
        for quota in quotas:
            state = self.counter.peek(quota)
            if not state.allowed:
                call.quota = state
                return self.rate_limited(call, state)
        states = [self.counter.hit(quota) for quota in quotas]
        call.quota = states[0] if states else None
        return None

    def too_large(self, call: Call) -> web.StreamResponse:
        """The answer to a body over the size limit (providers override for their shape)."""
        return json_response({"message": "Request body too large"}, status=413)


# --- sockets ------------------------------------------------------------------------------------


def check_host(host: str, allow_remote: bool) -> None:
    """Refuse a non-loopback bind address unless explicitly allowed."""
    if allow_remote or host == "localhost":
        return
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        raise EmulatorInputError(f"host {host!r} is not an IP address; use 127.0.0.1 or allow remote") from None
    if not loopback:
        raise EmulatorInputError(f"host {host!r} is not a loopback address; refusing without allow_remote")


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port (port 0 picks a free one)."""
    if not 0 <= port <= 65535:
        raise EmulatorInputError(f"port must be 0-65535, got {port}")
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


# --- control API --------------------------------------------------------------------------------


def describe(exc: ValidationError, what: str) -> str:
    """A one-line account of a pydantic error naming the fields, without echoing inputs."""
    parts = []
    for err in exc.errors(include_url=False, include_context=False, include_input=False):
        loc = ".".join(str(p) for p in err["loc"]) or "body"
        parts.append(f"{loc}: {err['msg']}")
    return f"invalid {what}: " + "; ".join(parts)


async def json_object(request: web.Request, what: str) -> dict[str, Any]:
    """The request's JSON object body, or Reply(400) naming what was expected."""
    try:
        raw = json.loads(await read_body(request, 64 * 1024) or b"null")
    except (ValueError, BodyTooLarge):
        raw = None
    if not isinstance(raw, dict):
        raise Reply(json_response({"error": f"invalid {what}: body must be a JSON object"}, 400))
    return raw


def validated(model: type[BaseModel], raw: dict[str, Any], what: str) -> Any:
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise Reply(json_response({"error": describe(exc, what)}, 400)) from None


def add_control_routes(app: web.Application, emu: Emulator) -> None:
    """`/_emulator/...`: drive a running emulator from scripts (no auth, no quotas, no faults)."""

    async def state(_: web.Request) -> web.Response:
        return json_response(emu.state())

    async def faults(request: web.Request) -> web.Response:
        update = await json_object(request, "faults")
        merged = validated(FaultKnobs, emu.faults.model_dump() | update, "faults")
        for name in update:
            setattr(emu.faults, name, getattr(merged, name))
        return json_response({"faults": emu.faults.model_dump()})

    async def options(request: web.Request) -> web.Response:
        update = await json_object(request, "options")
        emu.options = validated(emu.options_model, emu.options.model_dump() | update, "options")
        return json_response({"options": emu.options.model_dump()})

    async def tokens(request: web.Request) -> web.Response:
        spec = validated(TokenSpec, await json_object(request, "token"), "token")
        try:
            emu.add_token(spec.token, spec.scopes)
        except EmulatorInputError as exc:
            return json_response({"error": f"invalid token: {exc}"}, 400)
        return json_response({"added": hint(spec.token), "tokens": emu.tokens.counts()}, 201)

    async def revoke(request: web.Request) -> web.Response:
        spec = validated(TokenSpec, await json_object(request, "token"), "token")
        try:
            emu.revoke(spec.token)
        except EmulatorInputError as exc:
            return json_response({"error": str(exc)}, 404)
        return json_response({"revoked": hint(spec.token), "tokens": emu.tokens.counts()})

    async def rate_limit(request: web.Request) -> web.Response:
        spec = validated(RateLimitSpec, await json_object(request, "rate limit"), "rate limit")
        emu.set_rate_limit(spec.limit, spec.window)
        return json_response({"rate_limit": spec.model_dump()})

    def guarded(fn: Callable[[web.Request], Awaitable[web.Response]]) -> Any:
        async def run(request: web.Request) -> web.StreamResponse:
            try:
                return await fn(request)
            except Reply as reply:
                return reply.response
        return run

    app.router.add_get(CONTROL_PREFIX + "/state", guarded(state))
    app.router.add_post(CONTROL_PREFIX + "/faults", guarded(faults))
    app.router.add_post(CONTROL_PREFIX + "/options", guarded(options))
    app.router.add_post(CONTROL_PREFIX + "/tokens", guarded(tokens))
    app.router.add_post(CONTROL_PREFIX + "/revoke", guarded(revoke))
    app.router.add_post(CONTROL_PREFIX + "/rate_limit", guarded(rate_limit))

    async def unknown(request: web.Request) -> web.Response:
        return json_response({"error": f"no control endpoint {request.method} {request.path}"}, 404)

    app.router.add_route("*", CONTROL_PREFIX + "/{tail:.*}", unknown)
