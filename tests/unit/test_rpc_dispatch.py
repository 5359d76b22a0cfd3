"""The Dispatcher against the JSON-RPC 2.0 specification's own examples, and integd's error rules."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict, Field

from integd.identity import Principal
from integd.rpc.dispatch import Dispatcher
from integd.rpc.errors import RpcError
from integd.rpc.registry import CallContext, MethodRegistry

ROOT = Principal(uid=0, user="root", kind="admin")


class RecordingLogger:
    """A structlog-shaped fake: keeps every event with its level and fields."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, dict[str, Any]]] = []

    def _record(self, level: str, event: str, **kw: Any) -> None:
        self.events.append((level, event, kw))

    def debug(self, event: str, **kw: Any) -> None:
        self._record("debug", event, **kw)

    def info(self, event: str, **kw: Any) -> None:
        self._record("info", event, **kw)

    def warning(self, event: str, **kw: Any) -> None:
        self._record("warning", event, **kw)

    def error(self, event: str, **kw: Any) -> None:
        self._record("error", event, **kw)

    def exception(self, event: str, **kw: Any) -> None:
        self._record("exception", event, **kw)


class SubtractParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    minuend: int
    subtrahend: int


class SumParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    a: int = 0
    b: int = 0
    c: int = 0


class HelloParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    n: int


class NoParams(BaseModel):
    model_config = ConfigDict(extra="forbid")


class QuotaExceeded(Exception):
    def __init__(self, retry_after: float) -> None:
        super().__init__(f"quota exceeded, retry after {retry_after}")
        self.retry_after = retry_after


class Nested(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1)
    port: int


class ConfigureParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    items: list[Nested]


def map_domain(exc: BaseException) -> RpcError | None:
    if isinstance(exc, QuotaExceeded):
        return RpcError(-32010, "Rate limited", {"retry_after": exc.retry_after})
    return None


def build() -> tuple[Dispatcher, RecordingLogger, dict[str, Any]]:
    reg = MethodRegistry()
    seen: dict[str, Any] = {"hello": [], "release": asyncio.Event(), "started": asyncio.Event()}

    @reg.method("subtract", SubtractParams, int, summary="minuend - subtrahend")
    async def subtract(ctx: CallContext, p: SubtractParams) -> int:
        return p.minuend - p.subtrahend

    @reg.method("sum", SumParams, int, summary="a + b + c")
    async def sum_(ctx: CallContext, p: SumParams) -> int:
        return p.a + p.b + p.c

    @reg.method("notify_hello", HelloParams, None, summary="records a hello")
    async def notify_hello(ctx: CallContext, p: HelloParams) -> None:
        seen["hello"].append(p.n)

    @reg.method("get_data", NoParams, list[Any], summary="fixed data")
    async def get_data(ctx: CallContext, p: NoParams) -> list[Any]:
        return ["hello", 5]

    @reg.method("leak", NoParams, None, summary="fails with a secret in its message")
    async def leak(ctx: CallContext, p: NoParams) -> None:
        raise RuntimeError("token sk_secret_value rejected")

    @reg.method("limited", NoParams, None, summary="fails with a mapped domain error")
    async def limited(ctx: CallContext, p: NoParams) -> None:
        raise QuotaExceeded(12.5)

    @reg.method("explicit", NoParams, None, summary="raises an RpcError itself")
    async def explicit(ctx: CallContext, p: NoParams) -> None:
        raise RpcError(-32020, "App not found", {"app_id": "a1"})

    @reg.method("slow_ok", NoParams, str, summary="waits for the release event")
    async def slow_ok(ctx: CallContext, p: NoParams) -> str:
        seen["started"].set()
        await seen["release"].wait()
        return "done"

    @reg.method("boom_then_release", NoParams, None, summary="fails after releasing slow_ok")
    async def boom(ctx: CallContext, p: NoParams) -> None:
        seen["release"].set()
        raise ValueError("kaput")

    @reg.method("configure", ConfigureParams, None, summary="validates nested params")
    async def configure(ctx: CallContext, p: ConfigureParams) -> None:
        return None

    @reg.method("loose", NoParams, Nested, summary="returns a dict where a model is declared")
    async def loose(ctx: CallContext, p: NoParams) -> Any:
        return {"name": "n", "port": 1, "token": "sk_secret_value"}

    @reg.method("whoami", NoParams, dict[str, Any], summary="the caller")
    async def whoami(ctx: CallContext, p: NoParams) -> dict[str, Any]:
        return {"uid": ctx.principal.uid, "request_id": ctx.request_id}

    log = RecordingLogger()
    return Dispatcher(reg, map_domain, log), log, seen


def ctx_factory(request_id: str) -> CallContext:
    return CallContext(principal=ROOT, connection=None, request_id=request_id)


async def call(dispatcher: Dispatcher, payload: str | bytes) -> Any:
    raw = payload.encode() if isinstance(payload, str) else payload
    answer = await dispatcher.handle_payload(raw, ctx_factory)
    return None if answer is None else json.loads(answer)


def without_data(obj: Any) -> Any:
    """The spec's examples omit the optional error.data member, which integd fills with the reason."""
    if isinstance(obj, list):
        return [without_data(o) for o in obj]
    if isinstance(obj, dict) and isinstance(obj.get("error"), dict):
        return {**obj, "error": {k: v for k, v in obj["error"].items() if k != "data"}}
    return obj


# --- the specification's "Examples" section, one by one --------------------------------------------

SPEC_EXAMPLES = [
    ("positional params 1", '{"jsonrpc": "2.0", "method": "subtract", "params": [42, 23], "id": 1}',
     {"jsonrpc": "2.0", "result": 19, "id": 1}),
    ("positional params 2", '{"jsonrpc": "2.0", "method": "subtract", "params": [23, 42], "id": 2}',
     {"jsonrpc": "2.0", "result": -19, "id": 2}),
    ("named params 1",
     '{"jsonrpc": "2.0", "method": "subtract", "params": {"subtrahend": 23, "minuend": 42}, "id": 3}',
     {"jsonrpc": "2.0", "result": 19, "id": 3}),
    ("named params 2",
     '{"jsonrpc": "2.0", "method": "subtract", "params": {"minuend": 42, "subtrahend": 23}, "id": 4}',
     {"jsonrpc": "2.0", "result": 19, "id": 4}),
    ("notification 1", '{"jsonrpc": "2.0", "method": "update", "params": [1,2,3,4,5]}', None),
    ("notification 2", '{"jsonrpc": "2.0", "method": "foobar"}', None),
    ("non-existent method", '{"jsonrpc": "2.0", "method": "foobar", "id": "1"}',
     {"jsonrpc": "2.0", "error": {"code": -32601, "message": "Method not found"}, "id": "1"}),
    ("invalid JSON", '{"jsonrpc": "2.0", "method": "foobar, "params": "bar", "baz]',
     {"jsonrpc": "2.0", "error": {"code": -32700, "message": "Parse error"}, "id": None}),
    ("invalid Request object", '{"jsonrpc": "2.0", "method": 1, "params": "bar"}',
     {"jsonrpc": "2.0", "error": {"code": -32600, "message": "Invalid Request"}, "id": None}),
    ("batch, invalid JSON",
     '[\n  {"jsonrpc": "2.0", "method": "sum", "params": [1,2,4], "id": "1"},\n  {"jsonrpc": "2.0", "method"\n]',
     {"jsonrpc": "2.0", "error": {"code": -32700, "message": "Parse error"}, "id": None}),
    ("empty Array", "[]",
     {"jsonrpc": "2.0", "error": {"code": -32600, "message": "Invalid Request"}, "id": None}),
    ("invalid batch (but not empty)", "[1]",
     [{"jsonrpc": "2.0", "error": {"code": -32600, "message": "Invalid Request"}, "id": None}]),
    ("invalid batch", "[1,2,3]",
     [{"jsonrpc": "2.0", "error": {"code": -32600, "message": "Invalid Request"}, "id": None}] * 3),
    ("rpc call Batch", """[
        {"jsonrpc": "2.0", "method": "sum", "params": [1,2,4], "id": "1"},
        {"jsonrpc": "2.0", "method": "notify_hello", "params": [7]},
        {"jsonrpc": "2.0", "method": "subtract", "params": [42,23], "id": "2"},
        {"foo": "boo"},
        {"jsonrpc": "2.0", "method": "foo.get", "params": {"name": "myself"}, "id": "5"},
        {"jsonrpc": "2.0", "method": "get_data", "id": "9"}
    ]""", [
        {"jsonrpc": "2.0", "result": 7, "id": "1"},
        {"jsonrpc": "2.0", "result": 19, "id": "2"},
        {"jsonrpc": "2.0", "error": {"code": -32600, "message": "Invalid Request"}, "id": None},
        {"jsonrpc": "2.0", "error": {"code": -32601, "message": "Method not found"}, "id": "5"},
        {"jsonrpc": "2.0", "result": ["hello", 5], "id": "9"},
    ]),
    ("rpc call Batch (all notifications)", """[
        {"jsonrpc": "2.0", "method": "notify_sum", "params": [1,2,4]},
        {"jsonrpc": "2.0", "method": "notify_hello", "params": [7]}
    ]""", None),
]


@pytest.mark.parametrize(("payload", "expected"), [(p, e) for _, p, e in SPEC_EXAMPLES],
                         ids=[name for name, _, _ in SPEC_EXAMPLES])
async def test_specification_examples(payload: str, expected: Any) -> None:
    dispatcher, _, _ = build()
    assert without_data(await call(dispatcher, payload)) == expected


async def test_notifications_run_but_get_no_answer() -> None:
    dispatcher, _, seen = build()
    assert await call(dispatcher, '{"jsonrpc":"2.0","method":"notify_hello","params":[7]}') is None
    assert seen["hello"] == [7]


async def test_notification_that_fails_still_gets_no_answer() -> None:
    dispatcher, _, _ = build()
    assert await call(dispatcher, '{"jsonrpc":"2.0","method":"leak"}') is None
    assert await call(dispatcher, '{"jsonrpc":"2.0","method":"subtract","params":{"x":1}}') is None


async def test_error_data_names_the_problem() -> None:
    dispatcher, _, _ = build()
    missing = await call(dispatcher, '{"jsonrpc":"2.0","method":"foobar","id":1}')
    assert missing["error"]["data"] == {"method": "foobar"}
    bad = await call(dispatcher, '{"jsonrpc":"2.0","method":1,"id":1}')
    assert bad["error"]["data"] == {"reason": "method must be a string"}
    assert bad["id"] == 1  # the id itself was valid, so it is echoed


@pytest.mark.parametrize("req_id", ["abc", 7, -3, 2.5, None, "", 10**20])
async def test_id_is_echoed_exactly(req_id: Any) -> None:
    dispatcher, _, _ = build()
    payload = json.dumps({"jsonrpc": "2.0", "method": "get_data", "id": req_id})
    answer = await call(dispatcher, payload)
    assert answer == {"jsonrpc": "2.0", "result": ["hello", 5], "id": req_id}
    assert type(answer["id"]) is type(req_id)


@pytest.mark.parametrize("request_obj", [
    {"jsonrpc": "2.0", "method": "get_data", "id": True},
    {"jsonrpc": "2.0", "method": "get_data", "id": [1]},
    {"jsonrpc": "2.0", "method": "get_data", "id": {"a": 1}},
])
async def test_invalid_ids_are_invalid_requests_answered_with_null(request_obj: dict[str, Any]) -> None:
    dispatcher, _, _ = build()
    answer = await call(dispatcher, json.dumps(request_obj))
    assert answer["error"]["code"] == -32600 and answer["id"] is None


@pytest.mark.parametrize("request_obj", [
    {"method": "get_data", "id": 1},
    {"jsonrpc": "1.0", "method": "get_data", "id": 1},
    {"jsonrpc": 2.0, "method": "get_data", "id": 1},
    {"jsonrpc": "2.0", "id": 1},
    {"jsonrpc": "2.0", "method": None, "id": 1},
    {"jsonrpc": "2.0", "method": "get_data", "params": "x", "id": 1},
    {"jsonrpc": "2.0", "method": "get_data", "params": 3, "id": 1},
    {"jsonrpc": "2.0", "method": "get_data", "params": None, "id": 1},
])
async def test_malformed_requests_are_invalid(request_obj: dict[str, Any]) -> None:
    dispatcher, _, _ = build()
    answer = await call(dispatcher, json.dumps(request_obj))
    assert answer["error"]["code"] == -32600
    assert answer["id"] == 1


@pytest.mark.parametrize("payload", [b"\xff\xfe", b"", b"NaN", b'{"jsonrpc":"2.0","method":"x","id":Infinity}',
                                     b"[" * 200_000 + b"]" * 200_000])
async def test_not_json_is_a_parse_error(payload: bytes) -> None:
    dispatcher, _, _ = build()
    answer = await call(dispatcher, payload)
    assert answer["error"]["code"] == -32700 and answer["id"] is None


async def test_scalar_payload_is_an_invalid_request() -> None:
    dispatcher, _, _ = build()
    assert (await call(dispatcher, "42"))["error"]["code"] == -32600


async def test_invalid_params_locations_start_with_params_and_hide_input() -> None:
    dispatcher, _, _ = build()
    payload = {"jsonrpc": "2.0", "method": "configure", "id": 1,
               "params": {"items": [{"name": "", "port": "sk_secret_value"}], "extra": 1}}
    answer = await call(dispatcher, json.dumps(payload))
    error = answer["error"]
    assert error["code"] == -32602 and error["message"] == "Invalid params"
    locs = sorted(tuple(e["loc"]) for e in error["data"]["errors"])
    assert locs == [("params", "extra"), ("params", "items", 0, "name"), ("params", "items", 0, "port")]
    assert all(set(e) == {"type", "loc", "msg"} for e in error["data"]["errors"])
    assert "sk_secret_value" not in json.dumps(answer)


async def test_too_many_positional_params_is_invalid_params() -> None:
    dispatcher, _, _ = build()
    answer = await call(dispatcher, '{"jsonrpc":"2.0","method":"subtract","params":[1,2,3],"id":1}')
    assert answer["error"]["code"] == -32602
    assert "at most 2 positional params, got 3" in answer["error"]["data"]["errors"][0]["msg"]


async def test_missing_params_mean_empty_object() -> None:
    dispatcher, _, _ = build()
    assert (await call(dispatcher, '{"jsonrpc":"2.0","method":"sum","id":1}'))["result"] == 0
    missing = await call(dispatcher, '{"jsonrpc":"2.0","method":"subtract","id":1}')
    assert [e["loc"] for e in missing["error"]["data"]["errors"]] == [["params", "minuend"],
                                                                      ["params", "subtrahend"]]


async def test_unmapped_exception_is_internal_error_without_its_text() -> None:
    dispatcher, log, _ = build()
    answer = await call(dispatcher, '{"jsonrpc":"2.0","method":"leak","id":1}')
    assert answer["error"]["code"] == -32603 and answer["error"]["message"] == "Internal error"
    assert set(answer["error"]["data"]) == {"error_id"}
    assert "sk_secret_value" not in json.dumps(answer) and "RuntimeError" not in json.dumps(answer)
    logged = [kw for level, event, kw in log.events if event == "rpc.internal_error"]
    assert logged[0]["error_id"] == answer["error"]["data"]["error_id"]
    assert isinstance(logged[0]["exc_info"], RuntimeError)  # the traceback goes to the log, by id


async def test_mapped_domain_exception_gets_its_code_and_data() -> None:
    dispatcher, _, _ = build()
    answer = await call(dispatcher, '{"jsonrpc":"2.0","method":"limited","id":"q"}')
    assert answer == {"jsonrpc": "2.0", "id": "q",
                      "error": {"code": -32010, "message": "Rate limited", "data": {"retry_after": 12.5}}}


async def test_rpc_error_raised_by_a_handler_goes_out_as_is() -> None:
    dispatcher, _, _ = build()
    answer = await call(dispatcher, '{"jsonrpc":"2.0","method":"explicit","id":1}')
    assert answer["error"] == {"code": -32020, "message": "App not found", "data": {"app_id": "a1"}}


async def test_failing_error_mapper_is_an_internal_error() -> None:
    reg = MethodRegistry()

    @reg.method("fail", NoParams, None, summary="fails")
    async def fail(ctx: CallContext, p: NoParams) -> None:
        raise KeyError("x")

    def broken_mapper(exc: BaseException) -> RpcError | None:
        raise TypeError("mapper bug")

    dispatcher = Dispatcher(reg, broken_mapper, RecordingLogger())
    answer = await call(dispatcher, '{"jsonrpc":"2.0","method":"fail","id":1}')
    assert answer["error"]["code"] == -32603


async def test_a_failing_call_does_not_stop_a_concurrent_call_in_the_same_batch() -> None:
    dispatcher, _, _ = build()
    # slow_ok can only finish because boom_then_release, running concurrently, releases it and then fails.
    answer = await asyncio.wait_for(call(dispatcher, """[
        {"jsonrpc":"2.0","method":"slow_ok","id":1},
        {"jsonrpc":"2.0","method":"boom_then_release","id":2}
    ]"""), timeout=5)
    assert answer[0] == {"jsonrpc": "2.0", "result": "done", "id": 1}
    assert answer[1]["error"]["code"] == -32603 and answer[1]["id"] == 2


async def test_every_call_is_logged_with_method_uid_duration_and_outcome_but_not_params() -> None:
    dispatcher, log, _ = build()
    await call(dispatcher, '{"jsonrpc":"2.0","method":"subtract","params":[9,"sk_secret_value"],"id":1}')
    (entry,) = [kw for level, event, kw in log.events if event == "rpc.call"]
    assert entry["method"] == "subtract" and entry["uid"] == 0 and entry["outcome"] == "error -32602"
    assert entry["duration_ms"] >= 0
    assert "sk_secret_value" not in repr(log.events)


async def test_ctx_factory_may_refuse_a_call() -> None:
    dispatcher, _, _ = build()

    def refusing(request_id: str) -> CallContext:
        raise RpcError(-32099, "integd is shutting down")

    answer = json.loads(await dispatcher.handle_payload(b'{"jsonrpc":"2.0","method":"sum","id":1}', refusing))
    assert answer["error"] == {"code": -32099, "message": "integd is shutting down"}


async def test_context_carries_principal_and_a_request_id() -> None:
    dispatcher, _, _ = build()
    answer = await call(dispatcher, '{"jsonrpc":"2.0","method":"whoami","id":1}')
    assert answer["result"]["uid"] == 0 and len(answer["result"]["request_id"]) == 16


async def test_in_flight_counts_executing_calls() -> None:
    dispatcher, _, seen = build()
    task = asyncio.create_task(call(dispatcher, '{"jsonrpc":"2.0","method":"slow_ok","id":1}'))
    await seen["started"].wait()
    assert dispatcher.in_flight == 1
    seen["release"].set()
    await task
    assert dispatcher.in_flight == 0


async def test_rpc_discover_is_built_in() -> None:
    dispatcher, _, _ = build()
    answer = await call(dispatcher, '{"jsonrpc":"2.0","method":"rpc.discover","params":[],"id":1}')
    doc = answer["result"]
    assert doc["openrpc"] == "1.3.2"
    assert "rpc.discover" in [m["name"] for m in doc["methods"]]


async def test_a_result_breaking_its_declared_type_is_an_internal_error_without_its_value(
        recwarn: pytest.WarningsRecorder) -> None:
    dispatcher, log, _ = build()
    answer = await call(dispatcher, '{"jsonrpc":"2.0","method":"loose","id":1}')
    assert answer["error"]["code"] == -32603 and set(answer["error"]["data"]) == {"error_id"}
    assert "sk_secret_value" not in json.dumps(answer)
    assert not [w for w in recwarn if "sk_secret_value" in str(w.message)]
