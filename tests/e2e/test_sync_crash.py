"""The issue's proof (at suite size unless INTEGD_PROOF_ISSUES says otherwise): kill -9 in the middle of an initial sync with 10% faults, then a restart.

The store must end holding exactly the emulator's issues (none lost, none twice) and the run must resume from
its committed cursor instead of starting over. Issues are edited while the sync pages (changes_per_list).
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import signal
import sqlite3
from pathlib import Path

from connectors.emulators import EMULATORS
from connectors.emulators.github import iso
from integd.client import IntegdClient
from tests.conftest import TOKENS, connect
from tests.e2e.test_process import DaemonProcess, wait_until

# The issue asks for 20,000; the suite runs 2,000 to stay fast (the mechanism does not depend on volume). The
# full size: INTEGD_PROOF_ISSUES=20000 .venv/bin/pytest tests/e2e/test_sync_crash.py
ISSUES = int(os.environ.get("INTEGD_PROOF_ISSUES", "2000"))


def store_state(db_path: Path, job_id: str) -> tuple[dict[str, dict], dict[str, int], dict | None]:
    db = sqlite3.connect(db_path)
    try:
        records = {rid: {"data": json.loads(data), "deleted": deleted} for rid, data, deleted in db.execute(
            "SELECT remote_id, data, deleted FROM records WHERE job_id = ?", (job_id,))}
        created = dict(db.execute("SELECT remote_id, COUNT(*) FROM record_changes WHERE job_id = ? AND op = "
                                  "'created' GROUP BY remote_id", (job_id,)).fetchall())
        cursor = db.execute("SELECT cursor FROM sync_jobs WHERE id = ?", (job_id,)).fetchone()[0]
    finally:
        db.close()
    return records, created, json.loads(cursor) if cursor else None


async def drain(proc: DaemonProcess) -> None:
    """Keep reading the daemon's log so a full pipe never blocks it."""
    assert proc.proc and proc.proc.stdout
    while await proc.proc.stdout.readline():
        pass


async def test_kill_9_mid_sync_then_restart_holds_exactly_the_emulators_issues(short_dir):
    emu = EMULATORS["github"](tokens=[TOKENS["github"]], seed=7,
                              options={"repos_per_user": 1, "issues_per_repo": ISSUES, "issue_interval": 60,
                                       "changes_per_list": 1})
    await emu.start()
    state, sock = short_dir / "state", short_dir / "d.sock"
    proc = DaemonProcess(state, sock)
    await proc.start()
    drainer = asyncio.create_task(drain(proc))
    try:
        async with IntegdClient(str(sock)) as c:
            app = await connect(c, {"github": emu}, "github")
            repo = next(iter(emu.repos.values()))
            job = await c.call("sync.create", {"app_id": app["id"], "stream": "issues",
                                               "resource": repo.full_name})
            emu.faults.error_rate, emu.faults.latency = 0.1, 0.03
            await c.call("sync.run", {"job_id": job["id"]})
            await wait_until(lambda: emu.hits(f"/repos/{repo.full_name}/issues") >= 8, timeout=30)
            proc.proc.kill()
            await proc.proc.wait()
        drainer.cancel()
        records, created, cursor = store_state(state / "integd.db", job["id"])
        assert 0 < len(records) < ISSUES and cursor and cursor.get("since"), "killed in the middle of the sync"
        served_before, at_kill = len(emu.request_log), len(records)

        again = DaemonProcess(state, sock)
        await again.start()                      # finds the job RUNNING, puts it back to IDLE and resumes it
        drainer = asyncio.create_task(drain(again))
        try:
            async with IntegdClient(str(sock), timeout=max(30.0, ISSUES / 20)) as c:   # a long run at 20,000
                for _ in range(3):               # a page that failed four times fails the run: run it again
                    done = (await c.call("sync.run", {"job_id": job["id"], "wait": True}))["job"]
                    if done["state"] == "idle" and done["runs"] >= 2:
                        break
                assert done["state"] == "idle", done["last_error"]
        finally:
            again.proc.send_signal(signal.SIGTERM)
            await asyncio.wait_for(again.proc.wait(), 20)
            drainer.cancel()
    finally:
        await emu.stop()

    issues = {str(i.number): i for i in repo.issues}
    records, created, cursor = store_state(state / "integd.db", job["id"])
    assert set(records) == set(issues) and len(records) == ISSUES, "none lost"
    assert all(n == 1 for n in created.values()) and len(created) == ISSUES, "none twice"
    assert all(records[k]["data"]["title"] == issues[k].title and not records[k]["deleted"] for k in issues)
    assert cursor["since"] == iso(max(i.updated for i in issues.values())), "the cursor moved on"
    resumed = [e for e in emu.request_log[served_before:] if e.path.endswith("/issues") and e.status == 200]
    assert len(resumed) <= math.ceil((ISSUES - at_kill) / 100) + 6, "resumed from the cursor, not from zero"
