"""Drive push notifications in the Google emulator: `changes.watch` channels and their deliveries
(reference: apis-storage-dev.md §1 "Webhooks (push notifications)").

`GoogleEmulator` owns one `PushChannels` (``emu.push``) and answers the two endpoints with it::

    POST /drive/v3/changes/watch?pageToken=N   {"id", "type": "web_hook", "address", "token"?, "expiration"?}
                                               -> 200 {"kind": "api#channel", "id", "resourceId", "resourceUri",
                                                       "token"?, "expiration": "<epoch ms>"}
    POST /drive/v3/channels/stop               {"id", "resourceId"} -> 204; unknown channel -> 404

Every entry in a watched account's Drive change log (`Drive.record`) schedules one notification per live
channel of that account: an empty-bodied POST to the channel's address with `X-Goog-Channel-ID`,
`X-Goog-Channel-Token` (only when one was registered), `X-Goog-Channel-Expiration` (RFC 1123),
`X-Goog-Resource-ID`, `X-Goog-Resource-URI`, `X-Goog-Resource-State` (`sync` for message 1 right after the
watch, then `change`) and `X-Goog-Message-Number` (strictly increasing per channel). Each channel has its own
queue and worker task, so message N+1 never overtakes message N. A failed delivery (connection error, timeout,
500/502/503/504) is retried after each of `retry_delays`; then, or at once for any other non-2xx answer, it is
logged at warning (logger "emulator.google") and dropped. `delivered` records every attempt's outcome and
`await drain()` waits until everything scheduled so far is settled, so tests never sleep.

Errors of this module::

    Exception
     └── ChannelError       a refused watch or stop: HTTP status, Google reason, field; google.py turns it into
                            Google's error envelope. Messages name the field, never a token or an address.

Trust model: whoever holds a Drive token may make the emulator POST to any https address, or to an http one on a
loopback host (tests, `integd demo`); that is why the emulator itself binds loopback only by default. A delivery
carries no change data, only the channel's own token back to its owner; log lines show the address's scheme and
host, never its path, query or the token.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import structlog

log = structlog.get_logger("emulator.google")

MAX_LIFETIME_MS = 604_800_000          # ~1 week for the changes resource; longer or absent is capped to it
ID_PATTERN = re.compile(r"[A-Za-z0-9_\-+/=.:@]{1,64}")   # emulator's rule: the reference gives no charset
MAX_TOKEN = 256                         # Google's documented token limit [unverified]
MAX_ADDRESS = 2048
RETRYABLE = frozenset({500, 502, 503, 504})   # Google retries these with backoff [unverified: push guide]
LOOPBACK_NAMES = frozenset({"localhost"})
USER_AGENT = "APIs-Google (+https://developers.google.com/webmasters/APIs-Google.html)"   # [unverified]


class ChannelError(Exception):
    """A refused watch or stop. Example: ``ChannelError(400, "Required parameter: id", "required", "id")``."""

    def __init__(self, status: int, message: str, reason: str, location: str | None = None,
                 domain: str = "global") -> None:
        super().__init__(message)
        self.status, self.message, self.reason, self.location, self.domain = status, message, reason, location, domain

    @property
    def where(self) -> dict[str, str]:
        """Google's `location`/`locationType` pair for the error item (empty when no field is at fault)."""
        return {"location": self.location, "locationType": "parameter"} if self.location else {}


def _invalid(name: str, detail: str = "") -> ChannelError:
    return ChannelError(400, f"Invalid value for {name}" + (f": {detail}" if detail else ""), "invalid", name)


def _required(name: str) -> ChannelError:
    return ChannelError(400, f"Required parameter: {name}", "required", name)


def _channel_id(body: dict[str, Any]) -> str:
    value = body.get("id")
    if value is None or value == "":
        raise _required("id")
    if not isinstance(value, str) or not ID_PATTERN.fullmatch(value):
        raise _invalid("id", "1-64 characters of letters, digits and -_+/=.:@")
    return value


def is_loopback(host: str) -> bool:
    """True for `localhost` and loopback IP literals (127.0.0.0/8, ::1)."""
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_address(value: object) -> str:
    """The receiving URL if Google (or, for loopback http, the emulator) would deliver to it; else ChannelError."""
    if value is None or value == "":
        raise _required("address")
    if not isinstance(value, str) or len(value) > MAX_ADDRESS or any(c.isspace() or not c.isprintable()
                                                                      for c in value):
        raise _invalid("address")
    try:
        parts = urlsplit(value)
        host = parts.hostname or ""
        parts.port  # noqa: B018 - parsing the port raises ValueError for a bad one
    except ValueError:
        raise _invalid("address") from None
    if not host or parts.scheme not in ("https", "http"):
        raise _invalid("address", "an absolute https URL")
    if parts.scheme == "http" and not is_loopback(host):
        # Google's wording and reason [unverified]; http on a loopback host is the emulator's allowance
        raise ChannelError(400, "WebHook callback must be HTTPS", "webhookUrlNotHttps", "address", domain="push")
    return value


def check_token(value: object) -> str | None:
    """The opaque channel token (echoed in every notification), None when absent."""
    if value is None:
        return None
    if not isinstance(value, str) or not value or len(value) > MAX_TOKEN or \
            any(not c.isprintable() for c in value):
        raise _invalid("token", f"1-{MAX_TOKEN} printable characters")
    return value


def expiration_ms(value: object, now: float) -> int:
    """The channel's expiry in epoch ms: the requested one, capped to now + one week (also when absent)."""
    cap = int(now * 1000) + MAX_LIFETIME_MS
    if value is None:
        return cap
    if isinstance(value, bool) or not isinstance(value, (int, str)) or (isinstance(value, str)
                                                                         and not value.isdigit()):
        raise _invalid("expiration", "epoch milliseconds")
    wanted = int(value)
    if wanted <= now * 1000:     # emulator behaviour: the reference does not say what Google does
        raise _invalid("expiration", "must be in the future")
    return min(wanted, cap)


def resource_id(email: str) -> str:
    """A stable opaque id of one account's changes resource (the same for every channel on it)."""
    return hashlib.sha256(f"drive-changes\x1f{email}".encode()).hexdigest()[:27]


@dataclass(eq=False)
class Channel:
    """One registered channel and its delivery queue (message number, state) served by its own worker."""

    id: str
    email: str
    resource_id: str
    resource_uri: str
    address: str
    token: str | None
    expiration: int                     # epoch ms
    number: int = 0                     # the last message number scheduled
    stopped: bool = False
    queue: asyncio.Queue[tuple[int, str] | None] = field(default_factory=asyncio.Queue, repr=False)

    def live(self, now: float) -> bool:
        return not self.stopped and now * 1000 < self.expiration

    def resource(self) -> dict[str, Any]:
        """Google's Channel resource, as `changes.watch` answers it."""
        body = {"kind": "api#channel", "id": self.id, "resourceId": self.resource_id,
                "resourceUri": self.resource_uri, "expiration": str(self.expiration)}
        if self.token is not None:
            body["token"] = self.token
        return body

    def headers(self, number: int, state: str) -> dict[str, str]:
        headers = {"X-Goog-Channel-ID": self.id,
                   "X-Goog-Channel-Expiration": formatdate(self.expiration / 1000, usegmt=True),
                   "X-Goog-Resource-ID": self.resource_id, "X-Goog-Resource-URI": self.resource_uri,
                   "X-Goog-Resource-State": state, "X-Goog-Message-Number": str(number)}
        if self.token is not None:
            headers["X-Goog-Channel-Token"] = self.token
        return headers

    def schedule(self, state: str) -> None:
        self.number += 1
        self.queue.put_nowait((self.number, state))


def shown(address: str) -> str:
    """The part of an address a log line may show: scheme and host, no path, query or credentials."""
    parts = urlsplit(address)
    return f"{parts.scheme}://{parts.hostname or ''}"


class PushChannels:
    """The emulator's push channels, per account email, and their deliveries.

    Example::

        push = PushChannels(clock=time.time)
        channel = push.register("ada@example.com", {"id": "c1", "type": "web_hook",
                                                    "address": "http://127.0.0.1:8787/hook"}, resource_uri)
        push.changed("ada@example.com")       # schedules message 2, state "change"
        await push.drain()                    # both delivered (or failed and logged)
        push.stop("ada@example.com", {"id": "c1", "resourceId": channel.resource_id})
        await push.close()
    """

    def __init__(self, clock: Callable[[], float], *, retry_delays: tuple[float, ...] = (0.05, 0.1, 0.2),
                 timeout: float = 10.0) -> None:
        self.clock = clock
        self.retry_delays = retry_delays      # seconds before each retry of a retryable failure
        self.timeout = timeout                # per delivery attempt
        self.delivered: list[dict[str, Any]] = []   # {"channel", "number", "state", "status", "attempts"}
        self._channels: dict[str, dict[str, Channel]] = {}   # email -> channel id -> channel
        self._workers: dict[Channel, asyncio.Task[None]] = {}
        self._session: aiohttp.ClientSession | None = None

    def channels(self, email: str) -> list[Channel]:
        """The live channels of one account (expired ones are retired on the way)."""
        self._retire_expired()
        return list(self._channels.get(email, {}).values())

    def register(self, email: str, body: dict[str, Any], resource_uri: str) -> Channel:
        """Open a channel from a `changes.watch` body and schedule its `sync` message; ChannelError if refused.

        Must run inside the event loop (the channel's worker task starts here).
        """
        channel_id = _channel_id(body)
        kind = body.get("type")
        if kind is None or kind == "":
            raise _required("type")
        if kind != "web_hook":
            raise _invalid("type", "only web_hook is supported")
        address = check_address(body.get("address"))
        token = check_token(body.get("token"))
        now = self.clock()
        expiration = expiration_ms(body.get("expiration"), now)
        self._retire_expired()
        if any(channel_id in by_id for by_id in self._channels.values()):
            # emulator behaviour: the reference does not say how Google answers a live duplicate id
            raise ChannelError(400, f"Channel id {channel_id} not unique", "channelIdNotUnique", "id")
        channel = Channel(channel_id, email, resource_id(email), resource_uri, address, token, expiration)
        self._channels.setdefault(email, {})[channel_id] = channel
        self._workers[channel] = asyncio.get_running_loop().create_task(self._work(channel))
        channel.schedule("sync")
        return channel

    def stop(self, email: str, body: dict[str, Any]) -> None:
        """`channels.stop`: nothing more is delivered on the channel (queued messages are dropped too)."""
        channel_id = _channel_id(body)
        wanted = body.get("resourceId")
        if wanted is None or wanted == "":
            raise _required("resourceId")
        self._retire_expired()
        channel = self._channels.get(email, {}).get(channel_id)
        if channel is None or not isinstance(wanted, str) or wanted != channel.resource_id:
            raise ChannelError(404, f"Channel '{channel_id}' not found for project", "notFound")
        self._retire(channel)

    def changed(self, email: str) -> None:
        """The account's change log grew: schedule a `change` message on each of its live channels."""
        for channel in self.channels(email):
            channel.schedule("change")

    async def drain(self) -> None:
        """Wait until every message scheduled so far is delivered, retried out or dropped."""
        await asyncio.gather(*(channel.queue.join() for channel in list(self._workers)))

    async def close(self) -> None:
        """Cancel the workers (undelivered messages are lost) and close the HTTP session; safe to call twice."""
        workers, self._workers = self._workers, {}
        self._channels.clear()
        for task in workers.values():
            task.cancel()
        await asyncio.gather(*workers.values(), return_exceptions=True)
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    # --- internals -------------------------------------------------------------------------------

    def _retire(self, channel: Channel) -> None:
        """Take a channel out of the registry; its worker skips what is queued, then ends."""
        channel.stopped = True
        self._channels.get(channel.email, {}).pop(channel.id, None)
        channel.queue.put_nowait(None)

    def _retire_expired(self) -> None:
        now = self.clock()
        for by_id in list(self._channels.values()):
            for channel in [c for c in by_id.values() if not c.live(now)]:
                self._retire(channel)

    async def _work(self, channel: Channel) -> None:
        try:
            while True:
                item = await channel.queue.get()
                try:
                    if item is None:
                        return
                    if channel.live(self.clock()):
                        await self._deliver(channel, *item)
                except Exception:   # a bug here must not wedge drain(): log it and serve the next message
                    log.exception("push.worker_failed", channel=channel.id)
                finally:
                    channel.queue.task_done()
        finally:
            self._workers.pop(channel, None)

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(headers={"User-Agent": USER_AGENT})
        return self._session

    async def _deliver(self, channel: Channel, number: int, state: str) -> None:
        headers = channel.headers(number, state)
        status, error, attempts = 0, "", 0
        for delay in (0.0, *self.retry_delays):
            if delay:
                await asyncio.sleep(delay)     # Google's backoff between tries
                if not channel.live(self.clock()):
                    break
            attempts += 1
            status, error = await self._post(channel.address, headers)
            if 200 <= status < 300 or (status and status not in RETRYABLE):
                break
        self.delivered.append({"channel": channel.id, "number": number, "state": state, "status": status,
                               "attempts": attempts})
        if not 200 <= status < 300:
            log.warning("push.delivery_failed", channel=channel.id, number=number, state=state,
                        address=shown(channel.address), status=status, error=error or None, attempts=attempts)

    async def _post(self, address: str, headers: dict[str, str]) -> tuple[int, str]:
        """One attempt: (status, "") or (0, the error's class name) when no answer came."""
        try:
            async with self._http().post(address, data=b"", headers=headers, allow_redirects=False,
                                         timeout=aiohttp.ClientTimeout(total=self.timeout)) as resp:
                await resp.read()
                return resp.status, ""
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            return 0, type(exc).__name__
