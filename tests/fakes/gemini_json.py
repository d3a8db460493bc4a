"""JSON answers of the fake's text models: what Gemini guarantees under `responseMimeType: application/json`.

With a `responseSchema` (Gemini's OpenAPI subset) or a `responseJsonSchema`, Gemini's answer always matches the
schema; the fake checks its scripted answer against the schema the request carried (a script that does not fit is
a test bug, reported as a 500 with the reason) and, when nothing is scripted, answers the smallest value that
fits. Both schema dialects are read by the same small checker: type names are compared case-insensitively.
"""

from __future__ import annotations

from typing import Any

_PY_TYPES: dict[str, tuple[type, ...]] = {
    "STRING": (str,),
    "NUMBER": (int, float),
    "INTEGER": (int,),
    "BOOLEAN": (bool,),
    "ARRAY": (list,),
    "OBJECT": (dict,),
}


def _types(schema: dict[str, Any]) -> list[str]:
    kind = schema.get("type")
    kinds = kind if isinstance(kind, list) else [kind] if kind else []
    return [str(k).upper() for k in kinds]


def mismatch(value: Any, schema: dict[str, Any] | None, path: str = "$") -> str | None:
    """Why `value` does not fit `schema`, or None when it does."""
    if not schema:
        return None
    if value is None:
        return None if schema.get("nullable") or "NULL" in _types(schema) else f"{path}: null is not allowed"
    if "anyOf" in schema:
        reasons = [mismatch(value, option, path) for option in schema["anyOf"]]
        return None if any(r is None for r in reasons) else f"{path}: fits none of anyOf ({reasons[0]})"
    kinds = [k for k in _types(schema) if k in _PY_TYPES]
    if kinds and not any(_is(value, k) for k in kinds):
        return f"{path}: expected {'/'.join(kinds)}, got {type(value).__name__}"
    if "enum" in schema and value not in schema["enum"]:
        return f"{path}: {value!r} is not one of {schema['enum']}"
    if isinstance(value, dict):
        properties = schema.get("properties") or {}
        for name in schema.get("required") or []:
            if name not in value:
                return f"{path}: required property {name!r} is missing"
        for name, item in value.items():
            if name not in properties:
                if properties or schema.get("additionalProperties") is False:
                    return f"{path}: property {name!r} is not in the schema"
                continue
            reason = mismatch(item, properties[name], f"{path}.{name}")
            if reason:
                return reason
    if isinstance(value, list):
        if "minItems" in schema and len(value) < int(schema["minItems"]):
            return f"{path}: fewer than {schema['minItems']} items"
        if "maxItems" in schema and len(value) > int(schema["maxItems"]):
            return f"{path}: more than {schema['maxItems']} items"
        for i, item in enumerate(value):
            reason = mismatch(item, schema.get("items"), f"{path}[{i}]")
            if reason:
                return reason
    if isinstance(value, int | float) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            return f"{path}: {value} is below the minimum {schema['minimum']}"
        if "maximum" in schema and value > schema["maximum"]:
            return f"{path}: {value} is above the maximum {schema['maximum']}"
    return None


def _is(value: Any, kind: str) -> bool:
    if kind in ("NUMBER", "INTEGER") and isinstance(value, bool):
        return False
    return isinstance(value, _PY_TYPES[kind])


def example(schema: dict[str, Any] | None) -> Any:
    """The smallest value that fits `schema` (what the fake answers when no verdict is scripted)."""
    if not schema:
        return {}
    if "anyOf" in schema:
        return example(schema["anyOf"][0])
    if schema.get("enum"):
        return schema["enum"][0]
    kinds = _types(schema) or ["OBJECT"]
    kind = kinds[0]
    if kind == "OBJECT":
        properties = schema.get("properties") or {}
        return {name: example(properties.get(name)) for name in schema.get("required") or []}
    if kind == "ARRAY":
        return [example(schema.get("items")) for _ in range(int(schema.get("minItems", 0)))]
    if kind == "STRING":
        return ""
    if kind in ("NUMBER", "INTEGER"):
        return schema.get("minimum", 0)
    if kind == "BOOLEAN":
        return False
    return None
