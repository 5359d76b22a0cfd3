"""Event-sink throughput and online backup cost, on loopback and a temp directory.

1. Catch-up: EVENTS outbox rows are committed while no receiver listens, then the daemon starts with one sink
   ("*") pointing at a local aiohttp receiver that verifies every signature. Reported: seconds until the last
   event is acknowledged, events/s, POSTs (batches of up to 100).
2. Live: the same daemon, events committed one transaction each (as use cases do) by a writer; reported: the
   median and p99 latency from COMMIT to the receiver holding the event.
3. Backup: integd.backup.backup() of that store (read-only, beside the running daemon); seconds and size.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aiohttp import web  # noqa: E402

from integd.backup import backup  # noqa: E402
from integd.bootstrap import Daemon  # noqa: E402
from integd.config import Config, Paths, SinkConfig  # noqa: E402
from integd.logging import configure_logging  # noqa: E402
from integd.sink_signature import verify_signature  # noqa: E402

EVENTS = int(os.environ.get("BENCH_EVENTS", "20000"))
LIVE = int(os.environ.get("BENCH_LIVE", "500"))
SECRET = b"bench-secret-0123456789abcdef"


async def insert_events(d: Daemon, n: int) -> None:
    rows = [(uuid.uuid4().hex, "app.configured", "int_" + "0" * 32, "bench", time.time(),
             json.dumps({"name": f"n{i}"})) for i in range(n)]
    assert d.db is not None
    async with d.db.write() as conn:
        await conn.executemany("INSERT INTO events (event_id, type, app_id, user, occurred_at, payload) "
                               "VALUES (?, ?, ?, ?, ?, ?)", rows)


async def main() -> None:
    configure_logging("warning", "json")
    seen: dict[int, float] = {}
    posts = 0
    arrived = asyncio.Event()

    async def hook(request: web.Request) -> web.Response:
        nonlocal posts
        body = await request.read()
        assert verify_signature(SECRET, request.headers["X-Integd-Signature"], body)
        now = time.perf_counter()
        for e in json.loads(body):
            seen.setdefault(e["seq"], now)
        posts += 1
        arrived.set()
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # noqa: SLF001

    with tempfile.TemporaryDirectory(prefix="bench-sinks-", dir="/tmp") as tmp:
        state, secret = Path(tmp) / "state", Path(tmp) / "secret"
        secret.write_bytes(SECRET)
        cfg = Config(sinks={"bench": SinkConfig(url=f"http://127.0.0.1:{port}/hook", secret_file=secret)})
        paths = Paths(state_dir=state, socket=Path(tmp) / "d.sock", config_file=None)

        seed = Daemon(Config(), paths)          # fill the outbox with no sink configured
        await seed.start()
        await insert_events(seed, EVENTS)
        await seed.stop()

        d = Daemon(cfg, paths)
        t0 = time.perf_counter()
        await d.start()
        while len(seen) < EVENTS:
            arrived.clear()
            await arrived.wait()
        catch_up = time.perf_counter() - t0
        print(f"catch-up: {EVENTS} events in {catch_up:.2f} s = {EVENTS / catch_up:,.0f} events/s, {posts} POSTs")

        latencies = []
        for _ in range(LIVE):
            before = len(seen)
            t = time.perf_counter()
            await insert_one(d)
            while len(seen) == before:
                arrived.clear()
                await arrived.wait()
            latencies.append(seen[max(seen)] - t)
        latencies.sort()
        print(f"live: {LIVE} single-event commits, commit->received median "
              f"{statistics.median(latencies) * 1000:.2f} ms, p99 {latencies[int(LIVE * 0.99) - 1] * 1000:.2f} ms")

        t = time.perf_counter()
        info = await asyncio.to_thread(backup, state, Path(tmp) / "copy.db")
        print(f"backup: {info['events']} events, {info['bytes'] / 1e6:.1f} MB in {time.perf_counter() - t:.2f} s "
              f"(daemon running), integrity {info['integrity']}")
        await d.stop()
    await runner.cleanup()


async def insert_one(d: Daemon) -> None:
    """One committed event through the store's publishers, as a use case's transaction does."""
    from domain.events import AppConfiguredEvent  # noqa: PLC0415
    async with d.store.transaction() as tx:
        await tx.add_events([AppConfiguredEvent(app_id="int_" + "0" * 32, user="bench", occurred_at=time.time(),
                                              changes={"name": "x"})])


if __name__ == "__main__":
    asyncio.run(main())
