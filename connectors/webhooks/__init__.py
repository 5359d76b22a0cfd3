"""Webhook signature checks, pure functions (no I/O), and the per-provider registry ``VERIFIERS``.

Two layers live here:

- the original helpers (GitHub HMAC-SHA256 and Slack's v0 signing secret), which return None when a delivery
  is authentic, else the reason; ``integd.sync_webhooks`` uses them;
- ``VERIFIERS: dict[str, Verifier]``, one per provider that signs its deliveries (issue 7), each module
  ``connectors/webhooks/<service>.py`` exporting ``VERIFIER``. A Verifier's
  ``verify(headers, body, secret, now) -> str`` returns the delivery id (or a content hash when the provider
  sends none) and raises ``WebhookRejected(reason)`` otherwise.

Exceptions::

    ValueError
     └── WebhookRejected     bad or missing signature/token, stale timestamp; the reason never holds the secret
                             or the expected signature

References: apis-storage-dev.md §4 "Webhooks" (``X-Hub-Signature-256: sha256=<hex HMAC-SHA256(secret, raw
body)>``, with the vendor test vector) and apis-messaging.md §4 "Events API" (``X-Slack-Signature:
v0=<hex HMAC-SHA256(signing secret, "v0:{timestamp}:{raw body}")>``, reject when |now - timestamp| > 300 s).
Comparisons are constant-time.

>>> github_signature(b"It's a Secret to Everybody", b"Hello, World!")
'sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17'
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Protocol


class WebhookRejected(ValueError):
    """A delivery that is not authentic (or is stale); ``reason`` is safe to log."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Verifier(Protocol):
    """One provider's delivery check."""

    def verify(self, headers: Mapping[str, str], body: bytes, secret: bytes, now: float) -> str:
        """The delivery id (or a content hash); raises WebhookRejected."""


def header(headers: Mapping[str, str], name: str) -> str | None:
    """A header by case-insensitive name (webhook listeners hand over plain dicts as often as CIMultiDicts)."""
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return value
    return None


def body_digest(body: bytes) -> str:
    """The delivery id of a provider that sends none: a hash of the raw body."""
    return "sha256:" + hashlib.sha256(body).hexdigest()



SLACK_WINDOW = 300.0


def github_signature(secret: bytes, body: bytes) -> str:
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def verify_github(secret: bytes, body: bytes, header: str | None) -> str | None:
    """Check ``X-Hub-Signature-256``; None if authentic, else why not."""
    if not header:
        return "no X-Hub-Signature-256 header"
    if not header.startswith("sha256="):
        return "X-Hub-Signature-256 is not a sha256= signature"
    if not hmac.compare_digest(github_signature(secret, body).encode(), header.strip().encode()):
        return "signature does not match"
    return None


def slack_signature(secret: bytes, timestamp: str, body: bytes) -> str:
    base = b"v0:" + timestamp.encode() + b":" + body
    return "v0=" + hmac.new(secret, base, hashlib.sha256).hexdigest()


def verify_slack(secret: bytes, body: bytes, timestamp: str | None, header: str | None, *, now: float,
                 window: float = SLACK_WINDOW) -> str | None:
    """Check ``X-Slack-Signature`` and ``X-Slack-Request-Timestamp`` (5-minute replay window)."""
    if not timestamp or not header:
        return "no X-Slack-Signature or X-Slack-Request-Timestamp header"
    try:
        sent = int(timestamp)
    except ValueError:
        return "X-Slack-Request-Timestamp is not a number"
    if abs(now - sent) > window:
        return f"timestamp is {abs(now - sent):.0f}s away from now (window {window:.0f}s)"
    if not hmac.compare_digest(slack_signature(secret, timestamp, body).encode(), header.strip().encode()):
        return "signature does not match"
    return None


def _registry() -> dict[str, Verifier]:
    # imported here, after the helpers above exist: the provider modules import them from this package
    from connectors.webhooks import discord, dropbox, gitlab, hubspot, jira, pipedrive

    return {"gitlab": gitlab.VERIFIER, "jira": jira.VERIFIER, "dropbox": dropbox.VERIFIER,
            "discord": discord.VERIFIER, "pipedrive": pipedrive.VERIFIER, "hubspot": hubspot.VERIFIER}


VERIFIERS: dict[str, Verifier] = _registry()
