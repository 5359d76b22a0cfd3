"""Rate limits before every outbound call: every layer of DESIGN.md "Rate limits", in one gate per app.

Layers, checked together under the gate's lock, the longest wait deciding (window names in brackets)::

    1. provider  ["provider"]   the provider said stop: Retry-After, or remaining == 0 until its reset time;
                                or its allowance, learnt from the last ``remaining`` (with a reset time)
                                and counted down locally per admitted call, is spent until that reset
    2. smoothing ["minute"]     burst B then a steady rate, at most N in any sliding minute (or ["hour"]
                                when only per_hour is set): capacity B' draining (N-B')/T per second
    3. windows   ["hour","day"] fixed windows (hour aligned to the hour, day to the UTC day), persisted
                                write-ahead through a QuotaStore so a restart never hands out a fresh quota
    4. plan      ["plan"]       the user's daily fair-use budget, shared by all their apps
    5. routes    ["provider"]   per-route buckets (Discord): a signal carrying a ``scope`` (the route) and a
                                ``resource`` (the provider's bucket id) holds back only calls whose route maps
                                to that bucket, until its reset; a global-limit signal holds back every call

Interactive callers never wait longer than ``max_interactive_wait``: they get
``RateLimitExceededException(retry_after, window)`` or, for the plan, ``UsageLimitExceededException``.
Background callers sleep (the sleep function and the clock are injected, so tests never wait).

Why the smoothing is not aiolimiter's ``AsyncLimiter``: it reads the event loop's clock and cannot say how
long an acquire would wait, and the gate needs both (an injected clock for deterministic tests, the wait
itself for ``retry_after``). The bucket below is the same leaky bucket (written as GCRA), sized as
libraries.md §2 prescribes: capacity B' and drain (N-B')/T, so the worst window holds B' + (N-B') = N.
B' is the configured burst but at most N // 2, so that the steady rate stays at least half of N.

Crash safety of the windows: a window reserves a block of calls (``min(block, remaining)``) and saves it
BEFORE spending any of it; on load the saved reservation counts as used. A crash therefore over-counts by
at most one block and never under-counts.

>>> gate = CallGate("int_x", RateLimit(per_minute=60, burst=10), store=MemoryQuotaStore(), clock=FakeClock())
>>> await gate.acquire(interactive=True)     # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from domain.clock import Clock
from domain.errors import RateLimitExceededException, UsageLimitExceededException
from domain.values import RateLimit

MAX_PROVIDER_BLOCK = 86400.0    # a provider's reset time further away than a day is not believed
_EPSILON = 1e-6                 # waits below a microsecond are float noise; sleeping them could spin
Sleep = Callable[[float], Awaitable[None]]


class QuotaStore(Protocol):
    """Persistence port for the hour/day/plan windows; the daemon implements it on SQLite."""

    async def load(self, key: str) -> dict[str, tuple[float, int]]:
        """window name -> (window_start, reserved) for ``key``."""

    async def save(self, key: str, window: str, window_start: float, reserved: int) -> None:
        """Persist the reservation; must be durable when it returns."""


class MemoryQuotaStore:
    """The fake that ships with the port: a dict. Shared by two gates it behaves like one database."""

    def __init__(self) -> None:
        self.rows: dict[str, dict[str, tuple[float, int]]] = {}
        self.saves = 0

    async def load(self, key: str) -> dict[str, tuple[float, int]]:
        return dict(self.rows.get(key, {}))

    async def save(self, key: str, window: str, window_start: float, reserved: int) -> None:
        self.rows.setdefault(key, {})[window] = (window_start, reserved)
        self.saves += 1


@dataclass(frozen=True)
class WindowUsage:
    name: str
    limit: int
    used: int
    remaining: int
    resets_at: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class QuotaWindow:
    """A fixed window of ``seconds`` allowing ``limit`` calls, persisted write-ahead in blocks.

    >>> w = QuotaWindow("int_x", "hour", 3600, 100, MemoryQuotaStore(), FakeClock())
    >>> await w.take()        # doctest: +SKIP
    0.0
    """

    def __init__(self, key: str, name: str, seconds: float, limit: int, store: QuotaStore, clock: Clock,
                 block: int = 10) -> None:
        if seconds <= 0 or limit < 1 or block < 1:
            raise ValueError(f"window {name!r} needs seconds > 0, limit >= 1 and block >= 1")
        self.key, self.name, self.seconds, self.limit, self.block = key, name, float(seconds), limit, block
        self._store, self._clock = store, clock
        self._start: float | None = None
        self.used = 0
        self._reserved = 0
        self._lock = asyncio.Lock()

    def _window_start(self, now: float) -> float:
        return math.floor(now / self.seconds) * self.seconds

    async def load(self) -> None:
        """Read the persisted reservation (idempotent); the reserved count becomes ``used``."""
        async with self._lock:
            await self._load_locked()

    async def _load_locked(self) -> None:
        if self._start is not None:
            return
        saved = (await self._store.load(self.key)).get(self.name)
        start = self._window_start(self._clock.time())
        reserved = saved[1] if saved is not None and saved[0] == start else 0
        self._start, self.used, self._reserved = start, reserved, reserved

    def _roll(self, now: float) -> None:
        start = self._window_start(now)
        if start != self._start:
            self._start, self.used, self._reserved = start, 0, 0

    @property
    def resets_at(self) -> float:
        return (self._start if self._start is not None else self._window_start(self._clock.time())) \
            + self.seconds

    async def wait_time(self) -> float:
        """0.0 if a call may be taken now, else the seconds until the window resets."""
        async with self._lock:
            await self._load_locked()
            now = self._clock.time()
            self._roll(now)
            return 0.0 if self.used < self.limit else max(0.0, self.resets_at - now)

    async def take(self) -> float:
        """Spend one call: 0.0 if taken, else seconds until the window resets (nothing taken)."""
        async with self._lock:
            await self._load_locked()
            now = self._clock.time()
            self._roll(now)
            if self.used >= self.limit:
                return max(0.0, self.resets_at - now)
            if self.used >= self._reserved:
                reserved = self.used + min(self.block, self.limit - self.used)
                await self._store.save(self.key, self.name, self._start, reserved)   # write-ahead
                self._reserved = reserved
            self.used += 1
            return 0.0

    def usage(self) -> WindowUsage:
        now = self._clock.time()
        if self._start is not None:
            self._roll(now)
        return WindowUsage(self.name, self.limit, self.used, max(0, self.limit - self.used), self.resets_at)


class SmoothingBucket:
    """Leaky bucket as GCRA: capacity B', one call per ``interval`` seconds once the burst is spent.

    Times are kept relative to the first call: epoch seconds are ~1.7e9, where a float's resolution is a
    quarter of a microsecond and sums of intervals would drift by microseconds.
    """

    def __init__(self, name: str, limit: int, period: float, burst: int) -> None:
        self.name, self.limit, self.period = name, limit, period
        self.capacity = 1 if limit == 1 else max(1, min(burst, limit // 2))
        # one per period would allow two in a closed window [t, t + period]; a millisecond more does not
        self.interval = period / (limit - self.capacity) if limit > 1 else period + 1e-3
        self._origin: float | None = None
        self._tat = 0.0          # theoretical arrival time of the next conforming call, relative to origin

    def _rel(self, now: float) -> float:
        if self._origin is None:
            self._origin = now
        return now - self._origin

    def wait(self, now: float) -> float:
        return max(0.0, self._tat - (self.capacity - 1) * self.interval - self._rel(now))

    def admit(self, now: float) -> None:
        self._tat = max(self._tat, self._rel(now)) + self.interval

    def carry_over(self, old: SmoothingBucket, now: float) -> None:
        """Keep the fill level (in calls) of the bucket this one replaces."""
        level = max(0.0, old._tat - old._rel(now)) / old.interval
        self._origin, self._tat = now, level * self.interval


class PlanBudget:
    """A user's daily fair-use budget, shared by all of that user's gates (one object per user)."""

    def __init__(self, user: str, plan_name: str, daily_limit: int, store: QuotaStore, clock: Clock) -> None:
        self.user, self.plan_name, self.daily_limit = user, plan_name, daily_limit
        self.window = QuotaWindow(f"plan:{user}", "day", 86400, daily_limit, store, clock)

    async def start(self) -> None:
        await self.window.load()

    async def take(self) -> float:
        return await self.window.take()

    async def wait_time(self) -> float:
        return await self.window.wait_time()

    def usage(self) -> dict[str, Any]:
        return {"user": self.user, "plan": self.plan_name, **self.window.usage().as_dict()}


class RouteBuckets:
    """The provider's per-route buckets as learnt from its answers (Discord's X-RateLimit-Bucket).

    A route (the connector's ``rate_scope``) maps to the bucket the provider named for it; several routes may
    share one. Each bucket keeps (calls left, reset time) from its answers, counted down per admitted call so
    that concurrent callers cannot overspend it (an answer for the same window can only lower the count: it may
    be older than calls admitted since), and a hard block from a 429's retry_after. When its window has turned,
    the bucket's limit and the longest reset-after seen (its period) stand in for the next answer, so a burst
    of concurrent calls after a reset is admitted only up to the limit. Calls still in flight (admitted, not
    yet answered) are counted against every allowance: they may land in the provider's next window, or after
    the answer that reported it. Every admitted call ends in ``observe`` (its answer) or ``release`` (no answer:
    a transport failure or a cancellation), which takes it out of flight.

    >>> b = RouteBuckets(); b.observe("GET /channels/1/messages", "abc", 0, 10.0, None, now=0.0, limit=5)
    >>> b.wait("GET /channels/1/messages", now=1.0), b.wait("POST /channels/1/messages", now=1.0)
    (9.0, 0.0)
    """

    MAX_ROUTES = 10_000              # routes are bounded by the app's resources; this caps a runaway

    def __init__(self) -> None:
        self._bucket_of: dict[str, str] = {}
        self._left: dict[str, tuple[int, float]] = {}      # bucket -> (calls left, reset time)
        self._blocked: dict[str, float] = {}               # bucket -> held back until (429 retry_after)
        self._shape: dict[str, tuple[int, float]] = {}     # bucket -> (limit, period) as learnt
        self._in_flight: dict[str, int] = {}               # bucket -> calls admitted and not yet answered

    def _bucket(self, route: str) -> str:
        return self._bucket_of.get(route, route)

    def observe(self, route: str, bucket: str | None, remaining: int | None, reset_at: float | None,
                retry_after: float | None, *, now: float, limit: int | None = None) -> None:
        if len(self._bucket_of) >= self.MAX_ROUTES and route not in self._bucket_of:
            self._forget(now)
        was = self._bucket(route)
        if self._in_flight.get(was, 0) > 0:
            self._in_flight[was] -= 1
        name = bucket or was
        if name != was and self._in_flight.get(was):
            self._in_flight[name] = self._in_flight.get(name, 0) + self._in_flight.pop(was)
        self._bucket_of[route] = name
        if remaining is not None and reset_at is not None and reset_at > now:
            remaining -= self._in_flight.get(name, 0)
            reset_at = min(reset_at, now + MAX_PROVIDER_BLOCK)
            if limit is not None and limit > 0:
                period = max(self._shape.get(name, (0, 0.0))[1], reset_at - now)
                self._shape[name] = (limit, period)
            old = self._left.get(name)
            if old is not None and now < old[1] and reset_at <= old[1] + 1e-3:
                remaining = min(remaining, old[0])     # the same window: our count already holds later calls
            self._left[name] = (remaining, reset_at)
        if retry_after is not None:
            until = now + min(float(retry_after), MAX_PROVIDER_BLOCK)
            self._blocked[name] = max(until, self._blocked.get(name, 0.0))

    def release(self, route: str) -> None:
        """An admitted call of ``route`` ended without an answer."""
        name = self._bucket(route)
        if self._in_flight.get(name, 0) > 0:
            self._in_flight[name] -= 1

    def wait(self, route: str, now: float) -> float:
        name = self._bucket(route)
        wait = self._blocked.get(name, 0.0) - now
        left = self._left.get(name)
        if left is not None and left[1] > now and left[0] <= 0:
            wait = max(wait, left[1] - now)
        elif left is not None and name in self._shape:
            limit, period = self._shape[name]
            if limit - self._in_flight.get(name, 0) <= 0:
                wait = max(wait, period)     # the next window is already spoken for by calls in flight
        return max(0.0, wait)

    def spend(self, route: str, now: float) -> None:
        name = self._bucket(route)
        in_flight = self._in_flight.get(name, 0)
        self._in_flight[name] = in_flight + 1
        left = self._left.get(name)
        if left is None:
            return
        if left[1] <= now:                 # its window has turned: assume a fresh one until an answer tells
            shape = self._shape.get(name)
            if shape is None:
                del self._left[name]
            else:
                self._left[name] = (shape[0] - in_flight - 1, now + shape[1])
        else:
            self._left[name] = (left[0] - 1, left[1])

    def _forget(self, now: float) -> None:
        self._left = {b: v for b, v in self._left.items() if v[1] > now}
        self._in_flight = {b: n for b, n in self._in_flight.items() if n > 0}
        self._blocked = {b: t for b, t in self._blocked.items() if t > now}
        live = set(self._left) | set(self._blocked) | set(self._in_flight)
        self._bucket_of = {r: b for r, b in self._bucket_of.items() if b in live}

    def blocked(self, now: float) -> dict[str, float]:
        """Buckets holding calls back now -> until when (for usage reports)."""
        out = {b: t for b, t in self._blocked.items() if t > now}
        for b, (left, until) in self._left.items():
            if left <= 0 and until > now:
                out[b] = max(out.get(b, 0.0), until)
        return out


class CallGate:
    """One per app: admits a call when every layer allows it (see the module docstring)."""

    def __init__(self, key: str, rate_limit: RateLimit, *, store: QuotaStore, clock: Clock,
                 plan: PlanBudget | None = None, max_interactive_wait: float = 5.0,
                 sleep: Sleep = asyncio.sleep) -> None:
        if max_interactive_wait < 0:
            raise ValueError("max_interactive_wait must not be negative")
        self.key, self.plan, self.max_interactive_wait = key, plan, max_interactive_wait
        self._store, self._clock, self._sleep = store, clock, sleep
        self.on_exhausted: Callable[[str, float], None] | None = None
        self.exhausted_events: deque[dict[str, Any]] = deque(maxlen=50)
        self._dry: set[str] = set()
        self._lock = asyncio.Lock()
        self._blocked_until = 0.0
        self._routes = RouteBuckets()
        # the provider's allowance: (calls left, until when) from the last signal with remaining and reset_at,
        # counted down per admitted call so that concurrent callers cannot overspend what the provider
        # announced (Salesforce's daily api-usage, HubSpot's burst and daily remaining, GitHub's remaining)
        self._allowance: tuple[int, float] | None = None
        self._signal: Any = None
        self._signal_at: float | None = None
        self._bucket: SmoothingBucket | None = None
        self._windows: dict[str, QuotaWindow] = {}
        self._minute = (0.0, 0)            # (minute start, calls admitted in it), for usage()
        self.reconfigure(rate_limit)

    # ---- configuration ------------------------------------------------------------------------------
    def reconfigure(self, rate_limit: RateLimit) -> None:
        """Apply a new limit live; the counts already spent in each window are kept."""
        now = self._clock.time()
        self.rate_limit = rate_limit
        burst = rate_limit.effective_burst()
        old = self._bucket
        if rate_limit.per_minute is not None:
            self._bucket = SmoothingBucket("minute", rate_limit.per_minute, 60.0, burst)
        elif rate_limit.per_hour is not None:
            self._bucket = SmoothingBucket("hour", rate_limit.per_hour, 3600.0, burst)
        else:
            self._bucket = None
        if old is not None and self._bucket is not None:
            self._bucket.carry_over(old, now)
        for name, seconds in (("hour", 3600.0), ("day", 86400.0)):
            limit = getattr(rate_limit, f"per_{name}")
            if limit is None:
                self._windows.pop(name, None)
            elif name in self._windows:
                self._windows[name].limit = limit
            else:
                self._windows[name] = QuotaWindow(self.key, name, seconds, limit, self._store, self._clock)

    async def start(self) -> None:
        """Load the persisted windows (also done lazily on first use)."""
        for window in self._windows.values():
            await window.load()
        if self.plan is not None:
            await self.plan.start()

    # ---- admission ----------------------------------------------------------------------------------
    async def acquire(self, *, interactive: bool, max_wait: float | None = None, scope: str | None = None) -> None:
        """Wait for (or refuse) one call. ``max_wait`` overrides the limit on waiting (health checks);
        ``scope`` is the call's route when the provider limits per route (see RouteBuckets)."""
        limit = max_wait if max_wait is not None else (self.max_interactive_wait if interactive else None)
        waited = False
        while True:
            async with self._lock:
                now = self._clock.time()
                wait, window = await self._blocker(now, scope)
                if wait <= _EPSILON and self.plan is not None:
                    plan_wait = await self.plan.take()      # shared with other gates: may lose a race
                    wait, window = (plan_wait, "plan") if plan_wait > _EPSILON else (0.0, "")
                if wait <= _EPSILON:
                    await self._spend(now, waited, scope)
                    return
            self._note_exhausted(window, wait)
            if limit is not None and wait > limit:
                raise self._refusal(window, wait)
            waited = True
            await self._sleep(wait)

    async def _blocker(self, now: float, scope: str | None = None) -> tuple[float, str]:
        waits = [(self._blocked_until - now, "provider")]
        if scope is not None:
            waits.append((self._routes.wait(scope, now), "provider"))
        if self._allowance is not None:
            left, until = self._allowance
            if until <= now:
                self._allowance = None          # the provider's window has turned: its next answer tells
            elif left <= 0:
                waits.append((until - now, "provider"))
        if self._bucket is not None:
            waits.append((self._bucket.wait(now), self._bucket.name))
        for name, window in self._windows.items():
            waits.append((await window.wait_time(), name))
        if self.plan is not None:
            waits.append((await self.plan.wait_time(), "plan"))
        return max(waits, key=lambda w: w[0])

    async def _spend(self, now: float, waited: bool, scope: str | None = None) -> None:
        if scope is not None:
            self._routes.spend(scope, now)
        for window in self._windows.values():
            await window.take()                 # cannot fail: checked under the same lock
        if self._bucket is not None:
            self._bucket.admit(now)
        if self._allowance is not None:
            self._allowance = (self._allowance[0] - 1, self._allowance[1])
        start = math.floor(now / 60.0) * 60.0
        self._minute = (start, (self._minute[1] if self._minute[0] == start else 0) + 1)
        if not waited:
            self._dry.clear()                   # a call went straight through: the episode is over

    def _note_exhausted(self, window: str, wait: float) -> None:
        if window in self._dry:
            return
        self._dry.add(window)
        self.exhausted_events.append({"window": window, "retry_after": round(wait, 3),
                                      "at": self._clock.time()})
        if self.on_exhausted is not None:
            self.on_exhausted(window, wait)

    def _refusal(self, window: str, wait: float) -> Exception:
        if window == "plan" and self.plan is not None:
            return UsageLimitExceededException(
                f"the daily fair-use budget of plan '{self.plan.plan_name}' ({self.plan.daily_limit} calls) "
                f"is spent; it renews in {wait:.0f}s", retry_after=wait, plan=self.plan.plan_name,
                daily_limit=self.plan.daily_limit)
        if window == "provider":
            message = f"the provider asked us to wait; retry in {wait:.1f}s"
        else:
            message = f"this app's {window} rate limit is reached; retry in {wait:.1f}s"
        return RateLimitExceededException(message, retry_after=wait, window=window)

    # ---- provider signals ---------------------------------------------------------------------------
    def release(self, scope: str) -> None:
        """A call admitted for route ``scope`` got no answer (failure, cancellation): it is out of flight."""
        self._routes.release(scope)

    def observe(self, signal: Any) -> None:
        """Take in a RateSignal: Retry-After, or remaining == 0 until reset, closes the provider gate."""
        now = self._clock.time()
        self._signal, self._signal_at = signal, now
        if getattr(signal, "scope", None) is not None and not getattr(signal, "global_limit", False):
            self._routes.observe(signal.scope, signal.resource, signal.remaining, signal.reset_at,
                                 signal.retry_after, now=now, limit=signal.limit)
            return                  # a route's bucket says nothing about the app's other routes
        until = None
        if signal.retry_after is not None:
            until = now + min(float(signal.retry_after), MAX_PROVIDER_BLOCK)
        elif signal.remaining is not None and signal.remaining <= 0 and signal.reset_at is not None:
            until = min(float(signal.reset_at), now + MAX_PROVIDER_BLOCK)
        if until is not None and until > self._blocked_until:
            self._blocked_until = until
        if signal.remaining is not None and signal.reset_at is not None and float(signal.reset_at) > now:
            self._allowance = (int(signal.remaining), min(float(signal.reset_at), now + MAX_PROVIDER_BLOCK))

    # ---- reporting ----------------------------------------------------------------------------------
    def usage(self) -> dict[str, Any]:
        now = self._clock.time()
        windows = []
        if self._bucket is not None and self._bucket.name == "minute":
            start = math.floor(now / 60.0) * 60.0
            used = self._minute[1] if self._minute[0] == start else 0
            n = self._bucket.limit
            windows.append(WindowUsage("minute", n, used, max(0, n - used), start + 60.0).as_dict())
        windows += [w.usage().as_dict() for w in self._windows.values()]
        sig = self._signal
        provider = {
            "limit": getattr(sig, "limit", None), "remaining": getattr(sig, "remaining", None),
            "reset_at": getattr(sig, "reset_at", None), "resource": getattr(sig, "resource", None),
            "retry_after": getattr(sig, "retry_after", None), "observed_at": self._signal_at,
            "blocked_until": self._blocked_until if self._blocked_until > now else None,
            "blocked_buckets": self._routes.blocked(now),
        }
        return {"rate_limit": self.rate_limit.as_dict(), "windows": windows, "provider": provider,
                "plan": self.plan.usage() if self.plan is not None else None,
                "exhausted": list(self.exhausted_events)}
