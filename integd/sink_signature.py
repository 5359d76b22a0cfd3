"""Signing of event-sink deliveries, and the check a receiver runs. Standard library only: copy this file.

Each POST from integd to a sink carries::

    X-Integd-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + raw body)>
    X-Integd-Delivery:  <uuid4 of this POST>
    X-Integd-Sink:      <sink name>

and a body that is a JSON array of events, each with a unique ``event_id`` (and ``seq``, increasing). Delivery
is at-least-once: a receiver de-duplicates on ``event_id``.

Trust model: whoever knows the sink's secret can forge a delivery, nobody else. The timestamp is signed with
the body, so a captured request replayed later than ``tolerance`` seconds fails; inside the tolerance a replay
is a duplicate, which ``event_id`` de-duplication absorbs. Compare with :func:`hmac.compare_digest` (constant
time), and verify the raw bytes as received, before any JSON parsing.

No exceptions: :func:`verify_signature` answers True or False, so a receiver cannot leak why a forgery failed.
"""

from __future__ import annotations

import hashlib
import hmac
import time

SIGNATURE_HEADER = "X-Integd-Signature"
DELIVERY_HEADER = "X-Integd-Delivery"
SINK_HEADER = "X-Integd-Sink"


def _digest(secret: bytes, timestamp: int, body: bytes) -> str:
    return hmac.new(secret, str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()


def sign(secret: bytes, body: bytes, timestamp: int | None = None) -> str:
    """The ``X-Integd-Signature`` value for ``body``.

    Example:
        >>> sign(b"s3cret-s3cret-s3cret", b"[]", 1700000000)[:15]
        't=1700000000,v1'
    """
    t = int(time.time()) if timestamp is None else int(timestamp)
    return f"t={t},v1={_digest(secret, t, body)}"


def verify_signature(secret: bytes | str, header: str | None, body: bytes, tolerance: float = 300,
                     now: float | None = None) -> bool:
    """True when ``header`` is a valid signature of ``body`` made with ``secret`` within ``tolerance`` seconds.

    Several ``v1=`` entries are accepted (any one matching suffices), so a sender may sign with an old and a
    new secret while they rotate.

    Example:
        >>> h = sign(b"s3cret-s3cret-s3cret", b"[]", 1700000000)
        >>> verify_signature(b"s3cret-s3cret-s3cret", h, b"[]", now=1700000010)
        True
        >>> verify_signature(b"s3cret-s3cret-s3cret", h, b"[ ]", now=1700000010)
        False
    """
    key = secret.encode() if isinstance(secret, str) else secret
    if not header:
        return False
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        if name == "t" and value.isdigit():
            timestamp = int(value)
        elif name == "v1" and value:
            candidates.append(value)
    if timestamp is None or not candidates:
        return False
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance:
        return False
    expected = _digest(key, timestamp, body)
    return any(hmac.compare_digest(expected, c) for c in candidates)
