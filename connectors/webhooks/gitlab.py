"""GitLab webhook check (reference: apis-storage-dev.md §5 "Webhooks").

GitLab signs nothing: the hook's secret token travels verbatim in ``X-Gitlab-Token`` and is compared in
constant time.

The delivery id must be the same when GitLab retries a delivery and differ between events:

- ``Idempotency-Key`` (GitLab 17.4+, gitlab-org/gitlab MR 160952) is exactly that, and comes first;
- ``X-Gitlab-Event-UUID`` exists on older versions, but recursive webhooks (a hook whose receiver calls GitLab
  back) share it, so it is combined with a hash of the body;
- ``X-Gitlab-Webhook-UUID`` is a fresh UUID per request (MR 125338; the reference calls it "per hook"): a retry
  would get a new one, so it is never the id;
- without any of them, a hash of the body.

>>> VERIFIER.verify({"X-Gitlab-Token": "s3cret", "Idempotency-Key": "e-1"}, b"{}", b"s3cret", 0.0)
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
        idempotency = (header(headers, "Idempotency-Key") or "").strip()
        if idempotency:
            return idempotency
        event = (header(headers, "X-Gitlab-Event-UUID") or "").strip()
        digest = body_digest(body)
        return f"{event}:{digest[7:23]}" if event else digest


VERIFIER = GitLabVerifier()
