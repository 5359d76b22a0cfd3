"""Pipedrive deals stream against the emulator over loopback: a full pass, a delta (updated_since) with an edit
and a deletion as a tombstone, the push-time conflict check on update_time, create/update/delete, an expired
delta position. Driven the way the runner drives it: pages until ``done``, each page's cursor fed to the next."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from connectors.emulators import PipedriveEmulator
from connectors.factory import build_connector
from connectors.http import HttpTransport
from connectors.streams import STREAMS, CursorExpired, LocalChange, PipedriveDeals, PushRefused
from domain.clock import FakeClock
from domain.model import ApiCredential
from domain.values import ApiKey, RetryPolicy
from tests.integration.stream_drain import drain

TOKEN = "pd-sync-token-000000000000000000000000001"


@pytest.fixture
async def env() -> AsyncIterator[tuple[PipedriveEmulator, PipedriveDeals, FakeClock]]:
    clock = FakeClock(1_700_000_000.0)
    emu = PipedriveEmulator(tokens=[TOKEN], seed=3, clock=clock.time, options={"deals": 23})
    await emu.start()
    transport = HttpTransport()
    connector = build_connector("pipedrive", ApiCredential.from_api_key(ApiKey(TOKEN)), app_id="int_sync",
                                base_url=emu.base_url, transport=transport, clock=clock,
                                retry=RetryPolicy(max_retries=1, base_delay=0.01, max_delay=0.02))
    try:
        yield emu, PipedriveDeals(connector, "all", page_size=5), clock
    finally:
        await transport.close()
        await emu.stop()


async def test_full_then_delta_with_an_edit_and_a_deletion(env) -> None:
    emu, s, clock = env
    assert STREAMS[("pipedrive", "deals")] is PipedriveDeals and s.tombstones and s.can_fetch
    store: dict[str, dict] = {}
    cursor, pages = await drain(s, s.start_cursor(None, full=True, pass_token="p1"), store)
    assert set(store) == {str(i) for i in range(1, 24)} and pages == 5
    newest = max(d.update_time for d in emu.deals.values())
    assert cursor["since"] == emu.deal_json(next(d for d in emu.deals.values() if d.update_time == newest))[
        "update_time"] and cursor["phase"] == "live" and "full" not in cursor
    clock.advance(30)
    emu.edit_deal(7, title="Renamed by a colleague")
    emu.delete_deal(9)
    cursor, pages = await drain(s, cursor, store)
    assert "9" not in store and store["7"]["title"] == "Renamed by a colleague" and len(store) == 22
    assert pages == 2 and emu.hits("/api/v2/deals") == 5 + 2                  # live phase, deleted phase
    quiet, _ = await drain(s, cursor, store)
    assert quiet["since"] == cursor["since"] and len(store) == 22              # nothing new: the position stays


async def test_push_update_with_the_conflict_check_on_update_time(env) -> None:
    emu, s, clock = env
    base = await s.fetch("4")
    assert base is not None and base.data["title"] == emu.deals[4].title
    clock.advance(5)
    pushed = await s.push(LocalChange("4", {**base.data, "title": "Ours", "value": 1234}, base.modified))
    assert pushed.data["title"] == "Ours" and pushed.modified == clock.time() and emu.deals[4].value == 1234
    clock.advance(5)
    emu.edit_deal(4, title="Theirs")                                           # someone edits after our read
    current = await s.fetch("4")
    assert current is not None and current.modified > pushed.modified          # the runner's conflict check
    assert current.data["title"] == "Theirs"
    emu.delete_deal(5)
    assert await s.fetch("5") is None and await s.fetch("999") is None


async def test_create_and_delete_and_refusals(env) -> None:
    emu, s, _ = env
    created = await s.push(LocalChange(None, {"title": "New deal", "value": 500, "currency": "EUR"}))
    assert created.remote_id == "24" and emu.deals[24].title == "New deal"
    gone = await s.push(LocalChange("24", {"title": "New deal"}, deleted=True))
    assert gone.deleted and emu.deals[24].is_deleted
    with pytest.raises(PushRefused, match="410"):
        await s.push(LocalChange("24", {"title": "After deletion"}))
    with pytest.raises(PushRefused, match="needs a title"):
        await s.push(LocalChange(None, {"value": 1}))
    with pytest.raises(PushRefused, match="400"):
        await s.push(LocalChange("3", {"status": "bogus"}))


async def test_a_delta_position_older_than_the_deleted_retention_is_expired(env) -> None:
    emu, s, clock = env
    cursor, _ = await drain(s, s.start_cursor(None, full=True, pass_token="p1"), {})
    clock.advance(31 * 86400)
    with pytest.raises(CursorExpired, match="30 days"):
        await s.pull(cursor)
    again, _ = await drain(s, s.start_cursor(cursor, full=True, pass_token="p2"), {})
    assert again["since"]


def test_resources_are_checked() -> None:
    assert PipedriveDeals.check_resource("pipeline:2") == "pipeline:2"
    for bad in ("", "everything", "pipeline:x", "pipeline:0"):
        with pytest.raises(ValueError, match="'all' or 'pipeline:<id>'"):
            PipedriveDeals.check_resource(bad)


async def test_a_pipeline_resource_lists_only_that_pipeline(env) -> None:
    emu, s, _ = env
    emu.edit_deal(2, pipeline_id=2)
    emu.edit_deal(3, pipeline_id=2)
    one = PipedriveDeals(s.connector, "pipeline:2", page_size=5)
    store: dict[str, dict] = {}
    await drain(one, one.start_cursor(None, full=True, pass_token="p"), store)
    assert set(store) == {"2", "3"}
