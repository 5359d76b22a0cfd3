"""GitLab (shared secret token) and Jira (X-Hub-Signature HMAC-SHA256) webhook verifiers, pure."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from connectors.webhooks import VERIFIERS, WebhookRejected
from connectors.webhooks.jira import signature

BODY = b'{"object_kind":"issue","object_attributes":{"iid":7}}'


def test_both_are_registered():
    assert {"gitlab", "jira"} <= set(VERIFIERS)


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


def test_jira_signature_is_hmac_sha256_hex_of_the_raw_body():
    expected = "sha256=" + hmac.new(b"jira-secret", BODY, hashlib.sha256).hexdigest()
    assert signature(b"jira-secret", BODY) == expected
    # an independently computed vector (RFC 4231 test case 2 key/data, as sha256 hex)
    assert signature(b"Jefe", b"what do ya want for nothing?") == \
        "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"


def test_jira_accepts_its_signature_and_uses_the_identifier_when_sent():
    v = VERIFIERS["jira"]
    sig = signature(b"jira-secret", BODY)
    assert v.verify({"x-hub-signature": sig}, BODY, b"jira-secret", 0.0) == \
        "sha256:" + hashlib.sha256(BODY).hexdigest()
    assert v.verify({"X-Hub-Signature": sig.upper().replace("SHA256=", "sha256="),
                     "X-Atlassian-Webhook-Identifier": "wh-42"}, BODY, b"jira-secret", 0.0) == "wh-42"


@pytest.mark.parametrize("headers, reason", [
    ({}, "no X-Hub-Signature"),
    ({"X-Hub-Signature": "sha1=abc"}, "not a sha256"),
    ({"X-Hub-Signature": "sha256="}, "not a sha256"),
    ({"X-Hub-Signature": signature(b"other", BODY)}, "does not match"),
])
def test_jira_refuses_bad_signatures(headers, reason):
    with pytest.raises(WebhookRejected, match=reason) as info:
        VERIFIERS["jira"].verify(headers, BODY, b"jira-secret", 0.0)
    assert "jira-secret" not in str(info.value) and signature(b"jira-secret", BODY) not in str(info.value)


def test_jira_refuses_a_tampered_body():
    sig = signature(b"jira-secret", BODY)
    with pytest.raises(WebhookRejected):
        VERIFIERS["jira"].verify({"X-Hub-Signature": sig}, BODY + b" ", b"jira-secret", 0.0)
