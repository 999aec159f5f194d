"""The official OpenAPI spec from ../shared, as a validator of requests and responses.

The spec is read in place (its licence forbids copying it). Three `required` lists in it
name fields that do not exist; they are dropped before validating.
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path

from jsonschema import Draft7Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

from tests.conftest import SPEC

ROOT = SPEC
BROKEN_REQUIRED = {"ShipNavRoute.json": "departure", "ShipyardShip.json": "symbol"}
ERROR_SCHEMA = {
    "type": "object", "required": ["error"],
    "properties": {"error": {"type": "object", "required": ["message", "code"],
                             "properties": {"message": {"type": "string"},
                                            "code": {"type": "integer"},
                                            "data": {"type": "object"}}}},
}


class Spec:
    def __init__(self, root: Path = ROOT):
        self.spec_path = root / "reference" / "SpaceTraders.json"
        self.spec = json.loads(self.spec_path.read_text())
        resources = []
        for path in (root / "models").glob("*.json"):
            contents = json.loads(path.read_text())
            if path.name in BROKEN_REQUIRED:
                contents["required"] = [r for r in contents.get("required", [])
                                        if r != BROKEN_REQUIRED[path.name]]
            resources.append((path.as_uri(), Resource.from_contents(
                contents, default_specification=DRAFT7)))
        self.registry = Registry().with_resources(resources)
        register = self.spec["paths"]["/register"]["post"]["responses"]["201"]
        data = register["content"]["application/json"]["schema"]["properties"]["data"]
        data["required"] = [r if r != "ship" else "ships" for r in data["required"]]
        self._templates = [(re.compile("^" + re.sub(r"\{[^}]+\}", "[^/]+", p) + "$"), p)
                           for p in self.spec["paths"]]

    def path_template(self, path: str) -> str | None:
        """`/my/ships/A-1/orbit` -> `/my/ships/{shipSymbol}/orbit` (longest match wins)."""
        found = [t for pattern, t in self._templates if pattern.match(path)]
        return max(found, key=len, default=None)

    def operation(self, method: str, template: str) -> dict | None:
        return self.spec["paths"].get(template, {}).get(method.lower())

    def _validator(self, schema: dict) -> Draft7Validator:
        wrapped = {"$id": self.spec_path.as_uri(), "allOf": [schema]}
        return Draft7Validator(wrapped, registry=self.registry)

    def response_errors(self, method: str, template: str, status: int, body) -> list[str]:
        if status >= 400:
            return [e.message for e in Draft7Validator(ERROR_SCHEMA).iter_errors(body)]
        op = self.operation(method, template)
        if op is None:
            return [f"{method} {template} is not in the spec"]
        response = op["responses"].get(str(status))
        if response is None:
            return [f"{method} {template} does not answer {status}"]
        content = response.get("content", {}).get("application/json")
        if content is None:
            return [] if body is None else [f"{status} should have no body"]
        return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
                for e in self._validator(content["schema"]).iter_errors(body)]

    def request_errors(self, method: str, template: str, body) -> list[str]:
        op = self.operation(method, template)
        if op is None:
            return [f"{method} {template} is not in the spec"]
        schema = op.get("requestBody", {}).get("content", {}).get("application/json", {})
        if "schema" not in schema:
            return [] if not body else [f"{method} {template} takes no body"]
        return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
                for e in self._validator(schema["schema"]).iter_errors(body or {})]


@cache
def spec() -> Spec:
    return Spec()
