"""Jira webhook verifier (X-Hub-Signature: sha256=<hex HMAC of the raw body>), pure."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from connectors.webhooks import VERIFIERS, WebhookRejected
from connectors.webhooks.jira import signature

BODY = b'{"webhookEvent":"jira:issue_updated","issue":{"key":"DEMO-7"}}'


def test_it_is_registered():
    assert "jira" in VERIFIERS


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
