"""Shared fixtures: real emulators over loopback HTTP, a real daemon on a temp Unix socket and SQLite file."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from connectors.emulators import EMULATORS
from domain import RetryPolicy
from integd.bootstrap import Daemon
from integd.client import IntegdClient
from integd.config import Config, Paths

TOKENS = {
    "github": "ghp_testToken000000000000000000000001",
    "slack": "xoxb-test-000000000000-000000000001",
    "sendgrid": "SG.testKey.0000000000000000000000000001",
}
FAST_RETRY = RetryPolicy(max_retries=3, base_delay=0.01, max_delay=0.05, backoff_multiplier=2.0)


@pytest.fixture
def short_dir() -> Path:
    """A short directory (AF_UNIX paths are limited to 107 bytes; pytest's tmp_path can be longer)."""
    d = Path(tempfile.mkdtemp(prefix="integd-t-", dir="/tmp"))
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
async def emulators() -> AsyncIterator[dict]:
    emus = {}
    for name, token in TOKENS.items():
        # Slack threads cost a conversations.replies call each (Tier 3, 50/min): the shared workspace has none,
        # so other tests' syncs stay within one burst; threads have their own tests.
        emu = EMULATORS[name](tokens=[token], seed=1, **({"options": {"thread_every": 0}} if name == "slack" else {}))
        await emu.start(host="127.0.0.1", port=0)
        emus[name] = emu
    yield emus
    for emu in emus.values():
        await emu.stop()


def make_daemon(state: Path, sock: Path, config: Config | None = None) -> Daemon:
    return Daemon(config or Config(), Paths(state_dir=state, socket=sock, config_file=None), retry=FAST_RETRY)


@pytest.fixture
async def daemon(short_dir: Path) -> AsyncIterator[Daemon]:
    d = make_daemon(short_dir / "state", short_dir / "integd.sock")
    await d.start()
    yield d
    await d.stop()


@pytest.fixture
async def client(daemon: Daemon) -> AsyncIterator[IntegdClient]:
    async with IntegdClient(str(daemon.paths.socket)) as c:
        yield c


async def connect(client: IntegdClient, emulators: dict, service: str, **extra) -> dict:
    return await client.call("apps.connect", {"service": service, "api_key": TOKENS[service],
                                              "base_url": emulators[service].base_url, **extra})
