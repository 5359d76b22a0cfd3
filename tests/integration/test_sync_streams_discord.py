"""Discord messages stream against the Discord emulator over loopback: a full pass from snowflake 0, a delta with
``after`` that finds new messages, a full refresh that no longer lists a deleted one (the runner's sweep turns that
into a tombstone) and shows an edit, and pushes: post, edit with a conflict check, delete.
The stream is driven the way the runner drives it into a dict standing in for the records store."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from connectors.emulators import EMULATORS
from connectors.factory import build_connector
from connectors.http import HttpTransport
from connectors.streams import STREAMS, LocalChange, PushRefused, StreamError
from connectors.streams.discord import DiscordMessages
from domain.clock import FakeClock
from domain.model import ApiCredential
from domain.values import ApiKey, RetryPolicy
from tests.integration.stream_drain import drain

BOT = "MTE4.sync-streams-bot-token-00000000001"


@pytest.fixture
async def discord() -> AsyncIterator[tuple[Any, DiscordMessages, FakeClock]]:
    clock = FakeClock()
    emu = EMULATORS["discord"](tokens=[BOT], seed=4, clock=clock.time,
                               options={"messages_per_channel": 23, "route_limit": 1000})
    await emu.start()
    transport = HttpTransport(user_agent="integd-test")
    connector = build_connector("discord", ApiCredential.from_api_key(ApiKey(BOT)), app_id="int_test",
                                base_url=emu.base_url, transport=transport, clock=clock,
                                retry=RetryPolicy(max_retries=2, base_delay=0.01, max_delay=0.02))
    channel = emu.world.guilds[0].channels[1].id
    try:
        yield emu, STREAMS[("discord", "messages")](connector, channel, page_size=10), clock
    finally:
        await transport.close()
        await emu.stop()


def test_the_resource_is_a_channel_snowflake():
    assert DiscordMessages.check_resource("1180000000000000001") == "1180000000000000001"
    with pytest.raises(ValueError, match="channel id"):
        DiscordMessages.check_resource("general")


async def test_full_pass_then_after_delta_then_a_refresh_that_sweeps_a_deletion(discord):
    emu, s, clock = discord
    store: dict[str, dict] = {}
    start = s.start_cursor(None, full=True, pass_token="p1")
    first = await s.pull(start)
    assert first.cursor["full"] is True and [int(r.remote_id) for r in first.records] == \
        sorted(int(r.remote_id) for r in first.records)                       # oldest first
    cursor, pages = await drain(s, start, store)
    assert pages == 3 and len(store) == 23 and set(cursor) == {"after"} and cursor["after"] == max(store, key=int)
    clock.advance(60)
    posted = [emu.post_message(s.resource, f"new {i}")["id"] for i in range(3)]
    victim = sorted(store, key=int)[4]
    emu.delete_message(s.resource, victim)
    edited = sorted(store, key=int)[5]
    emu.edit_message(s.resource, edited, "edited by someone")
    cursor, pages = await drain(s, cursor, store)
    assert pages == 1 and set(posted) <= set(store) and cursor["after"] == posted[-1]
    assert victim in store and store[edited]["edited_timestamp"] is None     # the delta API cannot see these
    seen: set[str] = set()
    await drain(s, s.start_cursor(cursor, full=True, pass_token="p2"), store, seen)
    assert victim not in seen and len(seen) == 25                   # what the runner's sweep tombstones
    assert store[edited]["content"] == "edited by someone" and store[edited]["edited_timestamp"]


async def test_push_posts_edits_and_deletes(discord):
    emu, s, clock = discord
    posted = await s.push(LocalChange(None, {"content": "hello from integd"}))
    assert posted.data["author_is_bot"] and posted.data["content"] == "hello from integd"
    clock.advance(10)
    edited = await s.push(LocalChange(posted.remote_id, {"content": "edited"}, base_modified=posted.modified))
    assert edited.modified > posted.modified and (await s.fetch(posted.remote_id)).data["content"] == "edited"
    clock.advance(10)
    emu.edit_message(s.resource, posted.remote_id, "changed upstream")
    theirs = await s.fetch(posted.remote_id)
    assert theirs.modified > edited.modified                 # what the runner's conflict check compares
    kept = await s.push(LocalChange(posted.remote_id, {"content": "ours"}, base_modified=edited.modified))
    assert kept.data["content"] == "ours"                    # pushed only when the policy kept the local side
    someone_elses = next(iter(emu.world.channels[s.resource].messages))
    with pytest.raises(PushRefused, match="50005"):
        await s.push(LocalChange(str(someone_elses), {"content": "not mine"}))
    gone = await s.push(LocalChange(posted.remote_id, {}, deleted=True))
    assert gone.deleted and await s.fetch(posted.remote_id) is None
    with pytest.raises(PushRefused, match="no longer exists"):
        await s.push(LocalChange(posted.remote_id, {"content": "too late"}))
    with pytest.raises(PushRefused, match="1-2000"):
        await s.push(LocalChange(None, {"content": " "}))


async def test_an_unknown_channel_is_a_stream_error(discord):
    emu, s, _ = discord
    ghost = DiscordMessages(s.connector, "1234567890")
    with pytest.raises(StreamError, match="10003"):
        await ghost.pull(ghost.start_cursor(None, full=True, pass_token="p"))
    assert await ghost.fetch("not-a-snowflake") is None
