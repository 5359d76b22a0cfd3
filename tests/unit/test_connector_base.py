"""connectors.base and the pure parts of connectors.http: request validation, redaction, header parsing."""

from __future__ import annotations

import pytest

from connectors.base import ApiRequest, ApiResponse, request_from_url
from connectors.github import GitHubConnector
from connectors.http import (RawResponse, decode_body, normalize_base_url, parse_int, parse_link_header,
                             parse_retry_after)
from connectors.sendgrid import _next_offset
from domain.errors import IntegrationError, IntegrationFailure
from domain.model import ApiCredential
from domain.values import ApiKey

TOKEN = "ghp_" + "s3cr3t" * 6


def config_error(fn, *args, **kw) -> str:
    with pytest.raises(IntegrationFailure) as info:
        fn(*args, **kw)
    assert info.value.category is IntegrationError.INVALID_CONFIGURATION
    return str(info.value)


@pytest.mark.parametrize("path", ["user", "https://evil.example/x", "//evil.example/x", "/a/../b", "/a/%2e%2e/b",
                                  "/a\r\nHost: x", "/a b", "/a\\b", "/a#frag", "/a//b", ""])
def test_paths_that_could_leave_the_base_url_are_refused(path):
    assert "request path" in config_error(ApiRequest, "GET", path)


def test_method_is_checked_and_normalised():
    assert ApiRequest("get", "/user").method == "GET"
    assert "request method must be one of" in config_error(ApiRequest, "TRACE", "/user")


@pytest.mark.parametrize("name", ["Authorization", "host", "Cookie", "Proxy-Authorization", "Content-Length"])
def test_callers_cannot_set_connection_or_credential_headers(name):
    assert f"request header {name!r} is set by the connector" in config_error(
        ApiRequest, "GET", "/user", headers={name: "x"})


def test_header_values_and_names_are_checked():
    assert "control characters" in config_error(ApiRequest, "GET", "/u", headers={"X-A": "a\r\nB: c"})
    assert "invalid request header name" in config_error(ApiRequest, "GET", "/u", headers={"X A": "b"})


def test_query_in_the_path_becomes_params_and_lists_repeat():
    req = ApiRequest("GET", "/search?q=a&q=b&x=1", params={"per_page": 5, "flag": True, "ids": [1, 2]})
    assert req.path == "/search"
    assert req.query_items() == [("q", "a"), ("q", "b"), ("x", "1"), ("per_page", "5"), ("flag", "true"),
                                 ("ids", "1"), ("ids", "2")]


def test_bad_params_and_bodies_are_refused():
    assert "has no value" in config_error(ApiRequest, "GET", "/u", params={"a": None})
    assert "must be a string, number or list" in config_error(ApiRequest, "GET", "/u", params={"a": {"b": 1}})
    assert "not JSON-serialisable" in config_error(ApiRequest, "POST", "/u", json={"a": object()})


def test_secret_query_values_are_redacted_in_call_records():
    c = GitHubConnector(ApiCredential.from_api_key(ApiKey(TOKEN)), app_id="int_x", base_url=None,
                        transport=None)
    req = ApiRequest("GET", "/search", params={"q": "bug", "access_token": "abc", "api_key": "k",
                                               "other": TOKEN})
    shown = c.safe_path(req)
    assert shown == "/search?q=bug&access_token=[redacted]&api_key=[redacted]&other=[redacted]"
    assert TOKEN not in c.safe(f"error mentioning {TOKEN}") and "[redacted]" in c.safe(TOKEN)


def test_base_urls_are_checked():
    assert normalize_base_url("https://ghe.example.com/api/v3/") == "https://ghe.example.com/api/v3"
    assert normalize_base_url("http://127.0.0.1:8080") == "http://127.0.0.1:8080"
    assert "must use https" in config_error(normalize_base_url, "http://ghe.example.com/api/v3")
    assert "must not carry credentials" in config_error(normalize_base_url, "https://u:p@h.example")
    assert "absolute http(s) URL" in config_error(normalize_base_url, "ftp://h.example")
    assert "absolute http(s) URL" in config_error(normalize_base_url, "not a url")


def test_retry_after_forms():
    assert parse_retry_after("7", now=0) == 7.0
    assert parse_retry_after("2.128", now=0) == 2.128
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412480 - 30) == 30.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412480 + 30) == 0.0
    for junk in (None, "", "-1", "soon", "nan", "inf"):
        assert parse_retry_after(junk, now=0) is None
    assert parse_int("12") == 12 and parse_int("x") is None and parse_int("1.7e9") == 1_700_000_000


def test_link_header():
    value = ('<https://api.github.com/user/repos?page=2&per_page=30>; rel="next", '
             '<https://api.github.com/user/repos?page=5&per_page=30>; rel="last"')
    links = parse_link_header(value)
    assert links == {"next": "https://api.github.com/user/repos?page=2&per_page=30",
                     "last": "https://api.github.com/user/repos?page=5&per_page=30"}
    assert parse_link_header(None) == {} and parse_link_header("garbage") == {}


def test_next_page_urls_must_stay_under_the_base_url():
    req = request_from_url("https://ghe.example.com/api/v3/user/repos?page=2", "https://ghe.example.com/api/v3")
    assert (req.path, req.params) == ("/user/repos", {"page": "2"})
    for elsewhere in ("https://evil.example/api/v3/user/repos?page=2", "https://ghe.example.com/other/x",
                      "http://ghe.example.com/api/v3/user"):
        assert "leads outside the base URL" in config_error(request_from_url, elsewhere,
                                                             "https://ghe.example.com/api/v3")


def test_offset_pagination():
    req = ApiRequest("GET", "/suppression/bounces", params={"limit": 2})
    assert _next_offset(req, [1, 2]).params == {"limit": "2", "offset": "2"}
    assert _next_offset(req.with_params(offset=4), [1, 2]).params["offset"] == "6"
    assert _next_offset(req, [1]) is None and _next_offset(ApiRequest("GET", "/x"), [1, 2]) is None


def test_bodies_are_decoded_by_content():
    raw = lambda body, ctype="": RawResponse(200, {"content-type": ctype}, body, 0.0)  # noqa: E731
    assert decode_body(raw(b'{"a": 1}', "application/json; charset=utf-8")) == {"a": 1}
    assert decode_body(raw(b"[1]")) == [1]
    assert decode_body(raw(b"<html>x</html>", "text/html")) == "<html>x</html>"
    assert decode_body(raw(b"{not json", "application/json")) == "{not json"
    assert decode_body(raw(b"")) is None


def test_a_response_without_a_pager_has_no_next_page():
    assert ApiResponse(200, {}, [], 0.0, 1).next_page() is None
