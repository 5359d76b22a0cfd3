"""Dropbox webhook verification: HMAC-SHA256 of the raw body with the app secret, the GET challenge."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from connectors.webhooks import VERIFIERS, WebhookRejected
from connectors.webhooks.dropbox import challenge_response, changed_accounts, signature

SECRET = b"dropbox-app-secret"
BODY = b'{"list_folder": {"accounts": ["dbid:AAH4f99T0taONIb-OurWxbNQ6ywGRopQngc"]}, "delta": {"users": [12345678]}}'


def test_signature_is_hex_hmac_sha256_of_the_body_with_the_app_secret():
    expected = hmac.new(SECRET, BODY, hashlib.sha256).hexdigest()
    assert signature(SECRET, BODY) == expected and len(expected) == 64 and expected == expected.lower()


def test_an_authentic_notification_gets_a_body_hash_as_delivery_id():
    verifier = VERIFIERS["dropbox"]
    delivery = verifier.verify({"x-dropbox-signature": signature(SECRET, BODY)}, BODY, SECRET, 0.0)
    assert delivery == "sha256:" + hashlib.sha256(BODY).hexdigest()
    upper = verifier.verify({"X-Dropbox-Signature": signature(SECRET, BODY).upper()}, BODY, SECRET, 0.0)
    assert upper == delivery        # hex case is not part of the signature


@pytest.mark.parametrize(("headers", "secret", "reason"), [
    ({}, SECRET, "no X-Dropbox-Signature"),
    ({"X-Dropbox-Signature": "sha256=abc"}, SECRET, "not a hex"),
    ({"X-Dropbox-Signature": signature(b"other-secret", BODY)}, SECRET, "does not match"),
    ({"X-Dropbox-Signature": signature(SECRET, BODY)}, b"", "no Dropbox app secret"),
])
def test_bad_notifications_are_rejected_with_a_reason_that_holds_no_secret(headers, secret, reason):
    with pytest.raises(WebhookRejected, match=reason) as info:
        VERIFIERS["dropbox"].verify(headers, BODY, secret, 0.0)
    assert SECRET.decode() not in str(info.value) and signature(SECRET, BODY) not in str(info.value)


def test_a_tampered_body_is_rejected():
    with pytest.raises(WebhookRejected):
        VERIFIERS["dropbox"].verify({"X-Dropbox-Signature": signature(SECRET, BODY)}, BODY + b" ", SECRET, 0.0)


def test_the_changed_accounts_are_read_from_list_folder_then_delta():
    assert changed_accounts(BODY) == ["dbid:AAH4f99T0taONIb-OurWxbNQ6ywGRopQngc"]
    assert changed_accounts(b'{"delta": {"users": [1, 2]}}') == ["1", "2"]
    with pytest.raises(WebhookRejected):
        changed_accounts(b"not json")


def test_the_challenge_is_echoed_as_plain_text_with_nosniff():
    status, body, headers = challenge_response({"challenge": "Xy7-abc"})
    assert (status, body) == (200, "Xy7-abc") and headers["X-Content-Type-Options"] == "nosniff"
    assert challenge_response({"challenge": ""})[0] == 400
    assert challenge_response({"challenge": "a\nb"})[0] == 400
