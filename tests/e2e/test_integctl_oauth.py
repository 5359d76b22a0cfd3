"""integctl apps connect --oauth as a person runs it: a real process, the URL on stderr, the browser, the result."""

from __future__ import annotations

import asyncio
import json
import os
import sys

import aiohttp
import pytest

from tests.e2e.test_oauth import browser, env, gh  # noqa: F401 - fixtures


async def start_ctl(daemon, *args: str) -> asyncio.subprocess.Process:
    environ = {**os.environ, "INTEGD_SOCKET": str(daemon.paths.socket)}
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "integd.ctl", *args, env=environ, stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)


async def line_with(proc: asyncio.subprocess.Process, needle: str) -> str:
    async def scan() -> str:
        assert proc.stderr is not None
        while line := (await proc.stderr.readline()).decode():
            if needle in line:
                return line.strip()
        raise AssertionError(f"integctl ended without printing {needle!r}")
    return await asyncio.wait_for(scan(), 20)


async def finish(proc: asyncio.subprocess.Process, stdin: bytes | None = None) -> tuple[int, str]:
    out, _ = await asyncio.wait_for(proc.communicate(stdin), 30)
    return proc.returncode, out.decode()


@pytest.mark.parametrize("mode", ["paste", "loopback", "device"])
async def test_apps_connect_oauth(env, mode):  # noqa: F811
    daemon, client, emu = env
    emu.oauth.options.device_interval = 0
    args = ["--json", "apps", "connect", "github", "--oauth", "--name", f"ctl {mode}"]
    args += ["--paste"] if mode == "paste" else ["--flow", mode]
    proc = await start_ctl(daemon, *args)
    if mode == "device":
        shown = await line_with(proc, "enter the code")
        assert emu.oauth.approve(shown.rsplit(" ", 1)[1])
        code, out = await finish(proc)
    else:
        url = await line_with(proc, emu.origin + "/login/oauth/authorize")
        if mode == "paste":
            code, out = await finish(proc, (await browser(url)).encode() + b"\n")
        else:
            async with aiohttp.ClientSession() as http:
                async with http.get(url) as resp:
                    assert resp.status == 200
            code, out = await finish(proc)
    assert code == 0, out
    app = json.loads(out)
    assert app["status"] == "connected" and app["name"] == f"ctl {mode}" and app["credential"]["mode"] == "oauth2"


async def test_oauth_subcommands(env):  # noqa: F811
    daemon, client, emu = env
    proc = await start_ctl(daemon, "oauth", "clients")
    code, out = await finish(proc)
    assert code == 0 and "Iv1.integd-test" in out and "(config)" in out
    flow = await client.call("oauth.begin", {"service": "github", "flow": "paste"})
    proc = await start_ctl(daemon, "oauth", "complete", flow["flow_id"])
    code, out = await finish(proc, (await browser(flow["authorization_url"])).encode() + b"\n")
    assert code == 0 and "completed" in out
    proc = await start_ctl(daemon, "oauth", "status", "flw_unknown")
    code, _ = await finish(proc)
    assert code == 1
