"""integd.logging: JSON lines, redaction, journald prefixes, stdlib routing, live level, reconfiguration."""

from __future__ import annotations

import io
import json
import logging
import os
import pty
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from integd.logging import configure_logging, redact, reset_logging, scrub_url, set_level, writes_to_journal

# Bound at import, before any configure_logging: it must still follow every later configuration.
MODULE_LOG = structlog.get_logger("tests.module_level")


@pytest.fixture(autouse=True)
def _clean_logging() -> Iterator[None]:
    yield
    reset_logging()


def lines(out: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_json_lines_parse_with_level_and_utc_timestamp() -> None:
    out = io.StringIO()
    configure_logging("info", "json", stream=out)
    structlog.get_logger("t").info("app.connected", app_id=7)
    structlog.get_logger("t").warning("app.slow", ms=900.5)
    first, second = lines(out)
    assert first["event"] == "app.connected" and first["level"] == "info" and first["app_id"] == 7
    assert first["timestamp"].endswith("Z") and "T" in first["timestamp"]
    assert second["level"] == "warning"


def test_secrets_redacted_at_any_depth_and_in_urls() -> None:
    out = io.StringIO()
    configure_logging("debug", "json", stream=out)
    structlog.get_logger().info(
        "oauth.exchange",
        token="tok-1",
        response={"data": [{"access_token": "at-2", "token_type": "bearer"}], "Refresh-Token": "rt-3"},
        headers={"Authorization": "Bearer at-4", "Accept": "application/json"},
        url="https://api.example.com/cb?code=c-5&state=ok&access_token=xyz",
        callback_url="https://u:pw-6@h/x#id_token=it-7",
        code=-32602,
    )
    (event,) = lines(out)
    text = out.getvalue()
    for secret in ("tok-1", "at-2", "rt-3", "at-4", "c-5", "xyz", "pw-6", "it-7"):
        assert secret not in text
    assert event["response"]["data"][0] == {"access_token": "[redacted]", "token_type": "bearer"}
    assert event["headers"] == {"Authorization": "[redacted]", "Accept": "application/json"}
    assert event["url"] == "https://api.example.com/cb?code=[redacted]&state=ok&access_token=[redacted]"
    assert event["code"] == -32602   # a status code field is not a secret


def test_redact_is_pure_and_exported() -> None:
    given = {"client_secret": "s", "nested": {"api_key": "k"}, "path": "/x?sig=abc&page=2", "n": None}
    assert redact(given) == {"client_secret": "[redacted]", "nested": {"api_key": "[redacted]"},
                             "path": "/x?sig=[redacted]&page=2", "n": None}
    assert given["client_secret"] == "s"
    assert scrub_url("/plain/path") == "/plain/path"


def test_tracebacks_do_not_show_locals() -> None:
    out = io.StringIO()
    configure_logging("info", "json", stream=out)

    def fail(refresh: str) -> None:
        raise RuntimeError("provider said no")

    try:
        fail("local-secret-value")
    except RuntimeError:
        structlog.get_logger().exception("sync.failed")
    (event,) = lines(out)
    assert event["level"] == "error" and event["exception"][0]["exc_type"] == "RuntimeError"
    assert "local-secret-value" not in out.getvalue()


@pytest.mark.parametrize("fmt", ["json", "console"])
def test_urls_in_exception_messages_are_scrubbed(fmt: str) -> None:
    out = io.StringIO()
    configure_logging("info", fmt, stream=out)
    try:   # the shape of aiohttp's ClientResponseError text, which quotes the request URL
        raise RuntimeError("400, message='Bad Request', url='https://p.example/token?client_secret=cs-1'")
    except RuntimeError:
        structlog.get_logger().exception("token.refresh_failed", note="x;password=pw-2 y")
    text = out.getvalue()
    assert "cs-1" not in text and "pw-2" not in text and "client_secret=[redacted]" in text
    if fmt == "json":
        (event,) = lines(out)   # the line-level pass keeps the JSON intact
        assert event["exception"][0]["exc_value"].endswith("token?client_secret=[redacted]'")
        assert event["note"] == "x;password=[redacted] y"


def test_stdlib_loggers_are_routed_and_redacted() -> None:
    out = io.StringIO()
    configure_logging("info", "json", stream=out)
    logging.getLogger("aiohttp.access").info('"GET /oauth/cb?code=%s&state=1 HTTP/1.1" 200', "auth-code")
    logging.getLogger("asyncio").warning("slow callback", extra={"ignored": 1})
    access, asyncio_line = lines(out)
    assert access["logger"] == "aiohttp.access" and access["level"] == "info"
    assert access["event"] == '"GET /oauth/cb?code=[redacted]&state=1 HTTP/1.1" 200'
    assert asyncio_line["logger"] == "asyncio" and asyncio_line["level"] == "warning"


def test_context_variables_are_merged() -> None:
    out = io.StringIO()
    configure_logging("info", "json", stream=out)
    structlog.contextvars.bind_contextvars(request_id="r-1")
    try:
        structlog.get_logger().info("rpc.call")
    finally:
        structlog.contextvars.clear_contextvars()
    assert lines(out)[0]["request_id"] == "r-1"


def test_set_level_reaches_bound_and_stdlib_loggers() -> None:
    out = io.StringIO()
    configure_logging("info", "json", stream=out)
    bound = structlog.get_logger().bind(app=1)
    bound.debug("hidden")
    logging.getLogger("x").debug("hidden too")
    set_level("debug")
    bound.debug("shown")
    logging.getLogger("x").debug("shown too")
    set_level("error")
    bound.warning("hidden again")
    bound.error("shown again")
    assert [e["event"] for e in lines(out)] == ["shown", "shown too", "shown again"]


def test_reconfiguration_reaches_module_level_loggers() -> None:
    first, second = io.StringIO(), io.StringIO()
    configure_logging("info", "json", stream=first)
    MODULE_LOG.info("one")
    configure_logging("info", "json", stream=second)
    MODULE_LOG.info("two")
    assert [e["event"] for e in lines(first)] == ["one"]
    assert [e["event"] for e in lines(second)] == ["two"]
    assert len(logging.getLogger().handlers) == len(set(logging.getLogger().handlers))


def test_bad_level_and_format() -> None:
    with pytest.raises(ValueError, match="unknown log level 'loud'"):
        configure_logging("loud")
    with pytest.raises(ValueError, match="unknown log format 'xml'"):
        configure_logging("info", "xml")


LEVEL_PREFIXES = [("debug", "<7>"), ("info", "<6>"), ("warning", "<4>"), ("error", "<3>"), ("critical", "<2>")]


def log_every_level(path: Path, env: dict[str, str]) -> list[str]:
    with path.open("w") as stream:
        configure_logging("debug", "json", stream=stream, env=env)
        log = structlog.get_logger()
        for level, _ in LEVEL_PREFIXES:
            getattr(log, level)(f"at.{level}")
        logging.getLogger("aiohttp.server").error("stdlib error")
        stream.flush()
    return path.read_text().splitlines()


def test_journal_prefixes_when_the_stream_is_the_journal(tmp_path: Path) -> None:
    path = tmp_path / "journal.log"
    path.touch()
    stat = os.stat(path)
    got = log_every_level(path, {"JOURNAL_STREAM": f"{stat.st_dev}:{stat.st_ino}"})
    for (level, prefix), line in zip(LEVEL_PREFIXES, got):
        assert line.startswith(prefix + "{"), line
        assert json.loads(line[len(prefix):])["event"] == f"at.{level}"
    assert got[-1].startswith("<3>{") and json.loads(got[-1][3:])["logger"] == "aiohttp.server"


@pytest.mark.parametrize("journal_stream", [None, "other", "1:2:3"])
def test_no_prefix_unless_the_stream_is_the_journal(tmp_path: Path, journal_stream: str | None) -> None:
    path = tmp_path / "out.log"
    path.touch()
    other = tmp_path / "other"
    other.touch()
    env = {}
    if journal_stream == "other":   # inherited from a parent whose stdout was the journal
        env = {"JOURNAL_STREAM": f"{os.stat(other).st_dev}:{os.stat(other).st_ino}"}
    elif journal_stream:
        env = {"JOURNAL_STREAM": journal_stream}
    got = log_every_level(path, env)
    assert len(got) == 6 and all(line.startswith("{") for line in got)
    assert not writes_to_journal(io.StringIO(), env)


def test_auto_format_on_a_terminal_is_coloured_console() -> None:
    master, slave = pty.openpty()
    try:
        with open(slave, "w", closefd=True) as tty:
            configure_logging("info", "auto", stream=tty)
            structlog.get_logger().info("console.line", password="pw-1")
            tty.flush()
            text = os.read(master, 65536).decode()
    finally:
        os.close(master)
    assert "console.line" in text and "\x1b[" in text   # ANSI colours
    assert "pw-1" not in text and "[redacted]" in text


def test_console_format_off_a_terminal_has_no_colours() -> None:
    out = io.StringIO()
    configure_logging("info", "console", stream=out)
    structlog.get_logger().info("console.line", n=1)
    text = out.getvalue()
    assert "console.line" in text and "n=1" in text and "\x1b[" not in text
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)
