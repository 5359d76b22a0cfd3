"""HubSpot webhook check, signature v3 (reference: apis-crm.md §2.9).

HubSpot signs each delivery (a POST whose body is a JSON array of up to 100 events) with::

    X-HubSpot-Signature-v3     = base64( HMAC-SHA256( key = app client secret,
                                                      msg = UTF-8(method + uri + body + timestamp) ) )
    X-HubSpot-Request-Timestamp = epoch milliseconds

``uri`` is the full URL HubSpot called (scheme, host, path and query), so the check needs it: the listener passes
``url=`` (and ``method=``, POST by default). Without ``url`` it is rebuilt from a reverse proxy's headers
(``X-Forwarded-Proto`` or https, ``X-Forwarded-Host`` or ``Host``, and ``X-Forwarded-Uri`` or
``X-Original-URI`` for the path); with none of those the delivery is rejected, saying why. Some implementations
URL-decode the uri before signing, so the decoded form is accepted too. A timestamp more than five minutes away
from now is rejected (replays). The legacy v1/v2 signatures carry no timestamp and are not accepted.

The delivery id: HubSpot sends none for the batch, and a retry changes ``attemptNumber``, so the id is a hash of
the sorted ``eventId`` values (a retried batch is a duplicate); a body that is not an event array falls back to a
hash of the body.

>>> body = b'[{"eventId":1,"subscriptionType":"contact.creation","objectId":123}]'
>>> sig = signature_v3(b"secret", "POST", "https://example.com/webhooks/hubspot", body, "1700000000000")
>>> VERIFIER.verify({"X-HubSpot-Signature-v3": sig, "X-HubSpot-Request-Timestamp": "1700000000000"}, body,
...                 b"secret", 1_700_000_010.0, url="https://example.com/webhooks/hubspot")[:8]
'hubspot:'
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import urllib.parse
from collections.abc import Mapping

from connectors.webhooks import WebhookRejected, body_digest, header

WINDOW_MS = 300_000


def signature_v3(secret: bytes, method: str, uri: str, body: bytes, timestamp: str) -> str:
    """``X-HubSpot-Signature-v3`` of one delivery."""
    message = method.upper().encode() + uri.encode() + body + timestamp.encode()
    return base64.b64encode(hmac.new(secret, message, hashlib.sha256).digest()).decode()


def request_url(headers: Mapping[str, str]) -> str | None:
    """The URL HubSpot called, rebuilt from a reverse proxy's headers; None if they do not tell."""
    host = header(headers, "X-Forwarded-Host") or header(headers, "Host")
    path = header(headers, "X-Forwarded-Uri") or header(headers, "X-Original-URI")
    if not host or not path or not path.startswith("/"):
        return None
    scheme = (header(headers, "X-Forwarded-Proto") or "https").split(",")[0].strip()
    return f"{scheme}://{host.split(',')[0].strip()}{path}"


def delivery_id(body: bytes) -> str:
    """``hubspot:<hash of the sorted eventIds>``, or a hash of the body when it is not an event array."""
    try:
        events = json.loads(body)
    except ValueError:
        events = None
    ids = [e.get("eventId") for e in events if isinstance(e, dict)] if isinstance(events, list) else []
    if not ids or any(not isinstance(i, (int, str)) for i in ids):
        return body_digest(body)
    joined = ",".join(sorted(str(i) for i in ids))
    return "hubspot:" + hashlib.sha256(joined.encode()).hexdigest()[:32]


class HubSpotVerifier:
    """Signature v3 with its five-minute window (module docstring)."""

    def verify(self, headers: Mapping[str, str], body: bytes, secret: bytes, now: float, *,
               method: str = "POST", url: str | None = None) -> str:
        if not secret:
            raise WebhookRejected("no HubSpot client secret is configured")
        sent = header(headers, "X-HubSpot-Signature-v3")
        stamp = header(headers, "X-HubSpot-Request-Timestamp")
        if not sent or not stamp:
            raise WebhookRejected("no X-HubSpot-Signature-v3 or X-HubSpot-Request-Timestamp header")
        stamp = stamp.strip()
        if not stamp.isdigit():
            raise WebhookRejected("X-HubSpot-Request-Timestamp is not epoch milliseconds")
        skew = abs(now * 1000 - int(stamp))
        if skew > WINDOW_MS:
            raise WebhookRejected(f"timestamp is {skew / 1000:.0f}s away from now (window {WINDOW_MS // 1000}s)")
        uri = url or request_url(headers)
        if not uri:
            raise WebhookRejected("the request URL is needed to check X-HubSpot-Signature-v3 and the headers do not "
                                  "give it (pass url=, or forward X-Forwarded-Host and X-Forwarded-Uri)")
        candidates = {uri, urllib.parse.unquote(uri)}
        if not any(hmac.compare_digest(signature_v3(secret, method, u, body, stamp).encode(), sent.strip().encode())
                   for u in candidates):
            raise WebhookRejected("X-HubSpot-Signature-v3 does not match the request")
        return delivery_id(body)


VERIFIER = HubSpotVerifier()
