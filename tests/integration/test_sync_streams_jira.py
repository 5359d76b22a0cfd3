"""Jira issues stream against the Jira emulator over loopback: a full pass by nextPageToken, a delta from JQL
``updated >=`` written in the user's time zone (Tokyo here, so a UTC cursor would miss or repeat hours), an edit
in the same minute as the cursor, a deletion found by a full refresh, an expired page token, pushes (create with
ADF, update, refused validation, no delete) and the runner's conflict check through fetch with a stale base."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from connectors.emulators import EMULATORS
from connectors.factory import build_connector
from connectors.http import HttpTransport
from connectors.streams import STREAMS, CursorExpired, LocalChange, PushRefused, Stream, UnsupportedChange
from connectors.streams.jira import JiraIssues, adf, adf_text
from domain.model import ApiCredential, ApiKey
from domain.values import RetryPolicy
from tests.integration.stream_drain import drain

TOKEN = "ATATT3xFfGF0-sync-streams-0000000001"


@pytest.fixture
async def jira() -> AsyncIterator[tuple[Any, Stream]]:
    emu = EMULATORS["jira"](tokens=[TOKEN], seed=4)
    emu.accounts[TOKEN].zone = "Asia/Tokyo"
    await emu.start()
    transport = HttpTransport(user_agent="integd-test")
    key = f"{emu.account_email(TOKEN)}:{TOKEN}"
    connector = build_connector("jira", ApiCredential.from_api_key(ApiKey(key)), app_id="int_test",
                                base_url=emu.base_url, transport=transport,
                                retry=RetryPolicy(max_retries=2, base_delay=0.01, max_delay=0.02))
    try:
        yield emu, STREAMS[("jira", "issues")](connector, "DEMO", page_size=8)
    finally:
        await transport.close()
        await emu.stop()


def test_resource_is_a_project_key_and_text_round_trips_through_adf():
    assert JiraIssues.check_resource("OPS") == "OPS"
    with pytest.raises(ValueError, match="project key"):
        JiraIssues.check_resource("ops; drop")
    assert adf_text(adf("one\n\nthree")) == "one\n\nthree"


async def test_full_pass_then_delta_in_the_users_time_zone(jira):
    emu, s = jira
    store: dict[str, dict] = {}
    cursor, pages = await drain(s, s.start_cursor(None, full=True, pass_token="p1"), store)
    demo = [i for i in emu.issues.values() if i.project == "DEMO"]
    assert set(store) == {str(i.id) for i in demo} and pages == 4
    newest = max(demo, key=lambda i: i.updated)
    assert cursor["newest"] == store[str(newest.id)]["updated"]
    # the cursor names the newest minute in Tokyo time (UTC+9), as JQL reads dates in the user's zone
    from datetime import datetime
    from zoneinfo import ZoneInfo
    assert cursor["since"] == datetime.fromtimestamp(newest.updated, ZoneInfo("Asia/Tokyo")).strftime("%Y-%m-%d %H:%M")
    emu.clock = lambda: newest.updated + 1                # an edit in the very minute of the cursor
    other = next(i for i in demo if i.id != newest.id)
    emu.edit_issue(other.key, summary="edited upstream")
    delta: dict[str, dict] = {}
    cursor, _ = await drain(s, cursor, delta)
    assert delta[str(other.id)]["summary"] == "edited upstream" and str(newest.id) in delta and len(delta) == 2


async def test_a_deletion_is_found_by_a_full_refresh_and_fetch_says_gone(jira):
    emu, s = jira
    store: dict[str, dict] = {}
    cursor, _ = await drain(s, s.start_cursor(None, full=True, pass_token="p1"), store)
    emu.delete_issue("DEMO-3")
    gone = next(k for k, v in store.items() if v["key"] == "DEMO-3")
    seen: dict[str, dict] = {}
    await drain(s, s.start_cursor(cursor, full=True, pass_token="p2"), seen)
    assert set(store) - set(seen) == {gone} and await s.fetch(gone) is None


async def test_an_expired_page_token_is_cursor_expired(jira):
    emu, s = jira
    page = await s.pull(s.start_cursor(None, full=True, pass_token="p1"))
    emu.clock = lambda: 4_000_000_000.0                   # eight days and more later
    with pytest.raises(CursorExpired, match="invalid or expired"):
        await s.pull(page.cursor)


async def test_push_creates_and_updates_and_refuses_what_jira_refuses(jira):
    emu, s = jira
    created = await s.push(LocalChange(None, {"summary": "From integd", "description": "Line one\nLine two",
                                              "labels": ["sync"]}))
    assert created.data["key"] == "DEMO-31" and created.data["description"] == "Line one\nLine two"
    assert emu.issues[int(created.remote_id)].description["type"] == "doc"
    updated = await s.push(LocalChange(created.remote_id, {"summary": "Renamed"}, base_modified=created.modified))
    assert updated.data["summary"] == "Renamed" and updated.modified > created.modified
    with pytest.raises(PushRefused, match="summary: You must specify a summary"):
        await s.push(LocalChange(None, {"description": "no summary"}))
    with pytest.raises(PushRefused, match="less than 255"):
        await s.push(LocalChange(created.remote_id, {"summary": "x" * 300}))
    with pytest.raises(UnsupportedChange):
        await s.push(LocalChange(created.remote_id, {}, deleted=True))


async def test_a_stale_base_is_seen_by_the_conflict_check_before_the_push(jira):
    emu, s = jira
    issue = next(i for i in emu.issues.values() if i.project == "DEMO")
    base = await s.fetch(str(issue.id))
    assert base is not None
    emu.clock = lambda: base.modified + 120
    emu.edit_issue(issue.key, summary="their edit")
    local = LocalChange(str(issue.id), {"summary": "our edit"}, base_modified=base.modified)
    current = await s.fetch(str(issue.id))               # what integd.sync_runner does for a can_fetch stream
    assert s.can_fetch and current is not None and current.modified > local.base_modified
    assert current.data["summary"] == "their edit"
    pushed = await s.push(local)                         # keep_local / latest_wins: ours goes up after the check
    assert pushed.data["summary"] == "our edit" and pushed.modified > current.modified
