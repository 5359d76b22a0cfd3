"""Discord interaction and Webhook Event signatures: Ed25519 (reference: apis-messaging.md §6 "Real-time").

Discord signs ``X-Signature-Timestamp + raw body`` with the application's Ed25519 key and sends the hex
signature in ``X-Signature-Ed25519``; the receiver checks it with the application's hex **public** key (that
is the ``secret`` argument here: 64 hex characters, or the 32 raw bytes). A bad signature must get 401, and
Discord deliberately sends some to test the endpoint. PING is ``{"type": 1}`` for interactions (answer
``{"type": 1}``) and ``{"type": 0}`` for Webhook Events (answer 204).

No timestamp tolerance is documented [unverified], so the window is ours: a delivery more than ``window``
seconds (default 300) away from now is refused as a replay; the signature covers the timestamp, so it cannot be
refreshed by an attacker. The delivery id is the interaction's (or event's) ``id``, else a hash of the body.

>>> from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
>>> key = Ed25519PrivateKey.from_private_bytes(bytes(32))
>>> headers = sign(key, b'{"id":"42","type":1}', "1700000000")
>>> VERIFIER.verify(headers, b'{"id":"42","type":1}', public_key_hex(key).encode(), 1_700_000_010.0)
'42'
"""

from __future__ import annotations

import binascii
import json
from collections.abc import Mapping
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from connectors.webhooks import WebhookRejected, body_digest, header

WINDOW = 300.0


def public_key_hex(key: Ed25519PrivateKey) -> str:
    """The application public key as the Developer Portal shows it (hex)."""
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex()


def sign(key: Ed25519PrivateKey, body: bytes, timestamp: str) -> dict[str, str]:
    """The two headers Discord sends with ``body`` (for emulators and tests)."""
    return {"X-Signature-Ed25519": key.sign(timestamp.encode() + body).hex(), "X-Signature-Timestamp": timestamp}


def load_public_key(secret: bytes) -> Ed25519PublicKey:
    """The public key from 64 hex characters or 32 raw bytes; WebhookRejected if it is neither."""
    raw = secret.strip()
    if len(raw) == 64:
        try:
            raw = binascii.unhexlify(raw)
        except (binascii.Error, ValueError):
            raise WebhookRejected("the Discord public key is not 64 hex characters") from None
    if len(raw) != 32:
        raise WebhookRejected("the Discord public key must be 64 hex characters (32 bytes)")
    return Ed25519PublicKey.from_public_bytes(raw)


class DiscordVerifier:
    """Ed25519 over timestamp + body, and a replay window on the timestamp."""

    def __init__(self, window: float = WINDOW) -> None:
        self.window = window

    def verify(self, headers: Mapping[str, str], body: bytes, secret: bytes, now: float) -> str:
        if not secret:
            raise WebhookRejected("no Discord application public key is configured")
        key = load_public_key(secret)
        sig_hex, timestamp = header(headers, "X-Signature-Ed25519"), header(headers, "X-Signature-Timestamp")
        if not sig_hex or not timestamp:
            raise WebhookRejected("no X-Signature-Ed25519 or X-Signature-Timestamp header")
        try:
            sent_at = float(timestamp)
            sig = binascii.unhexlify(sig_hex.strip())
        except (ValueError, binascii.Error):
            raise WebhookRejected("X-Signature-Timestamp or X-Signature-Ed25519 is malformed") from None
        try:
            key.verify(sig, timestamp.encode() + body)
        except InvalidSignature:
            raise WebhookRejected("X-Signature-Ed25519 does not match") from None
        if abs(now - sent_at) > self.window:
            raise WebhookRejected(f"timestamp is {abs(now - sent_at):.0f}s away from now "
                                  f"(window {self.window:.0f}s)")
        return _delivery_id(body)


def _delivery_id(body: bytes) -> str:
    try:
        data: Any = json.loads(body)
    except ValueError:
        return body_digest(body)
    ident = data.get("id") if isinstance(data, dict) else None
    return str(ident) if isinstance(ident, (str, int)) and str(ident) else body_digest(body)


def ping_answer(body: bytes, kind: str = "interaction") -> tuple[bool, dict[str, Any] | None]:
    """Whether a verified delivery is a PING, and the answer it needs (None: HTTP 204 with no body).

    ``kind`` says which endpoint received it: ``"interaction"`` (PING is type 1, answer PONG ``{"type": 1}``)
    or ``"event"`` (Webhook Events: PING is type 0, answer 204; type 1 is an event there).

    >>> ping_answer(b'{"type": 1, "version": 1, "token": "t"}')
    (True, {'type': 1})
    >>> ping_answer(b'{"version": 1, "type": 0}', kind="event")
    (True, None)
    """
    if kind not in ("interaction", "event"):
        raise ValueError("kind must be 'interaction' or 'event'")
    try:
        data = json.loads(body)
    except ValueError:
        return False, None
    if not isinstance(data, dict):
        return False, None
    if kind == "interaction":
        return (True, {"type": 1}) if data.get("type") == 1 else (False, None)
    return data.get("type") == 0, None


VERIFIER = DiscordVerifier()
