"""Dropbox webhook check and the verification challenge (reference: apis-storage-dev.md §2 "Webhooks").

A notification is a POST whose ``X-Dropbox-Signature`` is the lowercase hex HMAC-SHA256 of the raw body keyed
with the app secret; the body only names the accounts that changed (``{"list_folder": {"accounts": [...]},
"delta": {"users": [...]}}``), so the receiver runs a delta (``list_folder/continue``) for each. Dropbox sends
no delivery id and no timestamp: the id is a hash of the body, which also makes a replayed notification a
harmless duplicate (it only triggers a delta sync).

When a webhook URL is registered, Dropbox first sends ``GET <url>?challenge=XYZ`` and expects ``XYZ`` echoed
as a ``text/plain`` body with ``X-Content-Type-Options: nosniff`` (:func:`challenge_response`).

>>> sig = signature(b"app-secret", b'{"delta":{"users":[12345]}}')
>>> VERIFIER.verify({"X-Dropbox-Signature": sig}, b'{"delta":{"users":[12345]}}', b"app-secret", 0.0)[:7]
'sha256:'
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from typing import Any

from connectors.webhooks import WebhookRejected, body_digest, header

_HEX64 = re.compile(r"^[0-9a-fA-F]{64}$")
MAX_CHALLENGE = 512


def signature(secret: bytes, body: bytes) -> str:
    """``X-Dropbox-Signature`` for ``body``: hex HMAC-SHA256 keyed with the app secret."""
    return hmac.new(secret, body, hashlib.sha256).hexdigest()


class DropboxVerifier:
    """``X-Dropbox-Signature`` against the app secret; the delivery id is a hash of the body."""

    def verify(self, headers: Mapping[str, str], body: bytes, secret: bytes, now: float) -> str:
        if not secret:
            raise WebhookRejected("no Dropbox app secret is configured")
        sent = header(headers, "X-Dropbox-Signature")
        if not sent:
            raise WebhookRejected("no X-Dropbox-Signature header")
        sent = sent.strip()
        if not _HEX64.match(sent):
            raise WebhookRejected("X-Dropbox-Signature is not a hex HMAC-SHA256")
        if not hmac.compare_digest(signature(secret, body).encode(), sent.lower().encode()):
            raise WebhookRejected("X-Dropbox-Signature does not match the body")
        return body_digest(body)


def changed_accounts(body: bytes) -> list[str]:
    """The account ids a verified notification names (``list_folder.accounts``, else ``delta.users``).

    >>> changed_accounts(b'{"list_folder": {"accounts": ["dbid:AAH4"]}, "delta": {"users": [12345]}}')
    ['dbid:AAH4']
    """
    try:
        data: Any = json.loads(body)
    except ValueError:
        raise WebhookRejected("Dropbox notification body is not JSON") from None
    if not isinstance(data, dict):
        raise WebhookRejected("Dropbox notification body is not a JSON object")
    accounts = (data.get("list_folder") or {}).get("accounts") if isinstance(data.get("list_folder"), dict) else None
    if isinstance(accounts, list):
        return [str(a) for a in accounts if isinstance(a, (str, int))]
    users = (data.get("delta") or {}).get("users") if isinstance(data.get("delta"), dict) else None
    return [str(u) for u in users if isinstance(u, (str, int))] if isinstance(users, list) else []


def challenge_response(query: Mapping[str, str]) -> tuple[int, str, dict[str, str]]:
    """The answer to Dropbox's ``GET ?challenge=XYZ``: (status, body, headers).

    >>> challenge_response({"challenge": "abc123"})
    (200, 'abc123', {'Content-Type': 'text/plain', 'X-Content-Type-Options': 'nosniff'})
    >>> challenge_response({})[0]
    400
    """
    headers = {"Content-Type": "text/plain", "X-Content-Type-Options": "nosniff"}
    challenge = query.get("challenge")
    if not challenge or len(challenge) > MAX_CHALLENGE or not challenge.isprintable():
        return 400, "missing or invalid challenge parameter", headers
    return 200, challenge, headers


VERIFIER = DropboxVerifier()
