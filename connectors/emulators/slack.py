"""Slack Web API emulator (reference: apis-messaging.md §4).

Base URL `http://127.0.0.1:PORT/api`; methods are `POST|GET {base}/<method.name>`, taking query
parameters, form bodies or JSON bodies as Slack does. Auth: `Authorization: Bearer xox…` or a `token`
form/query field (not inside JSON, as on Slack). Answers are JSON with `ok`; errors come with HTTP 200
(a knob, the reference marks it unverified) except the rate limit: HTTP 429, `Retry-After: <secs>`,
`{"ok":false,"error":"ratelimited"}`, no X-RateLimit headers. Quotas are per token per method tier
(auth.test 100/min, conversations.list 20/min, conversations.history 50/min, users.list 20/min) and
per channel for chat.postMessage (1/s); `set_rate_limit` replaces all of them with one per-token quota.

Sync support (issue 6): up to 200,000 messages per channel; `cursor_ttl` makes history page cursors expire
(`invalid_cursor`, as Slack answers a stale cursor); `edit_message` / `delete_message` change history as
other users would (an edit adds `edited`; a deletion leaves no row, as in `conversations.history`).

Error codes used: not_authed, invalid_auth, token_revoked, missing_scope, invalid_cursor, channel_not_found,
is_archived, no_text, msg_too_long, invalid_blocks, thread_not_found, invalid_ts_oldest, invalid_ts_latest,
invalid_json, invalid_form_data, unknown_method (404), ratelimited (429), service_unavailable (fault).
"""

from __future__ import annotations

import json
import math
import random
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from .base import (
    ADJECTIVES, FIRST_NAMES, LAST_NAMES, NOUNS, Call, Emulator, Quota, Reply, Route, TokenRecord, TokenStatus,
    WindowState, bearer_token, decode_cursor, digest_int, encode_cursor, int_param, json_response, pick,
    read_body, seeded,
)
from .oauth import AuthorizationServer, OAuthServerOptions, SlackDialect

# Slack OAuth v2 (reference §4 Auth): without rotation (the default) tokens never expire and no refresh token
# is issued; `enable_token_rotation()` switches to 12 h xoxe.xoxb- tokens with rotating xoxe-1- refresh tokens.
OAUTH_OPTIONS = dict(authorize_path="/oauth/v2/authorize", token_path="/api/oauth.v2.access",
                     revoke_path="/api/auth.revoke", access_token_lifetime=None, issue_refresh_token=False,
                     access_prefix="xoxb-", refresh_prefix="xoxe-1-")

DATA_EPOCH = 1672531200  # 2023-01-01: generated history starts here, independent of the clock
ID_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
SCOPES = {
    "auth.test": (),
    "conversations.list": ("channels:read", "groups:read", "im:read", "mpim:read"),
    "conversations.history": ("channels:history", "groups:history", "im:history", "mpim:history"),
    "conversations.replies": ("channels:history", "groups:history", "im:history", "mpim:history"),
    "chat.postMessage": ("chat:write",),
    "users.list": ("users:read",),
}


class SlackOptions(BaseModel):
    """Knobs for workspace size, tiers, and facts the reference marks unverified."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    channels: int = Field(40, ge=1, le=2000)
    messages_per_channel: int = Field(120, ge=0, le=200_000)
    thread_every: int = Field(10, ge=0, le=10_000)   # every Nth generated message starts a thread of 1-3 replies
    cursor_ttl: float = Field(0.0, ge=0.0)  # seconds a history page cursor stays valid (0: forever)
    members: int = Field(25, ge=0, le=2000)
    tier_limits: dict[str, int] = Field(default_factory=lambda: {
        "auth.test": 100, "conversations.list": 20, "conversations.history": 50, "conversations.replies": 50,
        "users.list": 20})
    tier_window: float = Field(60.0, gt=0)
    post_message_limit: int = Field(1, ge=1)  # per channel; "about one per second" [V, approximate]
    post_message_window: float = Field(1.0, gt=0)
    history_limit_max: int = Field(999, ge=1, le=999)  # 15 for restricted (non-Marketplace) apps
    auth_error_status: int = Field(200, ge=200, le=599)  # auth errors with HTTP 200 [U]


def slack_id(prefix: str, *parts: object) -> str:
    number = digest_int("slack", *parts)
    chars = []
    for _ in range(10):
        number, index = divmod(number, len(ID_CHARS))
        chars.append(ID_CHARS[index])
    return prefix + "".join(chars)


def ts_text(micros: int) -> str:
    return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"


def parse_ts(text: Any) -> int | None:
    """`"1512085950.000216"` -> microseconds, None if not a Slack timestamp."""
    whole, _, frac = str(text).partition(".")
    if not whole.isdigit() or (frac and (not frac.isdigit() or len(frac) > 6)):
        return None
    return int(whole) * 1_000_000 + int(frac.ljust(6, "0") or 0)


def flag(value: Any) -> bool:
    return value in (True, 1, "1", "true", "True")


def fail(code: str, status: int = 200, **extra: Any) -> Reply:
    return Reply(json_response({"ok": False, "error": code, **extra}, status))


@dataclass
class Member:
    id: str
    name: str
    real_name: str
    is_bot: bool = False
    bot_id: str | None = None


@dataclass
class Message:
    ts: int
    user: str
    text: str
    bot_id: str | None = None
    thread_ts: int | None = None
    reply_count: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Channel:
    id: str
    name: str
    private: bool
    archived: bool
    created: int
    creator: str
    messages: list[Message] = field(default_factory=list)  # oldest first; thread replies live in `replies`
    replies: list[Message] = field(default_factory=list)


class SlackEmulator(Emulator):
    """Slack Web API. Example: ``emu = SlackEmulator(tokens=["xoxb-demo"], seed=1)``."""

    service = "slack"
    prefixes = ("/api",)
    default_rate = (100, 60.0)
    default_scopes = ("channels:read", "groups:read", "channels:history", "groups:history", "chat:write",
                      "users:read")
    options_model = SlackOptions

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.identities: dict[str, Member] = {}  # token -> member
        super().__init__(*args, **kwargs)
        self.oauth = AuthorizationServer(self, OAuthServerOptions(**OAUTH_OPTIONS), dialect=SlackDialect())
        rng = seeded(self.seed, "workspace")
        self.team_id = slack_id("T", self.seed, "team")
        self.team_name = f"{rng.choice(ADJECTIVES).title()} {rng.choice(NOUNS).title()} Team"
        self.domain = self.team_name.lower().replace(" ", "-")
        self.members = [self._member(i, rng) for i in range(self.options.members)]
        self.channels = [self._channel(i, rng) for i in range(self.options.channels)]

    def mount(self, app: web.Application) -> None:
        self.oauth.mount(app)

    def enable_token_rotation(self, lifetime: float = 43200.0) -> None:
        """Slack's opt-in token rotation: expiring access tokens, refresh tokens that rotate (old one revoked)."""
        o = self.oauth.options
        o.access_token_lifetime, o.issue_refresh_token, o.access_prefix = lifetime, True, "xoxe.xoxb-1-"
        o.rotate_refresh_tokens, o.old_refresh_token_survives_rotation = True, False

    # --- data -----------------------------------------------------------------------------------

    def _member(self, index: int, rng: random.Random) -> Member:
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        return Member(slack_id("U", self.seed, "member", index), f"{first.lower()}.{last.lower()}{index}",
                      f"{first} {last}")

    def _channel(self, index: int, rng: random.Random) -> Channel:
        name = ("general", "random")[index] if index < 2 else f"{rng.choice(NOUNS)}-{rng.choice(ADJECTIVES)}-{index}"
        start = DATA_EPOCH + index * 7 * 86400
        authors = [m.id for m in self.members] or [slack_id("U", self.seed, "founder")]
        channel = Channel(slack_id("C", self.seed, "channel", index), name, index % 7 == 6,
                          index > 1 and index % 9 == 8, start, authors[0])
        for k in range(self.options.messages_per_channel):
            micros = (start + k * 3600 + rng.randrange(3000)) * 1_000_000 + rng.randrange(1_000_000)
            channel.messages.append(Message(micros, rng.choice(authors), f"{rng.choice(ADJECTIVES)} update #{k}"))
        self._threads(channel, authors)
        return channel

    def _threads(self, channel: Channel, authors: list[str]) -> None:
        """Replies to every `thread_every`-th message, minutes after it (their own generator: adding threads
        does not move the rest of the generated workspace)."""
        every = self.options.thread_every
        rng = seeded(self.seed, "threads", channel.id)
        for k, parent in enumerate(channel.messages):
            if not every or k % every != every - 1:
                continue
            parent.thread_ts = parent.ts
            for j in range(1 + rng.randrange(3)):
                reply = Message(parent.ts + (j + 1) * 60_000_000 + rng.randrange(1_000_000), rng.choice(authors),
                                f"re: {rng.choice(NOUNS)} ({j + 1})")
                reply.thread_ts = parent.ts
                channel.replies.append(reply)
                parent.reply_count += 1

    def on_token_added(self, record: TokenRecord) -> None:
        token = record.token
        who = record.subject or token   # one OAuth grant's tokens (rotated or not) are one identity
        h = digest_int("slack-identity", who)
        if token.startswith(("xoxb-", "xoxe.xoxb-")):
            member = Member(slack_id("U", "bot", who), f"integd-bot-{h % 1000}", "integd bot", True,
                            slack_id("B", "bot", who))
        else:
            member = Member(slack_id("U", "user", who), f"{pick(FIRST_NAMES, h).lower()}.{h % 1000}",
                            f"{pick(FIRST_NAMES, h)} {pick(LAST_NAMES, h >> 8)}")
        self.identities[token] = member

    def _everyone(self) -> list[Member]:
        known = {m.id: m for m in self.members}
        for member in self.identities.values():
            known.setdefault(member.id, member)
        return list(known.values())

    def _find_channel(self, ref: Any) -> Channel:
        wanted = str(ref or "").lstrip("#")
        channel = next((c for c in self.channels if wanted in (c.id, c.name)), None) if wanted else None
        if channel is None:
            raise fail("channel_not_found")
        return channel

    # --- rendering ------------------------------------------------------------------------------

    def _channel_json(self, c: Channel) -> dict[str, Any]:
        topic = {"value": f"All about {c.name}", "creator": c.creator, "last_set": c.created}
        return {"id": c.id, "name": c.name, "name_normalized": c.name, "is_channel": True, "is_group": False,
                "is_im": False, "is_mpim": False, "is_private": c.private, "is_archived": c.archived,
                "is_general": c.name == "general", "is_shared": False, "is_member": True, "created": c.created,
                "creator": c.creator, "updated": c.created * 1000, "topic": topic,
                "purpose": {**topic, "value": f"Talk about {c.name}"}, "num_members": len(self.members)}

    def _message_json(self, m: Message) -> dict[str, Any]:
        body: dict[str, Any] = {"type": "message", "user": m.user, "text": m.text, "ts": ts_text(m.ts),
                                "team": self.team_id, **m.extra}
        if m.bot_id:
            body["bot_id"] = m.bot_id
        if m.thread_ts is not None:
            body["thread_ts"] = ts_text(m.thread_ts)
        if m.reply_count:
            body["reply_count"] = m.reply_count
        return body

    def _member_json(self, m: Member) -> dict[str, Any]:
        return {"id": m.id, "team_id": self.team_id, "name": m.name, "deleted": False, "real_name": m.real_name,
                "tz": "Europe/Berlin", "is_admin": False, "is_bot": m.is_bot, "is_app_user": False,
                "updated": DATA_EPOCH, "profile": {"real_name": m.real_name, "display_name": m.name,
                                                   **({"bot_id": m.bot_id} if m.bot_id else {})}}

    def _cursor_page(self, call: Call, items: list[Any], kind: str, default: int, top: int) -> tuple[list[Any], str]:
        """A page of `items` from the `<kind>:<id>` cursor; the next cursor names the next item's id."""
        start = 0
        if call.params.get("cursor"):
            wanted = decode_cursor(str(call.params["cursor"]), kind + ":")
            start = next((i for i, item in enumerate(items) if item.id == wanted), -1)
            if start < 0:
                raise fail("invalid_cursor")
        limit = int_param(call.params.get("limit"), default, 1, top) or len(items) or 1
        page = items[start:start + limit]
        following = items[start + limit: start + limit + 1]
        return page, encode_cursor(f"{kind}:{following[0].id}") if following else ""

    # --- methods --------------------------------------------------------------------------------

    def routes(self) -> list[Route]:
        methods = {"auth.test": self.auth_test, "conversations.list": self.conversations_list,
                   "conversations.history": self.conversations_history,
                   "conversations.replies": self.conversations_replies, "chat.postMessage": self.chat_post_message,
                   "users.list": self.users_list}
        return [Route("*", "/" + name, handler, name=name) for name, handler in methods.items()]

    def _require_scope(self, call: Call) -> None:
        needed = SCOPES.get(call.route.name, ())
        held = call.record.scopes if call.record else ()
        if needed and not set(needed) & set(held):
            raise fail("missing_scope", needed=",".join(needed), provided=",".join(held))

    async def auth_test(self, call: Call) -> web.StreamResponse:
        me = self.identities[call.token or ""]
        body = {"ok": True, "url": f"https://{self.domain}.slack.com/", "team": self.team_name, "user": me.name,
                "team_id": self.team_id, "user_id": me.id, "is_enterprise_install": False}
        if me.bot_id:
            body["bot_id"] = me.bot_id
        return json_response(body)

    async def conversations_list(self, call: Call) -> web.StreamResponse:
        self._require_scope(call)
        types = set(str(call.params.get("types") or "public_channel").split(","))
        channels = [c for c in self.channels
                    if ("private_channel" if c.private else "public_channel") in types
                    and not (c.archived and flag(call.params.get("exclude_archived")))]
        page, cursor = self._cursor_page(call, channels, "team", 100, 999)
        return json_response({"ok": True, "channels": [self._channel_json(c) for c in page],
                              "response_metadata": {"next_cursor": cursor}})

    def _history_bounds(self, call: Call) -> tuple[int, float, bool]:
        params = call.params
        oldest = parse_ts(params.get("oldest") or "0")
        latest = parse_ts(params["latest"]) if params.get("latest") else math.inf
        if oldest is None:
            raise fail("invalid_ts_oldest")
        if latest is None:
            raise fail("invalid_ts_latest")
        return oldest, latest, flag(params.get("inclusive"))

    async def conversations_history(self, call: Call) -> web.StreamResponse:
        self._require_scope(call)
        channel = self._find_channel(call.params.get("channel"))
        oldest, latest, inclusive = self._history_bounds(call)
        before: float = latest
        if call.params.get("cursor"):
            cursor_ts = parse_ts(self._fresh_cursor(decode_cursor(str(call.params["cursor"]), "next_ts:") or ""))
            if cursor_ts is None:
                raise fail("invalid_cursor")
            before, inclusive_before = min(latest, cursor_ts), False
        else:
            inclusive_before = inclusive

        def wanted(m: Message) -> bool:
            low = m.ts >= oldest if inclusive else m.ts > oldest
            high = m.ts <= before if inclusive_before else m.ts < before
            return low and high

        candidates = [m for m in reversed(channel.messages) if wanted(m)]  # newest first
        limit = int_param(call.params.get("limit"), 100, 1, self.options.history_limit_max)
        page, has_more = candidates[:limit], len(candidates) > limit
        body: dict[str, Any] = {"ok": True, "messages": [self._message_json(m) for m in page],
                                "has_more": has_more, "pin_count": 0}
        if has_more:
            issued = f"|{int(self.clock())}" if self.options.cursor_ttl else ""
            body["response_metadata"] = {"next_cursor": encode_cursor(f"next_ts:{ts_text(page[-1].ts)}{issued}")}
        return json_response(body)

    async def conversations_replies(self, call: Call) -> web.StreamResponse:
        """A thread: its parent first, then the replies oldest first inside `oldest`/`latest`, paged by cursor.
        A message without replies comes back alone (an ordinary, unthreaded message)."""
        self._require_scope(call)
        channel = self._find_channel(call.params.get("channel"))
        micros = parse_ts(call.params.get("ts"))
        parent = next((m for m in channel.messages if m.ts == micros), None) if micros is not None else None
        if parent is None:
            raise fail("thread_not_found")
        oldest, latest, inclusive = self._history_bounds(call)
        replies = sorted((r for r in channel.replies if r.thread_ts == parent.ts and r is not parent
                          and (oldest <= r.ts <= latest if inclusive else oldest < r.ts < latest)),
                         key=lambda r: r.ts)
        after = 0
        if call.params.get("cursor"):
            after = parse_ts(decode_cursor(str(call.params["cursor"]), "next_ts:") or "") or 0
            if not after:
                raise fail("invalid_cursor")
        limit = int_param(call.params.get("limit"), 1000, 1, 1000)
        rest = [r for r in replies if r.ts >= after]
        page, has_more = rest[:limit], len(rest) > limit
        messages = [] if after else [self._message_json(parent)]
        messages += [{**self._message_json(r), "parent_user_id": parent.user} for r in page]
        body: dict[str, Any] = {"ok": True, "messages": messages, "has_more": has_more}
        if has_more:
            body["response_metadata"] = {"next_cursor": encode_cursor(f"next_ts:{ts_text(rest[limit].ts)}")}
        return json_response(body)

    def _fresh_cursor(self, text: str) -> str:
        """The ts inside a history cursor, or '' when the `cursor_ttl` knob says it has expired."""
        ts, _, issued = text.partition("|")
        if issued and (not issued.isdigit() or self.clock() - int(issued) > self.options.cursor_ttl):
            return ""
        return ts

    def _message(self, channel_id: str, ts: str) -> tuple[Channel, Message]:
        channel = next((c for c in self.channels if c.id == channel_id), None)
        micros = parse_ts(ts)
        found = next((m for m in channel.messages if m.ts == micros), None) if channel else None
        if channel is None or found is None:
            raise KeyError(f"no message {ts} in {channel_id}")
        return channel, found

    def edit_message(self, channel_id: str, ts: str, text: str) -> None:
        """Another user edits a message: new text and an `edited` marker (history rows keep their ts)."""
        _, message = self._message(channel_id, ts)
        message.text = text
        message.extra["edited"] = {"user": message.user, "ts": ts_text(int(self.clock() * 1_000_000))}

    def delete_message(self, channel_id: str, ts: str) -> None:
        """Another user deletes a message: it leaves the channel's history."""
        channel, message = self._message(channel_id, ts)
        channel.messages.remove(message)

    async def chat_post_message(self, call: Call) -> web.StreamResponse:
        self._require_scope(call)
        params = call.params
        channel = self._find_channel(params.get("channel"))
        if channel.archived:
            raise fail("is_archived")
        text, blocks = str(params.get("text") or ""), self._blocks(params.get("blocks"))
        if not text.strip() and not blocks and not params.get("attachments"):
            raise fail("no_text")
        if len(text) > 40_000:
            raise fail("msg_too_long")
        me = self.identities[call.token or ""]
        last = max([m.ts for m in channel.messages + channel.replies], default=0)
        message = Message(max(int(self.clock() * 1_000_000), last + 1), me.id, text, me.bot_id,
                          extra={"blocks": blocks} if blocks else {})
        if params.get("thread_ts"):
            parent_ts = parse_ts(params["thread_ts"])
            parent = next((m for m in channel.messages if m.ts == parent_ts), None)
            if parent is None:
                raise fail("thread_not_found")
            parent.reply_count += 1
            parent.thread_ts = parent.ts
            message.thread_ts = parent.ts
            channel.replies.append(message)
            if flag(params.get("reply_broadcast")):
                channel.messages.append(message)
        else:
            channel.messages.append(message)
        return json_response({"ok": True, "channel": channel.id, "ts": ts_text(message.ts),
                              "message": self._message_json(message)})

    @staticmethod
    def _blocks(raw: Any) -> list[Any]:
        if raw in (None, ""):
            return []
        if isinstance(raw, str):
            try:
                raw = json.loads(raw)
            except ValueError:
                raise fail("invalid_blocks") from None
        if not isinstance(raw, list) or not all(isinstance(b, dict) and "type" in b for b in raw):
            raise fail("invalid_blocks")
        return raw

    async def users_list(self, call: Call) -> web.StreamResponse:
        self._require_scope(call)
        everyone = self._everyone()
        page, cursor = self._cursor_page(call, everyone, "user", 0, 1000)
        return json_response({"ok": True, "members": [self._member_json(m) for m in page],
                              "cache_ts": int(self.clock()), "response_metadata": {"next_cursor": cursor}})

    # --- dialect hooks --------------------------------------------------------------------------

    async def prepare(self, call: Call) -> None:
        request = call.request
        params: dict[str, Any] = dict(request.query)
        if request.method == "POST" and request.content_type == "multipart/form-data":
            params.update({k: v for k, v in (await request.post()).items() if isinstance(v, str)})
        elif request.method == "POST":
            raw = await read_body(request, self.max_body)
            if request.content_type == "application/json" and raw:
                try:
                    data = json.loads(raw)
                except ValueError:
                    data = None
                if not isinstance(data, dict):
                    raise fail("invalid_json")
                data.pop("token", None)  # Slack ignores a token inside JSON; it wants the header
                params.update(data)
            elif raw:
                try:
                    form = urllib.parse.parse_qs(raw.decode(), keep_blank_values=True, strict_parsing=True)
                except (UnicodeDecodeError, ValueError):
                    raise fail("invalid_form_data") from None
                params.update({k: v[-1] for k, v in form.items()})
        call.params = params

    async def credentials(self, call: Call) -> str | None:
        header = bearer_token(call.request)
        if header is not None:
            return header
        token = call.params.get("token")
        return str(token) if token else None

    def quotas(self, call: Call) -> list[Quota]:
        token = call.token
        if not token:
            return []
        if self.rate_limit:
            return [Quota(f"{token}:*", self.rate_limit.limit, self.rate_limit.window)]
        method = call.route.name
        if method == "chat.postMessage":
            channel = str(call.params.get("channel") or "").lstrip("#")
            found = next((c.id for c in self.channels if channel in (c.id, c.name)), channel)
            return [Quota(f"{token}:{method}:{found}", self.options.post_message_limit,
                          self.options.post_message_window)]
        limit = self.options.tier_limits.get(method, self.default_rate[0])
        return [Quota(f"{token}:{method}", limit, self.options.tier_window)]

    def auth_failure(self, call: Call, status: TokenStatus) -> web.StreamResponse:
        code = {TokenStatus.MISSING: "not_authed", TokenStatus.REVOKED: "token_revoked",
                TokenStatus.EXPIRED: "token_expired"}.get(status, "invalid_auth")
        return json_response({"ok": False, "error": code}, self.options.auth_error_status)

    def rate_limited(self, call: Call, state: WindowState) -> web.StreamResponse:
        return json_response({"ok": False, "error": "ratelimited"}, 429, {"Retry-After": str(state.retry_after)})

    def burst_limited(self, call: Call) -> web.StreamResponse:
        return json_response({"ok": False, "error": "ratelimited"}, 429,
                             {"Retry-After": str(self.faults.burst_retry_after)})

    def server_error(self, rng: random.Random) -> web.StreamResponse:
        if rng.random() < 0.5:
            return json_response({"ok": False, "error": "service_unavailable"})
        return web.Response(status=503, content_type="text/plain", text="Service Unavailable\n")

    def not_found(self, call: Call) -> web.StreamResponse:
        method = call.path.lstrip("/")
        return json_response({"ok": False, "error": "unknown_method", "req_method": method}, 404)

    def decorate(self, call: Call, response: web.StreamResponse) -> None:
        response.headers["x-slack-req-id"] = f"{digest_int(self.seed, len(self.request_log)):016x}"
        if call.record is not None:
            response.headers["x-oauth-scopes"] = ",".join(call.record.scopes)
            response.headers["x-accepted-oauth-scopes"] = ",".join(SCOPES.get(call.route.name, ()))
