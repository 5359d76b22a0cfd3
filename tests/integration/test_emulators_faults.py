"""Fault knobs of every emulator over real loopback HTTP: 5xx, resets, latency, rate-limit bursts."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from pydantic import ValidationError

from connectors.emulators import EMULATORS, Emulator, ManualClock

# service -> (token, verb, path of a cheap authenticated call)
CASES = {
    "github": ("ghp_demo123", "GET", "/user"),
    "slack": ("xoxb-demo-1", "POST", "/auth.test"),
    "sendgrid": ("SG.demo.key", "GET", "/scopes"),
}


@pytest.fixture(params=sorted(CASES))
async def emu(request: pytest.FixtureRequest) -> AsyncIterator[Emulator]:
    emulator = EMULATORS[request.param](tokens=[CASES[request.param][0]], seed=7, clock=ManualClock())
    await emulator.start()
    yield emulator
    await emulator.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def hit(http: aiohttp.ClientSession, emu: Emulator) -> tuple[int, str, Any]:
    token, verb, path = CASES[emu.service]
    async with http.request(verb, emu.base_url + path, headers={"Authorization": f"Bearer {token}"}) as resp:
        return resp.status, await resp.text(), resp.headers


def is_server_error(service: str, status: int, text: str) -> bool:
    if service == "slack" and status == 200:
        return json.loads(text) == {"ok": False, "error": "service_unavailable"}
    if service == "github" and status == 500:
        return json.loads(text) == {"message": "Server Error"}
    return status in {"github": (502, 503), "slack": (503,), "sendgrid": (500, 503)}[service]


async def test_error_rate_one_answers_every_request_with_a_provider_5xx(
        emu: Emulator, http: aiohttp.ClientSession) -> None:
    emu.faults.error_rate = 1.0
    answers = [await hit(http, emu) for _ in range(12)]
    assert all(is_server_error(emu.service, status, text) for status, text, _ in answers), answers
    emu.faults.error_rate = 0.0
    assert (await hit(http, emu))[0] == 200


async def test_faults_follow_the_seed(emu: Emulator, http: aiohttp.ClientSession) -> None:
    twin = type(emu)(tokens=[CASES[emu.service][0]], seed=7, clock=ManualClock())
    await twin.start()
    try:
        for target in (emu, twin):
            target.faults.error_rate = 0.5
        ours = [(await hit(http, emu))[0] for _ in range(16)]
        theirs = [(await hit(http, twin))[0] for _ in range(16)]
    finally:
        await twin.stop()
    assert ours == theirs and len(set(ours)) > 1


async def test_reset_rate_one_drops_every_connection(emu: Emulator, http: aiohttp.ClientSession) -> None:
    emu.faults.reset_rate = 1.0
    for _ in range(3):
        with pytest.raises(aiohttp.ServerDisconnectedError):
            await hit(http, emu)
    _, verb, path = CASES[emu.service]
    # aiohttp's client quietly retries an idempotent request once after a disconnect (client.py)
    assert emu.hits(path) == (6 if verb == "GET" else 3) and {entry.status for entry in emu.request_log} == {0}
    emu.faults.reset_rate = 0.0
    assert (await hit(http, emu))[0] == 200


async def test_latency_delays_every_answer(emu: Emulator, http: aiohttp.ClientSession) -> None:
    emu.faults.latency = 0.05
    started = time.monotonic()
    status, _, _ = await hit(http, emu)
    assert status == 200 and time.monotonic() - started >= 0.05


def is_rate_limited(service: str, status: int, text: str, headers: Any) -> bool:
    if service == "github":
        return (status == 403 and "secondary rate limit" in json.loads(text)["message"]
                and headers["retry-after"] == "1" and headers["x-ratelimit-remaining"] != "0")
    if service == "slack":
        return status == 429 and json.loads(text)["error"] == "ratelimited" and headers["Retry-After"] == "1"
    return (status == 429 and json.loads(text)["errors"][0]["message"] == "too many requests"
            and headers["X-RateLimit-Remaining"] == "0")


async def test_burst_gives_exactly_that_many_rate_limited_answers(emu: Emulator, http: aiohttp.ClientSession) -> None:
    emu.faults.rate_limit_burst = 2
    answers = [await hit(http, emu) for _ in range(4)]
    limited = [is_rate_limited(emu.service, *answer) for answer in answers]
    assert limited == [True, True, False, False], answers
    assert [a[0] for a in answers[2:]] == [200, 200] and emu.faults.rate_limit_burst == 0


async def test_burst_does_not_spend_the_primary_quota(emu: Emulator, http: aiohttp.ClientSession) -> None:
    emu.set_rate_limit(limit=2, window=60.0)
    emu.faults.rate_limit_burst = 1
    statuses = [(await hit(http, emu))[0] for _ in range(4)]
    primary = {"github": 403, "slack": 429, "sendgrid": 429}[emu.service]
    assert statuses == [primary, 200, 200, primary]


async def test_knobs_are_validated(emu: Emulator) -> None:
    with pytest.raises(ValidationError, match="error_rate"):
        emu.faults.error_rate = 1.5
    with pytest.raises(ValidationError, match="latency"):
        emu.faults.latency = -1
    assert emu.faults.error_rate == 0.0


async def test_request_log_records_method_path_and_status(emu: Emulator, http: aiohttp.ClientSession) -> None:
    await hit(http, emu)
    async with http.get(emu.origin + "/_emulator/state") as resp:  # control calls are not API requests
        assert resp.status == 200
    _, verb, path = CASES[emu.service]
    assert emu.request_log == [(verb, path, 200)]
    assert emu.hits(path) == 1 and emu.hits(emu.prefixes[-1] + path) == 1 and emu.hits("/elsewhere") == 0
