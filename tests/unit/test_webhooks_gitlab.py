"""GitLab webhook verifier (shared secret token in X-Gitlab-Token; the delivery id rules), pure."""

from __future__ import annotations

import hashlib

import pytest

from connectors.webhooks import VERIFIERS, WebhookRejected

BODY = b'{"object_kind":"issue","object_attributes":{"iid":7}}'


def test_it_is_registered():
    assert "gitlab" in VERIFIERS


def test_gitlab_accepts_its_token_and_the_idempotency_key_is_the_delivery():
    headers = {"x-gitlab-token": "hook-secret", "Idempotency-Key": "908a6d9e-retry-stable",
               "X-Gitlab-Event-UUID": "5c0c4f7e-ev", "X-Gitlab-Event": "Issue Hook",
               "X-Gitlab-Webhook-UUID": "fresh-per-request"}
    assert VERIFIERS["gitlab"].verify(headers, BODY, b"hook-secret", 0.0) == "908a6d9e-retry-stable"


def test_gitlab_before_17_4_uses_the_event_uuid_with_the_body_then_the_body_alone():
    v = VERIFIERS["gitlab"]
    digest = hashlib.sha256(BODY).hexdigest()
    assert v.verify({"X-Gitlab-Token": "s", "X-Gitlab-Event-UUID": "ev-1"}, BODY, b"s", 0.0) == f"ev-1:{digest[:16]}"
    other = v.verify({"X-Gitlab-Token": "s", "X-Gitlab-Event-UUID": "ev-1"}, BODY + b" ", b"s", 0.0)
    assert other != f"ev-1:{digest[:16]}"           # a recursive hook's other payload is another delivery
    assert v.verify({"X-Gitlab-Token": "s", "X-Gitlab-Webhook-UUID": "random"}, BODY, b"s", 0.0) == "sha256:" + digest


@pytest.mark.parametrize("headers, reason", [
    ({}, "no X-Gitlab-Token"),
    ({"X-Gitlab-Token": "wrong-secret"}, "does not match"),
    ({"X-Gitlab-Token": "hook-secre"}, "does not match"),
])
def test_gitlab_refuses_a_missing_or_wrong_token_without_echoing_it(headers, reason):
    with pytest.raises(WebhookRejected, match=reason) as info:
        VERIFIERS["gitlab"].verify(headers, BODY, b"hook-secret", 0.0)
    assert "hook-secret" not in str(info.value) and "wrong-secret" not in str(info.value)


def test_gitlab_without_a_configured_secret_refuses():
    with pytest.raises(WebhookRejected, match="no GitLab webhook secret"):
        VERIFIERS["gitlab"].verify({"X-Gitlab-Token": ""}, BODY, b"", 0.0)
