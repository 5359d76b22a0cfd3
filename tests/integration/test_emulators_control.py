"""The `/_emulator/` control API over real loopback HTTP, and the start/stop contract."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from connectors.emulators import EMULATORS, EmulatorInputError, GitHubEmulator, ManualClock

TOKEN = "ghp_demo123"


@pytest.fixture
async def emu() -> AsyncIterator[GitHubEmulator]:
    emulator = GitHubEmulator(tokens=[TOKEN], seed=2, clock=ManualClock())
    await emulator.start()
    yield emulator
    await emulator.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def control(http: aiohttp.ClientSession, emu: GitHubEmulator, name: str, body: Any = None,
                  raw: bytes | None = None) -> tuple[int, dict[str, Any]]:
    url = f"{emu.origin}/_emulator/{name}"
    if body is None and raw is None:
        async with http.get(url) as resp:
            return resp.status, await resp.json()
    payload: dict[str, Any] = {"json": body} if raw is None else {"data": raw}
    async with http.post(url, **payload) as resp:
        return resp.status, await resp.json()


async def user_status(http: aiohttp.ClientSession, emu: GitHubEmulator, token: str = TOKEN) -> int:
    async with http.get(emu.base_url + "/user", headers={"Authorization": f"Bearer {token}"}) as resp:
        return resp.status


async def test_state_reports_knobs_and_counts_but_no_token(emu: GitHubEmulator, http: aiohttp.ClientSession) -> None:
    await user_status(http, emu)
    await user_status(http, emu, "ghp_unknown")
    status, state = await control(http, emu, "state")
    assert status == 200 and state["service"] == "github" and state["base_url"] == emu.base_url
    assert state["faults"] == {"latency": 0.0, "error_rate": 0.0, "reset_rate": 0.0, "rate_limit_burst": 0,
                               "burst_retry_after": 1}
    assert state["tokens"] == {"active": 1, "revoked": 0}
    assert state["requests"] == {"total": 2, "by_path": {"/user": 2}, "by_status": {"200": 1, "401": 1}}
    assert TOKEN not in str(state) and state["rate_limit"] is None


async def test_faults_update_and_control_is_exempt(emu: GitHubEmulator, http: aiohttp.ClientSession) -> None:
    status, body = await control(http, emu, "faults", {"error_rate": 1.0, "rate_limit_burst": 3})
    assert status == 200 and body["faults"]["error_rate"] == 1.0 and body["faults"]["rate_limit_burst"] == 3
    assert emu.faults.error_rate == 1.0 and emu.faults.latency == 0.0
    assert await user_status(http, emu) >= 500
    assert (await control(http, emu, "state"))[0] == 200  # faults never touch the control API
    await control(http, emu, "faults", {"error_rate": 0})
    assert emu.faults.rate_limit_burst == 3


@pytest.mark.parametrize(("body", "raw", "needle"), [
    ({"error_rate": 2}, None, "error_rate: Input should be less than or equal to 1"),
    ({"latency": "slow"}, None, "latency: Input should be a valid number"),
    ({"jitter": 1}, None, "jitter: Extra inputs are not permitted"),
    (None, b"[1, 2]", "body must be a JSON object"),
    (None, b"{oops", "body must be a JSON object"),
])
async def test_faults_bad_input(emu: GitHubEmulator, http: aiohttp.ClientSession, body: Any, raw: bytes | None,
                                needle: str) -> None:
    status, answer = await control(http, emu, "faults", body, raw)
    assert status == 400 and answer["error"].startswith("invalid faults: ") and needle in answer["error"]
    assert emu.faults.error_rate == 0.0 and emu.faults.latency == 0.0


async def test_tokens_and_revoke(emu: GitHubEmulator, http: aiohttp.ClientSession) -> None:
    assert await user_status(http, emu, "ghp_added789") == 401
    status, body = await control(http, emu, "tokens", {"token": "ghp_added789"})
    assert status == 201 and body == {"added": "…d789", "tokens": {"active": 2, "revoked": 0}}
    assert await user_status(http, emu, "ghp_added789") == 200
    status, body = await control(http, emu, "revoke", {"token": "ghp_added789"})
    assert status == 200 and body["tokens"] == {"active": 1, "revoked": 1}
    assert await user_status(http, emu, "ghp_added789") == 401
    status, body = await control(http, emu, "revoke", {"token": "ghp_never_seen_1234"})
    assert status == 404 and "…1234" in body["error"] and "never_seen" not in body["error"]
    status, body = await control(http, emu, "tokens", {"token": "has space"})
    assert status == 400 and "whitespace" in body["error"] and "has space" not in body["error"]
    status, body = await control(http, emu, "tokens", {"token": ""})
    assert status == 400 and body["error"].startswith("invalid token: token:")


async def test_rate_limit_and_options(emu: GitHubEmulator, http: aiohttp.ClientSession) -> None:
    status, body = await control(http, emu, "rate_limit", {"limit": 1, "window": 60})
    assert status == 200 and body == {"rate_limit": {"limit": 1, "window": 60.0}}
    assert [await user_status(http, emu) for _ in range(2)] == [200, 403]
    status, body = await control(http, emu, "rate_limit", {"limit": 0, "window": -1})
    assert status == 400 and "limit: Input should be greater than or equal to 1" in body["error"]
    assert "window: Input should be greater than 0" in body["error"]
    status, body = await control(http, emu, "options", {"rate_limit_status": 429})
    assert status == 200 and body["options"]["rate_limit_status"] == 429
    assert await user_status(http, emu) == 429
    status, body = await control(http, emu, "options", {"rate_limit_status": 418})
    assert status == 400 and "rate_limit_status" in body["error"]
    status, body = await control(http, emu, "nothing")
    assert status == 404 and "no control endpoint" in body["error"]


@pytest.mark.parametrize("service", sorted(EMULATORS))
async def test_start_stop_contract(service: str) -> None:
    emulator = EMULATORS[service](tokens=["tok_abcdef"], seed=1)
    with pytest.raises(RuntimeError, match="not started"):
        emulator.base_url
    base = await emulator.start(host="127.0.0.1", port=0)
    try:
        assert base == emulator.base_url and base.startswith("http://127.0.0.1:")
        assert base == emulator.origin + {"github": "", "slack": "/api", "sendgrid": "/v3", "gmail": "/gmail/v1",
                                          "google_drive": "/drive/v3", "outlook": "/v1.0", "onedrive": "/v1.0",
                                          "teams": "/v1.0", "dropbox": "/2", "discord": "/api/v10",
                                          }.get(service, emulator.prefixes[0])
        with pytest.raises(RuntimeError, match="already started"):
            await emulator.start()
    finally:
        await emulator.stop()
        await emulator.stop()


async def test_refuses_remote_hosts_and_bad_values() -> None:
    emulator = GitHubEmulator(tokens=[TOKEN])
    with pytest.raises(EmulatorInputError, match="not a loopback address"):
        await emulator.start(host="0.0.0.0")
    with pytest.raises(EmulatorInputError, match="not an IP address"):
        await emulator.start(host="example.com")
    with pytest.raises(EmulatorInputError, match="limit"):
        emulator.set_rate_limit(0, 60)
    with pytest.raises(EmulatorInputError, match="whitespace"):
        emulator.add_token("a b")
