"""Webhook signature checks, pure functions (no I/O): GitHub HMAC-SHA256 and Slack's v0 signing secret.

References: apis-storage-dev.md §4 "Webhooks" (``X-Hub-Signature-256: sha256=<hex HMAC-SHA256(secret, raw
body)>``, with the vendor test vector) and apis-messaging.md §4 "Events API" (``X-Slack-Signature:
v0=<hex HMAC-SHA256(signing secret, "v0:{timestamp}:{raw body}")>``, reject when |now - timestamp| > 300 s).
Comparisons are constant-time. Each function returns None when the delivery is authentic, else the reason
(for a warning log line: it never contains the secret or the expected signature).

>>> github_signature(b"It's a Secret to Everybody", b"Hello, World!")
'sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17'
"""

from __future__ import annotations

import hashlib
import hmac

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
