"""daemon.status round trips over the Unix socket vs a bare aiohttp handler; apps.list with 1,000 apps.

Both servers run in this process and are driven by the same client (one keep-alive connection, sequential calls),
so the ratio isolates what integd adds: peer credentials, JSON-RPC parsing, validation, dispatch, the handler's
store query and serialisation.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp  # noqa: E402
from aiohttp import web  # noqa: E402

from domain import (ApiCredential, ApiKey, CheckInterval, ConnectedApp, Integration, IntegrationId,  # noqa: E402
                    RateLimit)
from integd.bootstrap import Daemon  # noqa: E402
from integd.config import Config, Paths  # noqa: E402
from integd.logging import configure_logging  # noqa: E402
from integd.rpc.server import bind_unix_socket  # noqa: E402

N_STATUS = int(os.environ.get("BENCH_N", "3000"))
N_LIST = 200


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p / 100 * len(xs)))]


async def drive(sock: str, payload: bytes, n: int) -> tuple[float, list[float]]:
    conn = aiohttp.UnixConnector(path=sock)
    async with aiohttp.ClientSession(connector=conn) as s:
        for _ in range(50):    # warm up
            async with s.post("http://integd/rpc", data=payload) as r:
                await r.read()
        lat = []
        t0 = time.perf_counter()
        for _ in range(n):
            t = time.perf_counter()
            async with s.post("http://integd/rpc", data=payload,
                              headers={"Content-Type": "application/json"}) as r:
                body = await r.read()
            lat.append(time.perf_counter() - t)
        total = time.perf_counter() - t0
    json.loads(body)
    return n / total, lat


async def bare_server(path: str) -> web.AppRunner:
    async def handler(request: web.Request) -> web.Response:
        req = await request.json()
        return web.json_response({"jsonrpc": "2.0", "id": req["id"], "result": {"version": "0", "apps": 0}})
    app = web.Application()
    app.router.add_post("/rpc", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.SockSite(runner, bind_unix_socket(path, 0o600)).start()
    return runner


async def seed_apps(d: Daemon, n: int) -> None:
    import getpass
    user = getpass.getuser()
    now = time.time()
    async with d.store.transaction() as tx:
        for i in range(n):
            app = ConnectedApp.initiate(IntegrationId.generate(), user, "github", now=now, name=f"app {i}",
                                        integration=Integration(rate_limit=RateLimit(per_hour=5000, burst=100),
                                                                check_interval=CheckInterval(86400)))
            app.set_credentials(ApiCredential.from_api_key(ApiKey(f"ghp_bench{i:030d}")), now=now)
            app.establish(now=now)
            await tx.save(app, credential_changed=True)


async def main() -> None:
    configure_logging("warning", "json")
    tmp = Path(tempfile.mkdtemp(prefix="integd-bench-", dir="/tmp"))
    status = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "daemon.status"}).encode()

    runner = await bare_server(str(tmp / "bare.sock"))
    bare_rps, bare_lat = await drive(str(tmp / "bare.sock"), status, N_STATUS)
    await runner.cleanup()

    d = Daemon(Config(), Paths(state_dir=tmp / "state", socket=tmp / "d.sock", config_file=None))
    await d.start()
    try:
        rps, lat = await drive(str(tmp / "d.sock"), status, N_STATUS)
        await seed_apps(d, 1000)
        listing = json.dumps({"jsonrpc": "2.0", "id": 2, "method": "apps.list"}).encode()
        _, list_lat = await drive(str(tmp / "d.sock"), listing, N_LIST)
    finally:
        await d.stop()

    print(f"bare aiohttp handler : {bare_rps:8.0f} req/s  p50 {pct(bare_lat, 50) * 1e3:.2f} ms  "
          f"p99 {pct(bare_lat, 99) * 1e3:.2f} ms")
    print(f"integd daemon.status : {rps:8.0f} req/s  p50 {pct(lat, 50) * 1e3:.2f} ms  "
          f"p99 {pct(lat, 99) * 1e3:.2f} ms")
    print(f"ratio (aim >= 0.6)   : {rps / bare_rps:.2f}")
    print(f"apps.list, 1000 apps : p50 {pct(list_lat, 50) * 1e3:.1f} ms  p99 {pct(list_lat, 99) * 1e3:.1f} ms  "
          f"mean {statistics.mean(list_lat) * 1e3:.1f} ms (aim p99 < 20 ms)")


if __name__ == "__main__":
    asyncio.run(main())
