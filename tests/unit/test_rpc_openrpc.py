"""The OpenRPC document: structure, descriptors, shared schemas and resolvable refs."""

from __future__ import annotations

import json
from enum import Enum
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict, Field

from integd.rpc.dispatch import Dispatcher
from integd.rpc.openrpc import META_SCHEMA_URL, build_openrpc
from integd.rpc.registry import CallContext, MethodRegistry


class Status(str, Enum):
    healthy = "healthy"
    failing = "failing"


class App(BaseModel):
    id: str
    status: Status
    window: tuple[int, int] | None = None


class AppsListParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    owner: str | None = Field(default=None, description="only apps of this user")
    status: Status | None = None


class AppGetParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    app_id: str = Field(description="the app's id")


class Page(BaseModel):
    items: list[App]
    next_cursor: str | None = None


def registry() -> MethodRegistry:
    reg = MethodRegistry()

    @reg.method("apps.list", AppsListParams, Page, summary="List apps", description="Apps you may see.",
                errors=[(-32010, "Rate limited")], tags=["apps"])
    async def apps_list(ctx: CallContext, p: AppsListParams) -> Page:
        return Page(items=[])

    @reg.method("apps.get", AppGetParams, App, summary="One app", tags=["apps"])
    async def apps_get(ctx: CallContext, p: AppGetParams) -> App:
        return App(id=p.app_id, status=Status.healthy)

    @reg.method("apps.ids", AppsListParams, list[str], summary="App ids")
    async def apps_ids(ctx: CallContext, p: AppsListParams) -> list[str]:
        return []

    Dispatcher(reg)  # registers rpc.discover
    return reg


def all_refs(node: Any) -> list[str]:
    found = []
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            found.append(node["$ref"])
        for value in node.values():
            found.extend(all_refs(value))
    elif isinstance(node, list):
        for value in node:
            found.extend(all_refs(value))
    return found


def test_document_root_and_info() -> None:
    doc = build_openrpc(registry(), title="integd", version="1.2.3")
    assert doc["openrpc"] == "1.3.2"
    assert doc["info"] == {"title": "integd", "version": "1.2.3"}
    assert [m["name"] for m in doc["methods"]] == ["apps.get", "apps.ids", "apps.list", "rpc.discover"]
    json.dumps(doc)  # pure JSON


def test_methods_have_valid_structure() -> None:
    doc = build_openrpc(registry(), title="integd", version="1")
    allowed = {"name", "summary", "description", "tags", "paramStructure", "params", "result", "errors"}
    for method in doc["methods"]:
        assert set(method) <= allowed and {"name", "params", "result"} <= set(method)
        assert method["paramStructure"] == "either"
        for descriptor in method["params"] + [method["result"]]:
            assert isinstance(descriptor["name"], str) and isinstance(descriptor["schema"], dict)
        for error in method.get("errors", []):
            assert isinstance(error["code"], int) and isinstance(error["message"], str)


def test_params_are_one_descriptor_per_field_in_order() -> None:
    doc = build_openrpc(registry(), title="integd", version="1")
    methods = {m["name"]: m for m in doc["methods"]}
    listing = methods["apps.list"]
    assert [p["name"] for p in listing["params"]] == ["owner", "status"]
    assert [p["required"] for p in listing["params"]] == [False, False]
    assert listing["params"][0]["description"] == "only apps of this user"
    assert methods["apps.get"]["params"] == [
        {"name": "app_id", "required": True, "description": "the app's id",
         "schema": {"type": "string", "title": "App Id", "description": "the app's id"}}]
    assert listing["errors"] == [{"code": -32010, "message": "Rate limited"}]
    assert listing["tags"] == [{"name": "apps"}] and listing["description"] == "Apps you may see."
    assert methods["rpc.discover"]["params"] == []
    assert methods["rpc.discover"]["result"]["schema"] == {"$ref": META_SCHEMA_URL}


def test_every_ref_resolves_in_components_schemas() -> None:
    doc = build_openrpc(registry(), title="integd", version="1")
    schemas = doc["components"]["schemas"]
    refs = [r for r in all_refs(doc) if r != META_SCHEMA_URL]
    assert refs, "shared models must be referenced, not inlined"
    for ref in refs:
        assert ref.startswith("#/components/schemas/")
        assert ref.removeprefix("#/components/schemas/") in schemas
    assert {"App", "Page", "Status"} <= set(schemas)
    assert "$defs" not in json.dumps(doc)
    # params models are described by their descriptors, not left unreferenced in components
    assert "AppsListParams" not in schemas


def test_tuples_are_draft07_items() -> None:
    doc = build_openrpc(registry(), title="integd", version="1")
    window = doc["components"]["schemas"]["App"]["properties"]["window"]["anyOf"][0]
    assert "prefixItems" not in window
    assert window["items"] == [{"type": "integer"}, {"type": "integer"}]
    assert window["additionalItems"] is False


def test_document_is_cached_but_refreshed_after_a_registration() -> None:
    reg = registry()
    first = build_openrpc(reg, title="integd", version="1")
    first["methods"].clear()  # callers get a copy: mutating it does not poison the cache
    assert len(build_openrpc(reg, title="integd", version="1")["methods"]) == 4

    @reg.method("late", AppGetParams, None, summary="registered later")
    async def late(ctx: CallContext, p: AppGetParams) -> None:
        return None

    assert "late" in [m["name"] for m in build_openrpc(reg, title="integd", version="1")["methods"]]


@pytest.mark.parametrize("name", ["rpc.mine", "", "apps.get"])
def test_reserved_empty_and_duplicate_names_are_refused(name: str) -> None:
    reg = registry()
    with pytest.raises(ValueError):
        reg.method(name, AppGetParams, None, summary="x")(lambda ctx, p: None)
