"""apps.request calls per second through an OAuth app while proactive refreshes happen mid-run, versus the same
calls with a long-lived token (aim: ratio >= 0.95).

One daemon and one GitHub emulator (its authorization server behind a generic "acme" provider) run in this process;
W workers call apps.request GET /user over the Unix socket for D seconds. In the refreshing run the access token
lives D seconds; the refresh margin (60 s) is capped at half a token's lifetime, so the proactive refresh starts
half-way through the run, in the background while the calls go on (the next one would land after the end); the
emulator's token counter proves it happened. Environment: BENCH_SECONDS (default and minimum 12), BENCH_WORKERS
(default 32), BENCH_ROUNDS (default 3). Rounds alternate the two runs; the ratio reported is the median of the paired rounds' ratios (the
machine may be shared: a single pair is noisy), with the best-of-each ratio beside it.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp  # noqa: E402

from connectors.emulators.github import GitHubEmulator  # noqa: E402
from integd.bootstrap import Daemon  # noqa: E402
from integd.client import IntegdClient  # noqa: E402
from integd.config import Config, Paths  # noqa: E402
from integd.logging import configure_logging  # noqa: E402

SECONDS = max(12.0, float(os.environ.get("BENCH_SECONDS", "12")))   # > 2 x the 5 s expiry skew
WORKERS = int(os.environ.get("BENCH_WORKERS", "32"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
MARGIN = 60.0
CLIENT_ID, SECRET = "bench-client", "bench-client-secret-0001"


def config(emu: GitHubEmulator, secret_file: Path) -> Config:
    return Config.model_validate({
        "daemon": {"log_level": "warning"},
        "usage": {"plans": {"standard": {"daily_limit": 100_000_000}}},
        "oauth": {"refresh_margin": MARGIN, "clients": {"acme": {"client_id": CLIENT_ID,
                                                                   "client_secret_file": str(secret_file)}},
                  "providers": {"acme": {"authorize_url": emu.origin + "/login/oauth/authorize",
                                         "token_url": emu.origin + "/login/oauth/access_token",
                                         "api_base_url": emu.base_url, "identity_endpoint": "/user",
                                         "rate_limit": {"per_minute": 10_000_000, "burst": 100_000}}}}})


async def connect(client: IntegdClient) -> str:
    flow = await client.call("oauth.begin", {"service": "acme", "flow": "paste"})
    async with aiohttp.ClientSession() as http:
        async with http.get(flow["authorization_url"], allow_redirects=False) as resp:
            redirect = resp.headers["Location"]
    done = await client.call("oauth.complete", {"flow_id": flow["flow_id"], "redirect_url": redirect})
    return done["app_id"]


async def run(client: IntegdClient, app_id: str) -> tuple[int, float]:
    deadline = time.monotonic() + SECONDS
    params = {"app_id": app_id, "method": "GET", "path": "/user"}

    async def worker() -> int:
        n = 0
        while time.monotonic() < deadline:
            result = await client.call("apps.request", params)
            assert result["status"] == 200, result
            n += 1
        return n

    started = time.monotonic()
    counts = await asyncio.gather(*(worker() for _ in range(WORKERS)))
    return sum(counts), time.monotonic() - started


async def measure(tmp: Path, emu: GitHubEmulator, *, refreshing: bool, index: int) -> tuple[float, int]:
    emu.oauth.options.access_token_lifetime = SECONDS if refreshing else None
    daemon = Daemon(config(emu, tmp / "secret"), Paths(tmp / f"state{index}", tmp / f"d{index}.sock", None))
    await daemon.start()
    try:
        async with IntegdClient(str(daemon.paths.socket)) as client:
            app_id = await connect(client)
            before = emu.oauth.token_requests
            calls, elapsed = await run(client, app_id)
            refreshes = emu.oauth.token_requests - before
            return calls / elapsed, refreshes
    finally:
        await daemon.stop()


async def main() -> None:
    configure_logging(level="warning", fmt="json")
    with tempfile.TemporaryDirectory(prefix="bench-oauth-", dir="/tmp") as d:
        tmp = Path(d)
        (tmp / "secret").write_text(SECRET)
        emu = GitHubEmulator(seed=1)
        emu.oauth.register_client(CLIENT_ID, SECRET, ["http://127.0.0.1/callback"])
        emu.oauth.options.rotate_refresh_tokens = True
        emu.set_rate_limit(10_000_000, 3600)
        await emu.start()
        try:
            long_lived, refreshing, refreshes = [], [], []
            for i in range(ROUNDS):
                rate, _ = await measure(tmp, emu, refreshing=False, index=2 * i)
                long_lived.append(rate)
                rate, n = await measure(tmp, emu, refreshing=True, index=2 * i + 1)
                refreshing.append(rate)
                refreshes.append(n)
                print(f"round {i + 1}: long-lived {long_lived[-1]:.0f} calls/s, refreshing {rate:.0f} calls/s "
                      f"({n} refresh(es) mid-run)", flush=True)
        finally:
            await emu.stop()
    best_long, best_refresh = max(long_lived), max(refreshing)
    paired = statistics.median(r / b for r, b in zip(refreshing, long_lived))
    print(f"\n{WORKERS} workers x {SECONDS:g} s, apps.request GET /user over the Unix socket")
    print(f"long-lived token:          {best_long:8.0f} calls/s (best of {ROUNDS})")
    print(f"proactive refresh mid-run: {best_refresh:8.0f} calls/s (best of {ROUNDS}; refreshes {refreshes})")
    print(f"ratio: median of paired rounds {paired:.3f}, best of each {best_refresh / best_long:.3f} (aim >= 0.95)")


if __name__ == "__main__":
    asyncio.run(main())
