"""``integd demo``: the product, live, with no account anywhere.

Starts an emulator for each of the fifteen services in-process, a daemon on a throwaway state directory (or
``--state-dir``), and connects one app per service on short check intervals so their statuses move while you
watch. API-key services connect with a key; OAuth-only services (Gmail, Google Drive, Outlook, OneDrive, Teams,
Dropbox, Salesforce) go through the real authorization-code + PKCE paste flow against their emulator's
authorization server, exactly as a person would (the demo plays the browser). Two apps misbehave on purpose: a
flaky GitHub mirror (a third of its answers are 5xx) and a Slack app whose key the emulator revokes after ~25 s.
Four sync jobs (GitHub issues, Slack #general with its threads, Gmail, Drive) run at once and then every 5 minutes.
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

import aiohttp
from pydantic import SecretStr

from connectors.emulators import EMULATORS
from integd import api
from integd.bootstrap import Daemon
from integd.client import IntegdClient
from integd.config import Config, Paths
from integd.usecases import Actor

CLIENT_ID, CLIENT_SECRET = "integd-demo-client", "integd-demo-client-secret-0001"
REDIRECT = "http://127.0.0.1/callback"


@dataclass(frozen=True)
class DemoApp:
    service: str
    name: str
    token: str | None      # None: connect through OAuth
    emulator: str          # which emulator instance serves it
    check_interval: float


DEMO_APPS = (
    DemoApp("github", "GitHub (octo-org)", "ghp_demoHealthyToken0000000000000001", "github", 15),
    DemoApp("slack", "Slack (#ops)", "xoxb-demo-healthy-000000000001", "slack", 20),
    DemoApp("sendgrid", "SendGrid (transactional)", "SG.demoHealthyKey.000000000000000001", "sendgrid", 30),
    DemoApp("discord", "Discord (community bot)", "demoDiscordBotToken.000000.0000000000000000001", "discord", 25),
    DemoApp("gitlab", "GitLab (platform group)", "glpat-demoHealthyToken000001", "gitlab", 20),
    DemoApp("jira", "Jira (PLAT project)", "ATATTdemoHealthyToken000000000001", "jira", 30),
    DemoApp("hubspot", "HubSpot (marketing)", "pat-na1-demo0000-0000-0000-0000-000000000001", "hubspot", 30),
    DemoApp("pipedrive", "Pipedrive (sales)", "demopipedrivetoken0000000000000000000001", "pipedrive", 30),
    DemoApp("gmail", "Gmail (support inbox)", None, "gmail", 20),
    DemoApp("google_drive", "Google Drive (shared)", None, "google_drive", 30),
    DemoApp("outlook", "Outlook (ops mailbox)", None, "outlook", 25),
    DemoApp("onedrive", "OneDrive (finance)", None, "onedrive", 30),
    DemoApp("teams", "Teams (engineering)", None, "teams", 25),
    DemoApp("dropbox", "Dropbox (design assets)", None, "dropbox", 30),
    DemoApp("salesforce", "Salesforce (EMEA org)", None, "salesforce", 30),
    DemoApp("github", "GitHub (flaky mirror)", "ghp_demoFlakyToken00000000000000002", "github-flaky", 10),
    DemoApp("slack", "Slack (#legacy, revoked soon)", "xoxb-demo-revoked-000000000002", "slack", 10),
)
REVOKE_AFTER = 25.0


def _service(key: str) -> str:
    return key.removesuffix("-flaky")


async def start_emulators(state_dir: Path) -> dict[str, Any]:
    """The demo's emulators; their ports are kept in the state directory so a rerun finds its apps' URLs."""
    ports_file = state_dir / "demo-ports.json"
    ports: dict[str, int] = json.loads(ports_file.read_text()) if ports_file.exists() else {}
    emus: dict[str, Any] = {}
    try:
        for key in dict.fromkeys(a.emulator for a in DEMO_APPS):
            tokens = [a.token for a in DEMO_APPS if a.emulator == key and a.token]
            emu = EMULATORS[_service(key)](tokens=tokens, seed=7)
            emu.faults.latency = 0.04
            oauth = getattr(emu, "oauth", None)
            if oauth is not None:
                oauth.register_client(CLIENT_ID, CLIENT_SECRET, [REDIRECT])
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


def demo_config(state_dir: Path, emus: dict[str, Any]) -> Config:
    """Each service pointed at its emulator; OAuth clients registered with the emulators' servers."""
    secret = state_dir / "demo-oauth-client.secret"
    secret.write_text(CLIENT_SECRET + "\n")
    os.chmod(secret, 0o600)
    services = {_service(k): {"base_url": e.base_url} for k, e in emus.items() if not k.endswith("-flaky")}
    clients = {a.service: {"client_id": CLIENT_ID, "client_secret_file": str(secret),
                           "auth_base_url": emus[a.emulator].origin}
               for a in DEMO_APPS if a.token is None}
    return Config.model_validate({"daemon": {"watchdog": False}, "services": services,
                                  "oauth": {"clients": clients}})


async def connect_demo_apps(daemon: Daemon, emus: dict[str, Any], user: str) -> list[str]:
    actor = Actor(user=user, admin=False)
    ids = []
    for demo in DEMO_APPS:
        if demo.token is None:
            ids.append(await _connect_oauth(daemon, demo))
            continue
        key = demo.token
        if demo.service == "jira":      # a Jira Cloud API token goes with its account's email
            key = f"{emus[demo.emulator].account_email(demo.token)}:{demo.token}"
        params = api.ConnectParams(service=demo.service, api_key=SecretStr(key), name=demo.name,
                                   base_url=emus[demo.emulator].base_url, check_interval=demo.check_interval)
        app = await daemon.usecases.connect(actor, params)
        ids.append(str(app.id))
    return ids


# One sync job per service whose stream the demo shows: (service, stream, resource of the first such demo app).
def _demo_resource(service: str, emus: dict[str, Any], demo: DemoApp) -> str:
    if service == "github":
        emu = emus[demo.emulator]
        login = emu.users[demo.token].login
        return login + "/" + next(r.name for (o, _), r in emu.repos.items() if o == login.lower() and not r.private)
    if service == "slack":
        return emus[demo.emulator].channels[0].id         # #general
    return "me"


DEMO_SYNCS = (("github", "issues"), ("slack", "messages"), ("gmail", "messages"), ("google_drive", "files"))


async def create_demo_syncs(daemon: Daemon, emus: dict[str, Any], app_ids: list[str], user: str) -> list[str]:
    """Sync jobs for the healthy GitHub, Slack, Gmail and Drive apps, every 5 minutes: a job that never ran is due
    at once, so the dashboard shows their first syncs (and progress bars) right after the demo starts."""
    from integd.api_sync import SyncCreateParams  # noqa: PLC0415 - sync is a feature; the demo needs it loaded

    actor = Actor(user=user, admin=False)
    jobs = []
    for service, stream in DEMO_SYNCS:
        index, demo = next((i, d) for i, d in enumerate(DEMO_APPS) if d.service == service)
        params = SyncCreateParams(app_id=app_ids[index], stream=stream,
                                  resource=_demo_resource(service, emus, demo),
                                  frequency={"kind": "interval", "minutes": 5})
        jobs.append((await daemon.sync.create(actor, params)).id)
    return jobs


async def restore_demo_grants(daemon: Daemon, emus: dict[str, Any]) -> int:
    """A rerun on a kept state directory: emulators remember nothing, so each OAuth app's stored access token is
    handed back to its emulator (valid until it expires; then the app turns unauthorized, as it would for real)."""
    restored = 0
    for app in await daemon.store.find_all(active_only=True):
        emu = emus.get(app.service)
        full = await daemon.store.find_by_id(str(app.id), with_credentials=True)
        token = full.credential.secrets.get("access_token") if full and full.credential else None
        if emu is not None and token:
            emu.add_token(token)
            restored += 1
    return restored


async def _connect_oauth(daemon: Daemon, demo: DemoApp) -> str:
    """The paste flow, over the socket like any client; the demo plays the person's browser."""
    async with IntegdClient(str(daemon.paths.socket)) as client:
        flow = await client.call("oauth.begin", {"service": demo.service, "flow": "paste", "name": demo.name})
        async with aiohttp.ClientSession() as browser:
            async with browser.get(flow["authorization_url"], allow_redirects=False) as resp:
                redirect = resp.headers["Location"]
        done = await client.call("oauth.complete", {"flow_id": flow["flow_id"], "redirect_url": redirect})
        app_id = done["app_id"]
        await client.call("apps.configure", {"app_id": app_id, "check_interval": demo.check_interval})
    return app_id


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
    paths = Paths(state_dir=state_dir, socket=state_dir / "integd.sock", config_file=None)
    emus = await start_emulators(state_dir)
    config = demo_config(state_dir, emus)
    stop = stop or asyncio.Event()
    tasks: list[asyncio.Task[Any]] = []

    async def started(daemon: Daemon) -> None:
        if not await daemon.store.find_all():
            user = getpass.getuser()
            await create_demo_syncs(daemon, emus, await connect_demo_apps(daemon, emus, user), user)
        else:
            await restore_demo_grants(daemon, emus)
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
