"""The building blocks every provider emulator uses, apart from the Emulator class itself (base.py): the token
store, fixed quota windows, a manual clock, deterministic generated data and small HTTP helpers.

Errors of this module (re-exported by base.py)::

    ValueError
     └── EmulatorInputError     bad token, bad knob, bad host: the message names the field, never a secret
    Exception
     └── Reply                  raised by hooks and handlers to answer at once with a ready response
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any

from aiohttp import web

if TYPE_CHECKING:  # aiohttp's own URL type; only annotated here, so no import of another package
    from yarl import URL


class EmulatorInputError(ValueError):
    """Bad input to an emulator (token, knob, host); the message names what was wrong."""


class Reply(Exception):
    """Raised by hooks and handlers to answer the request at once with a ready response."""

    def __init__(self, response: web.StreamResponse) -> None:
        super().__init__(f"reply {response.status}")
        self.response = response


class ManualClock:
    """A clock for tests: callable like `time.time`, moved only by `advance`.

    Example: ``clock = ManualClock(1_700_000_000.0); emu = GitHubEmulator(clock=clock); clock.advance(60)``
    """

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = float(now)

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


# --- tokens -------------------------------------------------------------------------------------


class TokenStatus(Enum):
    MISSING = "missing"
    UNKNOWN = "unknown"
    REVOKED = "revoked"
    EXPIRED = "expired"    # issued with a lifetime (OAuth access tokens) that has run out
    VALID = "valid"


@dataclass
class TokenRecord:
    token: str
    scopes: tuple[str, ...]
    revoked: bool = False
    subject: str | None = None        # whose token (OAuth grants): identities derive from it, else the token
    expires_at: float | None = None   # epoch seconds by the emulator's clock; None never expires


def hint(token: str) -> str:
    """The only form in which a token may be shown: its last four characters."""
    return "…" + token[-4:] if len(token) > 8 else "…"


def check_token(token: object) -> str:
    """Return `token` if it is a plausible credential, else raise EmulatorInputError (no echo)."""
    if not isinstance(token, str) or not token:
        raise EmulatorInputError("token must be a non-empty string")
    if len(token) > 512:
        raise EmulatorInputError("token must be at most 512 characters")
    if any(c.isspace() or not c.isprintable() for c in token):
        raise EmulatorInputError("token must not contain whitespace or control characters")
    return token


class TokenStore:
    """Accepted and revoked tokens of one emulator."""

    def __init__(self) -> None:
        self._records: dict[str, TokenRecord] = {}

    def add(self, token: str, scopes: Iterable[str], *, subject: str | None = None,
            expires_at: float | None = None) -> TokenRecord:
        record = TokenRecord(check_token(token), tuple(scopes), subject=subject, expires_at=expires_at)
        self._records[token] = record
        return record

    def revoke(self, token: str) -> None:
        record = self._records.get(token)
        if record is None:
            raise EmulatorInputError(f"no such token ending {hint(token)}")
        record.revoked = True

    def status(self, token: str | None, now: float | None = None) -> TokenStatus:
        if token is None:
            return TokenStatus.MISSING
        if not token:  # an Authorization header of another scheme: a bad credential, not a missing one
            return TokenStatus.UNKNOWN
        record = self._records.get(token)
        if record is None:
            return TokenStatus.UNKNOWN
        if record.revoked:
            return TokenStatus.REVOKED
        if record.expires_at is not None and now is not None and now >= record.expires_at:
            return TokenStatus.EXPIRED
        return TokenStatus.VALID

    def get(self, token: str) -> TokenRecord | None:
        return self._records.get(token)

    def active(self) -> list[str]:
        return [t for t, r in self._records.items() if not r.revoked]

    def counts(self) -> dict[str, int]:
        revoked = sum(1 for r in self._records.values() if r.revoked)
        return {"active": len(self._records) - revoked, "revoked": revoked}


# --- fixed windows ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Quota:
    """One window to charge: `key` names whose quota (token, method, channel...)."""

    key: str
    limit: int
    window: float


@dataclass(frozen=True)
class WindowState:
    """Where a key stands in its current window, after (hit) or without (peek) counting."""

    limit: int
    used: int
    window_end: float
    now: float
    allowed: bool

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.used)

    @property
    def reset(self) -> int:
        """Window end as integer epoch seconds (what `x-ratelimit-reset` carries)."""
        return math.ceil(self.window_end)

    @property
    def retry_after(self) -> int:
        """Whole seconds until the window ends, at least 1."""
        return max(1, math.ceil(self.window_end - self.now))


class WindowCounter:
    """Fixed windows aligned to multiples of `window` since the epoch, one count per key.

    A request is counted at arrival; the (limit+1)th within one window is refused and not counted.
    """

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._windows: dict[str, tuple[float, float, int]] = {}  # key -> (start, window, count)

    def _current(self, quota: Quota) -> tuple[float, int, float]:
        now = self._clock()
        start = math.floor(now / quota.window) * quota.window
        saved = self._windows.get(quota.key)
        count = saved[2] if saved and saved[0] == start and saved[1] == quota.window else 0
        return start, count, now

    def peek(self, quota: Quota) -> WindowState:
        start, count, now = self._current(quota)
        return WindowState(quota.limit, count, start + quota.window, now, count < quota.limit)

    def hit(self, quota: Quota) -> WindowState:
        start, count, now = self._current(quota)
        if count >= quota.limit:
            return WindowState(quota.limit, count, start + quota.window, now, False)
        self._windows[quota.key] = (start, quota.window, count + 1)
        return WindowState(quota.limit, count + 1, start + quota.window, now, True)

    def clear(self) -> None:
        self._windows.clear()


# --- helpers for providers ----------------------------------------------------------------------


def digest_int(*parts: object) -> int:
    """A stable integer from `parts` (identities derived from tokens, ids derived from names)."""
    text = "\x1f".join(str(p) for p in parts)
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


def seeded(*parts: object) -> random.Random:
    """A `random.Random` whose sequence depends only on `parts` (seed, names), not on the process."""
    return random.Random(digest_int(*parts))


def int_param(raw: object, default: int, low: int, high: int) -> int:
    """Parse a paging integer leniently as providers do: junk or below `low` gives the default."""
    try:
        value = int(str(raw)) if raw is not None and str(raw) != "" else default
    except ValueError:
        return default
    return default if value < low else min(value, high)


ADJECTIVES = ("amber", "brisk", "calm", "deft", "eager", "fuzzy", "gentle", "hardy", "ivory", "jolly", "keen",
              "lucid", "mellow", "nimble", "olive", "proud", "quiet", "rapid", "sunny", "tidy", "vivid", "witty")
NOUNS = ("otter", "falcon", "maple", "harbor", "comet", "badger", "cedar", "delta", "ember", "fjord", "glacier",
         "heron", "island", "juniper", "kestrel", "lagoon", "meadow", "nebula", "orchid", "pebble", "quartz")
FIRST_NAMES = ("Ada", "Grace", "Linus", "Ken", "Barbara", "Alan", "Margaret", "Dennis", "Frances", "Edsger",
               "Radia", "Tim", "Hedy", "John", "Katherine", "Guido")
LAST_NAMES = ("Lovelace", "Hopper", "Torvalds", "Thompson", "Liskov", "Turing", "Hamilton", "Ritchie", "Allen",
              "Dijkstra", "Perlman", "Lee", "Lamarr", "McCarthy", "Johnson", "Rossum")


def pick(seq: tuple[str, ...], number: int) -> str:
    """A deterministic choice from `seq` by an integer (from `digest_int`)."""
    return seq[number % len(seq)]


def link_header(url: URL, page: int, per_page: int, total: int) -> str | None:
    """A GitHub/GitLab-style `Link` header for page `page` of `total` items (None if no items)."""
    last = max(1, math.ceil(total / per_page))
    if total == 0:
        return None
    rels = []
    if page > 1:
        rels.append(("prev", min(page - 1, last)))
    if page < last:
        rels += [("next", page + 1), ("last", last)]
    if page > 1:
        rels.append(("first", 1))
    query = {k: v for k, v in url.query.items() if k not in ("page", "per_page")}
    links = [f'<{url.with_query({**query, "per_page": str(per_page), "page": str(n)})}>; rel="{rel}"'
             for rel, n in rels]
    return ", ".join(links) or None


def encode_cursor(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def decode_cursor(cursor: str, prefix: str) -> str | None:
    """The payload of a cursor made by `encode_cursor(prefix + payload)`, or None if it is not one."""
    try:
        text = base64.b64decode(cursor.encode(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    return text[len(prefix):] if text.startswith(prefix) else None


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        text=json.dumps(body, separators=(",", ":")), status=status, headers=headers,
        content_type="application/json", charset="utf-8",
    )


class BodyTooLarge(Exception):
    """The request body passed the provider's size limit."""


async def read_body(request: web.Request, limit: int) -> bytes:
    """Read the whole body, refusing early (Content-Length) or while streaming when over `limit`."""
    if request.content_length is not None and request.content_length > limit:
        raise BodyTooLarge
    chunks, size = [], 0
    async for chunk in request.content.iter_chunked(65536):
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def bearer_token(request: web.Request, schemes: tuple[str, ...] = ("bearer",)) -> str | None:
    """The credential of an `Authorization: <scheme> <token>` header, '' for another scheme."""
    header = request.headers.get("Authorization")
    if header is None:
        return None
    scheme, _, value = header.strip().partition(" ")
    return value.strip() if scheme.lower() in schemes and value.strip() else ""
