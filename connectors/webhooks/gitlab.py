"""GitLab webhook check (reference: apis-storage-dev.md §5 "Webhooks").

GitLab signs nothing: the hook's secret token travels verbatim in ``X-Gitlab-Token`` and is compared in
constant time. The delivery id is ``X-Gitlab-Event-UUID`` (one per event, the same across GitLab's retries),
else ``Idempotency-Key`` (17.4+), else a hash of the body; ``X-Gitlab-Webhook-UUID`` names the hook, not the
delivery, so it is never used as the id.

>>> VERIFIER.verify({"X-Gitlab-Token": "s3cret", "X-Gitlab-Event-UUID": "e-1"}, b"{}", b"s3cret", 0.0)
'e-1'
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping

from connectors.webhooks import WebhookRejected, body_digest, header


class GitLabVerifier:
    """``X-Gitlab-Token`` equal to the configured secret token."""

    def verify(self, headers: Mapping[str, str], body: bytes, secret: bytes, now: float) -> str:
        if not secret:
            raise WebhookRejected("no GitLab webhook secret token is configured")
        token = header(headers, "X-Gitlab-Token")
        if not token:
            raise WebhookRejected("no X-Gitlab-Token header")
        if not hmac.compare_digest(token.encode(), secret):
            raise WebhookRejected("X-Gitlab-Token does not match the configured secret token")
        delivery = header(headers, "X-Gitlab-Event-UUID") or header(headers, "Idempotency-Key")
        return delivery.strip() if delivery and delivery.strip() else body_digest(body)


VERIFIER = GitLabVerifier()
