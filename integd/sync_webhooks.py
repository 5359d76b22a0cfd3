"""The optional webhook listener: provider deliveries that trigger an immediate delta sync.

Framing: plain HTTP/1.1 on TCP at ``[webhooks] bind`` (off by default), meant to sit behind a reverse proxy that
terminates TLS. Routes: ``POST /webhooks/github``, ``/webhooks/slack`` and ``/webhooks/google`` (Drive push
notifications), and ``POST /webhooks/<service>`` for every other provider in ``connectors.webhooks.VERIFIERS``
whose secret is configured (``[webhooks] secret_files``; plus ``GET /webhooks/dropbox`` for Dropbox's challenge
and Discord's PING answered after its signature checks out); bodies up to ``max_body``. Those generic deliveries
name no resource integd can map without provider-specific parsing, so a valid one starts a delta run of every
job of that service (a delta run with nothing new is one cheap request).

Trust model: nothing in a delivery is trusted before its signature checks out against a secret read from a file
named in the config (connectors.webhooks: GitHub HMAC-SHA256; Slack v0 with its 5-minute window; Google sends
no signature, so its ``X-Goog-Channel-Token`` must equal the token integd's channels are registered with, compared
in constant time, and ``X-Goog-Channel-ID`` must name a live channel integd registered for a Drive sync job,
integd/sync_channels.py, with the same ``X-Goog-Resource-ID``). An invalid
delivery gets 401, one warning log line naming the provider, the reason and the peer (never a secret or a
signature), and nothing is enqueued. A valid delivery's id (``X-GitHub-Delivery``, Slack's ``event_id``) is
recorded in the store (Google: channel id + ``X-Goog-Message-Number``); the same id again is a replay: 200 and
ignored. A valid delivery only ever starts a delta
run of jobs that already exist for the resource it names; it cannot create, change or read anything.

Answers: 200 ``{"ok": true, "started": [job ids]}``; 200 ``{"ok": true, "replayed": true}``; Slack's
url_verification gets ``{"challenge": ...}``; 400 for an unsigned-but-malformed request shape after the
signature passed; 401 bad signature; 404 a provider with no secret configured.
"""

from __future__ import annotations

import hmac
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog
from aiohttp import web

from connectors.webhooks import VERIFIERS, WebhookRejected, verify_github, verify_slack
from connectors.webhooks.discord import ping_answer
from connectors.webhooks.dropbox import challenge_response
from domain import Clock
from integd.config import WebhooksConfig
from integd.store.repository import AppStore

if TYPE_CHECKING:
    from integd.sync import SyncService

log = structlog.get_logger("integd.webhooks")
_SLACK_TS = re.compile(r"^[0-9]{1,12}\.[0-9]{1,6}$")
GITHUB_EVENTS = frozenset({"issues", "issue_comment", "label", "milestone"})


def read_secret(path: Path | None) -> bytes | None:
    if path is None:
        return None
    try:
        secret = path.read_bytes().strip()
    except OSError as e:
        raise ValueError(f"webhook secret file {path} cannot be read: {e.strerror}") from None
    if not secret:
        raise ValueError(f"webhook secret file {path} is empty")
    return secret


def split_bind(bind: str) -> tuple[str, int]:
    host, _, port = bind.rpartition(":")
    return host.strip("[]"), int(port)


class WebhookListener:
    """``WebhookListener(config.webhooks, sync_service, app_store, clock)``; ``await start()``; ``port``."""

    def __init__(self, config: WebhooksConfig, service: SyncService, store: AppStore, clock: Clock) -> None:
        self.config, self.service, self.store, self.clock = config, service, store, clock
        self.github_secret = read_secret(config.github_secret_file)
        self.slack_secret = read_secret(config.slack_signing_secret_file)
        self.google_token = read_secret(config.google_channel_token_file)
        unknown = sorted(set(config.secret_files) - set(VERIFIERS))
        if unknown:
            raise ValueError(f"[webhooks] secret_files names {', '.join(unknown)}, which has no signature check; "
                             f"known: {', '.join(sorted(VERIFIERS))}")
        self.secrets = {svc: read_secret(path) for svc, path in config.secret_files.items()}
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def start(self) -> None:
        app = web.Application(client_max_size=self.config.max_body)
        app.router.add_post("/webhooks/github", self.github)
        app.router.add_post("/webhooks/slack", self.slack)
        app.router.add_post("/webhooks/google", self.google)
        app.router.add_get("/webhooks/dropbox", self.dropbox_challenge)
        app.router.add_post("/webhooks/{service}", self.generic)
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=2.0)
        await runner.setup()
        host, port = split_bind(self.config.bind or "127.0.0.1:0")
        site = web.TCPSite(runner, host, port)
        try:
            await site.start()
        except OSError:
            await runner.cleanup()
            raise
        self._runner = runner
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        self.port = sockets[0].getsockname()[1] if sockets else port
        log.info("webhooks.listening", host=host, port=self.port,
                 github=self.github_secret is not None, slack=self.slack_secret is not None,
                 google=self.google_token is not None, others=sorted(self.secrets))

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    # ---- helpers ---------------------------------------------------------------------------------------------
    def _refuse(self, provider: str, request: web.Request, reason: str) -> web.Response:
        log.warning("webhook.refused", provider=provider, reason=reason, peer=request.remote)
        return web.json_response({"ok": False, "error": "invalid signature"}, status=401)

    async def _first(self, provider: str, delivery_id: str) -> bool:
        async with self.store.db.write() as conn:
            return await self.service.records.first_delivery(conn, provider, delivery_id, now=self.clock.time())

    @staticmethod
    def _json(body: bytes) -> Any:
        try:
            return json.loads(body)
        except ValueError:
            return None

    # ---- providers ---------------------------------------------------------------------------------------------
    async def github(self, request: web.Request) -> web.Response:
        if self.github_secret is None:
            return web.json_response({"ok": False, "error": "github webhooks are not configured"}, status=404)
        body = await request.read()
        reason = verify_github(self.github_secret, body, request.headers.get("X-Hub-Signature-256"))
        if reason is not None:
            return self._refuse("github", request, reason)
        delivery = request.headers.get("X-GitHub-Delivery", "")
        payload = self._json(body)
        if not delivery or not isinstance(payload, dict):
            return web.json_response({"ok": False, "error": "needs X-GitHub-Delivery and a JSON object"},
                                     status=400)
        if not await self._first("github", delivery):
            log.info("webhook.replayed", provider="github", delivery=delivery[:64])
            return web.json_response({"ok": True, "replayed": True})
        event = request.headers.get("X-GitHub-Event", "")
        repo = payload.get("repository") if isinstance(payload.get("repository"), dict) else {}
        full_name = repo.get("full_name") if isinstance(repo.get("full_name"), str) else None
        started = []
        if event in GITHUB_EVENTS and full_name:
            started = await self.service.trigger("github", full_name, reason=f"webhook:{event}")
        log.info("webhook.accepted", provider="github", github_event=event, delivery=delivery[:64],
                 started=len(started))
        return web.json_response({"ok": True, "started": started})

    async def slack(self, request: web.Request) -> web.Response:
        if self.slack_secret is None:
            return web.json_response({"ok": False, "error": "slack webhooks are not configured"}, status=404)
        body = await request.read()
        reason = verify_slack(self.slack_secret, body, request.headers.get("X-Slack-Request-Timestamp"),
                              request.headers.get("X-Slack-Signature"), now=self.clock.time())
        if reason is not None:
            return self._refuse("slack", request, reason)
        payload = self._json(body)
        if not isinstance(payload, dict):
            return web.json_response({"ok": False, "error": "needs a JSON object"}, status=400)
        if payload.get("type") == "url_verification":
            return web.json_response({"challenge": payload.get("challenge")})
        event_id = payload.get("event_id")
        event = payload.get("event") if isinstance(payload.get("event"), dict) else {}
        if not isinstance(event_id, str) or not event_id:
            return web.json_response({"ok": False, "error": "needs an event_id"}, status=400)
        if not await self._first("slack", event_id):
            log.info("webhook.replayed", provider="slack", delivery=event_id[:64])
            return web.json_response({"ok": True, "replayed": True}, headers={"X-Slack-No-Retry": "1"})
        channel = event.get("channel") if isinstance(event.get("channel"), str) else None
        edited = event.get("message") if isinstance(event.get("message"), dict) else {}
        thread = event.get("thread_ts") or edited.get("thread_ts")   # a reply, or an edited reply
        threads = [thread] if isinstance(thread, str) and _SLACK_TS.match(thread) else []
        started = await self.service.trigger("slack", channel, reason="webhook:" + str(event.get("type"))[:40],
                                             threads=threads) if channel else []
        log.info("webhook.accepted", provider="slack", slack_event=str(event.get("type"))[:40],
                 started=len(started))
        return web.json_response({"ok": True, "started": started})

    async def google(self, request: web.Request) -> web.Response:
        """Drive push notifications (changes.watch): no body, everything in X-Goog-* headers."""
        if self.google_token is None:
            return web.json_response({"ok": False, "error": "google webhooks are not configured"}, status=404)
        await request.read()
        token = request.headers.get("X-Goog-Channel-Token", "").encode()
        if not hmac.compare_digest(token, self.google_token):
            return self._refuse("google", request, "X-Goog-Channel-Token does not match"
                                if token else "no X-Goog-Channel-Token header")
        channel = request.headers.get("X-Goog-Channel-ID", "")
        number = request.headers.get("X-Goog-Message-Number", "")
        channels = self.service.channels
        job_id = await channels.job_for(channel, request.headers.get("X-Goog-Resource-ID")) \
            if channels is not None and channel else None
        job = await self.service.records.get_job(job_id) if job_id else None
        if job is None or job.service != "google_drive":
            return self._refuse("google", request, "X-Goog-Channel-ID names no live channel of a Drive sync job")
        if request.headers.get("X-Goog-Resource-State") == "sync":      # the channel's first message
            return web.json_response({"ok": True, "started": []})
        if not number.isdigit():
            return web.json_response({"ok": False, "error": "needs X-Goog-Message-Number"}, status=400)
        if not await self._first("google", f"{channel}:{number}"):
            log.info("webhook.replayed", provider="google", delivery=f"{channel[:40]}:{number[:20]}")
            return web.json_response({"ok": True, "replayed": True})
        started = await self.service.trigger("google_drive", job.resource, reason="webhook:drive",
                                             job_id=job.id)
        log.info("webhook.accepted", provider="google", started=len(started))
        return web.json_response({"ok": True, "started": started})

    async def dropbox_challenge(self, request: web.Request) -> web.Response:
        """Dropbox checks a webhook URL by GET ?challenge=X and expects X echoed as text/plain."""
        if self.secrets.get("dropbox") is None:
            return web.json_response({"ok": False, "error": "dropbox webhooks are not configured"}, status=404)
        status, text, headers = challenge_response(request.query)
        return web.Response(status=status, text=text, headers=headers)

    async def generic(self, request: web.Request) -> web.Response:
        """Any provider in VERIFIERS: verify, answer a handshake, drop replays, start its jobs' delta runs."""
        service = request.match_info["service"]
        verifier, secret = VERIFIERS.get(service), self.secrets.get(service)
        if verifier is None or secret is None:
            return web.json_response({"ok": False, "error": f"{service[:40]} webhooks are not configured"},
                                     status=404)
        body = await request.read()
        # Signatures over the URL (HubSpot v3) need the URL the provider called: the proxy's X-Forwarded-* if
        # it sent them, else what this listener saw.
        headers = {"X-Forwarded-Host": request.host, "X-Forwarded-Uri": request.path_qs,
                   "X-Forwarded-Proto": request.scheme, **request.headers}
        try:
            delivery = verifier.verify(headers, body, secret, self.clock.time())
        except WebhookRejected as e:
            return self._refuse(service, request, e.reason)
        if service == "discord":
            is_ping, answer = ping_answer(body)
            if is_ping:
                return web.json_response(answer)
        if not await self._first(service, delivery):
            log.info("webhook.replayed", provider=service, delivery=delivery[:64])
            return web.json_response({"ok": True, "replayed": True})
        started = await self.service.trigger(service, None, reason=f"webhook:{service}")
        log.info("webhook.accepted", provider=service, delivery=delivery[:64], started=len(started))
        return web.json_response({"ok": True, "started": started})
