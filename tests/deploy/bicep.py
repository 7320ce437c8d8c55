"""Read the Bicep template with pycep (the parser checkov uses) and answer the questions the deploy tests ask.

pycep turns a Bicep file into JSON: symbols and string literals both become plain strings, function calls
`{"function": {"type", "parameters"}}` and operators `{"operator": {"type", "operands"}}`. A resource with an
`if` keeps its body one level down, under `config.config`, next to `config.condition`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from pycep import BicepParser

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
ROLE_ASSIGNMENT = "Microsoft.Authorization/roleAssignments"


def bicep_files() -> list[Path]:
    return sorted(INFRA.rglob("*.bicep"))


@cache
def parse(path: Path) -> dict[str, Any]:
    return dict(BicepParser().parse(file_path=path))


def body(resource: dict[str, Any]) -> dict[str, Any]:
    """A resource's or module's body, the same with or without an `if` condition."""
    config: dict[str, Any] = resource["config"]
    return config["config"] if "condition" in config else config


def condition(resource: dict[str, Any]) -> str | None:
    config = resource["config"]
    return render(config["condition"]) if "condition" in config else None


def render(node: Any) -> str:
    """A compact, readable form of a pycep expression, enough to compare conditions and references."""
    if not isinstance(node, dict):
        return str(node)
    if "operator" in node:
        kind, operands = node["operator"]["type"], node["operator"]["operands"]
        if kind == "not":
            return "!" + render(operands["bool_value"])
        if kind == "property_accessor":
            return f"{render(operands['operand_1'])}.{render(operands['operand_2'])}"
        if kind == "equals":
            return f"{render(operands['operand_1'])} == {render(operands['operand_2'])}"
        return f"{kind}({', '.join(render(value) for value in operands.values())})"
    if "function" in node:
        function = node["function"]
        arguments = ", ".join(render(value) for value in function["parameters"].values() if value is not None)
        return f"{function['type']}({arguments})"
    return json.dumps(node, sort_keys=True)


def unquote(key: str) -> str:
    """pycep keeps the quotes of a quoted object key ('azd-env-name')."""
    return key[1:-1] if len(key) >= 2 and key[0] == key[-1] == "'" else key


@dataclass(frozen=True, order=True)
class Grant:
    """One role assignment: which role, on what, to whom, under which condition, declared where."""

    file: str
    role: str  # a key of infra/roles.json, or the custom role's parameter
    scope: str  # the symbol of the resource it is scoped to; "resourceGroup" for the module's own group
    principal: str
    condition: str | None
    principal_type: str


def _role_key(role_definition_id: Any) -> str:
    # subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.<key>) or a parameter holding an id.
    if isinstance(role_definition_id, dict) and "function" in role_definition_id:
        name = role_definition_id["function"]["parameters"]["resource_name_1"]
        accessor = render(name)
        return accessor.removeprefix("roles.")
    return str(role_definition_id)


def grants() -> list[Grant]:
    found = []
    for path in bicep_files():
        for resource in parse(path).get("resources", {}).values():
            if resource["type"] != ROLE_ASSIGNMENT or resource.get("existing"):
                continue
            config = body(resource)
            properties = config["properties"]
            found.append(
                Grant(
                    file=path.relative_to(INFRA).as_posix(),
                    role=_role_key(properties["roleDefinitionId"]),
                    scope=str(config.get("scope", "resourceGroup")),
                    principal=str(properties["principalId"]),
                    condition=condition(resource),
                    principal_type=str(properties.get("principalType")),
                )
            )
    return sorted(found)


def variable(path: Path, name: str) -> Any:
    return parse(path)["variables"][name]["value"]


def keys_always_set(path: Path, expression: Any) -> set[str]:
    """The keys an object expression has whatever its conditions: unions add, a ternary keeps what both sides set."""
    if isinstance(expression, str):
        variables = parse(path).get("variables", {})
        if expression in variables:
            return keys_always_set(path, variables[expression]["value"])
        raise ValueError(f"{path.name}: {expression!r} is not an object variable")
    if isinstance(expression, dict) and "function" in expression:
        function = expression["function"]
        if function["type"] != "union":
            raise ValueError(f"{path.name}: cannot tell the keys of {render(expression)}")
        keys: set[str] = set()
        for argument in function["parameters"].values():
            if argument is not None:
                keys |= keys_always_set(path, argument)
        return keys
    if isinstance(expression, dict) and "operator" in expression:
        operator = expression["operator"]
        if operator["type"] != "conditional":
            raise ValueError(f"{path.name}: cannot tell the keys of {render(expression)}")
        operands = operator["operands"]
        return keys_always_set(path, operands["true_value"]) & keys_always_set(path, operands["false_value"])
    if isinstance(expression, dict):
        return {unquote(key) for key in expression}
    raise ValueError(f"{path.name}: cannot tell the keys of {expression!r}")


def keys_ever_set(path: Path, expression: Any) -> set[str]:
    """The keys an object expression can have under some condition."""
    if isinstance(expression, str):
        return keys_ever_set(path, parse(path)["variables"][expression]["value"])
    if isinstance(expression, dict) and "function" in expression:
        keys: set[str] = set()
        for argument in expression["function"]["parameters"].values():
            if argument is not None:
                keys |= keys_ever_set(path, argument)
        return keys
    if isinstance(expression, dict) and "operator" in expression:
        operands = expression["operator"]["operands"]
        return keys_ever_set(path, operands["true_value"]) | keys_ever_set(path, operands["false_value"])
    return {unquote(key) for key in expression}


def resources_of_type(resource_type: str) -> list[tuple[Path, str, dict[str, Any]]]:
    return [
        (path, name, resource)
        for path in bicep_files()
        for name, resource in parse(path).get("resources", {}).items()
        if resource["type"] == resource_type
    ]
