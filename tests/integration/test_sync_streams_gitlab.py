"""GitLab issues stream against the GitLab emulator over loopback: a full keyset pass, a delta from updated_after,
an edit during a walk, a deletion found by a full refresh, an expired page cursor, pushes (create, update, close)
and the runner's conflict check through fetch with a stale base. The stream is driven as the runner drives it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from connectors.emulators import EMULATORS
from connectors.factory import build_connector
from connectors.http import HttpTransport
from connectors.streams import STREAMS, CursorExpired, LocalChange, PushRefused, Stream
from connectors.streams.gitlab import GitLabIssues
from domain.model import ApiCredential, ApiKey
from domain.values import RetryPolicy
from tests.integration.stream_drain import drain

PAT = "glpat-sync-streams-token-000000001"


@pytest.fixture
async def gitlab() -> AsyncIterator[tuple[Any, Stream]]:
    emu = EMULATORS["gitlab"](tokens=[PAT], seed=3)
    await emu.start()
    transport = HttpTransport(user_agent="integd-test")
    connector = build_connector("gitlab", ApiCredential.from_api_key(ApiKey(PAT)), app_id="int_test",
                                base_url=emu.base_url, transport=transport,
                                retry=RetryPolicy(max_retries=2, base_delay=0.01, max_delay=0.02))
    try:
        yield emu, STREAMS[("gitlab", "issues")](connector, emu.project_of(PAT).path, page_size=10)
    finally:
        await transport.close()
        await emu.stop()


def test_resource_must_name_a_project():
    assert GitLabIssues.check_resource("1234") == "1234"
    with pytest.raises(ValueError, match="namespace/project"):
        GitLabIssues.check_resource("no spaces/allowed here")


async def test_full_pass_then_delta_picks_up_edits_and_new_issues(gitlab):
    emu, s = gitlab
    project = emu.project_of(PAT)
    store: dict[str, dict] = {}
    cursor, pages = await drain(s, s.start_cursor(None, full=True, pass_token="p1"), store)
    assert len(store) == 42 and pages == 5 and cursor["next"] is None
    newest = max(project.issues, key=lambda i: i.updated)
    assert cursor["updated_after"] == store[str(newest.iid)]["updated_at"]
    emu.clock = lambda: newest.updated + 100          # the world moves on past the newest issue
    emu.edit_issue(project.id, 7, title="edited upstream")
    delta_store: dict[str, dict] = {}
    cursor, pages = await drain(s, cursor, delta_store)
    assert set(delta_store) == {"7", str(newest.iid)} and delta_store["7"]["title"] == "edited upstream"
    quiet: dict[str, dict] = {}
    again, _ = await drain(s, cursor, quiet)
    assert set(quiet) == {"7"} and again["updated_after"] == cursor["updated_after"]


async def test_an_issue_edited_mid_walk_is_met_again_and_nothing_is_skipped(gitlab):
    emu, s = gitlab
    project = emu.project_of(PAT)
    store: dict[str, dict] = {}
    page = await s.pull(s.start_cursor(None, full=True, pass_token="p1"))
    for r in page.records:
        store[r.remote_id] = r.data
    emu.clock = lambda: max(i.updated for i in project.issues) + 50
    emu.edit_issue(project.id, int(page.records[0].remote_id), title="moved to the end")
    cursor, _ = await drain(s, page.cursor, store)
    assert len(store) == 42 and store[page.records[0].remote_id]["title"] == "moved to the end"


async def test_a_deletion_is_invisible_to_the_delta_and_found_by_a_full_refresh(gitlab):
    emu, s = gitlab
    project = emu.project_of(PAT)
    store: dict[str, dict] = {}
    cursor, _ = await drain(s, s.start_cursor(None, full=True, pass_token="p1"), store)
    emu.delete_issue(project.id, 5)
    seen: dict[str, dict] = {}
    await drain(s, s.start_cursor(cursor, full=True, pass_token="p2"), seen)
    assert set(store) - set(seen) == {"5"} and len(seen) == 41      # the runner sweeps what the pass missed
    assert await s.fetch("5") is None


async def test_a_refused_page_cursor_is_cursor_expired(gitlab):
    _, s = gitlab
    with pytest.raises(CursorExpired, match="page cursor"):
        await s.pull({"next": {"pagination": "keyset", "order_by": "updated_at", "sort": "asc",
                               "per_page": "10", "cursor": "bm90LWEtY3Vyc29y"}})


async def test_push_creates_updates_and_closes(gitlab):
    emu, s = gitlab
    created = await s.push(LocalChange(None, {"title": "From integd", "description": "Body", "labels": ["ui"]}))
    assert created.remote_id == "43" and created.data["labels"] == ["ui"] and created.data["state"] == "opened"
    updated = await s.push(LocalChange("43", {"title": "Renamed", "state": "opened"},
                                       base_modified=created.modified))
    assert updated.data["title"] == "Renamed" and updated.modified >= created.modified
    closed = await s.push(LocalChange("43", {}, deleted=True))
    assert closed.data["state"] == "closed"
    with pytest.raises(PushRefused, match="needs a title"):
        await s.push(LocalChange(None, {"description": "no title"}))
    with pytest.raises(PushRefused, match="400 title is too long"):
        await s.push(LocalChange("43", {"title": "x" * 300}))


async def test_a_stale_base_is_seen_by_the_conflict_check_before_the_push(gitlab):
    emu, s = gitlab
    project = emu.project_of(PAT)
    base = await s.fetch("9")
    assert base is not None
    emu.clock = lambda: base.modified + 60
    emu.edit_issue(project.id, 9, title="their edit")
    local = LocalChange("9", {"title": "our edit"}, base_modified=base.modified)
    current = await s.fetch("9")                     # what integd.sync_runner does for a can_fetch stream
    assert s.can_fetch and current is not None and current.modified > local.base_modified
    assert current.data["title"] == "their edit"
    pushed = await s.push(local)                     # latest_wins/keep_local: ours goes up after the check
    assert pushed.data["title"] == "our edit" and pushed.modified > current.modified


async def test_an_instance_without_keyset_issues_is_walked_by_its_offset_links(gitlab):
    emu, s = gitlab
    emu.options.keyset_issues = False
    store: dict[str, dict] = {}
    cursor, pages = await drain(s, s.start_cursor(None, full=True, pass_token="p1"), store)
    assert len(store) == 42 and pages == 5 and cursor["next"] is None
