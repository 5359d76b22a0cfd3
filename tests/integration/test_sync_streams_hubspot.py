"""HubSpot contacts stream against the emulator over loopback: a full pass through the list API, a delta through
the search API ending in archived-contact tombstones, the 10,000-result search cap handled by re-anchoring (both
ahead of the cap and on the 400 past it), and pushes (create, update with a conflict check, delete). Driven as
the runner drives it, into a dict standing in for the records store."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from connectors.emulators import EMULATORS
from connectors.factory import build_connector
from connectors.http import HttpTransport
from connectors.streams import STREAMS, CursorExpired, LocalChange, PushRefused
from connectors.streams.hubspot import HubSpotContacts
from domain.model import ApiCredential
from domain.values import ApiKey, RetryPolicy
from tests.integration.stream_drain import drain

TOKEN = "pat-na1-sync-streams-test-token-000001"


@pytest.fixture
async def hub() -> AsyncIterator[tuple[Any, HttpTransport]]:
    emu = EMULATORS["hubspot"](tokens=[TOKEN], seed=4, options={"contacts": 120, "search_per_second": 1000})
    await emu.start()
    transport = HttpTransport(user_agent="integd-test")
    try:
        yield emu, transport
    finally:
        await transport.close()
        await emu.stop()


def stream(emu: Any, transport: HttpTransport, page_size: int = 25) -> HubSpotContacts:
    connector = build_connector("hubspot", ApiCredential.from_api_key(ApiKey(TOKEN)), app_id="int_test",
                                base_url=emu.base_url, transport=transport,
                                retry=RetryPolicy(max_retries=2, base_delay=0.01, max_delay=0.02))
    return HubSpotContacts(connector, "default", page_size=page_size)


def live(emu: Any) -> set[str]:
    return {c.id for c in emu.contacts.values() if c.archived_at is None}


async def test_full_pass_then_search_delta_with_an_edit_and_an_archived_contact(hub):
    emu, transport = hub
    assert STREAMS[("hubspot", "contacts")] is HubSpotContacts
    s = stream(emu, transport)
    store: dict[str, dict] = {}
    cursor, pages = await drain(s, s.start_cursor(None, full=True, pass_token="p1"), store)
    assert set(store) == live(emu) and pages == 5 and set(cursor) == {"since", "archived_since"}
    ids = sorted(live(emu), key=int)
    emu.update_contact(ids[0], firstname="Edited")
    emu.archive_contact(ids[1])
    made = await s.push(LocalChange(None, {"email": "new.person@example.org", "firstname": "New"}))
    cursor, pages = await drain(s, cursor, store)
    assert store[ids[0]]["firstname"] == "Edited" and ids[1] not in store
    assert store[made.remote_id]["email"] == "new.person@example.org" and set(store) == live(emu)
    searches = emu.hits("/crm/v3/objects/contacts/search")
    again, _ = await drain(s, cursor, store)
    assert emu.hits("/crm/v3/objects/contacts/search") == searches + 1 and set(store) == live(emu)
    assert again["since"] == cursor["since"]


async def test_the_search_walks_by_keyset_so_the_cap_is_never_reached(hub):
    emu, transport = hub
    emu.options.search_cap = 30
    s = stream(emu, transport, page_size=10)
    store: dict[str, dict] = {}
    cursor, _ = await drain(s, s.start_cursor(None, full=True, pass_token="p1"), store)
    touched = emu.touch_many(95)                       # a bulk import: 95 contacts, a millisecond apart
    emu.update_contact(touched[-1], lastname="Last-Of-The-Import")
    cursor, pages = await drain(s, cursor, store)
    assert store[touched[-1]]["lastname"] == "Last-Of-The-Import" and set(store) == live(emu)
    assert all(store[i]["lastmodifieddate"] == emu.contacts[i].value("lastmodifieddate") for i in touched)
    assert pages > 10 and all(e.status == 200 for e in emu.request_log)        # never paged into the cap


async def test_one_millisecond_shared_by_a_page_is_walked_by_offset(hub):
    emu, transport = hub
    s = stream(emu, transport, page_size=10)
    store: dict[str, dict] = {}
    cursor, _ = await drain(s, s.start_cursor(None, full=True, pass_token="p1"), store)
    moment = emu.now_ms()
    same = [c.id for c in list(emu.contacts.values())[:25]]
    for contact_id in same:
        emu.contacts[contact_id].updated = moment
        emu.contacts[contact_id].props["jobtitle"] = "Bulk"
    await drain(s, cursor, store)
    assert all(store[i]["jobtitle"] == "Bulk" for i in same)


@pytest.mark.parametrize("believed", [20, 10_000])
async def test_more_than_a_capped_window_at_one_millisecond_is_cursor_expired(hub, believed):
    emu, transport = hub
    emu.options.search_cap = 20
    s = stream(emu, transport, page_size=10)
    s.search_cap = believed                        # 10,000: the lower cap is met as HubSpot's 400
    store: dict[str, dict] = {}
    cursor, _ = await drain(s, s.start_cursor(None, full=True, pass_token="p1"), store)
    moment = emu.now_ms()
    for contact in list(emu.contacts.values())[:25]:
        contact.updated = moment
    with pytest.raises(CursorExpired, match="full resync"):
        await drain(s, cursor, store)


async def test_update_with_a_stale_base_is_a_conflict_and_delete_archives(hub):
    emu, transport = hub
    s = stream(emu, transport)
    target = sorted(live(emu), key=int)[3]
    base = await s.fetch(target)
    assert base is not None
    emu.clock = lambda: base.modified + 60            # someone else edits it a minute later
    emu.update_contact(target, jobtitle="Theirs")
    emu.clock = time.time
    with pytest.raises(PushRefused, match="conflict"):
        await s.push(LocalChange(target, {"jobtitle": "Ours"}, base_modified=base.modified))
    current = await s.fetch(target)
    pushed = await s.push(LocalChange(target, {"jobtitle": "Ours"}, base_modified=current.modified))
    assert pushed.data["jobtitle"] == "Ours" and pushed.modified >= current.modified
    taken = emu.contacts[sorted(live(emu), key=int)[0]].props["email"]
    with pytest.raises(PushRefused, match="409 CONFLICT"):
        await s.push(LocalChange(None, {"email": taken}))
    gone = await s.push(LocalChange(target, {}, deleted=True))
    assert gone.deleted and await s.fetch(target) is None and target not in live(emu)
    assert (await s.push(LocalChange(target, {}, deleted=True))).deleted
