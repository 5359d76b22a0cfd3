"""Gmail and Drive streams against the Google emulator over loopback: full pass, delta from the history id /
page token, tombstones, an expired token, pushes. The stream is driven the way the runner drives it (pages until
``done``, the cursor of each page fed to the next), into a dict standing in for the records store."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from connectors.emulators import EMULATORS
from connectors.factory import build_connector
from connectors.http import HttpTransport
from connectors.streams import CursorExpired, DriveFiles, GmailMessages, LocalChange, Stream, UnsupportedChange
from domain.model import ApiCredential
from domain.values import RetryPolicy
from tests.integration.stream_drain import drain

TOKEN = "ya29.sync-streams-test-token-000000000001"


@pytest.fixture
async def google() -> AsyncIterator[tuple[Any, HttpTransport]]:
    emu = EMULATORS["gmail"](tokens=[TOKEN], seed=2, options={"messages_per_user": 45, "files_per_user": 35})
    await emu.start()
    transport = HttpTransport(user_agent="integd-test")
    try:
        yield emu, transport
    finally:
        await transport.close()
        await emu.stop()


def stream(kind: type[Stream], emu: Any, transport: HttpTransport, page_size: int = 10) -> Stream:
    service, prefix = ("gmail", "/gmail/v1") if kind is GmailMessages else ("google_drive", "/drive/v3")
    connector = build_connector(service, ApiCredential.from_tokens(TOKEN), app_id="int_test",
                                base_url=emu.origin + prefix, transport=transport,
                                retry=RetryPolicy(max_retries=2, base_delay=0.01, max_delay=0.02))
    return kind(connector, "me", page_size=page_size)


async def test_gmail_full_then_history_delta_with_deletions_and_labels(google):
    emu, transport = google
    s = stream(GmailMessages, emu, transport)
    store: dict[str, dict] = {}
    cursor, pages = await drain(s, s.start_cursor(None, full=True, pass_token="p1"), store)
    box = next(iter(emu.mailboxes.values()))
    email = next(iter(emu.mailboxes))
    assert set(store) == {m.id for m in box.messages} and pages == 5 and set(cursor) == {"history"}
    assert store[box.messages[0].id]["subject"] == box.messages[0].subject
    gone, relabelled = box.messages[3].id, box.messages[4].id
    emu.delete_message(email, gone)
    emu.relabel_message(email, relabelled, add=["STARRED"], remove=[])
    cursor, _ = await drain(s, cursor, store)
    assert gone not in store and "STARRED" in store[relabelled]["labelIds"] and len(store) == 44
    quiet, _ = await drain(s, cursor, store)
    assert quiet == cursor, "nothing new: the history id stays"


async def test_gmail_history_too_old_is_cursor_expired(google):
    emu, transport = google
    emu.options.history_retention = 5
    s = stream(GmailMessages, emu, transport)
    store: dict[str, dict] = {}
    cursor, _ = await drain(s, s.start_cursor(None, full=True, pass_token="p1"), store)
    email = next(iter(emu.mailboxes))
    for m in list(emu.mailboxes[email].messages)[:6]:
        emu.delete_message(email, m.id)
    with pytest.raises(CursorExpired, match="too old"):
        await s.pull(cursor)


async def test_gmail_push_sends_and_refuses_edits(google):
    emu, transport = google
    s = stream(GmailMessages, emu, transport)
    sent = await s.push(LocalChange(None, {"to": "ada@example.org", "subject": "Sync hello", "body": "Hi"}))
    assert sent.data["subject"] == "Sync hello" and sent.data["labelIds"] == ["SENT"] and sent.modified > 0
    with pytest.raises(UnsupportedChange):
        await s.push(LocalChange(sent.remote_id, {"subject": "edited"}))


async def test_drive_full_then_changes_with_removals_renames_and_expired_token(google):
    emu, transport = google
    s = stream(DriveFiles, emu, transport, page_size=8)
    store: dict[str, dict] = {}
    cursor, pages = await drain(s, s.start_cursor(None, full=True, pass_token="p1"), store)
    drive = next(iter(emu.drives.values()))
    email = next(iter(emu.drives))
    assert set(store) == set(drive.files) and pages == 5 and set(cursor) == {"token"}
    ids = list(drive.files)
    emu.rename_file(email, ids[1], "renamed.txt")
    emu.remove_file(email, ids[2])
    cursor, _ = await drain(s, cursor, store)
    assert store[ids[1]]["name"] == "renamed.txt" and ids[2] not in store and len(store) == 34
    with pytest.raises(CursorExpired):
        await s.pull({"token": "999999"})


async def test_drive_push_updates_metadata_and_a_delete_trashes(google):
    emu, transport = google
    s = stream(DriveFiles, emu, transport)
    store: dict[str, dict] = {}
    await drain(s, s.start_cursor(None, full=True, pass_token="p1"), store)
    target = next(k for k, v in store.items() if not v["trashed"])
    before = await s.fetch(target)
    pushed = await s.push(LocalChange(target, {"name": "from-integd.pdf"}, base_modified=before.modified))
    assert pushed.data["name"] == "from-integd.pdf" and pushed.modified > before.modified
    trashed = await s.push(LocalChange(target, {}, deleted=True))
    assert trashed.data["trashed"] is True
    assert await s.fetch("no-such-file") is None
    with pytest.raises(UnsupportedChange):
        await s.push(LocalChange(None, {"name": "new"}))
