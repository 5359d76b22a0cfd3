"""`python -m connectors.emulators` as a real subprocess: --list, a standalone run, refusals."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

import aiohttp
import pytest

from connectors.emulators import EMULATORS
from connectors.emulators.__main__ import main

ROOT = Path(__file__).resolve().parents[2]


async def run(*args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "connectors.emulators", *args, cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)


def test_list_names_every_service(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--list"]) == 0
    out = capsys.readouterr().out
    assert [line.split("\t")[0] for line in out.splitlines()] == sorted(EMULATORS)
    assert {"github", "gmail", "google_drive", "onedrive", "outlook", "sendgrid", "slack", "teams"} <= set(EMULATORS)


async def test_standalone_run_serves_until_sigterm() -> None:
    proc = await run("github", "--port", "0", "--token", "ghp_cli_token_9876", "--token", "ghp_second_5432",
                     "--rate-limit", "2", "--rate-window", "60", "--latency", "0")
    assert proc.stdout is not None
    try:
        line = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode()
        assert line.startswith("github emulator listening: http://127.0.0.1:")
        base = line.split(": ", 1)[1].strip()
        rest = [(await asyncio.wait_for(proc.stdout.readline(), 20)).decode() for _ in range(2)]
        assert rest[0].startswith("control API: ") and rest[1] == "accepted tokens: …9876, …5432\n"
        async with aiohttp.ClientSession(headers={"Authorization": "Bearer ghp_cli_token_9876"}) as http:
            statuses = []
            for _ in range(3):
                async with http.get(base + "/user") as resp:
                    statuses.append(resp.status)
            async with http.get(rest[0].split(": ", 1)[1].strip()) as resp:
                state = await resp.json()
        assert statuses == [200, 200, 403] and state["rate_limit"] == {"limit": 2, "window": 60.0}
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 0, err
    assert out.decode().endswith("github emulator stopped\n")
    assert b"ghp_cli_token" not in out + err


def test_refuses_a_remote_host_without_allow_remote(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["slack", "--host", "0.0.0.0", "--token", "xoxb-1"]) == 2
    assert "not a loopback address" in capsys.readouterr().err


@pytest.mark.parametrize(("args", "needle"), [
    (["nosuch", "--token", "t"], "unknown service 'nosuch'"),
    (["sendgrid"], "give at least one --token"),
    (["sendgrid", "--token", "t", "--error-rate", "3"], "error_rate"),
    (["sendgrid", "--token", "t", "--rate-window", "5"], "--rate-window needs --rate-limit"),
])
def test_bad_arguments_are_named(capsys: pytest.CaptureFixture[str], args: list[str], needle: str) -> None:
    assert main(args) == 2
    assert needle in capsys.readouterr().err
