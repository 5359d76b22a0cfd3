"""The OAuth client protocol without a network: requests built, answers parsed, device polling as a machine."""

from __future__ import annotations

import base64
import json
import urllib.parse

import pytest

from connectors.oauth import OAUTH_PROVIDERS, oauth_provider
from connectors.oauth import protocol as p
from connectors.oauth.provider import OAuthProvider
from domain import IntegrationError, InvalidConfiguration

GITHUB, SLACK = oauth_provider("github"), oauth_provider("slack")
RFC = OAuthProvider("rfc", "https://as.example/authorize", "https://as.example/token",
                    device_authorization_url="https://as.example/device", revocation_url="https://as.example/revoke")
CLIENT = p.ClientCredentials("my client", "s3cr:et")
JSON = {"content-type": "application/json"}


def form(req: p.TokenRequest) -> dict[str, str]:
    return dict(urllib.parse.parse_qsl(req.body.decode()))


def test_providers_come_from_the_connector_modules():
    assert {"github", "slack"} <= set(OAUTH_PROVIDERS)
    assert GITHUB.device_authorization_url and not SLACK.supports_device_flow
    with pytest.raises(InvalidConfiguration):
        oauth_provider("sendgrid")


def test_with_auth_base_and_tenant():
    moved = GITHUB.with_auth_base("https://ghe.example.com/prefix/")
    assert moved.token_url == "https://ghe.example.com/prefix/login/oauth/access_token"
    assert moved.revocation_endpoint("a b") == "https://ghe.example.com/prefix/applications/a%20b/token"
    ms = OAuthProvider("ms", "https://login.example/{tenant}/oauth2/v2.0/authorize",
                       "https://login.example/{tenant}/oauth2/v2.0/token")
    assert ms.for_tenant("contoso.onmicrosoft.com").token_url == \
        "https://login.example/contoso.onmicrosoft.com/oauth2/v2.0/token"
    with pytest.raises(InvalidConfiguration):
        ms.for_tenant("../evil")
    with pytest.raises(InvalidConfiguration):
        GITHUB.with_auth_base("ftp://x")


def test_pkce_and_authorization_url():
    assert p.challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk") == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    verifier = p.new_verifier()
    assert 43 <= len(verifier) <= 128
    url = p.authorization_url(SLACK, "111.222", "http://127.0.0.1:5/cb", ("a:b", "c:d"), "st", verifier)
    q = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))
    assert q["scope"] == "a:b,c:d" and q["code_challenge_method"] == "S256" and q["state"] == "st"
    assert q["code_challenge"] == p.challenge(verifier) and q["response_type"] == "code"


def test_code_from_redirect():
    redirect = "http://127.0.0.1:5000/callback?code=abc&state=st"
    assert p.code_from_redirect(redirect, "st", "http://127.0.0.1:5000/callback") == "abc"
    assert p.code_from_redirect("  abc-DEF_123  ", "st") == "abc-DEF_123"
    assert p.code_from_redirect("code=abc&state=st", "st") == "abc"
    for bad in ("http://127.0.0.1:5000/callback?code=abc&state=other", "http://127.0.0.1:5000/callback?code=abc",
                "http://127.0.0.1:5000/callback?state=st", "http://evil.example/callback?code=abc&state=st", "",
                "has space"):
        with pytest.raises(p.RedirectMismatch):
            p.code_from_redirect(bad, "st", "http://127.0.0.1:5000/callback")
    with pytest.raises(p.AuthorizationDenied):
        p.code_from_redirect(redirect + "&error=access_denied", "st")


def test_client_authentication_styles():
    basic = p.refresh_request(RFC, CLIENT, "rt")
    cid, secret = base64.b64decode(basic.headers["Authorization"][6:]).decode().split(":")
    assert urllib.parse.unquote_plus(cid) == "my client" and urllib.parse.unquote_plus(secret) == "s3cr:et"
    assert "client_secret" not in form(basic) and form(basic)["grant_type"] == "refresh_token"
    post = p.refresh_request(GITHUB, CLIENT, "rt")
    assert form(post)["client_secret"] == "s3cr:et" and "Authorization" not in post.headers
    public = p.code_request(RFC, p.ClientCredentials("pub"), "c", "http://127.0.0.1/cb", "v" * 43)
    assert form(public)["client_id"] == "pub" and form(public)["code_verifier"] == "v" * 43
    device = p.device_poll_request(GITHUB, CLIENT, "dc")
    assert form(device) == {"grant_type": p.DEVICE_GRANT, "device_code": "dc", "client_id": "my client"}


def test_token_responses_in_every_dialect():
    ok = p.parse_token_response(RFC, 200, JSON, json.dumps({"access_token": "at", "refresh_token": "rt",
                                                            "expires_in": 60, "scope": "a b"}).encode(), now=100.0)
    assert (ok.access_token, ok.refresh_token, ok.expires_at, ok.scopes) == ("at", "rt", 160.0, ("a", "b"))
    gh = p.parse_token_response(GITHUB, 200, {"content-type": "application/x-www-form-urlencoded"},
                                b"access_token=gho_x&scope=repo%2Cgist&token_type=bearer", now=0.0)
    assert gh.access_token == "gho_x" and gh.expires_at is None and gh.scopes == ("repo", "gist")
    with pytest.raises(p.GrantInvalid) as info:
        p.parse_token_response(GITHUB, 200, {"content-type": "application/x-www-form-urlencoded"},
                               b"error=bad_refresh_token&error_description=expired", now=0.0)
    assert info.value.category is IntegrationError.AUTHENTICATION_FAILED and info.value.error == "bad_refresh_token"
    with pytest.raises(p.GrantInvalid):
        p.parse_token_response(SLACK, 200, JSON, b'{"ok":false,"error":"invalid_refresh_token"}', now=0.0)
    slack = p.parse_token_response(SLACK, 200, JSON, b'{"ok":true,"access_token":"xoxb-1","team":{"id":"T1"}}')
    assert slack.extra["team"] == {"id": "T1"}
    with pytest.raises(p.ClientInvalid) as info:
        p.parse_token_response(RFC, 401, JSON, b'{"error":"invalid_client"}', now=0.0)
    assert info.value.category is IntegrationError.INVALID_CONFIGURATION
    for status, body in ((500, b"oops"), (200, b"<html>"), (200, b'{"token_type":"bearer"}'), (200, b"")):
        with pytest.raises(p.TokenEndpointBroken) as info:
            p.parse_token_response(RFC, status, {}, body, now=0.0)
        assert info.value.category.retryable
    with pytest.raises(p.OAuthFailure) as info:
        p.parse_token_response(RFC, 400, JSON, b'{"error":"evil\\"\\n<script>"}', now=0.0)
    assert info.value.error == "unknown_error"


def test_device_poller_state_machine():
    auth = p.parse_device_response(RFC, 200, JSON, json.dumps({
        "device_code": "dc", "user_code": "ABCD-EFGH", "verification_uri": "https://as.example/device",
        "expires_in": 900}).encode(), now=1000.0)
    assert auth.interval == 5 and auth.expires_at == 1900.0       # RFC 8628: 5 s when absent
    poller = p.DevicePoller(RFC, CLIENT, auth)
    assert form(poller.request())["device_code"] == "dc"
    pending = json.dumps({"error": "authorization_pending"}).encode()
    assert poller.receive(400, JSON, pending, now=1001.0) is None and poller.interval == 5
    assert poller.receive(400, JSON, b'{"error":"slow_down"}', now=1006.0) is None and poller.interval == 10
    assert poller.receive(400, JSON, b'{"error":"slow_down","interval":30}', now=1016.0) is None
    assert poller.interval == 30
    with pytest.raises(p.DeviceCodeExpired):
        poller.receive(400, JSON, pending, now=1900.0)
    with pytest.raises(p.AuthorizationDenied):
        poller.receive(400, JSON, b'{"error":"access_denied"}', now=1100.0)
    with pytest.raises(p.DeviceCodeExpired):
        poller.receive(400, JSON, b'{"error":"expired_token"}', now=1100.0)
    tokens = poller.receive(200, JSON, b'{"access_token":"at","token_type":"bearer"}', now=1100.0)
    assert tokens is not None and tokens.access_token == "at"
    with pytest.raises(InvalidConfiguration):
        p.device_request(SLACK, CLIENT, ())


def test_revocation_requests():
    gh = p.revocation_request(GITHUB, CLIENT, "gho_x", "access_token")
    assert gh.method == "DELETE" and gh.url.endswith("/applications/my%20client/token")
    assert json.loads(gh.body) == {"access_token": "gho_x"}
    sl = p.revocation_request(SLACK, CLIENT, "xoxb-1", "access_token")
    assert sl.headers["Authorization"] == "Bearer xoxb-1"
    rfc = p.revocation_request(RFC, CLIENT, "rt", "refresh_token")
    assert form(rfc) == {"token": "rt", "token_type_hint": "refresh_token"}
    assert p.revocation_ok(RFC, 200, b"") and p.revocation_ok(GITHUB, 204, b"")
    assert not p.revocation_ok(SLACK, 200, b'{"ok":false}') and not p.revocation_ok(RFC, 401, b"")
    assert p.revocation_request(OAuthProvider("x", "https://a/b", "https://a/t"), CLIENT, "t", "access_token") is None
