"""Salesforce accounts and contacts streams against the emulator over loopback: a full pass through
``nextRecordsUrl``, a delta on SystemModstamp ending in getDeleted tombstones, the too-old window as
CursorExpired, and pushes (create, update with the LastModifiedDate conflict check, delete). The stream is
driven as the runner drives it, into a dict standing in for the records store."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from connectors.emulators import EMULATORS
from connectors.factory import build_connector
from connectors.http import HttpTransport
from connectors.streams import STREAMS, CursorExpired, LocalChange, PushRefused, Stream
from connectors.streams.salesforce import SalesforceAccounts, SalesforceContacts
from domain.model import ApiCredential
from domain.values import RetryPolicy
from tests.integration.stream_drain import drain

TOKEN = "00D5g000004Xyz!AR.sync-streams-test-token"


@pytest.fixture
async def sf() -> AsyncIterator[tuple[Any, HttpTransport]]:
    emu = EMULATORS["salesforce"](tokens=[TOKEN], seed=3, options={"accounts": 430, "contacts": 25})
    await emu.start()
    transport = HttpTransport(user_agent="integd-test")
    try:
        yield emu, transport
    finally:
        await transport.close()
        await emu.stop()


def stream(kind: type[Stream], emu: Any, transport: HttpTransport, page_size: int = 200) -> Stream:
    connector = build_connector("salesforce", ApiCredential.from_tokens(TOKEN, instance_url=emu.origin),
                                app_id="int_test", base_url="https://login.salesforce.com", transport=transport,
                                retry=RetryPolicy(max_retries=2, base_delay=0.01, max_delay=0.02))
    return kind(connector, "default", page_size=page_size)


def test_streams_are_registered_and_resources_checked(sf):
    assert STREAMS[("salesforce", "accounts")] is SalesforceAccounts
    assert STREAMS[("salesforce", "contacts")] is SalesforceContacts
    with pytest.raises(ValueError, match="names the org"):
        SalesforceAccounts.check_resource("bad name; DROP")


async def test_full_pass_then_delta_with_an_edit_a_new_record_and_a_deletion(sf):
    emu, transport = sf
    s = stream(SalesforceAccounts, emu, transport)
    store: dict[str, dict] = {}
    cursor, pages = await drain(s, s.start_cursor(None, full=True, pass_token="p1"), store)
    accounts = emu.org.records["Account"]
    assert set(store) == set(accounts) and pages == 3 and set(cursor) == {"since", "deleted_since"}
    ids = sorted(accounts)
    emu.update_record("Account", ids[0], Name="Renamed Upstream")
    emu.delete_record("Account", ids[1])
    created = await s.push(LocalChange(None, {"Name": "Made Elsewhere", "Industry": "Energy"}))
    cursor, pages = await drain(s, cursor, store)
    assert pages == 1 and ids[1] not in store and store[ids[0]]["Name"] == "Renamed Upstream"
    assert store[created.remote_id]["Name"] == "Made Elsewhere" and len(store) == 430
    before = emu.hits("/services/data/v59.0/query")
    quiet, _ = await drain(s, cursor, store)
    assert emu.hits("/services/data/v59.0/query") == before + 1 and len(store) == 430
    assert quiet["since"] == cursor["since"]


async def test_a_delta_start_past_the_replication_window_is_cursor_expired(sf):
    emu, transport = sf
    s = stream(SalesforceContacts, emu, transport)
    store: dict[str, dict] = {}
    cursor, _ = await drain(s, s.start_cursor(None, full=True, pass_token="p1"), store)
    assert set(store) == set(emu.org.records["Contact"])
    stale = {**cursor, "deleted_since": "2020-01-01T00:00:00Z"}
    with pytest.raises(CursorExpired, match="too old"):
        await drain(s, stale, store)


async def test_a_purged_delete_log_is_cursor_expired(sf):
    emu, transport = sf
    s = stream(SalesforceContacts, emu, transport)
    store: dict[str, dict] = {}
    cursor, _ = await drain(s, s.start_cursor(None, full=True, pass_token="p1"), store)
    emu.options.deleted_retention_days = 1
    two_days_ago = datetime.now(timezone.utc) - timedelta(days=2)
    old = {**cursor, "deleted_since": two_days_ago.strftime("%Y-%m-%dT%H:%M:%SZ")}
    with pytest.raises(CursorExpired, match="delete log starts"):
        await drain(s, old, store)
    emu.options.deleted_retention_days = 15
    emu.clock = lambda: time.time() + 120                # the recycle bin is emptied two minutes later
    emu.purge_deleted("Contact")
    emu.clock = time.time
    with pytest.raises(CursorExpired, match="delete log starts"):
        await drain(s, cursor, store)


async def test_update_with_a_stale_base_is_a_conflict_and_a_fresh_one_goes_through(sf):
    emu, transport = sf
    s = stream(SalesforceContacts, emu, transport)
    target = sorted(emu.org.records["Contact"])[0]
    base = await s.fetch(target)
    assert base is not None and s.can_fetch and s.can_update
    emu.clock = lambda: base.modified + 3600          # someone edits it an hour later
    emu.update_record("Contact", target, Title="Changed Upstream")
    emu.clock = time.time
    with pytest.raises(PushRefused, match="conflict"):
        await s.push(LocalChange(target, {"Title": "Ours"}, base_modified=base.modified))
    assert emu.org.records["Contact"][target].fields["Title"] == "Changed Upstream"
    current = await s.fetch(target)
    pushed = await s.push(LocalChange(target, {"Title": "Ours"}, base_modified=current.modified))
    assert pushed.data["Title"] == "Ours" and pushed.modified >= current.modified


async def test_create_needs_its_required_field_and_delete_becomes_a_tombstone(sf):
    emu, transport = sf
    s = stream(SalesforceContacts, emu, transport)
    with pytest.raises(PushRefused, match="needs LastName"):
        await s.push(LocalChange(None, {"FirstName": "Ada"}))
    made = await s.push(LocalChange(None, {"FirstName": "Ada", "LastName": "Lovelace", "Email": "ada@example.org"}))
    assert made.data["Email"] == "ada@example.org" and made.remote_id.startswith("003")
    gone = await s.push(LocalChange(made.remote_id, {}, deleted=True))
    assert gone.deleted and await s.fetch(made.remote_id) is None
    again = await s.push(LocalChange(made.remote_id, {}, deleted=True))     # already gone: still deleted
    assert again.deleted
