"""The one outbound HTTP edge: an aiohttp ClientSession shared by every connector, and header parsers.

Exceptions (aiohttp and asyncio errors never leave this module; each becomes an IntegrationFailure,
chained with ``raise ... from``)::

    TimeoutError (total/connect/sock_read timeouts)  -> NETWORK_ERROR        "timed out after 30s"
    ClientConnectorError, ClientOSError (refused,     -> NETWORK_ERROR        "connection failed"
      reset, DNS), ServerDisconnectedError
    ClientPayloadError, body over the size cap        -> SERVICE_UNAVAILABLE  "truncated"/"too large"
    InvalidURL, bad URL given by configuration        -> INVALID_CONFIGURATION
    any other aiohttp.ClientError                     -> NETWORK_ERROR

Trust model: messages name the method, host and path only, never a header, a query value or a body, so
a secret in a query string or the Authorization header cannot reach a log line. Cookies are never kept
(``DummyCookieJar``): the session is shared by every app, and a cookie set for one user's credential must
not ride along on another's request. Redirects are followed only within the same origin (scheme, host,
port); a redirect elsewhere is handed back as the 3xx response rather than followed with the credential.

>>> parse_retry_after("120", now=0.0)
120.0
>>> parse_link_header('<https://api.github.com/user/repos?page=2>; rel="next"')["next"]
'https://api.github.com/user/repos?page=2'
"""

from __future__ import annotations

import asyncio
import email.utils
import ipaddress
import re
import time
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
from pydantic_core import from_json

from domain.errors import IntegrationError, IntegrationFailure

MAX_BODY = 10 * 1024 * 1024
MAX_REDIRECTS = 5
_CHUNK = 64 * 1024


@dataclass(frozen=True)
class RawResponse:
    """What came back, undecoded. Header names are lower-case; repeated headers are joined with ", "."""

    status: int
    headers: dict[str, str]
    body: bytes
    latency: float


class HttpTransport:
    """One per daemon: wraps ONE aiohttp.ClientSession, created lazily inside the running loop.

    >>> transport = HttpTransport()
    >>> raw = await transport.send("GET", "https://api.github.com/user", params=None, json=None,
    ...                            headers={"Authorization": "Bearer ..."}, timeout=30.0)   # doctest: +SKIP
    >>> await transport.close()                                                            # doctest: +SKIP
    """

    def __init__(self, *, user_agent: str = "integd/0.1", connector_limit: int = 100,
                 max_body: int = MAX_BODY) -> None:
        if connector_limit < 1 or max_body < 1:
            raise ValueError("connector_limit and max_body must be positive")
        self._user_agent = user_agent
        self._limit = connector_limit
        self._max_body = max_body
        self._session: aiohttp.ClientSession | None = None

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._limit),
                cookie_jar=aiohttp.DummyCookieJar(),
                headers={"User-Agent": self._user_agent},
                timeout=aiohttp.ClientTimeout(total=None),   # every request passes its own
            )
        return self._session

    async def send(self, method: str, url: str, *, params: Sequence[tuple[str, str]] | None = None,
                   json: Any = None, headers: Mapping[str, str] | None = None,
                   timeout: float = 30.0, data: bytes | None = None) -> RawResponse:
        """Send one request (following same-origin redirects) and read the whole body.

        ``data`` is a ready body (OAuth's form-encoded token requests); the caller sets its Content-Type.
        """
        if timeout <= 0:
            raise IntegrationFailure(IntegrationError.INVALID_CONFIGURATION, "timeout must be positive")
        target = parse_url(url)
        started = time.monotonic()
        client_timeout = aiohttp.ClientTimeout(total=timeout, connect=min(10.0, timeout))
        try:
            async with asyncio.timeout(timeout):
                return await self._follow(method, target, params, json, dict(headers or {}),
                                          client_timeout, started, data)
        except IntegrationFailure:
            raise
        except TimeoutError as exc:
            raise IntegrationFailure(IntegrationError.NETWORK_ERROR,
                                     f"{_where(method, target)}: timed out after {timeout:g}s") from exc
        except aiohttp.ClientPayloadError as exc:
            raise IntegrationFailure(IntegrationError.SERVICE_UNAVAILABLE,
                                     f"{_where(method, target)}: response body truncated or malformed") from exc
        except (aiohttp.InvalidURL, ValueError) as exc:     # yarl refuses what urlsplit let through
            raise IntegrationFailure(IntegrationError.INVALID_CONFIGURATION,
                                     f"invalid URL for {_where(method, target)}") from exc
        except aiohttp.ServerDisconnectedError as exc:
            raise IntegrationFailure(IntegrationError.NETWORK_ERROR,
                                     f"{_where(method, target)}: server closed the connection") from exc
        except aiohttp.ClientConnectorError as exc:
            raise IntegrationFailure(IntegrationError.NETWORK_ERROR,
                                     f"{_where(method, target)}: connection failed ({_os_reason(exc)})") from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise IntegrationFailure(IntegrationError.NETWORK_ERROR,
                                     f"{_where(method, target)}: {type(exc).__name__}") from exc

    async def _follow(self, method: str, target: Target, params: Any, json: Any, headers: dict[str, str],
                      client_timeout: aiohttp.ClientTimeout, started: float,
                      data: bytes | None = None) -> RawResponse:
        session = self._get_session()
        for _ in range(MAX_REDIRECTS + 1):
            async with session.request(method, target.geturl(), params=params, json=json, data=data,
                                       headers=headers, timeout=client_timeout, allow_redirects=False) as resp:
                location = resp.headers.get("Location")
                if resp.status in (301, 302, 303, 307, 308) and location:
                    nxt = parse_url(urllib.parse.urljoin(target.geturl(), location))
                    if origin(nxt) == origin(target):
                        if resp.status == 303 or (resp.status in (301, 302) and method not in ("GET", "HEAD")):
                            method, json, data = "GET", None, None
                        target, params = nxt, None    # the Location carries its own query
                        continue
                body = await self._read(resp, method, target)
                return RawResponse(resp.status, _flatten(resp.headers), body, time.monotonic() - started)
        raise IntegrationFailure(IntegrationError.SERVICE_UNAVAILABLE,
                                 f"{_where(method, target)}: more than {MAX_REDIRECTS} redirects")

    async def _read(self, resp: aiohttp.ClientResponse, method: str, target: Target) -> bytes:
        too_large = IntegrationFailure(IntegrationError.SERVICE_UNAVAILABLE,
                                       f"{_where(method, target)}: response too large "
                                       f"(over {self._max_body} bytes)", status=resp.status)
        if resp.content_length is not None and resp.content_length > self._max_body:
            raise too_large
        chunks, size = [], 0
        async for chunk in resp.content.iter_chunked(_CHUNK):
            size += len(chunk)
            if size > self._max_body:
                raise too_large
            chunks.append(chunk)
        return b"".join(chunks)

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None


Target = urllib.parse.SplitResult
_DEFAULT_PORTS = {"http": 80, "https": 443}


def parse_url(url: str) -> Target:
    """A checked absolute http(s) URL (``port`` is read here, so a bad port fails here too)."""
    try:
        target = urllib.parse.urlsplit(url) if isinstance(url, str) else None
        port = target.port if target is not None else None
    except ValueError as exc:
        raise _config("invalid URL (bad port or malformed host)") from exc
    if target is None or target.scheme not in ("http", "https") or not target.hostname:
        raise _config("URL must be absolute http(s) with a host")
    if port is not None and not 0 < port < 65536:
        raise _config("URL port must be between 1 and 65535")
    return target


def origin(u: Target) -> tuple[str, str | None, int | None]:
    return (u.scheme, u.hostname, u.port or _DEFAULT_PORTS.get(u.scheme))


def _where(method: str, target: Target) -> str:
    port = f":{target.port}" if target.port and target.port != _DEFAULT_PORTS.get(target.scheme) else ""
    return f"{method} {target.hostname}{port}{target.path or '/'}"


def _os_reason(exc: aiohttp.ClientConnectorError) -> str:
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return "name not resolved"
    err = exc.os_error
    if isinstance(err, ConnectionRefusedError):
        return "connection refused"
    if err is None:
        return "unreachable"
    return err.strerror or type(err).__name__


def _flatten(headers: Any) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in headers.items():
        key = name.lower()
        out[key] = f"{out[key]}, {value}" if key in out else value
    return out


def _config(message: str) -> IntegrationFailure:
    return IntegrationFailure(IntegrationError.INVALID_CONFIGURATION, message)


def decode_body(raw: RawResponse) -> Any:
    """Parsed JSON when the answer is JSON, else text; None for an empty body."""
    if not raw.body:
        return None
    if "json" in raw.headers.get("content-type", "") or raw.body.lstrip()[:1] in (b"{", b"["):
        try:
            # pydantic-core's parser reads the bytes directly: about twice as fast as decode + json.loads on the
            # 100 KB pages a sync pulls (bench/bench_sync.py).
            return from_json(raw.body)
        except ValueError:
            pass
    return raw.body.decode("utf-8", errors="replace")


def normalize_base_url(url: Any) -> str:
    """An absolute http(s) base URL without query, fragment or credentials; http only for loopback."""
    try:
        u = parse_url(url)
    except IntegrationFailure as exc:
        raise _config("base URL must be an absolute http(s) URL") from exc
    if u.username is not None or u.password is not None or u.query or u.fragment:
        raise _config(f"base URL for {u.hostname} must not carry credentials, a query or a fragment")
    if u.scheme == "http" and not _is_loopback(u.hostname or ""):
        raise _config(f"base URL for {u.hostname} must use https (plain http is only allowed for loopback hosts)")
    return urllib.parse.urlunsplit((u.scheme, u.netloc.lower(), u.path, "", "")).rstrip("/")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


# ---- header parsers shared by every dialect ------------------------------------------------------------

def parse_retry_after(value: str | None, *, now: float) -> float | None:
    """Seconds to wait from a Retry-After value: delay-seconds first, then an HTTP-date (RFC 9110 §10.2.3).

    Malformed values are ignored (None), as the RateLimit draft tells clients to do. Fractional seconds
    (Microsoft Graph sends ``2.128``) are accepted.

    >>> parse_retry_after("Thu, 01 Jan 1970 00:01:40 GMT", now=40.0)
    60.0
    >>> parse_retry_after("soon", now=0.0) is None
    True
    """
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None or when.tzinfo is None:
            return None
        return max(0.0, when.timestamp() - now)
    return seconds if seconds >= 0 and seconds == seconds and seconds != float("inf") else None


def parse_int(value: str | None) -> int | None:
    """An integer header value, or None if absent or malformed."""
    if value is None:
        return None
    try:
        return int(value.strip())
    except ValueError:
        try:
            f = float(value.strip())
        except ValueError:
            return None
        return int(f) if f == f and abs(f) != float("inf") else None


def parse_float(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        f = float(value.strip())
    except ValueError:
        return None
    return f if f == f and abs(f) != float("inf") else None


_LINK_RE = re.compile(r'<([^>]*)>\s*((?:;\s*[^;,]+)*)')
_REL_RE = re.compile(r'rel\s*=\s*"?([^";]+)"?', re.IGNORECASE)


def parse_link_header(value: str | None) -> dict[str, str]:
    """``rel -> url`` from an RFC 8288 Link header (GitHub, GitLab and some SendGrid endpoints)."""
    links: dict[str, str] = {}
    if not value:
        return links
    for m in _LINK_RE.finditer(value):
        rel = _REL_RE.search(m.group(2) or "")
        if rel:
            for name in rel.group(1).split():
                links.setdefault(name.lower(), m.group(1))
    return links
