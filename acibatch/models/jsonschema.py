"""How the models' JSON Schema is written into the OpenAPI 3.1 document: one generator for every part of it (the
jobs' schemas in `acibatch.openapi`, the schedules' in `acibatch.openapi_schedules`), so they read alike."""

from __future__ import annotations

import re
from typing import Any

from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import core_schema

REF_TEMPLATE = "#/components/schemas/{model}"


def pattern_text(pattern: str) -> str:
    """A Python pattern that JSON Schema (ECMA-262) reads the same: named groups become plain groups."""
    return re.sub(r"\(\?P<\w+>", "(?:", pattern)


class ComponentSchemas(GenerateJsonSchema):
    """pydantic's JSON Schema as OpenAPI 3.1 components: patterns in ECMA-262, a dict's key rule as
    `propertyNames` (so a key that breaks it is invalid, not merely unconstrained), no generated titles."""

    def field_title_should_be_set(self, schema: Any) -> bool:
        return False

    def str_schema(self, schema: core_schema.StringSchema) -> JsonSchemaValue:
        found = super().str_schema(schema)
        if "pattern" in found:
            found["pattern"] = pattern_text(found["pattern"])
        return found

    def dict_schema(self, schema: core_schema.DictSchema) -> JsonSchemaValue:
        found = super().dict_schema(schema)
        patterns = found.pop("patternProperties", None)
        if patterns:
            ((pattern, values),) = patterns.items()
            found["propertyNames"] = {"pattern": pattern}
            found["additionalProperties"] = values
        return found
