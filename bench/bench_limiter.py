"""The limiter against the GitHub emulator enforcing a strict limit.

The emulator allows LIMIT requests per WINDOW seconds per token (fixed windows, like GitHub's reset epoch) and
answers the one after with 403/429. The app is configured with the same per-minute limit; CONCURRENCY workers
call apps.request with wait=true (background mode: the limiter waits instead of failing fast) for DURATION
seconds. Reported: requests served, the allowed number in that time (LIMIT * DURATION / WINDOW), their ratio
(aim >= 0.95) and the number of rate-limit answers the emulator gave (aim: zero).
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from connectors.emulators import EMULATORS  # noqa: E402
from integd.bootstrap import Daemon  # noqa: E402
from integd.client import IntegdClient, RpcCallError  # noqa: E402
from integd.config import Config, Paths  # noqa: E402
from integd.logging import configure_logging  # noqa: E402

LIMIT = int(os.environ.get("BENCH_LIMIT", "600"))
WINDOW = 60.0
DURATION = float(os.environ.get("BENCH_SECONDS", "30"))
CONCURRENCY = int(os.environ.get("BENCH_CONCURRENCY", "20"))
TOKEN = "ghp_benchLimiter000000000000000000001"


async def main() -> None:
    configure_logging("warning", "json")
    tmp = Path(tempfile.mkdtemp(prefix="integd-bench-", dir="/tmp"))
    emu = EMULATORS["github"](tokens=[TOKEN], seed=1)
    await emu.start(host="127.0.0.1", port=0)
    emu.set_rate_limit(limit=LIMIT, window=WINDOW)
    d = Daemon(Config(), Paths(state_dir=tmp / "state", socket=tmp / "d.sock", config_file=None))
    await d.start()
    served = errors = 0
    try:
        async with IntegdClient(str(d.paths.socket), timeout=DURATION + 120) as c:
            app = await c.call("apps.connect", {"service": "github", "api_key": TOKEN, "base_url": emu.base_url,
                                                "check_interval": 86400,
                                                "rate_limit": {"per_minute": LIMIT, "burst": 10}})
            start = time.monotonic()
            deadline = start + DURATION

            async def worker() -> None:
                nonlocal served, errors
                while time.monotonic() < deadline:
                    try:
                        await c.call("apps.request", {"app_id": app["id"], "path": "/user", "wait": True})
                        if time.monotonic() <= deadline:
                            served += 1
                    except RpcCallError:
                        errors += 1

            await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
            tail = time.monotonic() - deadline
    finally:
        await d.stop()
        limited = sum(1 for _m, _p, status in emu.request_log if status in (403, 429))
        await emu.stop()
    allowed = LIMIT * DURATION / WINDOW
    print(f"limit {LIMIT}/{WINDOW:g}s, {CONCURRENCY} concurrent callers, {DURATION:g} s "
          f"(calls still waiting at the deadline finished {tail:.1f} s later and are not counted)")
    print(f"served {served}, allowed {allowed:.0f}, share used {served / allowed:.3f} (aim >= 0.95)")
    print(f"rate-limit answers from the emulator: {limited} (aim 0); failed calls: {errors}")


if __name__ == "__main__":
    asyncio.run(main())
