"""Every RPC method against a real daemon on a Unix socket, with the emulators over real HTTP."""

from __future__ import annotations

import asyncio

import pytest

from integd import api
from integd.client import IntegdClient, IntegdSession, RpcCallError
from tests.conftest import TOKENS, connect, make_daemon


async def rpc_error(coro) -> RpcCallError:
    with pytest.raises(RpcCallError) as info:
        await coro
    return info.value


async def test_status_and_catalogue(client):
    status = await client.call("daemon.status")
    assert status["version"] and status["apps"] == 0 and status["principal"]["uid"] >= 0
    services = await client.call("services.list")
    assert len(services) == 15
    assert {s["name"] for s in services if s["implemented"]} >= {"github", "slack", "sendgrid"}
    email = await client.call("services.list", {"category": "email"})
    assert {s["name"] for s in email} == {"gmail", "outlook", "sendgrid"}


@pytest.mark.parametrize("service", ["github", "slack", "sendgrid"])
async def test_connect_check_request_usage_disconnect(client, emulators, service):
    app = await connect(client, emulators, service, name=f"my {service}")
    assert app["status"] == "connected" and app["service"] == service and app["name"] == f"my {service}"
    assert app["credential"]["mode"] == "api_key"
    assert TOKENS[service] not in str(app), "the key never comes back"
    assert app["credential"]["hint"] == "…" + TOKENS[service][-4:]

    check = await client.call("apps.check", {"app_id": app["id"]})
    assert check["ok"] and check["outcome"] == "ok" and check["app"]["status"] == "connected"

    path = {"github": "/user", "slack": "/auth.test", "sendgrid": "/scopes"}[service]
    method = "POST" if service == "slack" else "GET"
    resp = await client.call("apps.request", {"app_id": app["id"], "method": method, "path": path})
    assert resp["status"] == 200 and resp["attempts"] == 1

    usage = await client.call("apps.usage", {"app_id": app["id"]})
    assert usage["app_id"] == app["id"] and isinstance(usage["windows"], list)

    detail = await client.call("apps.get", {"app_id": app["id"]})
    assert detail["health"] and detail["health"][-1]["ok"] is True

    gone = await client.call("apps.disconnect", {"app_id": app["id"]})
    assert gone == {"app_id": app["id"], "status": "disconnected", "revocation": None}   # API keys: no revocation
    assert await client.call("apps.list") == []
    listed = await client.call("apps.list", {"include_disconnected": True})
    assert [a["status"] for a in listed] == ["disconnected"]
    err = await rpc_error(client.call("apps.check", {"app_id": app["id"]}))
    assert err.code == api.INVALID_STATE


async def test_invalid_key_is_refused_and_nothing_stored(client, emulators, daemon):
    err = await rpc_error(client.call("apps.connect", {"service": "github", "api_key": "ghp_wrongwrongwrong0000",
                                                       "base_url": emulators["github"].base_url}))
    assert err.code == api.AUTH_FAILED and err.data["category"] == "auth_failed"
    assert "Bad credentials" in err.message and "ghp_wrong" not in str(err) + str(err.data)
    assert await client.call("apps.list") == []
    rows = await daemon.db.fetchall("SELECT COUNT(*) AS n FROM apps")
    assert rows[0]["n"] == 0


async def test_connect_refusals(client, emulators):
    err = await rpc_error(client.call("apps.connect", {"service": "myspace", "api_key": "abcdefabcdef"}))
    assert err.code == api.INVALID_CONFIG and "unknown service" in err.message
    err = await rpc_error(client.call("apps.connect", {"service": "gmail", "api_key": "abcdefabcdef"}))
    assert err.code in (api.NOT_IMPLEMENTED, api.INVALID_CONFIG)
    err = await rpc_error(connect(client, emulators, "github", rate_limit={"per_hour": 999999}))
    assert err.code == api.INVALID_CONFIG and err.data["field"] == "rate_limit.per_hour"
    err = await rpc_error(connect(client, emulators, "github", timeout=500))
    assert err.code == api.INVALID_CONFIG and "between 1 and 120" in err.message
    err = await rpc_error(client.call("apps.connect", {"service": "github", "api_key": TOKENS["github"],
                                                       "base_url": "file:///etc/passwd"}))
    assert err.code == api.INVALID_CONFIG and err.data["field"] == "base_url"


async def test_bad_params_name_their_location_and_hide_input(client):
    err = await rpc_error(client.call("apps.get", {}))
    assert err.code == -32602
    assert any(e["loc"][-1] == "app_id" for e in err.data["errors"])
    err = await rpc_error(client.call("apps.connect", {"service": "github", "api_key": "sekrit-value-1234",
                                                       "surprise": 1}))
    assert err.code == -32602 and "sekrit-value-1234" not in str(err.data)
    err = await rpc_error(client.call("apps.get", {"app_id": "../../etc"}))
    assert err.code == api.NOT_FOUND
    err = await rpc_error(client.call("apps.get", {"app_id": "int_" + "0" * 32}))
    assert err.code == api.NOT_FOUND
    err = await rpc_error(client.call("no.such.method"))
    assert err.code == -32601


async def test_configure_rules(client, emulators):
    app = await connect(client, emulators, "github")
    out = await client.call("apps.configure", {"app_id": app["id"], "rate_limit": {"per_minute": 30, "burst": 5},
                                               "timeout": 12, "check_interval": 60, "name": "renamed"})
    assert out["rate_limit"]["per_minute"] == 30 and out["rate_limit"]["burst"] == 5
    assert out["rate_limit"]["per_hour"] == 5000, "unset windows keep the provider's limit"
    assert out["timeout"] == 12 and out["check_interval"] == 60 and out["name"] == "renamed"
    for bad, field in (({"timeout": 0.5}, "timeout"), ({"check_interval": 1}, "check_interval"),
                       ({"rate_limit": {"per_hour": 10_000}}, "rate_limit.per_hour"),
                       ({"rate_limit": {"per_minute": 100, "per_hour": 50}}, "rate_limit.per_minute")):
        err = await rpc_error(client.call("apps.configure", {"app_id": app["id"], **bad}))
        assert err.code == api.INVALID_CONFIG and err.data["field"] == field, bad
    err = await rpc_error(client.call("apps.configure", {"app_id": app["id"], "rate_limit": {"per_minute": 0}}))
    assert err.code == -32602
    events = await client.call("events.list", {"types": ["app.configured"]})
    assert len(events["events"]) == 1


async def test_revoked_key_turns_app_unauthorized_with_one_failure_event(client, emulators):
    app = await connect(client, emulators, "slack")
    emulators["slack"].revoke(TOKENS["slack"])
    check = await client.call("apps.check", {"app_id": app["id"]})
    assert not check["ok"] and check["outcome"] == "auth_failed" and check["app"]["status"] == "unauthorized"
    await client.call("apps.check", {"app_id": app["id"]})
    failed = await client.call("events.list", {"types": ["integration.failed"], "app_id": app["id"]})
    assert len(failed["events"]) == 1 and failed["events"][0]["payload"]["category"] == "auth_failed"
    err = await rpc_error(client.call("apps.request", {"app_id": app["id"], "method": "POST",
                                                       "path": "/auth.test"}))
    assert err.code == api.AUTH_FAILED


async def test_provider_outage_is_retried_then_reported(daemon, client, emulators):
    app = await connect(client, emulators, "github")
    await daemon.scheduler.settle()       # the first health check, right after connect, has run
    emu = emulators["github"]
    emu.faults.error_rate = 1.0
    before = emu.hits("/user")
    err = await rpc_error(client.call("apps.request", {"app_id": app["id"], "path": "/user"}))
    assert err.code == api.INTEGRATION_FAILED and err.data["category"] == "service_down"
    assert emu.hits("/user") - before == 4, "one attempt and the seed's three retries"
    detail = await client.call("apps.get", {"app_id": app["id"]})
    assert detail["status"] == "error"
    emu.faults.error_rate = 0.0
    await client.call("apps.request", {"app_id": app["id"], "path": "/user"})
    assert (await client.call("apps.get", {"app_id": app["id"]}))["status"] == "connected"


async def test_request_path_cannot_escape_the_service(client, emulators):
    app = await connect(client, emulators, "github")
    for path in ("http://evil.example/steal", "//evil.example/x", "/../../x", "/user\r\nX-Injected: 1"):
        err = await rpc_error(client.call("apps.request", {"app_id": app["id"], "path": path}))
        assert err.code in (api.INVALID_CONFIG, api.INTEGRATION_FAILED, -32602), path


async def test_share_and_unshare(client, emulators):
    app = await connect(client, emulators, "github")
    shared = await client.call("apps.share", {"app_id": app["id"], "user": "bob"})
    assert shared["shared_with"] == ["bob"]
    err = await rpc_error(client.call("apps.share", {"app_id": app["id"], "user": "not a user!"}))
    assert err.code == api.INVALID_CONFIG
    unshared = await client.call("apps.unshare", {"app_id": app["id"], "user": "bob"})
    assert unshared["shared_with"] == []
    types = [e["type"] for e in (await client.call("events.list", {"types": ["app.shared"]}))["events"]]
    assert types == ["app.shared", "app.shared"]


async def test_events_list_paging_and_filters(client, emulators):
    a = await connect(client, emulators, "github")
    b = await connect(client, emulators, "sendgrid")
    page = await client.call("events.list", {"limit": 2})
    assert len(page["events"]) == 2
    rest = await client.call("events.list", {"after": page["last_seq"]})
    seqs = [e["seq"] for e in page["events"] + rest["events"]]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    only_b = await client.call("events.list", {"app_id": b["id"]})
    assert {e["app_id"] for e in only_b["events"]} == {b["id"]}
    connected = await client.call("events.list", {"types": ["app.connected"]})
    assert {e["app_id"] for e in connected["events"]} == {a["id"], b["id"]}


async def test_subscription_receives_events_as_committed(daemon, client, emulators):
    async with await IntegdSession.connect(str(daemon.paths.socket)) as session:
        sub = await session.call("events.subscribe", {"types": ["app.connected", "app.disconnected"]})
        app = await connect(client, emulators, "github")
        await client.call("apps.disconnect", {"app_id": app["id"]})
        got = []
        async for method, params in session.notifications():
            assert method == "event" and params["subscription"] == sub["subscription"]
            got.append(params["event"]["type"])
            if len(got) == 2:
                break
        assert got == ["app.connected", "app.disconnected"]
        assert await session.call("events.unsubscribe", {"subscription": sub["subscription"]}) is True


async def test_subscription_replays_after_a_sequence(daemon, client, emulators):
    await connect(client, emulators, "github")
    async with await IntegdSession.connect(str(daemon.paths.socket)) as session:
        await session.call("events.subscribe", {"after": 0, "types": ["app.connected"]})
        async for _method, params in session.notifications():
            assert params["event"]["type"] == "app.connected"
            break


async def test_subscribe_over_http_is_refused(client):
    err = await rpc_error(client.call("events.subscribe", {}))
    assert err.code == -32600


async def test_discover_describes_every_method(client):
    doc = await client.call("rpc.discover")
    names = {m["name"] for m in doc["methods"]}
    assert names >= {"daemon.status", "services.list", "apps.connect", "apps.list", "apps.get", "apps.configure",
                     "apps.check", "apps.request", "apps.usage", "apps.share", "apps.unshare", "apps.disconnect",
                     "events.list", "events.subscribe", "events.unsubscribe"}
    connect_m = next(m for m in doc["methods"] if m["name"] == "apps.connect")
    assert {p["name"] for p in connect_m["params"]} >= {"service", "api_key"}


async def test_secrets_never_at_rest_in_clear(daemon, client, emulators):
    for service in TOKENS:
        await connect(client, emulators, service)
    await client.call("keys.rotate")
    state = daemon.paths.state_dir
    blobs = b"".join(p.read_bytes() for p in state.iterdir() if p.name.startswith("integd.db"))
    assert blobs, "the database and its WAL exist"
    for token in TOKENS.values():
        assert token.encode() not in blobs


async def test_key_rotation_keeps_every_credential_usable(daemon, client, emulators):
    apps = [await connect(client, emulators, s) for s in TOKENS]
    rotated = await client.call("keys.rotate")
    assert rotated["reencrypted"] == 3 and rotated["new_key_id"] not in rotated["old_key_ids"]
    daemon.runtimes._connectors.clear()       # force the credentials to be read back from the store
    for app in apps:
        assert (await client.call("apps.check", {"app_id": app["id"]}))["ok"]


async def test_restart_keeps_hour_and_day_consumption(short_dir, emulators):
    d = make_daemon(short_dir / "state", short_dir / "s.sock")
    await d.start()
    try:
        async with IntegdClient(str(d.paths.socket)) as c:
            app = await connect(c, emulators, "github")
            for _ in range(15):
                await c.call("apps.request", {"app_id": app["id"], "path": "/user"})
            usage = await c.call("apps.usage", {"app_id": app["id"]})
    finally:
        await d.stop()
    before = {w["name"]: w["used"] for w in usage["windows"]}
    assert before["hour"] >= 16, "the connect's validation and the fifteen calls"
    assert usage["plan"]["used"] >= 16, "the user's daily fair-use budget counts them too"
    d2 = make_daemon(short_dir / "state", short_dir / "s.sock")
    await d2.start()
    try:
        async with IntegdClient(str(d2.paths.socket)) as c:
            usage2 = await c.call("apps.usage", {"app_id": app["id"]})
    finally:
        await d2.stop()
    after = {w["name"]: w["used"] for w in usage2["windows"]}
    assert after["hour"] >= before["hour"], "a restart never hands out a fresh hour"
    assert usage2["plan"]["used"] >= usage["plan"]["used"], "nor a fresh day"


async def test_one_failing_call_does_not_disturb_others(client, emulators):
    app = await connect(client, emulators, "github")
    results = await asyncio.gather(
        client.call("apps.request", {"app_id": app["id"], "path": "/user"}),
        client.call("apps.get", {"app_id": "int_" + "f" * 32}),
        client.call("daemon.status"), return_exceptions=True)
    assert results[0]["status"] == 200
    assert isinstance(results[1], RpcCallError) and results[1].code == api.NOT_FOUND
    assert results[2]["apps"] == 1


async def test_each_completed_check_reaches_subscribers_live(daemon, client, emulators):
    app = await connect(client, emulators, "github")
    await daemon.scheduler.settle()
    async with await IntegdSession.connect(str(daemon.paths.socket)) as session:
        await session.call("events.subscribe", {})
        check = await client.call("apps.check", {"app_id": app["id"]})
        async for method, params in session.notifications():
            if method == "app.checked":
                break
    assert params["app"]["id"] == app["id"] and params["result"]["ok"] is True
    assert params["app"]["last_check_at"] == params["result"]["checked_at"]
    assert params["result"]["latency"] == check["latency"]


async def test_events_newest_first_for_an_apps_latest(client, emulators):
    a = await connect(client, emulators, "github")
    await client.call("apps.configure", {"app_id": a["id"], "name": "one"})
    await client.call("apps.configure", {"app_id": a["id"], "name": "two"})
    latest = await client.call("events.list", {"app_id": a["id"], "order": "desc", "limit": 2})
    seqs = [e["seq"] for e in latest["events"]]
    assert seqs == sorted(seqs, reverse=True) and len(seqs) == 2
    assert latest["events"][0]["payload"]["changes"] == {"name": "two"}
    older = await client.call("events.list", {"app_id": a["id"], "order": "desc", "before": seqs[-1]})
    assert all(e["seq"] < seqs[-1] for e in older["events"]) and older["events"]
