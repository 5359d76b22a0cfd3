"""Jira Cloud admin-webhook check (reference: apis-storage-dev.md §6 "Webhooks", marked unverified there).

A webhook an admin registers with a secret is sent with ``X-Hub-Signature: sha256=<hex HMAC-SHA256(secret, raw
body)>`` (WebSub style: no ``-256`` suffix); Atlassian's "secure admin webhooks" section and the webhook helpers of
jira.js, trigger.dev and n8n agree. Webhooks registered by OAuth/Connect apps are not signed this way. Comparison
is constant-time. The delivery id is ``X-Atlassian-Webhook-Identifier`` (named in jira.js's webhook header types),
else a hash of the body: the body's ``webhookEvent`` plus ``timestamp`` is not unique (two edits in one
millisecond). Jira signs no timestamp, so ``now`` is unused.

>>> sig = signature(b"k", b"{}")
>>> VERIFIER.verify({"X-Hub-Signature": sig}, b"{}", b"k", 0.0).startswith("sha256:")
True
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

from connectors.webhooks import WebhookRejected, body_digest, header


def signature(secret: bytes, body: bytes) -> str:
    """The ``X-Hub-Signature`` value Jira sends for ``body``."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


class JiraVerifier:
    """``X-Hub-Signature: sha256=<hex>`` over the raw body with the webhook's secret."""

    def verify(self, headers: Mapping[str, str], body: bytes, secret: bytes, now: float) -> str:
        if not secret:
            raise WebhookRejected("no Jira webhook secret is configured")
        sent = header(headers, "X-Hub-Signature")
        if not sent:
            raise WebhookRejected("no X-Hub-Signature header")
        method, _, value = sent.strip().partition("=")
        if method.lower() != "sha256" or not value:
            raise WebhookRejected("X-Hub-Signature is not a sha256= signature")
        if not hmac.compare_digest(signature(secret, body).encode(), ("sha256=" + value.lower()).encode()):
            raise WebhookRejected("X-Hub-Signature does not match")
        delivery = header(headers, "X-Atlassian-Webhook-Identifier")
        return delivery.strip() if delivery and delivery.strip() else body_digest(body)


VERIFIER = JiraVerifier()
