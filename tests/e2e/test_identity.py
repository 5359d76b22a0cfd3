"""Two local users on one daemon: each sees only its own apps unless one is shared; root sees everything."""

from __future__ import annotations

import os

import pytest

from integd import api
from integd.config import Config, DaemonConfig
from tests.conftest import TOKENS, make_daemon
from tests.peer import call_as

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run callers as other uids")

ALICE, BOB = 65534, 65533          # nobody, and a uid with no passwd entry ("uid:65533")


@pytest.fixture
async def open_daemon(short_dir):
    config = Config(daemon=DaemonConfig(socket_mode=0o666))
    d = make_daemon(short_dir / "state", short_dir / "integd.sock", config)
    await d.start()
    yield d
    await d.stop()


async def test_users_see_only_their_own_apps_until_shared(open_daemon, emulators):
    sock = str(open_daemon.paths.socket)
    made = await call_as(ALICE, ALICE, sock, "apps.connect", {
        "service": "github", "api_key": TOKENS["github"], "base_url": emulators["github"].base_url})
    assert "result" in made, made
    app = made["result"]
    alice_name = app["owner"]
    status = await call_as(ALICE, ALICE, sock, "daemon.status")
    assert status["result"]["principal"] == {"uid": ALICE, "user": alice_name, "kind": "user"}

    bob_list = await call_as(BOB, BOB, sock, "apps.list")
    assert bob_list["result"] == []
    bob_get = await call_as(BOB, BOB, sock, "apps.get", {"app_id": app["id"]})
    assert bob_get["error"]["code"] == api.NOT_FOUND, "a stranger cannot even learn the app exists"
    bob_events = await call_as(BOB, BOB, sock, "events.list")
    assert bob_events["result"]["events"] == []
    bob_all = await call_as(BOB, BOB, sock, "apps.list", {"all_users": True})
    assert bob_all["error"]["code"] == api.ACCESS_DENIED
    bob_as = await call_as(BOB, BOB, sock, "apps.list", {"as_user": alice_name})
    assert bob_as["error"]["code"] == api.ACCESS_DENIED, "only service principals may act for others"

    shared = await call_as(ALICE, ALICE, sock, "apps.share", {"app_id": app["id"], "user": "uid:65533"})
    assert shared["result"]["shared_with"] == ["uid:65533"]
    bob_list = await call_as(BOB, BOB, sock, "apps.list")
    assert [a["id"] for a in bob_list["result"]] == [app["id"]]
    used = await call_as(BOB, BOB, sock, "apps.request", {"app_id": app["id"], "path": "/user"})
    assert used["result"]["status"] == 200, "sharing grants use"
    bob_off = await call_as(BOB, BOB, sock, "apps.disconnect", {"app_id": app["id"]})
    assert bob_off["error"]["code"] == api.ACCESS_DENIED, "sharing does not grant control"

    root_all = await call_as(0, 0, sock, "apps.list", {"all_users": True})
    assert [a["id"] for a in root_all["result"]] == [app["id"]]
    root_rotate = await call_as(0, 0, sock, "keys.rotate")
    assert root_rotate["result"]["reencrypted"] == 1
    bob_rotate = await call_as(BOB, BOB, sock, "keys.rotate")
    assert bob_rotate["error"]["code"] == api.ACCESS_DENIED


async def test_service_principal_acts_for_a_named_user(short_dir, emulators):
    import pwd
    nobody = pwd.getpwuid(ALICE).pw_name
    from integd.config import IdentityConfig
    config = Config(daemon=DaemonConfig(socket_mode=0o666), identity=IdentityConfig(service_users=[nobody]))
    d = make_daemon(short_dir / "state", short_dir / "integd.sock", config)
    await d.start()
    try:
        sock = str(d.paths.socket)
        made = await call_as(ALICE, ALICE, sock, "apps.connect", {
            "service": "sendgrid", "api_key": TOKENS["sendgrid"], "base_url": emulators["sendgrid"].base_url,
            "as_user": "carol"})
        assert made["result"]["owner"] == "carol"
        carol = await call_as(ALICE, ALICE, sock, "apps.list", {"as_user": "carol"})
        assert [a["owner"] for a in carol["result"]] == ["carol"]
        own = await call_as(ALICE, ALICE, sock, "apps.list")
        assert own["result"] == []
    finally:
        await d.stop()
