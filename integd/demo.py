"""``integd demo``: the product, live, with no account anywhere.

Starts the GitHub, Slack and SendGrid emulators in-process, a daemon on a throwaway state directory (or
``--state-dir``), and connects a few apps on short check intervals so their statuses move while you watch:
healthy ones, a flaky one (an emulator answering 5xx to a third of its calls) and one whose key the emulator
revokes after a while (it turns unauthorized at its next check).
"""

from __future__ import annotations

import asyncio
import getpass
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from connectors.emulators import EMULATORS
from integd import api
from integd.bootstrap import Daemon
from integd.config import Config, DaemonConfig, Paths
from integd.usecases import Actor


@dataclass(frozen=True)
class DemoApp:
    service: str
    name: str
    token: str
    emulator: str          # which emulator instance serves it
    check_interval: float


DEMO_APPS = (
    DemoApp("github", "GitHub (octo-org)", "ghp_demoHealthyToken0000000000000001", "github", 15),
    DemoApp("slack", "Slack (#ops)", "xoxb-demo-healthy-000000000001", "slack", 20),
    DemoApp("sendgrid", "SendGrid (transactional)", "SG.demoHealthyKey.000000000000000001", "sendgrid", 30),
    DemoApp("github", "GitHub (flaky mirror)", "ghp_demoFlakyToken00000000000000002", "github-flaky", 10),
    DemoApp("slack", "Slack (#legacy, revoked soon)", "xoxb-demo-revoked-000000000002", "slack", 10),
)
REVOKE_AFTER = 25.0


async def start_emulators(state_dir: Path) -> dict[str, Any]:
    """The demo's emulators; their ports are kept in the state directory so a rerun finds its apps' URLs."""
    ports_file = state_dir / "demo-ports.json"
    ports: dict[str, int] = json.loads(ports_file.read_text()) if ports_file.exists() else {}
    emus: dict[str, Any] = {}
    try:
        for key in ("github", "github-flaky", "slack", "sendgrid"):
            service = key.split("-")[0]
            tokens = [a.token for a in DEMO_APPS if a.emulator == key]
            emu = EMULATORS[service](tokens=tokens, seed=7)
            emu.faults.latency = 0.04
            try:
                await emu.start(host="127.0.0.1", port=ports.get(key, 0))
            except OSError as e:
                raise SystemExit(f"integd demo: the {key} emulator cannot listen on port {ports.get(key)} again "
                                 f"({e.strerror}); use a new --state-dir") from None
            emus[key] = emu
    except BaseException:
        for emu in emus.values():
            await emu.stop()
        raise
    emus["github-flaky"].faults.error_rate = 0.35
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    ports_file.write_text(json.dumps({k: int(e.origin.rsplit(":", 1)[1]) for k, e in emus.items()}))
    return emus


async def connect_demo_apps(daemon: Daemon, emus: dict[str, Any], user: str) -> list[str]:
    actor = Actor(user=user, admin=False)
    ids = []
    for demo in DEMO_APPS:
        params = api.ConnectParams(service=demo.service, api_key=SecretStr(demo.token), name=demo.name,
                                   base_url=emus[demo.emulator].base_url, check_interval=demo.check_interval)
        app = await daemon.usecases.connect(actor, params)
        ids.append(str(app.id))
    return ids


async def revoke_later(emus: dict[str, Any], delay: float = REVOKE_AFTER) -> None:
    await asyncio.sleep(delay)
    revoked = [a for a in DEMO_APPS if "revoked" in a.name][0]
    emus[revoked.emulator].revoke(revoked.token)


def banner(paths: Paths, headless: bool) -> str:
    sock = paths.socket
    lines = [
        "integd demo is running.",
        f"  state directory: {paths.state_dir}",
        f"  socket:          {sock}",
        "",
        "Attach from another terminal:",
        f"  export INTEGD_SOCKET={sock}",
        "  integctl apps list",
        "  integctl events --follow",
        "  integtui",
        "",
        "One app's key is revoked by its emulator after ~25 s; a flaky emulator answers 5xx a third of the time.",
        "Press Ctrl+C to stop." if headless else "",
    ]
    return "\n".join(lines)


async def run_demo(state_dir: Path | None, *, headless: bool,
                   on_ready: Callable[[Daemon], Awaitable[None]] | None = None,
                   stop: asyncio.Event | None = None) -> int:
    """Emulators, then the daemon; the demo apps are connected once it serves (only into an empty store)."""
    from integd.daemon import serve   # noqa: PLC0415 - serve installs signal handlers; import when run

    tmp = None
    if state_dir is None:
        tmp = tempfile.mkdtemp(prefix="integd-demo-")
        state_dir = Path(tmp)
    config = Config(daemon=DaemonConfig(watchdog=False))
    paths = Paths(state_dir=state_dir, socket=state_dir / "integd.sock", config_file=None)
    emus = await start_emulators(state_dir)
    stop = stop or asyncio.Event()
    tasks: list[asyncio.Task[Any]] = []

    async def started(daemon: Daemon) -> None:
        if not await daemon.store.find_all():
            await connect_demo_apps(daemon, emus, getpass.getuser())
        tasks.append(asyncio.create_task(revoke_later(emus)))
        print(banner(paths, headless), flush=True)
        if not headless:
            tasks.append(asyncio.create_task(_run_tui(str(paths.socket), stop)))
        if on_ready is not None:
            await on_ready(daemon)

    try:
        return await serve(config, paths, on_started=started, stop=stop)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for emu in emus.values():
            await emu.stop()
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


async def _run_tui(socket_path: str, stop: asyncio.Event) -> None:
    try:
        from integtui.app import IntegApp  # noqa: PLC0415 - the dashboard is optional for the daemon
    except ImportError:
        print("integtui is not available; running headless.", file=sys.stderr)
        return
    app = IntegApp(socket_path=socket_path)
    await app.run_async()
    stop.set()


def want_headless(flag: bool) -> bool:
    return flag or not (sys.stdin.isatty() and sys.stdout.isatty()) or os.environ.get("CI") == "true"
