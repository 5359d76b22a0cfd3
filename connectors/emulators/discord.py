"""Discord REST API v10 emulator (reference: apis-messaging.md §6).

Base URL ``http://127.0.0.1:PORT/api/v10``. Auth ``Authorization: Bot <token>`` for bot tokens (tokens given to
the constructor or ``add_token``) or ``Bearer <token>`` for OAuth user tokens (issued by the mounted
authorization server: ``GET /oauth2/authorize``, ``POST /api/oauth2/token``, ``POST /api/oauth2/token/revoke``
(RFC 7009, kills the whole authorization), ``POST /api/v10/oauth2/device/authorize``; 7-day access tokens, a new
refresh token on every refresh, the old one dying unless ``emu.oauth.options.old_refresh_token_survives_rotation``).
A token sent with the other scheme is refused (``strict_schemes``). User tokens may read ``/users/@me``,
``/oauth2/@me`` and ``/users/@me/guilds``; channel routes need the bot (403 50001 Missing Access).

Rate limits, as Discord answers them:
- per-route buckets: a route (method + template) on one major resource (channel, guild) allows
  ``route_limit`` calls per ``route_window`` seconds from its first call [numbers unverified: knobs]. Every
  answer carries
  ``X-RateLimit-Limit/-Remaining/-Reset/-Reset-After/-Bucket`` (the bucket id is a hash of the route, the
  same for every channel, as on Discord); a refusal is 429 with ``Retry-After``, ``X-RateLimit-Scope: user`` and
  ``{"message": "You are being rate limited.", "retry_after": 1.234, "global": false}``;
- the global limit: 50 requests per second per token (``emu.set_rate_limit`` replaces it), refused with
  ``X-RateLimit-Global: true``, ``X-RateLimit-Scope: global`` and ``"global": true``;
- the ``rate_limit_burst`` fault answers like a ``shared`` resource limit (``X-RateLimit-Scope: shared``).

Errors: 401 ``{"message": "401: Unauthorized", "code": 0}``; 404 ``10003`` Unknown Channel, ``10008`` Unknown
Message, ``0`` for an unknown route; 400 ``50035`` Invalid Form Body with ``errors`` (also for a body that is not
JSON), ``50006`` empty message; 403 ``50005`` editing another user's message; 5xx faults (502 gateway HTML,
500 JSON). ``require_user_agent`` refuses calls without a ``DiscordBot (...)`` User-Agent as Cloudflare may.

Tests act as other members with ``post_message`` / ``edit_message`` / ``delete_message``; ``sign_interaction``
signs an interaction with the application's Ed25519 key (``public_key_hex``).
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import time
from typing import Any, ClassVar

from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import BaseModel, ConfigDict, Field

from .base import (BodyTooLarge, Call, Emulator, Quota, Reply, Route, TokenRecord, TokenStatus, WindowState,
                   json_response, read_body)
from .discord_data import Channel, Message, User, World, derive_user
from .oauth import AuthorizationServer, Dialect, OAuthServerOptions

OAUTH_OPTIONS = dict(authorize_path="/oauth2/authorize", token_path="/api/oauth2/token",
                     device_path="/api/v10/oauth2/device/authorize", revoke_path="/api/oauth2/token/revoke",
                     verification_uri="https://discord.com/activate", access_token_lifetime=604800.0,
                     rotate_refresh_tokens=True, old_refresh_token_survives_rotation=False, device_expires_in=300,
                     device_interval=5, access_prefix="dc.at.", refresh_prefix="dc.rt.")
BOT_SCOPES = ("bot",)
USER_ONLY = ("/users/@me", "/oauth2/@me", "/users/@me/guilds")


class DiscordOptions(BaseModel):
    """Knobs for facts the reference marks unverified or that tests want to vary."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    guilds: int = Field(2, ge=1, le=50)
    channels_per_guild: int = Field(3, ge=1, le=50)
    messages_per_channel: int = Field(60, ge=0, le=100_000)
    route_limit: int = Field(5, ge=1, le=10_000)
    route_window: float = Field(5.0, gt=0, le=3600)
    strict_schemes: bool = True
    require_user_agent: bool = False


def error(status: int, message: str, code: int = 0, errors: dict[str, Any] | None = None,
          headers: dict[str, str] | None = None) -> web.Response:
    body: dict[str, Any] = {"message": message, "code": code}
    if errors:
        body["errors"] = errors
    return json_response(body, status, headers)


def form_error(field: str, code: str, message: str) -> Reply:
    return Reply(error(400, "Invalid Form Body", 50035, {field: {"_errors": [{"code": code, "message": message}]}}))


class DiscordDialect(Dialect):
    """Discord's token answers say ``token_type: Bearer``."""

    def token_ok(self, request: web.Request, body: dict[str, Any]) -> web.Response:
        return super().token_ok(request, {**body, "token_type": "Bearer"})


class DiscordEmulator(Emulator):
    """Example: ``emu = DiscordEmulator(tokens=["MTE4.bot-token"], seed=1); base = await emu.start()``."""

    service: ClassVar[str] = "discord"
    prefixes = ("/api/v10",)
    default_rate = (50, 1.0)
    default_scopes = BOT_SCOPES
    options_model = DiscordOptions
    fallback_auth = "none"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.users: dict[str, User] = {}            # token -> user
        self._route_windows: dict[str, tuple[float, int]] = {}   # bucket key -> (window start, calls)
        self._world: World | None = None
        self.interaction_key = Ed25519PrivateKey.from_private_bytes(
            hashlib.sha256(f"discord-app-{kwargs.get('seed', 0)}".encode()).digest())
        super().__init__(*args, **kwargs)
        self.oauth = AuthorizationServer(self, OAuthServerOptions(**OAUTH_OPTIONS), dialect=DiscordDialect())

    def mount(self, app: web.Application) -> None:
        self.oauth.mount(app)

    def on_token_added(self, record: TokenRecord) -> None:
        self.users[record.token] = derive_user(record.subject or record.token, bot=record.subject is None)

    @property
    def world(self) -> World:
        if self._world is None:
            o = self.options
            self._world = World(self.seed, o.guilds, o.channels_per_guild, o.messages_per_channel)
        return self._world

    # ---- helpers for tests (other members acting) ------------------------------------------------------
    def post_message(self, channel_id: str, content: str, author: User | None = None) -> dict[str, Any]:
        channel = self.world.channels[channel_id]
        who = author or derive_user(f"member-{self.seed}-0", bot=False)
        message = Message(self.world.new_id(self.clock() * 1000), channel_id, who, content)
        channel.add(message)
        return message.json()

    def edit_message(self, channel_id: str, message_id: str, content: str) -> dict[str, Any]:
        message = self.world.channels[channel_id].messages[int(message_id)]
        message.content, message.edited_ms = content, self.clock() * 1000
        return message.json()

    def delete_message(self, channel_id: str, message_id: str) -> None:
        self.world.channels[channel_id].remove(int(message_id))

    @property
    def public_key_hex(self) -> str:
        from connectors.webhooks.discord import public_key_hex   # pure helper; the emulator signs like Discord
        return public_key_hex(self.interaction_key)

    def sign_interaction(self, body: bytes, timestamp: str | None = None) -> dict[str, str]:
        from connectors.webhooks.discord import sign
        return sign(self.interaction_key, body, timestamp or str(int(self.clock())))

    # ---- routes ----------------------------------------------------------------------------------------
    def routes(self) -> list[Route]:
        return [
            Route("GET", "/users/@me", self._api(self.me)),
            Route("GET", "/oauth2/@me", self._api(self.oauth_me)),
            Route("GET", "/users/@me/guilds", self._api(self.my_guilds)),
            Route("GET", "/gateway/bot", self._api(self.gateway)),
            Route("GET", "/guilds/{guild_id}/channels", self._api(self.guild_channels)),
            Route("GET", "/channels/{channel_id}", self._api(self.get_channel)),
            Route("GET", "/channels/{channel_id}/messages", self._api(self.list_messages)),
            Route("POST", "/channels/{channel_id}/messages", self._api(self.create_message)),
            Route("GET", "/channels/{channel_id}/messages/{message_id}", self._api(self.get_message)),
            Route("PATCH", "/channels/{channel_id}/messages/{message_id}", self._api(self.edit)),
            Route("DELETE", "/channels/{channel_id}/messages/{message_id}", self._api(self.delete)),
        ]

    async def credentials(self, call: Call) -> str | None:
        header = call.request.headers.get("Authorization")
        if header is None:
            return None
        scheme, _, value = header.strip().partition(" ")
        value = value.strip()
        if scheme.lower() not in ("bot", "bearer") or not value:
            return ""
        record = self.tokens.get(value)
        if record is not None and self.options.strict_schemes and (scheme.lower() == "bot") != (record.subject is None):
            return ""                   # a bot token sent as Bearer (or the reverse) is not a credential
        return value

    def _api(self, handler: Any) -> Any:
        async def run(call: Call) -> web.StreamResponse:
            if self.options.require_user_agent and not call.request.headers.get("User-Agent", "").startswith(
                    "DiscordBot"):
                return web.Response(status=403, content_type="text/html",
                                    text="<html><body><h1>Access denied</h1>Cloudflare</body></html>")
            user = self.users[call.token or ""]
            if not user.bot and call.route.path not in USER_ONLY:
                return error(403, "Missing Access", 50001)
            state = self._bucket_state(call)
            if not state.allowed:
                return self._too_many(call, state, scope="user")
            response = await handler(call)
            self._bucket_headers(response, call, state)
            return response
        return run

    # ---- per-route buckets -----------------------------------------------------------------------------
    def _bucket(self, call: Call) -> tuple[str, str]:
        """(bucket id, key): the id hashes the route template; the key adds the major resource and token."""
        template = f"{call.route.method} {call.route.path}"
        major = call.request.match_info.get("channel_id") or call.request.match_info.get("guild_id") or ""
        bucket = hashlib.sha1(template.encode()).hexdigest()[:32]
        return bucket, f"route:{call.token}:{bucket}:{major}"

    def _bucket_state(self, call: Call) -> WindowState:
        """Count the call in its bucket. A bucket's window starts at its first call (not aligned to the clock),
        so the first answer's Reset-After is the whole period, as on Discord."""
        _, key = self._bucket(call)
        now, limit, window = self.clock(), self.options.route_limit, self.options.route_window
        start, used = self._route_windows.get(key, (now, 0))
        if now >= start + window:
            start, used = now, 0
        if used >= limit:
            return WindowState(limit, used, start + window, now, False)
        self._route_windows[key] = (start, used + 1)
        return WindowState(limit, used + 1, start + window, now, True)

    def _bucket_headers(self, response: web.StreamResponse, call: Call, state: WindowState) -> None:
        bucket, _ = self._bucket(call)
        after = max(0.0, state.window_end - state.now)
        response.headers["X-RateLimit-Limit"] = str(state.limit)
        response.headers["X-RateLimit-Remaining"] = str(state.remaining)
        response.headers["X-RateLimit-Reset"] = f"{state.window_end:.3f}"
        response.headers["X-RateLimit-Reset-After"] = f"{after:.3f}"
        response.headers["X-RateLimit-Bucket"] = bucket

    def _too_many(self, call: Call, state: WindowState | None, *, scope: str,
                  wait: float | None = None) -> web.Response:
        retry = wait if wait is not None else max(0.001, (state.window_end - state.now) if state else 1.0)
        headers = {"Retry-After": str(math.ceil(retry)), "X-RateLimit-Scope": scope}
        if scope == "global":
            headers["X-RateLimit-Global"] = "true"
        response = json_response({"message": "You are being rate limited.", "retry_after": round(retry, 3),
                                  "global": scope == "global"}, 429, headers)
        if state is not None and scope != "global":
            self._bucket_headers(response, call, state)
        return response

    # ---- handlers --------------------------------------------------------------------------------------
    async def me(self, call: Call) -> web.StreamResponse:
        user = self.users[call.token or ""]
        return json_response({**user.json(), "verified": True, "mfa_enabled": False, "flags": 0, "locale": "en-US",
                              **({} if user.bot else {"email": f"{user.username}@example.com"})})

    async def oauth_me(self, call: Call) -> web.StreamResponse:
        record = call.record
        if record is None or record.subject is None:
            return error(401, "401: Unauthorized")
        return json_response({"application": {"id": "1180000000000000000", "name": "integd"},
                              "scopes": list(record.scopes), "user": self.users[call.token or ""].json(),
                              "expires": None if record.expires_at is None else
                              time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(record.expires_at))})

    async def my_guilds(self, call: Call) -> web.StreamResponse:
        limit = self._limit(call, 200, 200)
        after = self._snowflake(call, "after")
        guilds = [g for g in self.world.guilds if after is None or int(g.id) > after]
        return json_response([g.partial() for g in guilds[:limit]])

    async def gateway(self, call: Call) -> web.StreamResponse:
        return json_response({"url": "wss://gateway.discord.gg", "shards": 1, "session_start_limit": {
            "total": 1000, "remaining": 999, "reset_after": 86_400_000, "max_concurrency": 1}})

    async def guild_channels(self, call: Call) -> web.StreamResponse:
        gid = call.request.match_info["guild_id"]
        guild = next((g for g in self.world.guilds if g.id == gid), None)
        if guild is None:
            return error(404, "Unknown Guild", 10004)
        return json_response([c.json() for c in guild.channels])

    def _channel(self, call: Call) -> Channel:
        channel = self.world.channels.get(call.request.match_info["channel_id"])
        if channel is None:
            raise Reply(error(404, "Unknown Channel", 10003))
        return channel

    def _message(self, call: Call) -> tuple[Channel, Message]:
        channel = self._channel(call)
        raw = call.request.match_info["message_id"]
        message = channel.messages.get(int(raw)) if raw.isdigit() and len(raw) <= 20 else None
        if message is None:
            raise Reply(error(404, "Unknown Message", 10008))
        return channel, message

    async def get_channel(self, call: Call) -> web.StreamResponse:
        return json_response(self._channel(call).json())

    def _limit(self, call: Call, default: int, high: int) -> int:
        raw = call.request.query.get("limit")
        if raw is None:
            return default
        if not raw.isdigit() or not 1 <= int(raw) <= high:
            raise form_error("limit", "NUMBER_TYPE_MAX", f"Int value should be between 1 and {high}.")
        return int(raw)

    def _snowflake(self, call: Call, name: str) -> int | None:
        raw = call.request.query.get(name)
        if raw is None:
            return None
        if not raw.isdigit() or len(raw) > 20:
            raise form_error(name, "NUMBER_TYPE_COERCE", f"Value \"{raw[:30]}\" is not snowflake.")
        return int(raw)

    async def list_messages(self, call: Call) -> web.StreamResponse:
        channel = self._channel(call)
        anchors = [name for name in ("around", "before", "after") if name in call.request.query]
        if len(anchors) > 1:
            raise form_error(anchors[1], "BASE_TYPE_BAD", "Only one of around, before and after may be given.")
        page = channel.page(before=self._snowflake(call, "before"), after=self._snowflake(call, "after"),
                            around=self._snowflake(call, "around"), limit=self._limit(call, 50, 100))
        return json_response([m.json() for m in page])

    async def get_message(self, call: Call) -> web.StreamResponse:
        return json_response(self._message(call)[1].json())

    async def _body(self, call: Call) -> dict[str, Any]:
        if "application/json" not in call.request.headers.get("Content-Type", ""):
            raise form_error("content", "CONTENT_TYPE_INVALID",
                             "Expected application/json, multipart/form-data or x-www-form-urlencoded.")
        try:
            data = json.loads(await read_body(call.request, 64 * 1024) or b"null")
        except (ValueError, BodyTooLarge):
            raise Reply(error(400, "The request body contains invalid JSON.", 50109)) from None
        if not isinstance(data, dict):
            raise form_error("_root", "DICT_TYPE_CONVERT", "Only dictionaries may be used in a DictType")
        return data

    @staticmethod
    def _content(data: dict[str, Any], *, required: bool) -> str | None:
        content = data.get("content")
        if content is None:
            if required:
                raise Reply(error(400, "Cannot send an empty message", 50006))
            return None
        if not isinstance(content, str):
            raise form_error("content", "BASE_TYPE_STRING", "Could not interpret value as string.")
        if len(content) > 2000:
            raise form_error("content", "BASE_TYPE_MAX_LENGTH", "Must be 2000 or fewer in length.")
        if required and not content.strip():
            raise Reply(error(400, "Cannot send an empty message", 50006))
        return content

    async def create_message(self, call: Call) -> web.StreamResponse:
        channel = self._channel(call)
        content = self._content(await self._body(call), required=True)
        message = Message(self.world.new_id(self.clock() * 1000), channel.id, self.users[call.token or ""],
                          content or "")
        channel.add(message)
        return json_response(message.json())

    async def edit(self, call: Call) -> web.StreamResponse:
        _, message = self._message(call)
        if message.author.id != self.users[call.token or ""].id:
            return error(403, "Cannot edit a message authored by another user", 50005)
        content = self._content(await self._body(call), required=False)
        if content is not None:
            message.content, message.edited_ms = content, self.clock() * 1000
        return json_response(message.json())

    async def delete(self, call: Call) -> web.StreamResponse:
        channel, message = self._message(call)
        channel.remove(message.id)
        return web.Response(status=204)

    # ---- the provider's refusals -----------------------------------------------------------------------
    def auth_failure(self, call: Call, status: TokenStatus) -> web.StreamResponse:
        return error(401, "401: Unauthorized")

    def quotas(self, call: Call) -> list[Quota]:
        limit, window = (self.rate_limit.limit, self.rate_limit.window) if self.rate_limit else self.default_rate
        return [Quota(f"global:{call.token}", limit, window)] if call.token else []

    def rate_limited(self, call: Call, state: WindowState) -> web.StreamResponse:
        return self._too_many(call, state, scope="global")

    def burst_limited(self, call: Call) -> web.StreamResponse:
        return self._too_many(call, None, scope="shared", wait=float(self.faults.burst_retry_after))

    def server_error(self, rng: random.Random) -> web.StreamResponse:
        if rng.random() < 0.5:
            return web.Response(status=502, content_type="text/html",
                                text="<html><head><title>502 Bad Gateway</title></head><body>cloudflare</body></html>")
        return error(500, "500: Internal Server Error")

    def not_found(self, call: Call) -> web.StreamResponse:
        return error(404, "404: Not Found")


