"""GitLab and Jira issue syncs through a real daemon (RPC over its Unix socket, SQLite in tmp) against their
emulators over loopback: connect with an API token, a full then a delta run, a deletion found by a full refresh,
and a local edit racing a remote one under remote_wins and local_wins."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from connectors.emulators import EMULATORS

GITLAB = "glpat-e2e-sync-token-0000000000001"
JIRA = "ATATT3xFfGF0-e2e-sync-token-00000001"


@pytest.fixture
async def gitlab() -> AsyncIterator[Any]:
    emu = EMULATORS["gitlab"](tokens=[GITLAB], seed=5, options={"issues_per_project": 25})
    await emu.start()
    yield emu
    await emu.stop()


@pytest.fixture
async def jira() -> AsyncIterator[Any]:
    emu = EMULATORS["jira"](tokens=[JIRA], seed=5, options={"issues_per_project": 25})
    await emu.start()
    yield emu
    await emu.stop()


async def run(client: Any, job_id: str, **extra: Any) -> dict:
    job = (await client.call("sync.run", {"job_id": job_id, "wait": True, **extra}))["job"]
    assert job["state"] == "idle", job["last_error"]
    return job


async def job_for(client: Any, service: str, api_key: str, base_url: str, resource: str, **extra: Any) -> dict:
    app = await client.call("apps.connect", {"service": service, "api_key": api_key, "base_url": base_url})
    return await client.call("sync.create", {"app_id": app["id"], "stream": "issues", "resource": resource,
                                             "batch_size": 10, **extra})


async def test_gitlab_full_delta_deletion(client, gitlab):
    project = gitlab.project_of(GITLAB)
    job = await job_for(client, "gitlab", GITLAB, gitlab.base_url, project.path)
    first = await run(client, job["id"])
    assert first["last_counts"]["created"] == 25
    gitlab.clock = lambda: max(i.updated for i in project.issues) + 10
    gitlab.edit_issue(project.id, 4, title="renamed upstream")
    delta = await run(client, job["id"])
    assert delta["last_counts"]["updated"] == 1 and delta["last_counts"]["created"] == 0
    gitlab.delete_issue(project.id, 6)
    full = await run(client, job["id"], full=True)
    assert full["last_counts"]["deleted"] == 1
    gone = await client.call("records.get", {"job_id": job["id"], "remote_id": "6"})
    assert gone["deleted"] is True


@pytest.mark.parametrize("policy, expected", [("remote_wins", "their title"), ("local_wins", "our title")])
async def test_gitlab_local_edit_racing_a_remote_one(client, gitlab, policy, expected):
    project = gitlab.project_of(GITLAB)
    job = await job_for(client, "gitlab", GITLAB, gitlab.base_url, project.path, direction="bidirectional",
                        conflict_resolution=policy)
    await run(client, job["id"])
    gitlab.clock = lambda: max(i.updated for i in project.issues) + 10
    gitlab.edit_issue(project.id, 3, title="their title")
    record = await client.call("records.get", {"job_id": job["id"], "remote_id": "3"})
    await client.call("records.put", {"job_id": job["id"], "remote_id": "3", "base_version": record["version"],
                                      "data": {**record["data"], "title": "our title"}})
    done = await run(client, job["id"])
    assert done["last_counts"]["conflicts"] == 1
    assert gitlab._issue(project, 3).title == expected
    final = await client.call("records.get", {"job_id": job["id"], "remote_id": "3"})
    assert final["data"]["title"] == expected


async def test_jira_full_delta_deletion_and_conflict(client, jira):
    key = f"{jira.account_email(JIRA)}:{JIRA}"
    job = await job_for(client, "jira", key, jira.origin, "DEMO", direction="bidirectional",
                        conflict_resolution="remote_wins")
    first = await run(client, job["id"])
    assert first["last_counts"]["created"] == 25
    demo = sorted((i for i in jira.issues.values() if i.project == "DEMO"), key=lambda i: i.number)
    jira.clock = lambda: max(i.updated for i in demo) + 120
    jira.edit_issue("DEMO-2", summary="edited in Jira")
    delta = await run(client, job["id"])
    assert delta["last_counts"]["updated"] == 1
    jira.delete_issue("DEMO-5")
    full = await run(client, job["id"], full=True)
    assert full["last_counts"]["deleted"] == 1
    target = str(demo[7].id)
    record = await client.call("records.get", {"job_id": job["id"], "remote_id": target})
    jira.clock = lambda: max(i.updated for i in demo) + 600
    jira.edit_issue(demo[7].key, summary="their summary")
    await client.call("records.put", {"job_id": job["id"], "remote_id": target, "base_version": record["version"],
                                      "data": {**record["data"], "summary": "our summary"}})
    done = await run(client, job["id"])
    assert done["last_counts"]["conflicts"] == 1 and jira.issues[demo[7].id].summary == "their summary"
