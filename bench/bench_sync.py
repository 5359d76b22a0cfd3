"""Benchmark of data synchronisation (issue 6): initial sync, delta sync and peak memory.

    .venv/bin/python -m bench.bench_sync [--records 100000] [--memory 10000,50000]

* Initial sync of N GitHub issues (pages of 100, no added latency) through the real daemon (RPC ``sync.run``,
  connector, stream, records store), in records/s, and as a ratio to a plain aiosqlite ``executemany`` of the
  same rows in the same run, into the store's own ``records`` table (migrations 5 + 6, indexes included), in the
  order the sync wrote them: the same 100-row batches each in its own committed transaction (the sync's
  durability) - the ratio the aim is about -, and, for reference, all rows in one transaction and the same
  batches sorted by the table's key (an order no sync sees: SQLite's cheapest case). Each baseline is the best
  of three runs.
* A delta sync of 100 issues edited upstream against the store of N.
* Peak memory (tracemalloc) of an initial sync at two sizes: it should be flat, not grow with N.

The emulator runs in its own process (so its memory and CPU are not the daemon's) and renders every issue once
before the clock starts (it caches each issue's JSON: a provider's own response time is not ours to measure).
The app's rate-limit gate is taken out of the path: GitHub's published 900 requests/min would otherwise be the
whole measurement.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

import aiohttp
import aiosqlite
from pydantic_core import from_json

from connectors.factory import build_connector
from connectors.streams.base import canonical, content_hash
from connectors.streams.github import issue_record
from integd.bootstrap import Daemon
from integd.client import IntegdClient
from integd.config import Config, Paths
from integd.logging import configure_logging
from integd.store.sync_schema import RECORDS_ROWID_SQL, SYNC_MIGRATION_SQL

TOKEN = "ghp_benchToken0000000000000000000000001"


class EmulatorProcess:
    async def start(self) -> str:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "connectors.emulators", "github", "--token", TOKEN, "--seed", "5",
            "--rate-limit", "1000000", "--rate-window", "3600", stdout=asyncio.subprocess.PIPE)
        assert self.proc.stdout
        line = (await asyncio.wait_for(self.proc.stdout.readline(), 20)).decode()
        found = re.search(r"(http://127\.0\.0\.1:\d+)", line)
        if not found:
            raise RuntimeError(f"emulator did not start: {line!r}")
        self.base = found.group(1)
        return self.base

    async def stop(self) -> None:
        self.proc.terminate()
        await self.proc.wait()


async def prepare_repo(http: aiohttp.ClientSession, base: str, issues: int, index: int) -> str:
    """Size the next generated repository and make the emulator generate it before anything is timed."""
    async with http.post(base + "/_emulator/options", json={"issues_per_repo": issues, "issue_interval": 60}) as r:
        r.raise_for_status()
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with http.get(base + "/user/repos", params={"per_page": 100}, headers=headers) as r:
        repos = [x["full_name"] for x in await r.json() if not x["private"]]
    name = repos[index]
    for page in range(1, issues // 100 + 2):      # the emulator renders each issue once and caches its JSON
        async with http.get(f"{base}/repos/{name}/issues", headers=headers, params={
                "per_page": 100, "page": page, "state": "all", "sort": "updated", "direction": "asc"}) as r:
            r.raise_for_status()
    return name


async def unthrottled(daemon: Daemon, app_id: str) -> None:
    """Build this app's connectors without a rate-limit gate (see the module docstring). The connector is
    rebuilt whenever the app's version moves (a health check saves the app), so the builder is replaced, not
    one cached connector."""
    runtimes = daemon.runtimes
    original = runtimes.build

    async def build(app: Any) -> Any:
        if str(app.id) != app_id:
            return await original(app)
        return build_connector(app.service, app.credential, app_id=app_id, base_url=runtimes.base_url(app),
                               transport=daemon.transport, gate=None, retry=runtimes.retry, timeout=60.0,
                               clock=daemon.clock)
    runtimes.build = build                     # type: ignore[method-assign]
    runtimes.invalidate(app_id)


async def sync_once(client: IntegdClient, daemon: Daemon, app_id: str, repo: str) -> tuple[str, float, dict]:
    await unthrottled(daemon, app_id)
    job = await client.call("sync.create", {"app_id": app_id, "stream": "issues", "resource": repo,
                                            "batch_size": 100})
    started = time.perf_counter()
    done = (await client.call("sync.run", {"job_id": job["id"], "wait": True}))["job"]
    elapsed = time.perf_counter() - started
    assert done["state"] == "idle", done["last_error"]
    return job["id"], elapsed, done["last_counts"]


async def baseline(rows: list[tuple[Any, ...]], folder: Path, rounds: int = 3) -> tuple[float, float, float]:
    """A plain aiosqlite executemany of the same rows: in 100-row committed batches, in one transaction, and in
    100-row batches sorted by the table's key (an order a sync never receives rows in: the B-tree only ever
    appends, the cheapest case SQLite has). Each the best of ``rounds`` runs into a fresh file (the fastest
    baseline gives the most modest ratio)."""
    times = []
    by_key = sorted(rows, key=lambda r: (r[0], r[1]))
    for name, batch, ordered in (("batched", 100, rows), ("single", len(rows), rows), ("sorted", 100, by_key)):
        best = float("inf")
        for attempt in range(rounds):
            best = min(best, await _plain_insert(ordered, folder / f"{name}-{attempt}.db", batch))
        times.append(best)
    return times[0], times[1], times[2]


async def _plain_insert(rows: list[tuple[Any, ...]], path: Path, batch: int) -> float:
    async with aiosqlite.connect(path, isolation_level=None) as db:
        await db.execute("PRAGMA journal_mode=WAL")
        await db.execute("PRAGMA synchronous=NORMAL")
        schema = SYNC_MIGRATION_SQL + RECORDS_ROWID_SQL          # the store's records table, indexes included
        await db.executescript(schema.replace("REFERENCES apps(id) ON DELETE CASCADE", "").replace(
            "REFERENCES sync_jobs(id) ON DELETE CASCADE", ""))
        started = time.perf_counter()
        for i in range(0, len(rows), batch):
            await db.execute("BEGIN IMMEDIATE")
            await db.executemany(
                "INSERT INTO records (job_id, remote_id, app_id, stream, data, remote_modified, local_modified, "
                "content_hash, deleted, version, dirty, base_modified) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows[i:i + batch])
            await db.execute("COMMIT")
        return time.perf_counter() - started


async def breakdown(http: aiohttp.ClientSession, base: str, repo: str) -> str:
    """Where a 100-issue page's time goes on our side, each part alone (decode as the connector does, map,
    canonical JSON + hash)."""
    async with http.get(f"{base}/repos/{repo}/issues", headers={"Authorization": f"Bearer {TOKEN}"},
                        params={"per_page": 100, "state": "all", "sort": "updated", "direction": "asc"}) as r:
        text = await r.text()
    rounds = 30
    started = time.perf_counter()
    for _ in range(rounds):
        body = from_json(text)
    decode = (time.perf_counter() - started) / rounds
    started = time.perf_counter()
    for _ in range(rounds):
        records = [issue_record(x) for x in body]
    mapping = (time.perf_counter() - started) / rounds
    started = time.perf_counter()
    for _ in range(rounds):
        [content_hash(canonical(rec.data)) for rec in records]
    hashing = (time.perf_counter() - started) / rounds
    return (f"per 100-issue page ({len(text) // 1024} KB): json decode {decode * 1000:.1f} ms, issue_record "
            f"{mapping * 1000:.1f} ms, canonical JSON + hash {hashing * 1000:.1f} ms")


async def stored_rows(daemon: Daemon, job_id: str) -> list[tuple[Any, ...]]:
    async with daemon.db.read() as conn:
        return list(await conn.execute_fetchall(
            "SELECT job_id, remote_id, app_id, stream, data, remote_modified, local_modified, content_hash, deleted, "
            "version, dirty, base_modified FROM records WHERE job_id = ? ORDER BY rowid", (job_id,)))  # as written


async def edit_upstream(http: aiohttp.ClientSession, base: str, repo: str, count: int) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    for number in range(1, count + 1):
        async with http.patch(f"{base}/repos/{repo}/issues/{number * 7}", json={"title": f"edited {number}"},
                              headers=headers) as r:
            r.raise_for_status()


async def daemon_in(folder: Path) -> Daemon:
    folder.mkdir(parents=True)
    daemon = Daemon(Config(), Paths(state_dir=folder / "state", socket=folder / "d.sock", config_file=None))
    await daemon.start()
    return daemon


async def main(records: int, memory_sizes: list[int]) -> None:
    folder = Path(tempfile.mkdtemp(prefix="integd-bench-", dir="/tmp"))
    emu = EmulatorProcess()
    base = await emu.start()
    try:
        async with aiohttp.ClientSession() as http:
            repo = await prepare_repo(http, base, records, 0)
            daemon = await daemon_in(folder / "speed")
            try:
                async with IntegdClient(str(daemon.paths.socket), timeout=3600.0) as client:
                    app = await client.call("apps.connect", {"service": "github", "api_key": TOKEN, "base_url": base})
                    job_id, elapsed, counts = await sync_once(client, daemon, app["id"], repo)
                    rows = await stored_rows(daemon, job_id)
                    batched, single, by_key = await baseline(rows, folder)
                    rate = records / elapsed
                    print(f"initial sync: {counts['created']:,} records in {elapsed:.2f} s = {rate:,.0f} records/s "
                          f"({counts['pages']} pages)")
                    print(f"plain executemany, 100-row committed batches: {batched:.2f} s = {records / batched:,.0f} "
                          f"rows/s -> ratio {batched / elapsed:.3f}")
                    print(f"plain executemany, one transaction: {single:.2f} s = {records / single:,.0f} rows/s "
                          f"-> ratio {single / elapsed:.3f}")
                    print(f"plain executemany, 100-row batches sorted by key (never a sync's order): {by_key:.2f} s = "
                          f"{records / by_key:,.0f} rows/s -> ratio {by_key / elapsed:.3f}")
                    print(await breakdown(http, base, repo))
                    await edit_upstream(http, base, repo, 100)
                    started = time.perf_counter()
                    delta = (await client.call("sync.run", {"job_id": job_id, "wait": True}))["job"]
                    took = time.perf_counter() - started
                    print(f"delta sync of 100 changes against {records:,}: {took * 1000:.0f} ms "
                          f"(updated {delta['last_counts']['updated']}, pages {delta['last_counts']['pages']})")
            finally:
                await daemon.stop()
            for index, size in enumerate(memory_sizes, start=1):
                repo = await prepare_repo(http, base, size, index)
                daemon = await daemon_in(folder / f"memory-{size}")
                try:
                    async with IntegdClient(str(daemon.paths.socket), timeout=3600.0) as client:
                        app = await client.call("apps.connect", {"service": "github", "api_key": TOKEN,
                                                                 "base_url": base})
                        tracemalloc.start()
                        tracemalloc.reset_peak()
                        before = tracemalloc.get_traced_memory()[0]
                        _, elapsed, counts = await sync_once(client, daemon, app["id"], repo)
                        peak = tracemalloc.get_traced_memory()[1] - before
                        tracemalloc.stop()
                        print(f"peak memory of an initial sync of {counts['created']:,} records: "
                              f"{peak / 1e6:.1f} MB above the start (traced run: {elapsed:.1f} s)")
                finally:
                    await daemon.stop()
    finally:
        await emu.stop()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--memory", default="10000,50000", help="sizes for the peak-memory runs")
    args = ap.parse_args()
    configure_logging("warning", "json")       # as under journald: JSON lines, and no per-request info lines
    asyncio.run(main(args.records, [int(x) for x in args.memory.split(",") if x]))
