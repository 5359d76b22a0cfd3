"""Discord interaction signatures: Ed25519 over X-Signature-Timestamp + raw body, with the public key."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from connectors.webhooks import VERIFIERS, WebhookRejected
from connectors.webhooks.discord import DiscordVerifier, ping_answer, public_key_hex, sign

# RFC 8032 §7.1 TEST 1: the secret key and the public key it must give
RFC_SECRET = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
RFC_PUBLIC = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
NOW = 1_700_000_000.0
BODY = b'{"application_id":"11","id":"1180000000000000001","token":"aW50ZXJhY3Rpb24","type":1,"version":1}'


@pytest.fixture
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(RFC_SECRET)


def test_the_public_key_is_the_rfc_8032_one(key):
    assert public_key_hex(key) == RFC_PUBLIC


def test_an_authentic_interaction_gives_its_id_with_a_hex_or_raw_key(key):
    headers = sign(key, BODY, str(int(NOW)))
    assert VERIFIERS["discord"].verify(headers, BODY, RFC_PUBLIC.encode(), NOW + 5) == "1180000000000000001"
    assert VERIFIERS["discord"].verify(headers, BODY, bytes.fromhex(RFC_PUBLIC), NOW) == "1180000000000000001"


def test_an_event_without_id_is_identified_by_a_body_hash(key):
    body = b'{"version":1,"application_id":"11","type":0}'
    assert VERIFIERS["discord"].verify(sign(key, body, str(int(NOW))), body, RFC_PUBLIC.encode(), NOW) \
        .startswith("sha256:")


def test_the_timestamp_is_covered_by_the_signature(key):
    headers = sign(key, BODY, str(int(NOW)))
    headers["X-Signature-Timestamp"] = str(int(NOW) + 1)
    with pytest.raises(WebhookRejected, match="does not match"):
        VERIFIERS["discord"].verify(headers, BODY, RFC_PUBLIC.encode(), NOW)


@pytest.mark.parametrize("mutate", ["body", "key", "missing", "malformed"])
def test_invalid_deliveries_are_rejected(key, mutate):
    headers, body, public = sign(key, BODY, str(int(NOW))), BODY, RFC_PUBLIC.encode()
    if mutate == "body":
        body = BODY.replace(b'"type":1', b'"type":2')
    elif mutate == "key":
        public = public_key_hex(Ed25519PrivateKey.generate()).encode()
    elif mutate == "missing":
        del headers["X-Signature-Ed25519"]
    else:
        headers["X-Signature-Ed25519"] = "zz" * 64
    with pytest.raises(WebhookRejected):
        VERIFIERS["discord"].verify(headers, body, public, NOW)


def test_a_stale_timestamp_is_a_replay_and_the_window_is_configurable(key):
    headers = sign(key, BODY, str(int(NOW)))
    with pytest.raises(WebhookRejected, match="away from now"):
        VERIFIERS["discord"].verify(headers, BODY, RFC_PUBLIC.encode(), NOW + 301)
    assert DiscordVerifier(window=3600).verify(headers, BODY, RFC_PUBLIC.encode(), NOW + 301)


def test_a_bad_public_key_is_named_not_echoed():
    with pytest.raises(WebhookRejected, match="64 hex characters"):
        VERIFIERS["discord"].verify({}, BODY, b"not-a-key", NOW)


def test_pings_get_their_answers():
    assert ping_answer(BODY) == (True, {"type": 1})
    assert ping_answer(b'{"type":2,"token":"t"}') == (False, None)
    assert ping_answer(b'{"version":1,"type":0}', kind="event") == (True, None)
    assert ping_answer(b'{"version":1,"type":1,"event":{}}', kind="event") == (False, None)
