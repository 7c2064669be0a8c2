"""A value held against a Google discovery-document schema (every departure, unknown fields included):
the emulator's answers and the recorded real answers must have the shapes Google documents."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cloudrun_emulator.monitoring import parse_timestamp


def conform(value: Any, schema: Mapping[str, Any], schemas: Mapping[str, Any], where: str) -> list[str]:
    """Every way ``value`` departs from a discovery schema (unknown fields included)."""
    if "$ref" in schema:
        return conform(value, schemas[schema["$ref"]], schemas, where)
    kind = schema.get("type")
    if kind == "object" and "properties" in schema:
        if not isinstance(value, dict):
            return [f"{where}: expected an object"]
        problems = [f"{where}.{k}: unknown field" for k in value if k not in schema["properties"]]
        for key, sub in value.items():
            if key in schema["properties"]:
                problems += conform(sub, schema["properties"][key], schemas, f"{where}.{key}")
        return problems
    if kind == "object":
        if not isinstance(value, dict):
            return [f"{where}: expected a map"]
        inner = schema.get("additionalProperties", {})
        return [p for k, v in value.items() for p in conform(v, inner, schemas, f"{where}.{k}")]
    if kind == "array":
        if not isinstance(value, list):
            return [f"{where}: expected an array"]
        return [p for i, v in enumerate(value) for p in conform(v, schema["items"], schemas, f"{where}[{i}]")]
    return _scalar(value, schema, where)


def _scalar(value: Any, schema: Mapping[str, Any], where: str) -> list[str]:
    kind, fmt = schema.get("type"), schema.get("format")
    checks = {
        "string": isinstance(value, str),
        "integer": isinstance(value, int) and not isinstance(value, bool),
        "number": isinstance(value, int | float) and not isinstance(value, bool),
        "boolean": isinstance(value, bool),
    }
    if kind in checks and not checks[kind]:
        return [f"{where}: expected {kind}, got {type(value).__name__}"]
    if fmt == "int64" and not (isinstance(value, str) and value.lstrip("-").isdigit()):
        return [f"{where}: int64 must be a decimal string"]
    if fmt == "google-datetime" and parse_timestamp(value, where) is None:
        return [f"{where}: not RFC 3339"]
    if "enum" in schema and value not in schema["enum"]:
        return [f"{where}: {value!r} not in enum"]
    return []
