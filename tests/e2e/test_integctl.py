"""integctl as a user runs it: a real process against a real daemon, human and --json output, exit codes."""

from __future__ import annotations

import asyncio
import json
import os
import sys

from tests.conftest import TOKENS


async def ctl(daemon, *args: str, stdin: bytes | None = None) -> tuple[int, str, str]:
    env = {**os.environ, "INTEGD_SOCKET": str(daemon.paths.socket)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "integd.ctl", *args, env=env, stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(stdin), 30)
    return proc.returncode, out.decode(), err.decode()


async def test_connect_list_get_request_and_disconnect(daemon, emulators):
    code, out, err = await ctl(daemon, "--json", "apps", "connect", "github", "--api-key-file", "-",
                               "--base-url", emulators["github"].base_url, "--name", "work",
                               stdin=TOKENS["github"].encode() + b"\n")
    assert code == 0, err
    app = json.loads(out)
    assert app["status"] == "connected" and TOKENS["github"] not in out

    code, out, _ = await ctl(daemon, "apps", "list")
    assert code == 0 and app["id"] in out and "connected" in out and "work" in out

    code, out, _ = await ctl(daemon, "apps", "get", app["id"])
    assert code == 0 and "credential:" in out and TOKENS["github"] not in out

    code, out, _ = await ctl(daemon, "apps", "request", app["id"], "get", "/user/repos", "--param", "per_page=2")
    assert code == 0 and out.startswith("HTTP 200")

    code, out, _ = await ctl(daemon, "apps", "configure", app["id"], "--per-minute", "30", "--timeout", "10")
    assert code == 0 and '"per_minute": 30' in out

    code, out, _ = await ctl(daemon, "apps", "usage", app["id"])
    assert code == 0 and "WINDOW" in out

    code, out, _ = await ctl(daemon, "events", "--type", "app.connected")
    assert code == 0 and "app.connected" in out and app["id"] in out

    code, out, _ = await ctl(daemon, "apps", "disconnect", app["id"])
    assert code == 0 and "disconnected" in out


async def test_errors_exit_non_zero_with_message_and_code(daemon, emulators, short_dir):
    code, _, err = await ctl(daemon, "apps", "get", "int_" + "0" * 32)
    assert code == 1 and "(code -32001)" in err
    key_file = short_dir / "bad.key"
    key_file.write_text("ghp_definitelyNotValid000000000000000")
    code, _, err = await ctl(daemon, "--json", "apps", "connect", "github", "--api-key-file", str(key_file),
                             "--base-url", emulators["github"].base_url)
    assert code == 1 and json.loads(err)["error"]["code"] == -32008
    assert "definitelyNotValid" not in err
    code, _, err = await ctl(daemon, "call", "apps.list", "{not json")
    assert code != 0 and "not valid JSON" in err
    code, _, err = await ctl(daemon, "--socket", str(short_dir / "nope.sock"), "status")
    assert code == 3 and "nope.sock" in err


async def test_raw_call_and_status(daemon):
    code, out, _ = await ctl(daemon, "call", "services.list", '{"implemented": true}')
    assert code == 0 and {s["name"] for s in json.loads(out)} >= {"github", "slack", "sendgrid"}
    code, out, _ = await ctl(daemon, "status")
    assert code == 0 and "version:" in out
    code, out, _ = await ctl(daemon, "services")
    assert code == 0 and "salesforce" in out


async def test_events_follow_prints_each_event_as_it_commits(daemon, client, emulators):
    env = {**os.environ, "INTEGD_SOCKET": str(daemon.paths.socket)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "integd.ctl", "--json", "events", "--follow", "--type", "app.connected", env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        while len(daemon.subscriptions) == 0:      # the subscription is registered in this very process
            await asyncio.sleep(0.01)
        from tests.conftest import connect
        app = await connect(client, emulators, "github")
        line = await asyncio.wait_for(proc.stdout.readline(), 20)
        event = json.loads(line)
        assert event["type"] == "app.connected" and event["app_id"] == app["id"]
    finally:
        proc.terminate()
        await proc.wait()
