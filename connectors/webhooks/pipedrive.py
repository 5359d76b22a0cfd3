"""Pipedrive webhook check (reference: apis-crm.md §3.10 "Webhooks").

Pipedrive signs nothing: a webhook created with ``http_auth_user`` / ``http_auth_password`` is delivered with
HTTP Basic auth, so the check is that ``Authorization: Basic base64(user:password)`` equals the configured
``secret`` (the bytes ``b"user:password"``), compared in constant time. There is no delivery id header; the
v2 payload's ``meta`` names the webhook, object and time, but which of its keys are stable across retries is
unverified, so the id is a hash of the body with ``meta.attempt`` (a retry counter, if present) left out: a
retried delivery keeps its id. A body that is not a JSON object is hashed as it is.

>>> VERIFIER.verify({"Authorization": "Basic dXNlcjpwdw=="}, b"{}", b"user:pw", 0.0)[:7]
'sha256:'
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Mapping

from connectors.webhooks import WebhookRejected, body_digest, header


def basic_header(user: str, password: str) -> str:
    """The header Pipedrive sends: ``basic_header("u", "p") == "Basic dTpw"``."""
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def delivery_id(body: bytes) -> str:
    """``sha256:<hex>`` of the canonical payload without ``meta.attempt`` (else of the raw body)."""
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return body_digest(body)
    if not isinstance(payload, dict):
        return body_digest(body)
    meta = payload.get("meta")
    if isinstance(meta, dict) and "attempt" in meta:
        payload = {**payload, "meta": {k: v for k, v in meta.items() if k != "attempt"}}
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
    return "sha256:" + hashlib.sha256(canonical).hexdigest()


class PipedriveVerifier:
    """HTTP Basic credentials equal to the webhook's configured ``user:password``."""

    def verify(self, headers: Mapping[str, str], body: bytes, secret: bytes, now: float) -> str:
        if not secret or b":" not in secret:
            raise WebhookRejected("no Pipedrive webhook credentials are configured (expected 'user:password')")
        given = header(headers, "Authorization")
        if not given:
            raise WebhookRejected("no Authorization header (Pipedrive sends HTTP Basic auth)")
        scheme, _, value = given.strip().partition(" ")
        if scheme.lower() != "basic" or not value.strip():
            raise WebhookRejected("Authorization is not HTTP Basic")
        try:
            decoded = base64.b64decode(value.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise WebhookRejected("Authorization Basic value is not base64") from None
        if not hmac.compare_digest(decoded, secret):
            raise WebhookRejected("HTTP Basic credentials do not match the webhook's")
        return delivery_id(body)


VERIFIER = PipedriveVerifier()
