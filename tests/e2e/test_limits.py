"""Rate limits end to end: our own windows, the provider's signals and the user's fair-use plan."""

from __future__ import annotations

import pytest

from integd import api
from integd.client import IntegdClient, IntegdSession, RpcCallError
from integd.config import Config, PlanConfig, UsageConfig
from tests.conftest import connect, make_daemon


async def test_our_minute_window_fails_interactive_calls_fast_and_says_so_once(daemon, client, emulators):
    async with await IntegdSession.connect(str(daemon.paths.socket)) as session:
        await session.call("events.subscribe", {"types": ["rate_limit.exceeded"]})
        app = await connect(client, emulators, "github", rate_limit={"per_minute": 2, "burst": 1})
        await daemon.scheduler.settle()
        refused = None
        for _ in range(6):
            try:
                await client.call("apps.request", {"app_id": app["id"], "path": "/user"})
            except RpcCallError as e:
                refused = e
                break
        assert refused is not None and refused.code == api.RATE_LIMITED
        assert refused.data["retry_after"] > 0 and refused.data["window"] == "minute"
        async for _method, params in session.notifications():
            event = params["event"]
            break
    assert event["app_id"] == app["id"] and event["payload"]["source"] == "limiter"
    assert event["payload"]["window"] == "minute"
    events = (await client.call("events.list", {"types": ["rate_limit.exceeded"]}))["events"]
    assert len(events) == 1, "one event per episode, not one per refused call"
    assert (await client.call("apps.get", {"app_id": app["id"]}))["status"] == "connected", \
        "our own limit is not the provider's: the app stays connected"


async def test_provider_holding_us_back_makes_the_app_rate_limited_until_a_call_succeeds(client, emulators, daemon):
    app = await connect(client, emulators, "github")
    await daemon.scheduler.settle()
    emu = emulators["github"]
    emu.faults.burst_retry_after = 600
    emu.faults.rate_limit_burst = 1
    err = None
    with pytest.raises(RpcCallError) as info:
        await client.call("apps.request", {"app_id": app["id"], "path": "/user"})
    err = info.value
    assert err.code == api.INTEGRATION_FAILED and err.data["category"] == "rate_limit"
    assert err.data["retry_after"] >= 500
    detail = await client.call("apps.get", {"app_id": app["id"]})
    assert detail["status"] == "rate_limited"
    again = await RpcError_of(client.call("apps.request", {"app_id": app["id"], "path": "/user"}))
    assert again.code == api.RATE_LIMITED and again.data["window"] == "provider", \
        "while the provider holds us back we do not even ask"
    usage = await client.call("apps.usage", {"app_id": app["id"]})
    assert usage["provider"]["blocked_until"] is not None
    events = (await client.call("events.list", {"types": ["rate_limit.exceeded"]}))["events"]
    assert [e["payload"]["source"] for e in events] == ["provider"]


async def RpcError_of(coro) -> RpcCallError:  # noqa: N802 - reads as a noun in the asserts
    with pytest.raises(RpcCallError) as info:
        await coro
    return info.value


async def test_fair_use_plan_is_shared_by_all_of_a_users_apps(short_dir, emulators):
    config = Config(usage=UsageConfig(default_plan="tiny", plans={"tiny": PlanConfig(daily_limit=6)}))
    d = make_daemon(short_dir / "state", short_dir / "d.sock", config)
    await d.start()
    try:
        async with IntegdClient(str(d.paths.socket)) as c:
            gh = await connect(c, emulators, "github")
            sg = await connect(c, emulators, "sendgrid")
            await d.scheduler.settle()
            spent = None
            for i in range(8):
                app, path = (gh, "/user") if i % 2 else (sg, "/scopes")
                try:
                    await c.call("apps.request", {"app_id": app["id"], "path": path})
                except RpcCallError as e:
                    spent = e
                    break
            assert spent is not None and spent.code == api.USAGE_LIMIT
            assert spent.data["plan"] == "tiny" and spent.data["daily_limit"] == 6 and spent.data["retry_after"] > 0
            usage = await c.call("apps.usage", {"app_id": gh["id"]})
            assert usage["plan"]["used"] == 6 and usage["plan"]["remaining"] == 0
    finally:
        await d.stop()
