"""The gate in front of real emulators: M > N concurrent background calls never draw a 429.

Virtual time: the emulator, the gate and the connector share one FakeClock, and a Timeline moves it only
when every caller is asleep (none has a request in flight), waking sleepers in order of their deadline. So
the run is deterministic and instant, and each request reaches the emulator at the time the gate admitted it.
"""

from __future__ import annotations

import asyncio
import heapq

import pytest

from connectors.base import ApiRequest, CallRecord
from connectors.emulators import EMULATORS
from connectors.factory import build_connector
from connectors.http import HttpTransport
from connectors.limits import CallGate, MemoryQuotaStore
from domain.clock import FakeClock
from domain.errors import IntegrationError, IntegrationFailure
from domain.model import ApiCredential
from domain.values import ApiKey, RateLimit, RetryPolicy

TOKENS = {"github": "ghp_limits00000000000000000000000000001",
          "slack": "xoxb-limits-000000000000-000000000001",
          "sendgrid": "SG.limitsId.limitsSecret00000000000000001"}
CALLS = {"github": ApiRequest("GET", "/user"), "slack": ApiRequest("POST", "/auth.test"),
         "sendgrid": ApiRequest("GET", "/scopes")}
N, M = 6, 20


class Timeline:
    """Virtual time for ``parties`` concurrent callers."""

    def __init__(self, clock: FakeClock, parties: int) -> None:
        self.clock, self.active = clock, parties
        self._sleepers: list[tuple[float, int, asyncio.Future]] = []
        self._seq = 0

    async def sleep(self, seconds: float) -> None:
        future = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self.clock.time() + seconds, self._seq, future))
        self._seq += 1
        self._advance()
        await future

    def done(self) -> None:
        self.active -= 1
        self._advance()

    def _advance(self) -> None:
        if self._sleepers and len(self._sleepers) == self.active:
            deadline, _, future = heapq.heappop(self._sleepers)
            if deadline > self.clock.time():
                self.clock.advance(deadline - self.clock.time())
            future.set_result(None)


async def run_calls(service: str, *, gated: bool) -> tuple[object, list, list[CallRecord], FakeClock]:
    clock = FakeClock()
    emu = EMULATORS[service](tokens=[TOKENS[service]], seed=1, clock=clock.time)
    base_url = await emu.start(host="127.0.0.1", port=0)
    emu.set_rate_limit(limit=N, window=60)
    timeline, transport, records = Timeline(clock, M), HttpTransport(), []
    gate = CallGate("int_l", RateLimit(per_minute=N), store=MemoryQuotaStore(), clock=clock,
                    sleep=timeline.sleep) if gated else None
    connector = build_connector(service, ApiCredential.from_api_key(ApiKey(TOKENS[service])), app_id="int_l",
                                base_url=base_url, transport=transport, gate=gate, clock=clock,
                                sleep=timeline.sleep, observer=records.append,
                                retry=RetryPolicy.exponential_backoff() if gated else RetryPolicy.none())

    async def one() -> object:
        try:
            return await connector.send_request(CALLS[service], interactive=False)
        except IntegrationFailure as failure:
            return failure
        finally:
            timeline.done()

    try:
        results = await asyncio.gather(*(one() for _ in range(M)))
    finally:
        await transport.close()
        await emu.stop()
    return emu, results, records, clock


@pytest.mark.parametrize("service", sorted(TOKENS))
async def test_gate_at_the_providers_limit_draws_no_429(service):
    start = FakeClock().time()
    emu, results, records, clock = await run_calls(service, gated=True)
    assert all(getattr(r, "status", None) == 200 for r in results)
    assert [e.status for e in emu.request_log] == [200] * M          # zero 429s seen by the emulator
    assert len(records) == M and all(r.attempt == 1 and r.outcome == "ok" for r in records)
    # burst N/2, then N/2 per minute: the calls took exactly as long as the smoothing demands
    assert clock.time() - start == pytest.approx(60 * (M - N // 2) / (N // 2))


async def test_without_the_gate_the_same_load_is_refused():
    emu, results, _, _ = await run_calls("slack", gated=False)
    refused = [r for r in results if isinstance(r, IntegrationFailure)]
    assert len(refused) == M - N
    assert all(r.category is IntegrationError.RATE_LIMIT_EXCEEDED for r in refused)
    assert sum(1 for e in emu.request_log if e.status == 429) == M - N
