"""Value objects: immutable, self-validating, compared by value.

>>> RateLimit(per_minute=60, per_hour=1000, per_day=10000, burst=10).within(RateLimit(per_hour=5000))
True
>>> ConnectionTimeout(200)
Traceback (most recent call last):
...
domain.errors.InvalidConfiguration: connection timeout must be between 1 and 120 seconds, got 200
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from enum import StrEnum

from domain.errors import InvalidConfiguration

_ID_RE = re.compile(r"^int_[0-9a-f]{32}$")


@dataclass(frozen=True, slots=True)
class IntegrationId:
    """Strongly typed identifier of a ConnectedApp: ``int_`` and 32 hex digits."""

    value: str

    def __post_init__(self) -> None:
        if not isinstance(self.value, str) or not _ID_RE.fullmatch(self.value):
            raise InvalidConfiguration(
                f"not an integration id: {str(self.value)[:40]!r} (expected int_ followed by 32 hex digits)",
                field="id",
            )

    @classmethod
    def generate(cls) -> IntegrationId:
        return cls("int_" + uuid.uuid4().hex)

    def __str__(self) -> str:
        return self.value


class ConnectionStatus(StrEnum):
    CONNECTED = "connected"
    DISCONNECTED = "disconnected"
    ERROR = "error"
    PENDING = "pending"
    RATE_LIMITED = "rate_limited"
    UNAUTHORIZED = "unauthorized"

    @property
    def is_active(self) -> bool:
        """An active app is checked, can be called and counts towards the dashboard's live connections."""
        return self not in (ConnectionStatus.DISCONNECTED, ConnectionStatus.PENDING)


class ServiceCategory(StrEnum):
    EMAIL = "email"
    CHAT = "chat"
    STORAGE = "storage"
    DEVELOPMENT = "development"
    CRM = "crm"


class AuthMode(StrEnum):
    API_KEY = "api_key"
    OAUTH2 = "oauth2"


_WINDOWS = (("per_minute", 60), ("per_hour", 3600), ("per_day", 86400))


@dataclass(frozen=True, slots=True)
class RateLimit:
    """Requests allowed per minute, hour and day, and the burst the minute window may spend at once.

    A window left as None is unlimited at that granularity. Invariants: every number positive; a longer window
    never allows fewer requests than a shorter one (per_minute <= per_hour <= per_day); burst >= 1 and not above
    per_minute.
    """

    per_minute: int | None = None
    per_hour: int | None = None
    per_day: int | None = None
    burst: int | None = None

    def __post_init__(self) -> None:
        for name in ("per_minute", "per_hour", "per_day", "burst"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
                raise InvalidConfiguration(f"rate limit {name} must be a positive whole number, got {v!r}",
                                           field=f"rate_limit.{name}")
        set_windows = [(n, getattr(self, n)) for n, _ in _WINDOWS if getattr(self, n) is not None]
        for (a, va), (b, vb) in zip(set_windows, set_windows[1:]):
            if va > vb:
                raise InvalidConfiguration(f"rate limit {a} ({va}) cannot exceed {b} ({vb})",
                                           field=f"rate_limit.{a}")
        if self.burst is not None and self.per_minute is not None and self.burst > self.per_minute:
            raise InvalidConfiguration(
                f"rate limit burst ({self.burst}) cannot exceed per_minute ({self.per_minute})",
                field="rate_limit.burst")

    @classmethod
    def create(cls, *, requests_per_minute: int | None = None, requests_per_hour: int | None = None,
               requests_per_day: int | None = None, burst_capacity: int | None = None) -> RateLimit:
        """The seed's spelling: ``RateLimit.create(requests_per_minute=60, ..., burst_capacity=10)``."""
        return cls(requests_per_minute, requests_per_hour, requests_per_day, burst_capacity)

    def windows(self) -> list[tuple[str, int, int]]:
        """(name, seconds, limit) of each bounded window, shortest first."""
        return [(n, s, getattr(self, n)) for n, s in _WINDOWS if getattr(self, n) is not None]

    def within(self, provider: RateLimit) -> bool:
        return not self.excess_over(provider)

    def excess_over(self, provider: RateLimit) -> list[str]:
        """Names of the windows where this limit would allow more than ``provider`` publishes."""
        out = []
        for name in ("per_minute", "per_hour", "per_day", "burst"):
            p, mine = getattr(provider, name), getattr(self, name)
            if p is not None and (mine is None or mine > p):
                out.append(name)
        return out

    def merged_over(self, provider: RateLimit) -> RateLimit:
        """This limit as a user's override of ``provider``'s: unset windows inherit the provider's.

        Raises InvalidConfiguration if any window would exceed what the provider publishes.
        """
        merged = RateLimit(
            per_minute=self.per_minute if self.per_minute is not None else provider.per_minute,
            per_hour=self.per_hour if self.per_hour is not None else provider.per_hour,
            per_day=self.per_day if self.per_day is not None else provider.per_day,
            burst=self.burst if self.burst is not None else _default_burst(self, provider),
        )
        excess = merged.excess_over(provider)
        if excess:
            name = excess[0]
            raise InvalidConfiguration(
                f"rate limit {name} ({getattr(merged, name)}) exceeds the provider's published limit "
                f"({getattr(provider, name)})", field=f"rate_limit.{name}")
        return merged

    def effective_burst(self) -> int:
        if self.burst is not None:
            return self.burst
        if self.per_minute is not None:
            return max(1, min(10, self.per_minute))
        return 10

    def as_dict(self) -> dict[str, int | None]:
        return {"per_minute": self.per_minute, "per_hour": self.per_hour, "per_day": self.per_day,
                "burst": self.burst}


def _default_burst(mine: RateLimit, provider: RateLimit) -> int | None:
    burst = provider.burst
    if burst is not None and mine.per_minute is not None and burst > mine.per_minute:
        return mine.per_minute
    return burst


@dataclass(frozen=True, slots=True)
class ConnectionTimeout:
    """Seconds allowed for one provider call; the seed's invariant bounds it to 1-120 s."""

    seconds: float = 30.0
    MIN: float = field(default=1.0, init=False, repr=False)
    MAX: float = field(default=120.0, init=False, repr=False)

    def __post_init__(self) -> None:
        s = self.seconds
        if isinstance(s, bool) or not isinstance(s, (int, float)) or not (1.0 <= s <= 120.0):
            raise InvalidConfiguration(f"connection timeout must be between 1 and 120 seconds, got {s!r}",
                                       field="timeout")


@dataclass(frozen=True, slots=True)
class CheckInterval:
    """Seconds between health checks: 10 s to one day (five minutes by default)."""

    seconds: float = 300.0

    def __post_init__(self) -> None:
        s = self.seconds
        if isinstance(s, bool) or not isinstance(s, (int, float)) or not (10.0 <= s <= 86400.0):
            raise InvalidConfiguration(f"check interval must be between 10 and 86400 seconds, got {s!r}",
                                       field="check_interval")


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A secret API key or token. Never printed: ``repr`` and ``str`` show only a hint of the last four chars."""

    _value: str = field(repr=False)

    def __post_init__(self) -> None:
        v = self._value
        if not isinstance(v, str) or not v.strip():
            raise InvalidConfiguration("API key is empty", field="api_key")
        if len(v) > 4096:
            raise InvalidConfiguration("API key is longer than 4096 characters", field="api_key")
        if any(c.isspace() or ord(c) < 32 for c in v):
            raise InvalidConfiguration("API key contains whitespace or control characters", field="api_key")

    def reveal(self) -> str:
        return self._value

    @property
    def hint(self) -> str:
        return redact_hint(self._value)

    def __str__(self) -> str:
        return self.hint

    def __repr__(self) -> str:
        return f"ApiKey({self.hint})"


def redact_hint(secret: str) -> str:
    """``…abcd`` for a long secret; a short one gives nothing away at all."""
    return "…" + secret[-4:] if len(secret) >= 12 else "…"


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How a retryable failure is retried: the seed's exponential backoff.

    >>> RetryPolicy.exponential_backoff().delay(3)
    4.0
    """

    max_retries: int = 3
    base_delay: float = 1.0
    max_delay: float = 30.0
    backoff_multiplier: float = 2.0

    def __post_init__(self) -> None:
        if self.max_retries < 0 or self.base_delay <= 0 or self.max_delay < self.base_delay \
                or self.backoff_multiplier < 1:
            raise InvalidConfiguration("retry policy needs max_retries >= 0, 0 < base_delay <= max_delay, "
                                       "backoff_multiplier >= 1", field="retry")

    @classmethod
    def exponential_backoff(cls, max_retries: int = 3) -> RetryPolicy:
        return cls(max_retries=max_retries, base_delay=1.0, max_delay=30.0, backoff_multiplier=2.0)

    @classmethod
    def none(cls) -> RetryPolicy:
        return cls(max_retries=0)

    def delay(self, retry_number: int) -> float:
        """Delay before retry ``retry_number`` (1-based), before jitter."""
        return min(self.max_delay, self.base_delay * self.backoff_multiplier ** (retry_number - 1))

    @property
    def max_attempts(self) -> int:
        return self.max_retries + 1


class SyncDirection(StrEnum):
    PULL = "pull"
    PUSH = "push"
    BIDIRECTIONAL = "bidirectional"


class ConflictResolution(StrEnum):
    LATEST_WINS = "latest_wins"
    REMOTE_WINS = "remote_wins"
    LOCAL_WINS = "local_wins"
    MANUAL = "manual"


class FrequencyKind(StrEnum):
    REALTIME = "realtime"
    INTERVAL = "interval"
    HOURLY = "hourly"
    DAILY = "daily"
    CRON = "cron"
    MANUAL = "manual"


@dataclass(frozen=True, slots=True)
class SyncFrequency:
    """How often a SyncJob runs: ``SyncFrequency.hourly()``, ``.every_minutes(15)``, ``.realtime()``, ..."""

    kind: FrequencyKind
    minutes: int | None = None
    cron: str | None = None

    def __post_init__(self) -> None:
        if self.kind is FrequencyKind.INTERVAL and (self.minutes is None or not 1 <= self.minutes <= 10080):
            raise InvalidConfiguration("interval sync frequency needs minutes between 1 and 10080",
                                       field="frequency.minutes")
        if self.kind is FrequencyKind.CRON and (not self.cron or len(self.cron.split()) != 5):
            raise InvalidConfiguration("cron sync frequency needs a five-field cron expression",
                                       field="frequency.cron")

    @classmethod
    def realtime(cls) -> SyncFrequency:
        return cls(FrequencyKind.REALTIME)

    @classmethod
    def every_minutes(cls, minutes: int) -> SyncFrequency:
        return cls(FrequencyKind.INTERVAL, minutes=minutes)

    @classmethod
    def hourly(cls) -> SyncFrequency:
        return cls(FrequencyKind.HOURLY)

    @classmethod
    def daily(cls) -> SyncFrequency:
        return cls(FrequencyKind.DAILY)

    @classmethod
    def manual(cls) -> SyncFrequency:
        return cls(FrequencyKind.MANUAL)

    @classmethod
    def from_cron(cls, expr: str) -> SyncFrequency:
        return cls(FrequencyKind.CRON, cron=expr)

    def period_seconds(self) -> float | None:
        """Fixed period where there is one (cron, realtime and manual have none)."""
        return {FrequencyKind.INTERVAL: (self.minutes or 0) * 60.0, FrequencyKind.HOURLY: 3600.0,
                FrequencyKind.DAILY: 86400.0}.get(self.kind)
