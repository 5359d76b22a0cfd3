"""The OpenRPC 1.3.2 document for a :class:`MethodRegistry`, generated from the same pydantic models that
validate params and serialise results (so the document cannot drift from the code).

Shape: ``info``; ``methods`` sorted by name, each with ``paramStructure: "either"`` (by-name or
by-position in field order), one Content Descriptor per params-model field (``required`` as the model
says), a ``result`` descriptor and the declared ``errors``; ``components.schemas`` holds every shared
definition, and every ``$ref`` points at ``#/components/schemas/<Name>``.

Schemas come from one ``TypeAdapter.json_schemas`` call (the generalisation of
``models_json_schema`` that also takes non-model result types such as ``list[Model]``), so definitions are
shared and names disambiguated once. pydantic emits JSON Schema 2020-12; OpenRPC descriptors expect
draft-07, so tuple ``prefixItems`` are rewritten to draft-07 array ``items``.
"""

from __future__ import annotations

import copy
import weakref
from typing import Any

from pydantic import TypeAdapter

from integd.rpc.registry import MethodRegistry, MethodSpec

OPENRPC_VERSION = "1.3.2"
META_SCHEMA_URL = "https://raw.githubusercontent.com/open-rpc/meta-schema/master/schema.json"
_REF_PREFIX = "#/components/schemas/"
_NOT_SCHEMAS = frozenset({"default", "const", "enum", "examples", "example"})
_SCHEMA_MAPS = frozenset({"properties", "patternProperties", "$defs", "definitions", "dependentSchemas"})

_cache: weakref.WeakKeyDictionary[MethodRegistry, tuple[tuple[int, str, str], dict[str, Any]]] = (
    weakref.WeakKeyDictionary()
)


def build_openrpc(registry: MethodRegistry, *, title: str, version: str) -> dict[str, Any]:
    """The OpenRPC document (a fresh copy; built once per registry state, then cached).

    Example:
        >>> from pydantic import BaseModel
        >>> class Ping(BaseModel):
        ...     pass
        >>> reg = MethodRegistry()
        >>> @reg.method("ping", Ping, str, summary="Answer pong")
        ... async def ping(ctx, p): return "pong"
        >>> doc = build_openrpc(reg, title="integd", version="0.1.0")
        >>> doc["methods"][0]["result"]
        {'name': 'result', 'schema': {'type': 'string'}}
    """
    key = (registry.generation, title, version)
    hit = _cache.get(registry)
    if hit is None or hit[0] != key:
        hit = (key, _build(registry, title, version))
        _cache[registry] = hit
    return copy.deepcopy(hit[1])


def _build(registry: MethodRegistry, title: str, version: str) -> dict[str, Any]:
    specs = [registry.get(name) for name in registry.names()]
    inputs = []
    for spec in specs:
        inputs.append((("params", spec.name), "validation", TypeAdapter(spec.params)))
        inputs.append((("result", spec.name), "serialization", spec.result_adapter))
    by_key, defs = TypeAdapter.json_schemas(inputs, ref_template=_REF_PREFIX + "{model}")
    schemas: dict[str, Any] = {name: _to_draft7(s) for name, s in defs.get("$defs", {}).items()}
    methods = []
    for spec in specs:
        params_schema = _to_draft7(by_key[(("params", spec.name), "validation")])
        result_schema = _to_draft7(by_key[(("result", spec.name), "serialization")])
        methods.append(_method(spec, _params_object(params_schema, schemas), result_schema))
    doc: dict[str, Any] = {
        "openrpc": OPENRPC_VERSION,
        "info": {"title": title, "version": version},
        "methods": methods,
        "components": {"schemas": _referenced(methods, schemas)},
    }
    return doc


def _params_object(schema: dict[str, Any], schemas: dict[str, Any]) -> dict[str, Any]:
    """The params model's object schema, following its top-level $ref."""
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith(_REF_PREFIX):
        return schemas[ref[len(_REF_PREFIX):]]
    return schema


def _method(spec: MethodSpec, params_obj: dict[str, Any], result_schema: dict[str, Any]) -> dict[str, Any]:
    required = set(params_obj.get("required", ()))
    params = []
    for name, prop in params_obj.get("properties", {}).items():
        descriptor: dict[str, Any] = {"name": name, "required": name in required, "schema": prop}
        if isinstance(prop.get("description"), str):
            descriptor["description"] = prop["description"]
        if prop.get("deprecated") is True:
            descriptor["deprecated"] = True
        params.append(descriptor)
    if spec.name == "rpc.discover":
        result_schema = {"$ref": META_SCHEMA_URL}
    method: dict[str, Any] = {
        "name": spec.name,
        "summary": spec.summary,
        "paramStructure": "either",
        "params": params,
        "result": {"name": "result", "schema": result_schema},
    }
    if spec.description:
        method["description"] = spec.description
    if spec.tags:
        method["tags"] = [{"name": tag} for tag in spec.tags]
    if spec.errors:
        method["errors"] = [{"code": code, "message": message} for code, message in spec.errors]
    return method


def _to_draft7(schema: Any) -> Any:
    """A copy of a 2020-12 schema with tuple ``prefixItems`` in draft-07 form."""
    if isinstance(schema, list):
        return [_to_draft7(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in _SCHEMA_MAPS and isinstance(value, dict):
            out[key] = {name: _to_draft7(sub) for name, sub in value.items()}
        elif key in _NOT_SCHEMAS:
            out[key] = copy.deepcopy(value)
        else:
            out[key] = _to_draft7(value)
    if "prefixItems" in out:
        positional = out.pop("prefixItems")
        out["additionalItems"] = out.pop("items") if "items" in out else False
        out["items"] = positional
    return out


def _referenced(methods: list[dict[str, Any]], schemas: dict[str, Any]) -> dict[str, Any]:
    """Only the component schemas some method reaches (params models are inlined as descriptors)."""
    keep: dict[str, Any] = {}
    pending = _refs_in(methods)
    while pending:
        name = pending.pop()
        if name in keep or name not in schemas:
            continue
        keep[name] = schemas[name]
        pending.extend(_refs_in(schemas[name]))
    return dict(sorted(keep.items()))


def _refs_in(node: Any) -> list[str]:
    found: list[str] = []
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            ref = item.get("$ref")
            if isinstance(ref, str) and ref.startswith(_REF_PREFIX):
                found.append(ref[len(_REF_PREFIX):])
            for key, value in item.items():
                if key in _SCHEMA_MAPS and isinstance(value, dict):
                    stack.extend(value.values())  # keys there are names, not keywords
                elif key not in _NOT_SCHEMAS:
                    stack.append(value)
        elif isinstance(item, list):
            stack.extend(item)
    return found
