"""Benchmark: the dashboard with 10,000 apps and 200 status events a second (not part of the test suite).

    .venv/bin/python bench/bench_tui.py [--apps 10000] [--rate 200] [--seconds 30]

Runs the real IntegApp headless (Textual's test driver, 120x40) against a fake session that answers from memory
(tests/tui/fakes.py), so that the numbers are the dashboard's own cost: the daemon and the socket are not in the
loop. Two runs, the same but for the events: a baseline with none, then ``--rate`` ``app.status_changed`` events
a second on random apps, each one also making the dashboard re-read its app with ``apps.get`` as it would live.

Reported:
    event-loop lag     how late a 10 ms timer in the app's loop fires (p50, p99, max)
    commit -> row      from the fake committing an event to the table taking that row's new content at a flush
                       (its line is repainted in the frame that follows, if it is on screen) (p50, p99, max)
    load               from start to the 10,000 rows being in the table's order

History, two runs each (2 cores shared with other engineers' test runs):
    load average 3-5      baseline lag p99      events lag p99     commit->row p99     load
    DataTable (before)    169 / 95 ms           346 / 368 ms       656 / 630 ms        6-10 s
    Line-API (after)      3.9 / 4.2 ms          18 / 17 ms         248 / 247 ms        0.2-0.5 s
    load average 7-10
    DataTable (before)    540 / 186 ms          2,137 / 989 ms     4,309 / 2,003 ms    14-30 s
    Line-API (after)      12 / 6 ms             42 / 29 ms         252 / 248 ms        0.6-0.9 s
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TEXTUAL_ANIMATIONS", "none")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from integtui.app import IntegApp  # noqa: E402
from integtui.screens.main import MainScreen  # noqa: E402
from tests.tui.fakes import FakeDaemon, fixed_app  # noqa: E402

STATUSES = ("connected", "error", "rate_limited", "unauthorized")
SERVICES = ("github", "slack", "sendgrid")


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def lag_probe(samples: list[float], stop: asyncio.Event, period: float = 0.010) -> None:
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        due = loop.time() + period
        await asyncio.sleep(period)
        samples.append(loop.time() - due)


async def emitter(fake: FakeDaemon, ids: list[str], rate: float, seconds: float, committed: dict[str, float]) -> int:
    """Emit ``rate`` events a second, paced against the clock (not sleep-per-event, which would drift)."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    rng = random.Random(1)
    sent = 0
    while (elapsed := loop.time() - start) < seconds:
        due = int(elapsed * rate) + 1
        while sent < due:
            app_id = rng.choice(ids)
            old = fake.apps[app_id]["status"]
            new = rng.choice([s for s in STATUSES if s != old])
            committed[app_id] = time.perf_counter()
            fake.emit("app.status_changed", app_id, {"old_status": old, "new_status": new, "reason": "bench"})
            sent += 1
        await asyncio.sleep(1 / rate)
    return sent


async def run(apps: int, rate: float, seconds: float) -> dict[str, float]:
    fake = FakeDaemon([fixed_app(n, service=SERVICES[n % 3], used=n % 500) for n in range(apps)])
    ids = list(fake.apps)
    app = IntegApp(socket_path="/bench/integd.sock", session_factory=fake.session_factory)
    committed: dict[str, float] = {}
    delays: list[float] = []
    lags: list[float] = []

    def on_flush(changed: set[str], at: float) -> None:
        for app_id in changed:
            t0 = committed.pop(app_id, None)
            if t0 is not None:
                delays.append(at - t0)

    started = time.perf_counter()
    async with app.run_test(size=(120, 40)) as pilot:
        screen = app.screen_stack[0]
        assert isinstance(screen, MainScreen)
        # Loaded once the rows are in the table's order (it renders only the lines on screen).
        while len(app.state.apps) < apps or app.state.structure_dirty or screen.table.row_count < apps:
            await pilot.pause(0.05)
        load_time = time.perf_counter() - started
        await pilot.pause(1.0)  # settle: the first frames after loading are not the steady state
        screen.table.flush_listeners.append(on_flush)
        stop = asyncio.Event()
        probe = asyncio.create_task(lag_probe(lags, stop))
        sent = await emitter(fake, ids, rate, seconds, committed) if rate > 0 else 0
        if rate <= 0:
            await asyncio.sleep(seconds)
        await pilot.pause(1.0)  # let the last flushes land
        stop.set()
        await probe
    return {"load_s": load_time, "events": sent, "rows_changed": len(delays), "unflushed": len(committed),
            "lag_p50_ms": percentile(lags, 0.50) * 1000, "lag_p99_ms": percentile(lags, 0.99) * 1000,
            "lag_max_ms": max(lags, default=float("nan")) * 1000,
            "delay_p50_ms": percentile(delays, 0.50) * 1000, "delay_p99_ms": percentile(delays, 0.99) * 1000,
            "delay_max_ms": max(delays, default=float("nan")) * 1000,
            "delay_mean_ms": statistics.fmean(delays) * 1000 if delays else float("nan")}


def report(name: str, r: dict[str, float]) -> None:
    print(f"{name:<9} load {r['load_s']:.2f}s  events {r['events']:>5}  rows changed {r['rows_changed']:>5}"
          f"  | loop lag p50 {r['lag_p50_ms']:.1f} ms  p99 {r['lag_p99_ms']:.1f} ms  max {r['lag_max_ms']:.1f} ms"
          f"  | commit->row p50 {r['delay_p50_ms']:.0f} ms  p99 {r['delay_p99_ms']:.0f} ms"
          f"  max {r['delay_max_ms']:.0f} ms", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--apps", type=int, default=10_000)
    parser.add_argument("--rate", type=float, default=200.0, help="status events per second")
    parser.add_argument("--seconds", type=float, default=30.0)
    args = parser.parse_args()
    if args.apps < 1 or args.rate <= 0 or args.seconds <= 0:
        parser.error("--apps, --rate and --seconds must be positive")
    print(f"integtui benchmark: {args.apps} apps, {args.rate:g} events/s for {args.seconds:g} s, headless 120x40")
    report("baseline", asyncio.run(run(args.apps, 0, args.seconds)))
    report("events", asyncio.run(run(args.apps, args.rate, args.seconds)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
