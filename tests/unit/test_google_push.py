"""The pure rules of the emulator's Drive push channels: receiving addresses, tokens, expiry caps, headers."""

from __future__ import annotations

import pytest

from connectors.emulators.google_push import (
    MAX_LIFETIME_MS,
    Channel,
    ChannelError,
    check_address,
    check_token,
    expiration_ms,
    is_loopback,
    resource_id,
    shown,
)

NOW = 1_700_000_000.0


@pytest.mark.parametrize("address", ["https://integd.example.org/webhooks/google", "https://10.1.2.3:8443/h",
                                     "http://127.0.0.1:8787/webhooks/google", "http://[::1]:80/h",
                                     "http://localhost/h", "http://127.9.9.9/h"])
def test_https_anywhere_and_http_on_loopback_are_accepted(address: str) -> None:
    assert check_address(address) == address


@pytest.mark.parametrize("address,reason", [
    ("http://integd.example.org/h", "webhookUrlNotHttps"), ("http://10.0.0.1/h", "webhookUrlNotHttps"),
    ("http://[fe80::1]/h", "webhookUrlNotHttps"), ("ws://127.0.0.1/h", "invalid"), ("https:///nohost", "invalid"),
    ("https://a b/", "invalid"), ("https://h:99999/", "invalid"), (42, "invalid"), ("", "required"),
    (None, "required"), ("https://h/" + "x" * 2100, "invalid")])
def test_other_addresses_are_refused_naming_the_field(address: object, reason: str) -> None:
    with pytest.raises(ChannelError) as caught:
        check_address(address)
    assert caught.value.reason == reason and caught.value.location == "address" and caught.value.status == 400


def test_loopback_names() -> None:
    assert is_loopback("LOCALHOST") and is_loopback("::1") and not is_loopback("localhost.example.org")


def test_tokens_are_optional_printable_and_bounded() -> None:
    assert check_token(None) is None and check_token("opaque=1&x") == "opaque=1&x"
    for bad in ("", "x" * 257, "a\r\nX-Injected: 1", 5):
        with pytest.raises(ChannelError, match="token"):
            check_token(bad)


def test_expiration_is_capped_to_a_week_and_must_be_in_the_future() -> None:
    now_ms = int(NOW * 1000)
    assert expiration_ms(None, NOW) == now_ms + MAX_LIFETIME_MS
    assert expiration_ms(now_ms + 5000, NOW) == now_ms + 5000
    assert expiration_ms(str(now_ms + 5000), NOW) == now_ms + 5000
    assert expiration_ms(now_ms + 2 * MAX_LIFETIME_MS, NOW) == now_ms + MAX_LIFETIME_MS
    for bad in (now_ms, -1, True, 1.5, "12.5", [1]):
        with pytest.raises(ChannelError) as caught:
            expiration_ms(bad, NOW)
        assert caught.value.location == "expiration"


def test_channel_resource_and_headers_and_log_form() -> None:
    channel = Channel("c1", "ada@example.com", resource_id("ada@example.com"), "http://e/drive/v3/changes",
                      "https://user:pw@hook.example.org/p?q=secret", None, 1_700_003_600_000)
    assert channel.resource_id == resource_id("ada@example.com") != resource_id("bob@example.com")
    assert "token" not in channel.resource() and channel.resource()["expiration"] == "1700003600000"
    headers = channel.headers(7, "change")
    assert "X-Goog-Channel-Token" not in headers and headers["X-Goog-Message-Number"] == "7"
    assert headers["X-Goog-Channel-Expiration"] == "Tue, 14 Nov 2023 23:13:20 GMT"
    assert channel.live(NOW) and not channel.live(1_700_003_600.0)
    assert shown(channel.address) == "https://hook.example.org"
