"""CallGate's per-route buckets (RouteBuckets): signals with a scope hold back only their bucket; a global signal
holds back everything; the learnt limit and period cover a fresh window; calls in flight count."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from connectors.base import ApiRequest, RateSignal
from connectors.discord import DiscordConnector
from connectors.http import HttpTransport
from connectors.limits import CallGate, MemoryQuotaStore, RouteBuckets
from domain.clock import FakeClock
from domain.errors import RateLimitExceededException
from domain.model import ApiCredential
from domain.values import ApiKey, RateLimit

A, B, C = "GET /channels/1/messages", "GET /channels/2/messages", "POST /channels/1/messages"


def gate(clock: FakeClock) -> CallGate:
    return CallGate("int_routes", RateLimit(per_minute=6000, burst=100), store=MemoryQuotaStore(), clock=clock,
                    max_interactive_wait=1.0)


async def test_an_empty_bucket_holds_back_its_routes_only():
    clock = FakeClock()
    g = gate(clock)
    await g.acquire(interactive=True, scope=A)
    g.observe(RateSignal(limit=5, remaining=0, reset_at=clock.time() + 4, resource="bucket-x", scope=A))
    with pytest.raises(RateLimitExceededException) as info:
        await g.acquire(interactive=True, scope=A)
    assert info.value.retry_after == pytest.approx(4.0)
    await g.acquire(interactive=True, scope=B)            # another channel
    await g.acquire(interactive=True)                     # a call without a route
    assert g.usage()["provider"]["blocked_buckets"] == {"bucket-x": clock.time() + 4}


async def test_routes_sharing_a_bucket_share_its_block():
    clock = FakeClock()
    g = gate(clock)
    for route in (A, C):
        await g.acquire(interactive=True, scope=route)
        g.observe(RateSignal(limit=5, remaining=3, reset_at=clock.time() + 4, resource="shared", scope=route))
    g.observe(RateSignal(retry_after=3.0, resource="shared", scope=C))
    with pytest.raises(RateLimitExceededException):
        await g.acquire(interactive=True, scope=A)


async def test_a_global_signal_blocks_every_route():
    clock = FakeClock()
    g = gate(clock)
    g.observe(RateSignal(retry_after=2.0, global_limit=True))
    for route in (A, B, None):
        with pytest.raises(RateLimitExceededException):
            await g.acquire(interactive=True, scope=route)


def test_a_turned_window_is_assumed_fresh_at_the_learnt_limit():
    buckets = RouteBuckets()
    buckets.spend(A, 0.0)
    buckets.observe(A, "b", 4, 10.0, None, now=0.0, limit=5)      # period learnt: 10 s
    for _ in range(4):
        buckets.spend(A, 1.0)
    assert buckets.wait(A, 1.0) == pytest.approx(9.0)
    for left in (3, 2, 1, 0):                                      # their answers
        buckets.observe(A, "b", left, 10.0, None, now=1.0, limit=5)
    for _ in range(5):                                             # the window turned at 10: five more fit
        assert buckets.wait(A, 10.0) == 0.0
        buckets.spend(A, 10.0)
    assert buckets.wait(A, 10.0) == pytest.approx(10.0)


def test_calls_in_flight_count_against_an_answer_and_are_released_by_theirs():
    buckets = RouteBuckets()
    buckets.spend(A, 0.0)
    buckets.observe(A, "b", 4, 10.0, None, now=0.0, limit=5)
    for _ in range(3):
        buckets.spend(A, 0.0)                                      # three in flight
    buckets.observe(A, "b", 3, 10.0, None, now=0.0, limit=5)      # a late answer for the first of them
    assert buckets.wait(A, 0.0) == 0.0
    buckets.spend(A, 0.0)
    assert buckets.wait(A, 0.0) == pytest.approx(10.0)             # 5 admitted in the window: full
    buckets.observe(A, None, None, None, None, now=0.0)            # answered without headers
    buckets.release(A)                                              # failed or cancelled: no answer
    buckets.release(A)
    assert buckets._in_flight["b"] == 0 and buckets.wait(A, 0.0) == pytest.approx(10.0)


class Hanging(HttpTransport):
    """A provider that never answers; ``entered`` is set once a request is on its way."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = asyncio.Event()

    async def send(self, *args: Any, **kwargs: Any) -> Any:
        self.entered.set()
        await asyncio.Event().wait()


async def test_a_cancelled_call_leaves_no_call_in_flight():
    clock, transport = FakeClock(), Hanging()
    g = gate(clock)
    connector = DiscordConnector(ApiCredential.from_api_key(ApiKey("MTE4.token-for-a-hang-test-000001")),
                                 app_id="int_x", base_url="http://127.0.0.1:9/api/v10", transport=transport, gate=g)
    task = asyncio.create_task(connector.send_request(ApiRequest("GET", "/channels/1/messages")))
    await transport.entered.wait()
    assert g._routes._in_flight[A] == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert g._routes._in_flight[A] == 0
