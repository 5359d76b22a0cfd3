"""MethodRegistry: params binding by name and by position, result serialisation."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from integd.rpc.errors import RpcError
from integd.rpc.registry import CallContext, MethodRegistry


class Params(BaseModel):
    model_config = ConfigDict(extra="forbid")
    app_id: str
    limit: int = 10
    since: datetime | None = None


class AliasParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    from_: str = Field(alias="from")


class Result(BaseModel):
    when: datetime
    token: SecretStr


def make() -> MethodRegistry:
    reg = MethodRegistry()

    @reg.method("m", Params, Result, summary="m")
    async def m(ctx: CallContext, p: Params) -> Result:
        raise AssertionError("not called in these tests")

    @reg.method("alias", AliasParams, None, summary="alias")
    async def alias(ctx: CallContext, p: AliasParams) -> None:
        return None

    return reg


def test_positional_params_map_onto_fields_in_order() -> None:
    bound = make().get("m").bind_params(["a1", 5])
    assert bound == Params(app_id="a1", limit=5)


def test_named_params_and_absent_params() -> None:
    spec = make().get("m")
    assert spec.bind_params({"app_id": "a1"}).limit == 10
    with pytest.raises(RpcError) as info:
        spec.bind_params(None)
    assert info.value.code == -32602


def test_positional_mapping_uses_the_alias_callers_must_use() -> None:
    assert make().get("alias").bind_params(["x"]).from_ == "x"
    assert make().get("alias").bind_params({"from": "y"}).from_ == "y"


def test_result_is_serialised_to_json_types_and_secrets_stay_masked() -> None:
    spec = make().get("m")
    dumped = spec.dump_result(Result(when=datetime(2024, 1, 2, tzinfo=timezone.utc), token=SecretStr("s3cr3t")))
    assert dumped == {"when": "2024-01-02T00:00:00Z", "token": "**********"}


def test_registration_mistakes_are_refused() -> None:
    reg = make()
    with pytest.raises(TypeError):
        reg.method("x", dict, None, summary="x")(lambda ctx, p: None)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        reg.method("y", Params, None, summary="y", errors=[("-1", "bad")])(lambda ctx, p: None)  # type: ignore[list-item]
    assert reg.names() == ["alias", "m"]
    with pytest.raises(KeyError):
        reg.get("nope")


def test_a_plain_value_is_validated_against_the_declared_type() -> None:
    from pydantic import ValidationError

    spec = make().get("m")
    assert spec.dump_result({"when": "2024-01-02T00:00:00Z", "token": "sk_secret_value"}) == \
        {"when": "2024-01-02T00:00:00Z", "token": "**********"}, "a dict gets the model's masking too"
    with pytest.raises(ValidationError):
        spec.dump_result({"token": "sk_secret_value"})
