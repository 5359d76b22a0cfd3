"""Sink signatures, URL display and backoff: pure functions, no I/O."""

from __future__ import annotations

import random

import pytest

from integd.sink_signature import sign, verify_signature
from integd.sinks import SinkPolicy, display_url

KEY = b"sink-secret-0123456789abcdef"
BODY = b'[{"event_id":"e1","seq":1}]'


def test_signature_round_trip_and_format() -> None:
    header = sign(KEY, BODY, 1_700_000_000)
    t, v1 = header.split(",")
    assert t == "t=1700000000" and v1.startswith("v1=") and len(v1) == 3 + 64
    assert verify_signature(KEY, header, BODY, now=1_700_000_100)
    assert verify_signature(KEY.decode(), header, BODY, now=1_700_000_100)


@pytest.mark.parametrize("header", [
    None, "", "t=1700000000", "v1=abc", "t=abc,v1=00", "t=1700000000,v1=" + "0" * 64,
])
def test_malformed_or_wrong_headers_fail(header: str | None) -> None:
    assert not verify_signature(KEY, header, BODY, now=1_700_000_000)


def test_tampering_staleness_and_rotation() -> None:
    header = sign(KEY, BODY, 1_700_000_000)
    assert not verify_signature(KEY, header, BODY + b" ", now=1_700_000_000)
    assert not verify_signature(b"other-secret-0123456789ab", header, BODY, now=1_700_000_000)
    assert not verify_signature(KEY, header, BODY, now=1_700_000_301)          # replayed too late
    assert verify_signature(KEY, header, BODY, tolerance=600, now=1_700_000_301)
    forged_t = header.replace("t=1700000000", "t=1700000200")
    assert not verify_signature(KEY, forged_t, BODY, now=1_700_000_200)        # the timestamp is signed
    old = sign(b"old-secret-0123456789abcd", BODY, 1_700_000_000).split(",")[1]
    assert verify_signature(KEY, f"{header},{old}", BODY, now=1_700_000_000)  # either v1 may match


@pytest.mark.parametrize(("url", "shown"), [
    ("https://hooks.example/in", "https://hooks.example/in"),
    ("https://bot:pw@hooks.example:8443/in?token=abc&v=1", "https://hooks.example:8443/in?token=[redacted]&v=1"),
    ("http://[::1]:9000/x#frag", "http://[::1]:9000/x"),
])
def test_display_url_drops_credentials(url: str, shown: str) -> None:
    assert display_url(url) == shown


def test_backoff_grows_jittered_and_capped() -> None:
    policy = SinkPolicy(base_delay=1.0, multiplier=2.0, max_delay=30.0)
    rnd = random.Random(7)
    for failures, full in ((1, 1.0), (2, 2.0), (3, 4.0), (5, 16.0), (6, 30.0), (40, 30.0)):
        delays = [policy.backoff(failures, rnd) for _ in range(50)]
        assert all(full / 2 <= d <= full for d in delays)
        assert max(delays) - min(delays) > 0   # jittered, so sinks failing together spread out
