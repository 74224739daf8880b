"""Structured answers from *example values*: the original Persona's ``output_schema`` ``{"topics": ["a", "b"],
"summary": "text"}`` is the shape of the answer, not a JSON schema. A dict like that passed where a JSON schema is
expected would constrain nothing (JSON Schema ignores keywords it does not know), so it is turned into the JSON
schema it describes and the answer is validated against that.
"""

from __future__ import annotations

from typing import Any

from persona.errors import ValidationError

SCHEMA_KEYWORDS = frozenset(
    {
        "$schema", "$id", "$ref", "$defs", "$anchor", "$dynamicRef", "$dynamicAnchor", "$comment", "definitions",
        "type", "properties", "required", "additionalProperties", "patternProperties", "propertyNames",
        "items", "prefixItems", "contains", "minItems", "maxItems", "uniqueItems",
        "enum", "const", "anyOf", "oneOf", "allOf", "not", "if", "then", "else",
        "minLength", "maxLength", "pattern", "format", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
        "multipleOf", "minProperties", "maxProperties", "dependentRequired", "dependentSchemas",
        "unevaluatedProperties", "unevaluatedItems", "title", "description", "default", "examples",
    }
)  # fmt: skip
"""The JSON Schema 2020-12 keywords: a dict with none of them at its top level is not a schema."""

MAX_DEPTH = 16


def looks_like_json_schema(value: dict[str, Any]) -> bool:
    """Whether ``value`` is meant as a JSON schema (empty, or it uses at least one JSON Schema keyword at the top
    level) rather than example values (every key a field of the answer)."""
    return not value or any(key in SCHEMA_KEYWORDS for key in value)


def schema_from_example(example: Any, *, _depth: int = 0) -> dict[str, Any]:
    """The JSON schema an example value describes: an object requires every key it shows (and no other), a list's
    items follow its first item, and a scalar keeps its JSON type (``"x"`` a string, ``3`` an integer, ``0.5`` a
    number, ``true`` a boolean). An empty list allows any items; ``null`` allows any value."""
    if _depth > MAX_DEPTH:
        raise ValidationError(f"the example output is nested more than {MAX_DEPTH} levels deep")
    if isinstance(example, dict):
        if not all(isinstance(key, str) for key in example):
            raise ValidationError("the example output's keys must be strings")
        return {
            "type": "object",
            "properties": {key: schema_from_example(value, _depth=_depth + 1) for key, value in example.items()},
            "required": list(example),
            "additionalProperties": False,
        }
    if isinstance(example, list):
        return (
            {"type": "array", "items": schema_from_example(example[0], _depth=_depth + 1)}
            if example
            else {"type": "array"}
        )
    if isinstance(example, bool):  # before int: True is an int in Python
        return {"type": "boolean"}
    if isinstance(example, int):
        return {"type": "integer"}
    if isinstance(example, float):
        return {"type": "number"}
    if isinstance(example, str):
        return {"type": "string"}
    if example is None:
        return {}
    raise ValidationError(f"the example output holds a value JSON cannot carry: {type(example).__name__}")


def as_json_schema(schema_or_example: dict[str, Any]) -> dict[str, Any]:
    """``schema_or_example`` itself when it is a JSON schema, else the schema its example values describe."""
    if looks_like_json_schema(schema_or_example):
        return schema_or_example
    return schema_from_example(schema_or_example)
