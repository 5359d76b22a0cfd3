"""connectors.retry: which failures are retried, how long between attempts, when to give up."""

from __future__ import annotations

import random

import pytest

from connectors.retry import PolicyWait, is_transient, retrying
from domain.errors import (IntegrationError, IntegrationFailure, InvalidConfiguration,
                           RateLimitExceededException)
from domain.values import RetryPolicy

DOWN = IntegrationError.SERVICE_UNAVAILABLE


class Sleeps:
    """A fake sleep that records what it was asked to wait."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


async def run(policy: RetryPolicy, outcomes: list, sleeps: Sleeps, **kw) -> tuple[object, int]:
    """Drive ``retrying`` over a scripted list of outcomes (an exception is raised, a value returned)."""
    calls = 0
    result = None
    async for attempt in retrying(policy, sleep=sleeps, rng=random.Random(7), **kw):
        with attempt:
            outcome = outcomes[calls]
            calls += 1
            if isinstance(outcome, BaseException):
                raise outcome
            result = outcome
    return result, calls


def test_is_transient_only_for_retryable_categories():
    assert is_transient(IntegrationFailure(IntegrationError.NETWORK_ERROR, "x"))
    assert is_transient(IntegrationFailure(IntegrationError.RATE_LIMIT_EXCEEDED, "x"))
    assert is_transient(IntegrationFailure(DOWN, "x"))
    assert not is_transient(IntegrationFailure(IntegrationError.AUTHENTICATION_FAILED, "x"))
    assert not is_transient(IntegrationFailure(IntegrationError.INVALID_CONFIGURATION, "x"))
    assert not is_transient(RateLimitExceededException("ours", retry_after=3, window="minute"))
    assert not is_transient(ValueError("bug"))


async def test_transient_failures_retried_with_backoff_1_2_4_plus_jitter():
    sleeps = Sleeps()
    fail = IntegrationFailure(DOWN, "503")
    result, calls = await run(RetryPolicy.exponential_backoff(), [fail, fail, fail, "ok"], sleeps)
    assert (result, calls) == ("ok", 4)
    for wait, base in zip(sleeps.waits, (1, 2, 4), strict=True):
        assert base <= wait <= base + 1


async def test_three_retries_then_the_last_error():
    sleeps = Sleeps()
    errors = [IntegrationFailure(DOWN, f"attempt {i}") for i in range(1, 5)]
    with pytest.raises(IntegrationFailure) as info:
        await run(RetryPolicy.exponential_backoff(), errors, sleeps)
    assert info.value is errors[3]             # the original exception, not tenacity.RetryError
    assert len(sleeps.waits) == 3


@pytest.mark.parametrize("exc", [
    IntegrationFailure(IntegrationError.AUTHENTICATION_FAILED, "Bad credentials"),
    IntegrationFailure(IntegrationError.INVALID_CONFIGURATION, "bad path"),
    RateLimitExceededException("ours", retry_after=30, window="hour"),
    InvalidConfiguration("nope"),
])
async def test_non_transient_errors_are_not_retried(exc):
    sleeps = Sleeps()
    with pytest.raises(type(exc)):
        await run(RetryPolicy.exponential_backoff(), [exc, "never"], sleeps)
    assert sleeps.waits == []


async def test_retry_after_is_the_wait_and_is_capped():
    sleeps = Sleeps()
    limited = IntegrationFailure(IntegrationError.RATE_LIMIT_EXCEEDED, "429", retry_after=7)
    long = IntegrationFailure(IntegrationError.RATE_LIMIT_EXCEEDED, "429", retry_after=900)
    result, _ = await run(RetryPolicy.exponential_backoff(), [limited, long, "ok"], sleeps, max_retry_after=60)
    assert result == "ok"
    assert sleeps.waits == [7.0, 60.0]


async def test_backoff_capped_at_max_delay():
    sleeps = Sleeps()
    fail = IntegrationFailure(IntegrationError.NETWORK_ERROR, "reset")
    policy = RetryPolicy(max_retries=8, base_delay=1.0, max_delay=30.0, backoff_multiplier=2.0)
    await run(policy, [fail] * 8 + ["ok"], sleeps)
    assert all(w <= 30.0 for w in sleeps.waits)
    assert sleeps.waits[-3:] == [30.0, 30.0, 30.0]
    assert 16 <= sleeps.waits[4] <= 17


async def test_interactive_gives_up_rather_than_wait_long_for_the_provider():
    sleeps = Sleeps()
    limited = IntegrationFailure(IntegrationError.RATE_LIMIT_EXCEEDED, "429", retry_after=30)
    with pytest.raises(IntegrationFailure) as info:
        await run(RetryPolicy.exponential_backoff(), [limited, "ok"], sleeps, max_wait=5.0)
    assert info.value.retry_after == 30
    assert sleeps.waits == []
    # a short Retry-After is still waited for, interactive or not
    short = IntegrationFailure(IntegrationError.RATE_LIMIT_EXCEEDED, "429", retry_after=2)
    result, _ = await run(RetryPolicy.exponential_backoff(), [short, "ok"], sleeps, max_wait=5.0)
    assert result == "ok" and sleeps.waits == [2.0]


async def test_no_retries_policy_makes_one_attempt():
    sleeps = Sleeps()
    with pytest.raises(IntegrationFailure):
        await run(RetryPolicy.none(), [IntegrationFailure(DOWN, "x"), "ok"], sleeps)
    assert sleeps.waits == []


def test_policy_wait_jitter_is_at_most_one_second():
    wait = PolicyWait(RetryPolicy.exponential_backoff(), max_retry_after=60, rng=random.Random(1))

    class State:
        attempt_number = 1
        outcome = None

    samples = [wait(State()) for _ in range(200)]
    assert min(samples) >= 1.0 and max(samples) <= 2.0
    assert len(set(samples)) > 1


def test_retrying_refuses_a_nonsense_cap():
    with pytest.raises(ValueError):
        retrying(RetryPolicy.exponential_backoff(), sleep=Sleeps(), max_retry_after=0)
