"""Retrying a provider call: the seed's exponential backoff, expressed as one tenacity ``AsyncRetrying``.

What is retried: only an :class:`~domain.errors.IntegrationFailure` whose category is retryable (service
unavailable, network error, rate limit). Authentication and configuration failures, our own limiter's
``RateLimitExceededException`` / ``UsageLimitExceededException`` and programming errors propagate on the
first attempt, unchanged (``reraise=True``: callers never see ``tenacity.RetryError``).

How long between attempts: the provider's Retry-After when the failure carries one (capped at
``max_retry_after``: a longer block is left to the rate-limit gate, which knows the provider's reset time);
otherwise ``base_delay * multiplier**(n-1)`` plus up to one second of jitter, capped at ``max_delay``.

>>> from domain.values import RetryPolicy
>>> r = retrying(RetryPolicy.exponential_backoff(), sleep=None)
>>> r.stop.__class__.__name__
'_StopAfterOrTooLong'
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable

import tenacity
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception

from domain.errors import IntegrationFailure
from domain.values import RetryPolicy

Sleep = Callable[[float], Awaitable[None]]


def is_transient(exc: BaseException) -> bool:
    """True for an IntegrationFailure that may succeed if tried again.

    >>> from domain.errors import IntegrationError
    >>> is_transient(IntegrationFailure(IntegrationError.NETWORK_ERROR, "reset"))
    True
    >>> is_transient(IntegrationFailure(IntegrationError.AUTHENTICATION_FAILED, "bad key"))
    False
    """
    return isinstance(exc, IntegrationFailure) and exc.retryable


def _failure(rs: RetryCallState) -> BaseException | None:
    if rs.outcome is None or not rs.outcome.failed:
        return None
    return rs.outcome.exception()


class PolicyWait(tenacity.wait.wait_base):
    """Retry-After if the failure carries one (capped), else the policy's backoff plus jitter (capped)."""

    def __init__(self, policy: RetryPolicy, *, max_retry_after: float, jitter: float = 1.0,
                 rng: random.Random | None = None) -> None:
        self.policy = policy
        self.max_retry_after = max_retry_after
        self.jitter = jitter
        self.rng = rng or random.Random()

    def __call__(self, rs: RetryCallState) -> float:
        retry_after = getattr(_failure(rs), "retry_after", None)
        if retry_after is not None:
            return max(0.0, min(float(retry_after), self.max_retry_after))
        backoff = self.policy.delay(rs.attempt_number) + self.rng.uniform(0.0, self.jitter)
        return min(backoff, self.policy.max_delay)


class _StopAfterOrTooLong(tenacity.stop.stop_base):
    """Stop after the policy's attempts, or (interactive calls) when the provider asks for a long wait."""

    def __init__(self, max_attempts: int, max_wait: float | None) -> None:
        self.max_attempts = max_attempts
        self.max_wait = max_wait

    def __call__(self, rs: RetryCallState) -> bool:
        if rs.attempt_number >= self.max_attempts:
            return True
        if self.max_wait is None:
            return False
        # Only a provider-imposed wait counts: plain backoff is short and bounded by the policy.
        return getattr(_failure(rs), "retry_after", None) is not None and rs.upcoming_sleep > self.max_wait


def retrying(policy: RetryPolicy, *, sleep: Sleep | None = asyncio.sleep, max_retry_after: float = 60.0,
             max_wait: float | None = None, rng: random.Random | None = None,
             before_sleep: Callable[[RetryCallState], None] | None = None) -> AsyncRetrying:
    """A fresh tenacity controller for one call.

    ``max_wait``: for interactive calls, give up at once (re-raising the rate-limit failure with its
    ``retry_after``) rather than sleep longer than this for the provider. ``sleep`` and ``rng`` are injected
    so that tests neither wait nor depend on chance.

    >>> async def call():
    ...     async for attempt in retrying(RetryPolicy.exponential_backoff(), sleep=fake_sleep):
    ...         with attempt:
    ...             return await connector_call()          # doctest: +SKIP
    """
    if max_retry_after <= 0:
        raise ValueError("max_retry_after must be positive")
    kwargs = {} if sleep is None else {"sleep": sleep}
    return AsyncRetrying(
        retry=retry_if_exception(is_transient),
        wait=PolicyWait(policy, max_retry_after=max_retry_after, rng=rng),
        stop=_StopAfterOrTooLong(policy.max_attempts, max_wait),
        reraise=True,
        before_sleep=before_sleep,
        **kwargs,
    )
