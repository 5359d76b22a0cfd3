"""connectors.limits on a fake clock and a fake sleep: windows, smoothing, provider signals, plans."""

from __future__ import annotations

import json

import pytest

from connectors.base import RateSignal
from connectors.limits import CallGate, MemoryQuotaStore, PlanBudget, QuotaWindow, SmoothingBucket
from domain.clock import FakeClock
from domain.errors import RateLimitExceededException, UsageLimitExceededException
from domain.values import RateLimit

HOUR_START = 1_700_000_000 - 1_700_000_000 % 3600 + 3600      # an hour boundary, so tests read plainly


class FakeSleep:
    """Sleeping moves the fake clock; every wait is recorded."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.clock.advance(seconds)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(HOUR_START + 10.0)


@pytest.fixture
def sleep(clock: FakeClock) -> FakeSleep:
    return FakeSleep(clock)


@pytest.fixture
def store() -> MemoryQuotaStore:
    return MemoryQuotaStore()


def gate_for(rate: RateLimit, store, clock, sleep, **kw) -> CallGate:
    return CallGate("int_app", rate, store=store, clock=clock, sleep=sleep, **kw)


# ---- QuotaWindow ---------------------------------------------------------------------------------------

async def test_window_counts_and_refuses_past_its_limit(store, clock):
    window = QuotaWindow("int_app", "hour", 3600, 3, store, clock)
    assert [await window.take() for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = await window.take()
    assert wait == pytest.approx(3600 - 10)          # until the next hour, nothing taken
    usage = window.usage()
    assert (usage.used, usage.remaining, usage.resets_at) == (3, 0, HOUR_START + 3600)


async def test_window_resets_at_the_boundary(store, clock):
    window = QuotaWindow("int_app", "hour", 3600, 2, store, clock)
    await window.take(), await window.take()
    assert await window.take() > 0
    clock.advance(3600 - 10 - 0.001)
    assert await window.wait_time() > 0                 # still the old hour
    clock.advance(0.001)
    assert await window.wait_time() == 0.0
    assert await window.take() == 0.0 and window.usage().used == 1


async def test_day_window_is_the_utc_day(store):
    clock = FakeClock(86400 * 19700 + 3 * 3600)         # 03:00 UTC
    window = QuotaWindow("int_app", "day", 86400, 5, store, clock)
    await window.take()
    assert window.usage().resets_at == 86400 * 19701


async def test_window_reserves_blocks_before_use(store, clock):
    window = QuotaWindow("int_app", "hour", 3600, 25, store, clock, block=10)
    await window.take()
    assert store.rows["int_app"]["hour"] == (HOUR_START, 10) and store.saves == 1
    for _ in range(9):
        await window.take()
    assert store.saves == 1                              # the block covered them
    await window.take()
    assert store.rows["int_app"]["hour"] == (HOUR_START, 20)
    for _ in range(10):
        await window.take()
    assert store.rows["int_app"]["hour"] == (HOUR_START, 25)     # min(block, remaining)


@pytest.mark.parametrize("spent", [0, 1, 7, 10, 11, 23])
async def test_a_crash_over_counts_but_never_under_counts(store, clock, spent):
    before = QuotaWindow("int_app", "hour", 3600, 100, store, clock)
    for _ in range(spent):
        await before.take()
    after = QuotaWindow("int_app", "hour", 3600, 100, store, clock)     # the restart: fresh objects
    await after.load()
    assert spent <= after.usage().used <= spent + 10
    assert after.usage().used >= before.usage().used


async def test_a_saved_reservation_of_an_older_window_is_not_carried_over(store, clock):
    before = QuotaWindow("int_app", "hour", 3600, 100, store, clock)
    await before.take()
    clock.advance(3600)
    after = QuotaWindow("int_app", "hour", 3600, 100, store, clock)
    await after.load()
    assert after.usage().used == 0


def test_window_validates_its_parameters(store, clock):
    with pytest.raises(ValueError, match="hour"):
        QuotaWindow("k", "hour", 0, 10, store, clock)
    with pytest.raises(ValueError):
        QuotaWindow("k", "hour", 3600, 0, store, clock)


# ---- smoothing --------------------------------------------------------------------------------------------

def spans_within(times: list[float], width: float, limit: int) -> bool:
    """Every window [t, t+width] starting at an admission holds at most ``limit`` admissions."""
    j = 0
    for i, start in enumerate(times):
        while j < len(times) and times[j] <= start + width:
            j += 1
        if j - i > limit:
            return False
    return True


@pytest.mark.parametrize("per_minute,burst", [(30, 10), (60, 10), (10, 10), (7, 3), (2, 1), (1, 1), (100, 60)])
async def test_burst_then_smoothing_never_exceeds_n_in_any_sliding_minute(store, clock, sleep, per_minute, burst):
    gate = gate_for(RateLimit(per_minute=per_minute, burst=burst), store, clock, sleep)
    times = []
    for _ in range(4 * per_minute + 5):
        await gate.acquire(interactive=False)
        times.append(clock.time())
    assert spans_within(times, 60.0, per_minute)          # closed windows: the strictest reading
    capacity = SmoothingBucket("minute", per_minute, 60, burst).capacity
    assert times[:capacity] == [times[0]] * capacity       # the burst goes at once
    # and the steady rate is not needlessly slow: at least half of N per minute
    elapsed = times[-1] - times[0]
    assert (len(times) - capacity) / (elapsed / 60) >= per_minute / 2 - 1e-9


async def test_hourly_bucket_when_only_per_hour_is_set(store, clock, sleep):
    gate = gate_for(RateLimit(per_hour=20, burst=4), store, clock, sleep)
    times = []
    for _ in range(45):
        await gate.acquire(interactive=False)
        times.append(clock.time())
    assert spans_within(times, 3600.0, 20)


async def test_interactive_fails_fast_with_retry_after(store, clock, sleep):
    gate = gate_for(RateLimit(per_minute=10, burst=5), store, clock, sleep, max_interactive_wait=1.0)
    for _ in range(5):
        await gate.acquire(interactive=True)
    with pytest.raises(RateLimitExceededException) as info:
        await gate.acquire(interactive=True)
    assert info.value.window == "minute"
    assert info.value.retry_after == pytest.approx(12.0)    # 60 / (10 - 5)
    assert sleep.waits == []
    assert "retry in 12.0s" in str(info.value)


async def test_interactive_waits_when_the_wait_is_short(store, clock, sleep):
    gate = gate_for(RateLimit(per_minute=10, burst=5), store, clock, sleep, max_interactive_wait=20.0)
    for _ in range(6):
        await gate.acquire(interactive=True)
    assert sleep.waits == [pytest.approx(12.0)]


async def test_background_waits(store, clock, sleep):
    gate = gate_for(RateLimit(per_minute=10, burst=5), store, clock, sleep)
    for _ in range(7):
        await gate.acquire(interactive=False)
    assert sleep.waits == [pytest.approx(12.0), pytest.approx(12.0)]


# ---- provider signals -------------------------------------------------------------------------------------

async def test_provider_retry_after_closes_the_gate(store, clock, sleep):
    gate = gate_for(RateLimit(per_minute=100), store, clock, sleep)
    gate.observe(RateSignal(retry_after=30))
    with pytest.raises(RateLimitExceededException) as info:
        await gate.acquire(interactive=True)
    assert info.value.window == "provider" and info.value.retry_after == pytest.approx(30)
    await gate.acquire(interactive=False)
    assert sleep.waits == [pytest.approx(30)]
    assert gate.usage()["provider"]["blocked_until"] is None


async def test_remaining_zero_blocks_until_reset(store, clock, sleep):
    gate = gate_for(RateLimit(per_hour=5000), store, clock, sleep)
    gate.observe(RateSignal(limit=5000, remaining=0, reset_at=clock.time() + 100, resource="core"))
    with pytest.raises(RateLimitExceededException) as info:
        await gate.acquire(interactive=True)
    assert info.value.retry_after == pytest.approx(100)
    usage = gate.usage()["provider"]
    assert usage["remaining"] == 0 and usage["resource"] == "core"
    assert usage["blocked_until"] == pytest.approx(clock.time() + 100)


async def test_remaining_zero_with_a_past_reset_or_remaining_left_does_not_block(store, clock, sleep):
    gate = gate_for(RateLimit(per_minute=100), store, clock, sleep)
    gate.observe(RateSignal(remaining=0, reset_at=clock.time() - 5))
    gate.observe(RateSignal(remaining=10, reset_at=clock.time() + 500))
    await gate.acquire(interactive=True)
    assert sleep.waits == []


async def test_an_absurd_reset_time_is_capped_at_a_day(store, clock, sleep):
    gate = gate_for(RateLimit(per_minute=100), store, clock, sleep)
    gate.observe(RateSignal(remaining=0, reset_at=clock.time() + 10 * 86400))
    with pytest.raises(RateLimitExceededException) as info:
        await gate.acquire(interactive=True)
    assert info.value.retry_after == pytest.approx(86400)


# ---- hour/day windows through the gate, plans, reconfigure, persistence ----------------------------------

async def test_hour_window_refuses_interactive_calls(store, clock, sleep):
    gate = gate_for(RateLimit(per_minute=12, per_hour=12, burst=6), store, clock, sleep)
    for _ in range(12):
        await gate.acquire(interactive=False)
    with pytest.raises(RateLimitExceededException) as info:
        await gate.acquire(interactive=True)
    assert info.value.window == "hour"
    assert info.value.retry_after == pytest.approx(HOUR_START + 3600 - clock.time())


async def test_day_window_blocks_background_until_the_next_day(store, clock, sleep):
    gate = gate_for(RateLimit(per_day=3), store, clock, sleep)
    for _ in range(4):
        await gate.acquire(interactive=False)
    assert clock.time() >= (HOUR_START // 86400 + 1) * 86400


async def test_plan_budget_is_shared_by_the_gates_of_one_user(store, clock, sleep):
    plan = PlanBudget("alice", "free", 3, store, clock)
    a = CallGate("int_a", RateLimit(per_minute=60), store=store, clock=clock, sleep=sleep, plan=plan)
    b = CallGate("int_b", RateLimit(per_minute=60), store=store, clock=clock, sleep=sleep, plan=plan)
    await a.start(), await b.start()
    await a.acquire(interactive=True)
    await a.acquire(interactive=True)
    await b.acquire(interactive=True)
    with pytest.raises(UsageLimitExceededException) as info:
        await b.acquire(interactive=True)
    assert (info.value.plan, info.value.daily_limit) == ("free", 3)
    assert info.value.retry_after > 0
    assert a.usage()["plan"]["used"] == 3
    assert "plan:alice" in store.rows


async def test_reconfigure_keeps_counts(store, clock, sleep):
    gate = gate_for(RateLimit(per_minute=20, per_hour=100, burst=10), store, clock, sleep)
    for _ in range(20):
        await gate.acquire(interactive=False)
    gate.reconfigure(RateLimit(per_minute=20, per_hour=50, burst=10))
    hour = next(w for w in gate.usage()["windows"] if w["name"] == "hour")
    assert (hour["used"], hour["limit"]) == (20, 50)
    gate.reconfigure(RateLimit(per_minute=20, per_hour=20, burst=10))
    with pytest.raises(RateLimitExceededException) as info:
        await gate.acquire(interactive=True)
    assert info.value.window == "hour"


async def test_reconfigure_keeps_the_bucket_level(store, clock, sleep):
    gate = gate_for(RateLimit(per_minute=10, burst=5), store, clock, sleep, max_interactive_wait=0)
    for _ in range(5):
        await gate.acquire(interactive=True)
    gate.reconfigure(RateLimit(per_minute=20, burst=5))    # a new limit does not hand out a fresh burst
    with pytest.raises(RateLimitExceededException):
        await gate.acquire(interactive=True)


async def test_a_restart_resumes_the_persisted_windows(store, clock, sleep):
    first = gate_for(RateLimit(per_minute=30, per_hour=30, burst=15), store, clock, sleep)
    for _ in range(25):
        await first.acquire(interactive=False)
    second = gate_for(RateLimit(per_minute=30, per_hour=30, burst=15), store, clock, sleep)
    await second.start()
    hour = next(w for w in second.usage()["windows"] if w["name"] == "hour")
    assert hour["used"] >= 25


async def test_on_exhausted_fires_once_per_episode(store, clock, sleep):
    events = []
    gate = gate_for(RateLimit(per_minute=10, burst=5), store, clock, sleep)
    gate.on_exhausted = lambda window, retry_after: events.append((window, round(retry_after, 3)))
    for _ in range(8):
        await gate.acquire(interactive=False)
    assert events == [("minute", 12.0)]
    clock.advance(600)                                      # the bucket drains: a call goes straight through
    await gate.acquire(interactive=False)
    for _ in range(5):
        await gate.acquire(interactive=False)
    assert [w for w, _ in events] == ["minute", "minute"]
    assert [e["window"] for e in gate.usage()["exhausted"]] == ["minute", "minute"]


async def test_usage_is_json_and_names_every_window(store, clock, sleep):
    plan = PlanBudget("bob", "pro", 1000, store, clock)
    gate = gate_for(RateLimit(per_minute=60, per_hour=1000, per_day=5000), store, clock, sleep, plan=plan)
    await gate.acquire(interactive=True)
    usage = json.loads(json.dumps(gate.usage()))
    assert [w["name"] for w in usage["windows"]] == ["minute", "hour", "day"]
    assert usage["windows"][0]["used"] == 1
    assert usage["plan"]["plan"] == "pro" and usage["rate_limit"]["per_hour"] == 1000


def test_gate_refuses_a_negative_interactive_wait(store, clock, sleep):
    with pytest.raises(ValueError):
        gate_for(RateLimit(per_minute=60), store, clock, sleep, max_interactive_wait=-1)
