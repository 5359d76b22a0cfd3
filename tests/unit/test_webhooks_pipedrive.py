"""Pipedrive webhook verification: HTTP Basic credentials of the webhook, a retry-stable delivery id."""

from __future__ import annotations

import base64
import json

import pytest

from connectors.webhooks import VERIFIERS, WebhookRejected
from connectors.webhooks.pipedrive import basic_header, delivery_id

SECRET = b"integd-hook:s3cret-pass"
BODY = json.dumps({"meta": {"webhook_id": "7", "timestamp": "2025-04-01T10:00:00Z", "change_source": "app",
                            "action": "change", "entity": "deal", "entity_id": "42", "attempt": 1},
                   "data": {"id": 42, "title": "Deal A"}, "previous": {"title": "Deal"}}).encode()
verify = VERIFIERS["pipedrive"].verify


def test_the_configured_basic_credentials_are_accepted_and_the_id_is_a_hash() -> None:
    assert basic_header("integd-hook", "s3cret-pass") == "Basic " + base64.b64encode(SECRET).decode()
    got = verify({"authorization": basic_header("integd-hook", "s3cret-pass")}, BODY, SECRET, 0.0)
    assert got.startswith("sha256:") and len(got) == 7 + 64


def test_a_retry_with_a_higher_attempt_keeps_the_delivery_id() -> None:
    retry = BODY.replace(b'"attempt": 1', b'"attempt": 2')
    assert retry != BODY and delivery_id(retry) == delivery_id(BODY)
    other = BODY.replace(b'"Deal A"', b'"Deal B"')
    assert delivery_id(other) != delivery_id(BODY)
    assert delivery_id(b"not json").startswith("sha256:")


@pytest.mark.parametrize("headers, reason", [
    ({}, "no Authorization header"),
    ({"Authorization": "Bearer abc"}, "not HTTP Basic"),
    ({"Authorization": "Basic !!!"}, "not base64"),
    ({"Authorization": basic_header("integd-hook", "wrong")}, "do not match"),
    ({"Authorization": basic_header("someone", "s3cret-pass")}, "do not match"),
])
def test_bad_credentials_are_rejected_without_echoing_the_secret(headers: dict[str, str], reason: str) -> None:
    with pytest.raises(WebhookRejected) as info:
        verify(headers, BODY, SECRET, 0.0)
    assert reason in info.value.reason and b"s3cret" not in str(info.value).encode()


def test_no_configured_credentials_is_a_rejection() -> None:
    with pytest.raises(WebhookRejected, match="no Pipedrive webhook credentials"):
        verify({"Authorization": basic_header("a", "b")}, BODY, b"", 0.0)
