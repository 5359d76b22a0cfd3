"""HubSpot webhook signature v3: a vector computed independently from the documented algorithm (openssl), the
five-minute window, the URL (given, rebuilt from proxy headers, URL-decoded) and the delivery id."""

from __future__ import annotations

import pytest

from connectors.webhooks import VERIFIERS, WebhookRejected
from connectors.webhooks.hubspot import VERIFIER, delivery_id, request_url, signature_v3

SECRET = b"yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy"
BODY = (b'[{"eventId":1,"subscriptionId":12345,"portalId":62515,"occurredAt":1564113600000,'
        b'"subscriptionType":"contact.creation","attemptNumber":0,"objectId":123,"changeSource":"CRM",'
        b'"changeFlag":"NEW","appId":54321}]')
URL = "https://hooks.example.com/webhooks/hubspot?portal=62515"
STAMP = "1700000000000"
# printf '%s' "POST${URL}${BODY}${STAMP}" | openssl dgst -sha256 -hmac "$SECRET" -binary | base64
VECTOR = "5o5sm+7DhHlkY9qKR6qPjxPX2UeGoNC82aDYz4KFlX4="
NOW = 1_700_000_000.0 + 42


def headers(sig: str = VECTOR, stamp: str = STAMP, **more: str) -> dict[str, str]:
    return {"X-HubSpot-Signature-v3": sig, "X-HubSpot-Request-Timestamp": stamp, **more}


def test_the_documented_algorithm_gives_the_independent_vector():
    assert signature_v3(SECRET, "POST", URL, BODY, STAMP) == VECTOR
    assert VERIFIERS["hubspot"] is VERIFIER


def test_an_authentic_delivery_gives_a_stable_id_across_retries():
    first = VERIFIER.verify(headers(), BODY, SECRET, NOW, url=URL)
    retry = BODY.replace(b'"attemptNumber":0', b'"attemptNumber":1')
    again = VERIFIER.verify(headers(signature_v3(SECRET, "POST", URL, retry, STAMP)), retry, SECRET, NOW, url=URL)
    assert first == again == delivery_id(BODY) and first.startswith("hubspot:")
    assert delivery_id(b"not json").startswith("sha256:")


@pytest.mark.parametrize("change, reason", [
    ({"body": BODY + b" "}, "does not match"),
    ({"secret": b"other"}, "does not match"),
    ({"url": URL + "&x=1"}, "does not match"),
    ({"method": "PUT"}, "does not match"),
    ({"now": NOW + 301}, "away from now"),
    ({"now": NOW - 400}, "away from now"),
    ({"headers": {"X-HubSpot-Signature-v3": VECTOR}}, "no X-HubSpot-Signature-v3 or X-HubSpot-Request-Timestamp"),
    ({"headers": headers(stamp="17e11")}, "not epoch milliseconds"),
    ({"secret": b""}, "no HubSpot client secret"),
])
def test_forged_stale_or_incomplete_deliveries_are_rejected(change, reason):
    args = {"headers": headers(), "body": BODY, "secret": SECRET, "now": NOW, "url": URL, "method": "POST", **change}
    with pytest.raises(WebhookRejected, match=reason) as info:
        VERIFIER.verify(args["headers"], args["body"], args["secret"], args["now"], url=args["url"],
                        method=args["method"])
    assert VECTOR not in str(info.value) and SECRET.decode() not in str(info.value)


def test_the_url_is_rebuilt_from_proxy_headers_or_the_delivery_is_refused_with_the_reason():
    proxied = headers(**{"X-Forwarded-Proto": "https", "X-Forwarded-Host": "hooks.example.com",
                         "X-Forwarded-Uri": "/webhooks/hubspot?portal=62515"})
    assert request_url(proxied) == URL
    assert VERIFIER.verify(proxied, BODY, SECRET, NOW).startswith("hubspot:")
    with pytest.raises(WebhookRejected, match="request URL is needed"):
        VERIFIER.verify(headers(), BODY, SECRET, NOW)


def test_a_signature_over_the_decoded_uri_is_accepted():
    encoded = "https://hooks.example.com/webhooks/hubspot?next=%2Fdone"
    sig = signature_v3(SECRET, "POST", "https://hooks.example.com/webhooks/hubspot?next=/done", BODY, STAMP)
    assert VERIFIER.verify(headers(sig), BODY, SECRET, NOW, url=encoded).startswith("hubspot:")
