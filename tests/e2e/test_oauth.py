"""OAuth flows end to end: a real daemon on a Unix socket, the emulators' authorization server over loopback."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest

from connectors.emulators.github import GitHubEmulator
from connectors.emulators.slack import SlackEmulator
from integd.bootstrap import Daemon
from integd.client import IntegdClient, IntegdSession, RpcCallError
from integd.config import Config, Paths
from integd.usecases import Actor
from tests.conftest import FAST_RETRY

CLIENT_ID, SECRET = "Iv1.integd-test", "gh-client-secret-0001"


def oauth_config(tmp: Path, emu: GitHubEmulator, slack: SlackEmulator | None = None, **oauth) -> Config:
    secret = tmp / "github.secret"
    secret.write_text(SECRET + "\n")
    clients = {"github": {"client_id": CLIENT_ID, "client_secret_file": str(secret), "auth_base_url": emu.origin}}
    services = {"github": {"base_url": emu.base_url}}
    if slack is not None:
        clients["slack"] = {"client_id": "111.222", "client_secret_file": str(secret), "auth_base_url": slack.origin}
        services["slack"] = {"base_url": slack.base_url}
    return Config.model_validate({"services": services, "oauth": {"clients": clients, **oauth}})


@pytest.fixture
async def gh():
    emu = GitHubEmulator(seed=1)
    emu.oauth.register_client(CLIENT_ID, SECRET, ["http://127.0.0.1/callback"])
    emu.oauth.options.pkce_required = True
    await emu.start()
    yield emu
    await emu.stop()


@pytest.fixture
async def env(short_dir, gh):
    daemon = Daemon(oauth_config(short_dir, gh), Paths(short_dir / "state", short_dir / "d.sock", None),
                    retry=FAST_RETRY)
    await daemon.start()
    async with IntegdClient(str(daemon.paths.socket)) as client:
        yield daemon, client, gh
    await daemon.stop()


async def browser(url: str) -> str:
    """The person's browser: open the authorization URL, return where the provider redirects to."""
    async with aiohttp.ClientSession() as http:
        async with http.get(url, allow_redirects=False) as resp:
            assert resp.status == 302, await resp.text()
            return resp.headers["Location"]


async def rpc_error(coro) -> RpcCallError:
    with pytest.raises(RpcCallError) as info:
        await coro
    return info.value


async def app_count(daemon: Daemon) -> int:
    return (await daemon.db.fetchall("SELECT COUNT(*) AS n FROM apps"))[0]["n"]


async def test_paste_flow_connects_github(env):
    daemon, client, emu = env
    flow = await client.call("oauth.begin", {"service": "github", "flow": "paste", "name": "gh via oauth"})
    assert flow["state"] == "started" and "code_challenge=" in flow["authorization_url"]
    assert flow["authorization_url"].startswith(emu.origin + "/login/oauth/authorize?")
    redirect = await browser(flow["authorization_url"])
    done = await client.call("oauth.complete", {"flow_id": flow["flow_id"], "redirect_url": redirect})
    assert done["state"] == "completed" and done["app_id"].startswith("int_")
    app = await client.call("apps.get", {"app_id": done["app_id"]})
    assert app["status"] == "connected" and app["name"] == "gh via oauth"
    assert app["credential"]["mode"] == "oauth2" and app["credential"]["expires_at"]
    assert "ghu_" not in str(app) and "ghr_" not in str(app)
    resp = await client.call("apps.request", {"app_id": done["app_id"], "method": "GET", "path": "/user"})
    assert resp["status"] == 200
    events = await client.call("events.list", {"types": ["app.connected"]})
    assert events["events"][-1]["payload"]["auth_mode"] == "oauth2"
    rows = await daemon.db.fetchall("SELECT state FROM oauth_grants WHERE app_id = ?", (done["app_id"],))
    assert [r["state"] for r in rows] == ["ok"]
    # reuse of the same redirect (and state): the flow is finished
    err = await rpc_error(client.call("oauth.complete", {"flow_id": flow["flow_id"], "redirect_url": redirect}))
    assert err.code == -32023


async def test_loopback_flow_and_events(env):
    daemon, client, emu = env
    async with await IntegdSession.connect(str(daemon.paths.socket)) as session:
        await session.call("events.subscribe", {"types": ["oauth.flow"]})
        flow = await client.call("oauth.begin", {"service": "github"})
        assert flow["flow"] == "loopback" and flow["redirect_uri"].startswith("http://127.0.0.1:")
        async with aiohttp.ClientSession() as http:      # the browser follows the redirect to our listener
            async with http.get(flow["authorization_url"]) as resp:
                assert resp.status == 200 and "connected" in await resp.text()
        states = []
        async for _m, params in session.notifications():
            event = params["event"]
            assert event["app_id"] == flow["flow_id"] and "code" not in str(event["payload"])
            states.append(event["payload"]["state"])
            if states[-1] == "completed":
                assert event["payload"]["app"].startswith("int_")
                break
    assert states == ["started", "authorized", "completed"]
    status = await client.call("oauth.status", {"flow_id": flow["flow_id"]})
    assert status["state"] == "completed" and status["authorization_url"] is None


async def test_device_flow(env):
    daemon, client, emu = env
    emu.oauth.options.device_interval = 0
    async with await IntegdSession.connect(str(daemon.paths.socket)) as session:
        await session.call("events.subscribe", {"types": ["oauth.flow"]})
        flow = await client.call("oauth.begin", {"service": "github", "flow": "device"})
        assert flow["user_code"] and flow["verification_uri"] == "https://github.com/login/device"
        assert emu.oauth.approve(flow["user_code"])
        async for _m, params in session.notifications():
            if params["event"]["payload"]["state"] in ("completed", "failed"):
                assert params["event"]["payload"]["state"] == "completed", params["event"]["payload"]
                break
    err = await rpc_error(client.call("oauth.complete", {"flow_id": flow["flow_id"], "code": "x"}))
    assert err.code == -32023
    assert await app_count(daemon) == 1


async def test_device_flow_denied_stores_nothing(env):
    daemon, client, emu = env
    emu.oauth.options.device_interval = 0
    async with await IntegdSession.connect(str(daemon.paths.socket)) as session:
        await session.call("events.subscribe", {"types": ["oauth.flow"]})
        flow = await client.call("oauth.begin", {"service": "github", "flow": "device"})
        assert emu.oauth.approve(flow["user_code"], deny=True)
        async for _m, params in session.notifications():
            if params["event"]["payload"]["state"] != "started":
                assert params["event"]["payload"]["state"] == "failed"
                assert "access_denied" in params["event"]["payload"]["error"]
                break
    assert await app_count(daemon) == 0


async def test_bad_input_is_a_clear_error_with_nothing_stored(env):
    daemon, client, emu = env
    err = await rpc_error(client.call("oauth.complete", {"flow_id": "flw_nope", "code": "abc"}))
    assert err.code == -32015 and err.data["kind"] == "oauth_flow_not_found"
    flow = await client.call("oauth.begin", {"service": "github", "flow": "paste"})
    redirect = await browser(flow["authorization_url"])
    wrong_state = redirect.replace("state=", "state=x")
    err = await rpc_error(client.call("oauth.complete", {"flow_id": flow["flow_id"], "redirect_url": wrong_state}))
    assert err.code == -32017 and "state" in err.message
    tampered = redirect.replace("/callback", "/elsewhere")
    err = await rpc_error(client.call("oauth.complete", {"flow_id": flow["flow_id"], "redirect_url": tampered}))
    assert err.code == -32017
    err = await rpc_error(client.call("oauth.complete", {"flow_id": flow["flow_id"], "redirect_url": "%%%"}))
    assert err.code == -32017
    # others cannot see, complete or cancel it
    bob = Actor("bob", admin=False)
    with pytest.raises(Exception) as info:
        daemon.oauth.flows.visible(bob, flow["flow_id"])
    assert type(info.value).__name__ == "FlowNotFound"
    # a wrong code (not the one issued): invalid_grant from the token endpoint; the flow fails
    err = await rpc_error(client.call("oauth.complete", {"flow_id": flow["flow_id"], "code": "not-the-code"}))
    assert err.code == -32020 and "bad_verification_code" in err.message   # GitHub's invalid_grant
    assert (await client.call("oauth.status", {"flow_id": flow["flow_id"]}))["state"] == "failed"
    # access denied in the redirect
    emu.oauth.options.deny = True
    flow = await client.call("oauth.begin", {"service": "github", "flow": "paste"})
    err = await rpc_error(client.call("oauth.complete", {"flow_id": flow["flow_id"],
                                                         "redirect_url": await browser(flow["authorization_url"])}))
    assert err.code == -32018
    emu.oauth.options.deny = False
    # the token endpoint answering 500, then garbage
    for fault in ("error_500", "garbage"):
        emu.oauth.options.token_fault = fault
        flow = await client.call("oauth.begin", {"service": "github", "flow": "paste"})
        redirect = await browser(flow["authorization_url"])
        err = await rpc_error(client.call("oauth.complete", {"flow_id": flow["flow_id"], "redirect_url": redirect}))
        assert err.code == -32019, (fault, err)
    emu.oauth.options.token_fault = "none"
    # an expired flow
    flow = await client.call("oauth.begin", {"service": "github", "flow": "paste"})
    redirect = await browser(flow["authorization_url"])
    daemon.oauth.flows.flows[flow["flow_id"]].expires_at = 0.0
    err = await rpc_error(client.call("oauth.complete", {"flow_id": flow["flow_id"], "redirect_url": redirect}))
    assert err.code == -32016
    # cancel, then completion refused
    flow = await client.call("oauth.begin", {"service": "github", "flow": "paste"})
    assert (await client.call("oauth.cancel", {"flow_id": flow["flow_id"]}))["state"] == "cancelled"
    err = await rpc_error(client.call("oauth.complete", {"flow_id": flow["flow_id"], "code": "abc"}))
    assert err.code == -32023
    # no client registered; no device grant on Slack; a secret never echoed
    err = await rpc_error(client.call("oauth.begin", {"service": "slack"}))
    assert err.code == -32021 and "oauth.clients.slack" in err.message
    assert await app_count(daemon) == 0
    assert (await daemon.db.fetchall("SELECT COUNT(*) AS n FROM oauth_grants"))[0]["n"] == 0


async def test_clients_set_and_list_redact_secrets(env):
    daemon, client, emu = env
    listed = await client.call("oauth.clients.list")
    assert listed == [{"service": "github", "client_id": CLIENT_ID, "secret_hint": "…" + SECRET[-4:],
                       "auth_base_url": emu.origin, "tenant": None, "source": "config", "updated_at": None,
                       "updated_by": None}]
    view = await client.call("oauth.clients.set", {"service": "slack", "client_id": "111.222",
                                                   "client_secret": "slack-secret-xyz-9999"})
    assert view["secret_hint"] == "…9999" and "slack-secret" not in str(view)
    raw = await daemon.db.fetchall("SELECT secret FROM oauth_clients")
    assert b"slack-secret" not in raw[0]["secret"]
    err = await rpc_error(client.call("oauth.clients.set", {"service": "myspace", "client_id": "x"}))
    assert err.code == -32004
    rotated = await client.call("keys.rotate")
    assert rotated["reencrypted"] >= 1
    assert (await daemon.oauth.oauth_store.get_client("slack")).secret == "slack-secret-xyz-9999"


async def test_disconnect_revokes(env):
    daemon, client, emu = env
    flow = await client.call("oauth.begin", {"service": "github", "flow": "paste"})
    done = await client.call("oauth.complete", {"flow_id": flow["flow_id"],
                                                "redirect_url": await browser(flow["authorization_url"])})
    result = await client.call("apps.disconnect", {"app_id": done["app_id"]})
    assert result["revocation"] == {"revoked": True, "error": None} and emu.oauth.revocations == 1
    assert emu.tokens.counts()["active"] == 0
    # a failed revocation is reported, and the credential is deleted regardless
    flow = await client.call("oauth.begin", {"service": "github", "flow": "paste"})
    done = await client.call("oauth.complete", {"flow_id": flow["flow_id"],
                                                "redirect_url": await browser(flow["authorization_url"])})
    emu.oauth.register_client(CLIENT_ID, "changed-secret", ["http://127.0.0.1/callback"])
    result = await client.call("apps.disconnect", {"app_id": done["app_id"]})
    assert result["status"] == "disconnected" and result["revocation"]["revoked"] is False
    events = await client.call("events.list", {"types": ["app.disconnected"]})
    assert events["events"][-1]["payload"]["revocation"]["revoked"] is False
    rows = await daemon.db.fetchall("SELECT credential FROM apps WHERE id = ?", (done["app_id"],))
    assert rows[0]["credential"] is None


async def test_slack_oauth_with_rotation(short_dir, gh):
    slack = SlackEmulator(seed=1)
    slack.oauth.register_client("111.222", SECRET, ["http://127.0.0.1/callback"])
    slack.enable_token_rotation(lifetime=43200)
    await slack.start()
    daemon = Daemon(oauth_config(short_dir, gh, slack), Paths(short_dir / "s", short_dir / "s.sock", None),
                    retry=FAST_RETRY)
    await daemon.start()
    try:
        async with IntegdClient(str(daemon.paths.socket)) as client:
            flow = await client.call("oauth.begin", {"service": "slack", "flow": "paste"})
            assert "scope=channels%3Aread%2C" in flow["authorization_url"]
            done = await client.call("oauth.complete", {"flow_id": flow["flow_id"],
                                                        "redirect_url": await browser(flow["authorization_url"])})
            resp = await client.call("apps.request", {"app_id": done["app_id"], "method": "POST",
                                                      "path": "/auth.test"})
            assert resp["body"]["ok"] is True
            # a 401-equivalent (token_expired) -> one refresh, one retry, the call succeeds
            tokens = daemon.oauth.tokens.get(done["app_id"])
            slack.tokens.get(tokens.credential.bearer).expires_at = 0.0
            resp = await client.call("apps.request", {"app_id": done["app_id"], "method": "POST",
                                                      "path": "/auth.test"})
            assert resp["body"]["ok"] is True and tokens.refreshes == 1
    finally:
        await daemon.stop()
        await slack.stop()
