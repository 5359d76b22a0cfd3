"""integctl sync / records as a user runs them: real processes against a real daemon and the GitHub emulator."""

from __future__ import annotations

import json

from integd.ctl_sync import render_changes, render_conflicts, render_jobs
from tests.conftest import connect
from tests.e2e.test_integctl import ctl
from tests.e2e.test_sync import github_repo


async def test_create_run_records_and_errors_through_integctl(daemon, client, emulators):
    app = await connect(client, emulators, "github")
    owner, name = github_repo(emulators["github"])
    code, out, err = await ctl(daemon, "--json", "sync", "create", app["id"], "issues", f"{owner}/{name}",
                               "--direction", "bidirectional", "--every", "30", "--batch", "50")
    assert code == 0, err
    job = json.loads(out)
    assert job["frequency"] == {"kind": "interval", "minutes": 30, "cron": None} and job["batch_size"] == 50
    code, out, err = await ctl(daemon, "sync", "run", job["id"], "--wait")
    assert code == 0 and out.startswith("started: " + job["id"]) and "created 57" in out, err
    code, out, _ = await ctl(daemon, "sync", "list")
    assert job["id"] in out and "idle" in out
    code, out, _ = await ctl(daemon, "records", "get", job["id"], "9")
    assert code == 0 and '"number": 9' in out and "in_step" in out
    code, out, _ = await ctl(daemon, "records", "put", job["id"], "9", "--data", json.dumps({"title": "via ctl"}))
    assert code == 0 and "to_push" in out
    code, out, _ = await ctl(daemon, "--json", "records", "changes", "--job", job["id"], "--after", "57")
    assert code == 0 and json.loads(out)["changes"][0]["origin"] == "local"
    code, _, err = await ctl(daemon, "records", "put", job["id"], "9", "--data", "{}", "--base-version", "1")
    assert code == 1 and "version_conflict" not in err and "(code -32025)" in err and "current_version" in err
    code, _, err = await ctl(daemon, "sync", "create", app["id"], "issues", "bad repo")
    assert code == 1 and "owner/repo" in err
    code, out, _ = await ctl(daemon, "sync", "conflicts", job["id"])
    assert code == 0 and out.strip() == "no conflicts"
    code, out, _ = await ctl(daemon, "sync", "delete", job["id"])
    assert code == 0 and out.strip() == f"{job['id']} deleted"


def test_renderers_for_empty_results():
    assert render_jobs([]) == "no sync jobs"
    assert render_conflicts([]) == "no conflicts"
    assert render_changes({"changes": [], "last_seq": 7}) == "last_seq 7"
