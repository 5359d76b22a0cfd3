"""The Google and Microsoft Graph dialects without a network: classification of the providers' real error
bodies, rate signals, pagination rules, identities and the OAuth descriptions."""

from __future__ import annotations

import pytest

from connectors.base import ApiRequest, ApiResponse
from connectors.factory import build_connector
from connectors.google import google_oauth, seconds_to_pacific_midnight
from connectors.graph import microsoft_oauth
from connectors.http import HttpTransport
from domain.clock import FakeClock
from domain.errors import IntegrationError, IntegrationFailure
from domain.model import ApiCredential

SECRET = "ya29.a0secret-access-token-value"
AUTH, RATE = IntegrationError.AUTHENTICATION_FAILED, IntegrationError.RATE_LIMIT_EXCEEDED
DOWN, CONFIG = IntegrationError.SERVICE_UNAVAILABLE, IntegrationError.INVALID_CONFIGURATION


def connector(service: str, clock: FakeClock | None = None):
    return build_connector(service, ApiCredential.from_tokens(SECRET), app_id="int_u", base_url=None,
                           transport=HttpTransport(), clock=clock or FakeClock())


def google_body(code: int, message: str, reason: str | None, status: str | None = None) -> dict:
    err: dict = {"code": code, "message": message}
    if reason:
        err["errors"] = [{"message": message, "domain": "usageLimits", "reason": reason}]
    if status:
        err["status"] = status
    return {"error": err}


GOOGLE_CASES = [
    (401, google_body(401, "Invalid Credentials", "authError", "UNAUTHENTICATED"), AUTH, "authError"),
    (403, google_body(403, "Request had insufficient authentication scopes.", "insufficientPermissions",
                      "PERMISSION_DENIED"), AUTH, "insufficientPermissions"),
    (403, google_body(403, "User-rate limit exceeded.", "userRateLimitExceeded"), RATE, "userRateLimitExceeded"),
    (403, google_body(403, "Rate Limit Exceeded", "rateLimitExceeded"), RATE, "rateLimitExceeded"),
    (403, google_body(403, "Quota exceeded", None, "RESOURCE_EXHAUSTED"), RATE, "RESOURCE_EXHAUSTED"),
    (429, "<html>Too Many Requests</html>", RATE, None),
    (500, google_body(500, "Backend Error", "backendError"), DOWN, "backendError"),
    (502, "<!DOCTYPE html><html>502. That's an error.</html>", DOWN, None),
]


@pytest.mark.parametrize("service", ["gmail", "google_drive"])
@pytest.mark.parametrize("status,body,category,code", GOOGLE_CASES)
def test_google_error_bodies_classify(service, status, body, category, code) -> None:
    failure = connector(service).classify(status, {}, body)
    assert failure is not None and failure.category is category and failure.status == status
    assert failure.provider_code == code


def test_google_hands_back_what_is_the_callers_and_honours_a_retry_after() -> None:
    gmail = connector("gmail")
    assert gmail.classify(404, {}, google_body(404, "Requested entity was not found.", "notFound")) is None
    assert gmail.classify(400, {}, google_body(400, "Invalid pageToken", "invalid")) is None
    limited = gmail.classify(429, {"retry-after": "17"}, google_body(429, "x", "rateLimitExceeded"))
    assert limited.retry_after == 17.0 and gmail.rate_signal(429, {"retry-after": "17"}, None).retry_after == 17.0
    assert gmail.rate_signal(200, {"retry-after": "17"}, None).retry_after is None


def test_google_daily_limit_waits_until_pacific_midnight() -> None:
    clock = FakeClock(1_700_000_000.0)        # 2023-11-14 22:13:20 UTC = 14:13:20 in UTC-8
    failure = connector("gmail", clock).classify(403, {}, google_body(403, "Daily Limit Exceeded",
                                                                       "dailyLimitExceeded"))
    assert failure.category is RATE and failure.retry_after == seconds_to_pacific_midnight(clock.time())
    assert failure.retry_after == pytest.approx(9 * 3600 + 46 * 60 + 40)


def test_google_messages_never_carry_the_token() -> None:
    body = google_body(401, f"token {SECRET} is not valid", "authError")
    failure = connector("gmail").classify(401, {}, body)
    assert SECRET not in str(failure) and "[redacted]" in str(failure)


def test_google_pagination_by_next_page_token() -> None:
    gmail = connector("gmail")
    request = ApiRequest("GET", "/users/me/messages", params={"maxResults": 10, "q": "is:unread"})
    page = ApiResponse(200, {}, {"messages": [], "nextPageToken": "abc"}, 0.0, 1, request, gmail.next_request)
    assert page.next_page().params == {"maxResults": "10", "q": "is:unread", "pageToken": "abc"}
    last = ApiResponse(200, {}, {"messages": [], "nextPageToken": ""}, 0.0, 1, request, gmail.next_request)
    assert last.next_page() is None


@pytest.mark.parametrize("service,body", [("gmail", {"historyId": "1"}), ("gmail", "<html/>"),
                                          ("google_drive", {"user": {}}), ("google_drive", [])])
def test_google_identity_of_something_else_is_a_configuration_error(service, body) -> None:
    with pytest.raises(IntegrationFailure) as info:
        connector(service).identity_from(body)
    assert info.value.category is CONFIG and "check the base URL" in str(info.value)


GRAPH_429 = {"error": {"code": "TooManyRequests", "message": "Please retry again later.",
                       "innerError": {"code": "429", "date": "2026-01-01T00:00:00", "request-id": "r"}}}


@pytest.mark.parametrize("service", ["outlook", "onedrive", "teams"])
def test_graph_error_bodies_classify(service) -> None:
    c = connector(service)
    expired = {"error": {"code": "InvalidAuthenticationToken", "message": "Access token has expired."}}
    assert c.classify(401, {}, expired).category is AUTH
    denied = c.classify(403, {}, {"error": {"code": "ErrorAccessDenied", "message": "Access is denied."}})
    assert denied.category is AUTH and denied.provider_code == "ErrorAccessDenied"
    limited = c.classify(429, {"retry-after": "2.128"}, GRAPH_429)
    assert limited.category is RATE and limited.retry_after == 2.128 and limited.provider_code == "TooManyRequests"
    busy = c.classify(503, {"retry-after": "5"}, {"error": {"code": "serviceNotAvailable", "message": "busy"}})
    assert busy.category is DOWN and busy.retry_after == 5.0
    assert c.classify(504, {}, "Gateway Timeout").category is DOWN
    assert c.classify(404, {}, {"error": {"code": "itemNotFound", "message": "nope"}}) is None
    assert c.classify(410, {}, {"error": {"code": "resyncRequired", "message": "gone"}}) is None


def test_graph_rate_signal_reads_retry_after_and_the_ratelimit_headers() -> None:
    clock = FakeClock(1000.0)
    onedrive = connector("onedrive", clock)
    signal = onedrive.rate_signal(200, {"ratelimit-limit": "1200", "ratelimit-remaining": "180",
                                        "ratelimit-reset": "30"}, None)
    assert (signal.limit, signal.remaining, signal.reset_at, signal.retry_after) == (1200, 180, 1030.0, None)
    assert onedrive.rate_signal(429, {"retry-after": "7"}, GRAPH_429).retry_after == 7.0


def test_graph_pagination_follows_next_link_on_the_base_only() -> None:
    outlook = connector("outlook")
    request = ApiRequest("GET", "/me/messages", params={"$top": 5}, headers={"Prefer": 'IdType="ImmutableId"'})
    link = "https://graph.microsoft.com/v1.0/me/messages?$top=5&$skiptoken=xyz"
    page = ApiResponse(200, {}, {"value": [], "@odata.nextLink": link}, 0.0, 1, request, outlook.next_request)
    nxt = page.next_page()
    assert nxt.path == "/me/messages" and nxt.params == {"$top": "5", "$skiptoken": "xyz"}
    assert nxt.headers == {"Prefer": 'IdType="ImmutableId"'}
    delta_end = ApiResponse(200, {}, {"value": [], "@odata.deltaLink": link}, 0.0, 1, request, outlook.next_request)
    assert delta_end.next_page() is None
    evil = ApiResponse(200, {}, {"value": [], "@odata.nextLink": "https://evil.example/v1.0/me"}, 0.0, 1, request,
                       outlook.next_request)
    with pytest.raises(IntegrationFailure) as info:
        evil.next_page()
    assert info.value.category is CONFIG


def test_graph_identities() -> None:
    me = connector("teams").identity_from({"id": "u1", "displayName": "Ada", "userPrincipalName": "ada@x.example",
                                           "mail": None})
    assert me.account_id == "u1" and me.display == "ada@x.example (Ada)"
    drive = connector("onedrive").identity_from({"id": "b!1", "driveType": "personal",
                                                 "owner": {"user": {"id": "u1", "displayName": "Ada"}}})
    assert drive.account_id == "u1" and drive.details["drive_id"] == "b!1"
    with pytest.raises(IntegrationFailure):
        connector("onedrive").identity_from({"id": "b!1"})
    with pytest.raises(IntegrationFailure):
        connector("outlook").identity_from({"displayName": "no id"})


def test_oauth_descriptions() -> None:
    ms = microsoft_oauth("x", ("Mail.Read",))
    assert ms.default_scopes == ("Mail.Read", "offline_access") and "{tenant}" in ms.token_url
    assert ms.for_tenant("organizations").authorize_url == \
        "https://login.microsoftonline.com/organizations/oauth2/v2.0/authorize"
    assert ms.with_auth_base("http://127.0.0.1:9").for_tenant("common").token_url == \
        "http://127.0.0.1:9/common/oauth2/v2.0/token"
    google = google_oauth("y", ("https://mail.google.com/",))
    assert google.revocation_url == "https://oauth2.googleapis.com/revoke" and google.pkce
    assert google.with_auth_base("http://127.0.0.1:9").authorize_url == "http://127.0.0.1:9/o/oauth2/v2/auth"
