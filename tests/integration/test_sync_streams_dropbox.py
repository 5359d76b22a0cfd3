"""Dropbox files stream against the Dropbox emulator over loopback: a full pass with list_folder/continue, a
delta from the final cursor with a new file, an edit and a deletion (tombstone), a reset cursor, the longpoll,
and pushes where Dropbox's own rev check refuses a stale write. The stream is driven the way the runner drives
it (pages until ``done``, each page's cursor fed to the next) into a dict standing in for the records store."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from connectors.emulators import EMULATORS
from connectors.factory import build_connector
from connectors.http import HttpTransport
from connectors.streams import STREAMS, CursorExpired, LocalChange, PushRefused
from connectors.streams.dropbox import DropboxFiles
from domain.model import ApiCredential
from domain.values import RetryPolicy
from tests.integration.stream_drain import drain

TOKEN = "sl.u.sync-streams-test-token-00000000001"


@pytest.fixture
async def dropbox() -> AsyncIterator[tuple[Any, DropboxFiles]]:
    emu = EMULATORS["dropbox"](tokens=[TOKEN], seed=3, options={"files_per_user": 30})
    await emu.start()
    transport = HttpTransport(user_agent="integd-test")
    connector = build_connector("dropbox", ApiCredential.from_tokens(TOKEN), app_id="int_test",
                                base_url=emu.base_url, transport=transport,
                                retry=RetryPolicy(max_retries=2, base_delay=0.01, max_delay=0.02))
    try:
        yield emu, STREAMS[("dropbox", "files")](connector, "/", page_size=7)
    finally:
        await transport.close()
        await emu.stop()


def test_resources_are_folder_paths():
    assert DropboxFiles.check_resource("") == "" and DropboxFiles.check_resource("/Notes") == "/Notes"
    assert DropboxFiles.check_resource("/") == "/"
    for bad in ("Notes", "/Notes/", "/a\nb"):
        with pytest.raises(ValueError, match="folder path"):
            DropboxFiles.check_resource(bad)


async def test_full_pass_then_delta_with_new_edited_and_deleted_files(dropbox):
    emu, s = dropbox
    store: dict[str, dict] = {}
    start = s.start_cursor(None, full=True, pass_token="p1")
    first = await s.pull(start)
    assert first.cursor["full"] is True and first.cursor["pass"] == "p1" and not first.done
    cursor, pages = await drain(s, start, store)
    assert pages == 5 and len(store) == 30 and set(cursor) == {"cursor"}           # 34 entries, 4 folders
    assert all(k.startswith("/") and v["rev"] and v["content_hash"] for k, v in store.items())
    fs = emu.fs_for_token(TOKEN)
    victim, edited = sorted(store)[0], sorted(store)[1]
    emu.delete_path(TOKEN, victim)
    emu.put_file(TOKEN, store[edited]["path_display"], b"changed by another client")
    emu.put_file(TOKEN, "/Inbox/fresh.txt", b"new")
    old_rev = store[edited]["rev"]
    cursor, pages = await drain(s, cursor, store)
    assert pages == 1 and victim not in store and "/inbox/fresh.txt" in store
    assert store[edited]["rev"] != old_rev and store[edited]["size"] == len(b"changed by another client")
    assert len(store) == 30 and fs.seq > 0
    quiet, _ = await drain(s, cursor, store)
    assert len(store) == 30 and quiet != {} and (await s.pull(quiet)).records == []


async def test_a_reset_cursor_is_cursor_expired(dropbox):
    emu, s = dropbox
    cursor, _ = await drain(s, s.start_cursor(None, full=True, pass_token="p1"), {})
    emu.options.cursor_retention = 3
    for i in range(5):
        emu.put_file(TOKEN, f"/Churn/{i}.txt", b"x")
    with pytest.raises(CursorExpired, match="reset"):
        await s.pull(cursor)


async def test_the_longpoll_says_when_a_delta_is_worth_running(dropbox):
    emu, s = dropbox
    emu.options.longpoll_max_wait = 5.0
    emu.options.longpoll_backoff = 60
    cursor, _ = await drain(s, s.start_cursor(None, full=True, pass_token="p1"), {})
    waiting = asyncio.create_task(s.wait_for_changes(cursor))
    await emu.longpoll_waiting.wait()
    emu.put_file(TOKEN, "/Notes/ping.txt", b"!")
    assert await waiting == (True, 60)


async def test_push_creates_updates_with_the_base_rev_and_a_lost_race_is_refused(dropbox):
    emu, s = dropbox
    created = await s.push(LocalChange(None, {"path_display": "/Notes/from-integd.md", "content": "# v1"}))
    assert created.remote_id == "/notes/from-integd.md" and created.data["size"] == 4 and created.modified > 0
    fetched = await s.fetch(created.remote_id)
    assert fetched is not None and fetched.data["rev"] == created.data["rev"]
    updated = await s.push(LocalChange(created.remote_id, {**created.data, "content": "# v2"},
                                       base_modified=created.modified))
    assert updated.data["rev"] != created.data["rev"] and updated.data["size"] == 4
    # someone else writes in the same second, so the file looks no newer than our base: only the rev tells
    emu.fs_for_token(TOKEN).entries["/notes/from-integd.md"].content = b"# raced"
    emu.fs_for_token(TOKEN).entries["/notes/from-integd.md"].rev = "0000000ffraced"
    with pytest.raises(PushRefused, match="409 path/conflict/file"):
        await s.push(LocalChange(created.remote_id, {**updated.data, "content": "# v3 lost the race"},
                                 base_modified=updated.modified))
    assert emu.fs_for_token(TOKEN).entries["/notes/from-integd.md"].content == b"# raced"
    with pytest.raises(PushRefused, match="409"):
        await s.push(LocalChange(created.remote_id, {"rev": updated.data["rev"]}, base_modified=updated.modified,
                                 deleted=True))
    current = await s.fetch(created.remote_id)
    gone = await s.push(LocalChange(created.remote_id, {"rev": current.data["rev"]}, deleted=True))
    assert gone.deleted and await s.fetch(created.remote_id) is None


async def test_a_conflict_the_runner_resolved_for_the_local_side_overwrites_the_version_it_saw(dropbox):
    emu, s = dropbox
    created = await s.push(LocalChange(None, {"path_display": "/Notes/mine.md", "content": "v1"}))
    emu.fs_for_token(TOKEN).put("/Notes/mine.md", b"theirs", now=created.modified + 60)   # newer upstream
    kept = await s.push(LocalChange(created.remote_id, {**created.data, "content": "ours"},
                                    base_modified=created.modified))
    assert emu.fs_for_token(TOKEN).entries["/notes/mine.md"].content == b"ours" and kept.data["size"] == 4


async def test_bad_pushes_are_refused_with_the_reason(dropbox):
    _, s = dropbox
    with pytest.raises(PushRefused, match="path under"):
        await s.push(LocalChange(None, {"content": "no path"}))
    with pytest.raises(PushRefused, match="rev it was based on"):
        await s.push(LocalChange("/notes/x.txt", {"content": "no rev"}))
    with pytest.raises(PushRefused, match="content"):
        await s.push(LocalChange(None, {"path_display": "/x.txt"}))
    with pytest.raises(PushRefused, match="add|409"):
        existing = next(iter((await s.pull(s.start_cursor(None, full=True, pass_token="p"))).records))
        await s.push(LocalChange(None, {"path_display": existing.data["path_display"], "content": "clash"}))
