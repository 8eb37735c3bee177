"""Checks every request the bot sends against Discord's official OpenAPI 3.1 description.

The spec is vendored, gzipped, in `discord_api_spec/` beside this module (see its SOURCE.md);
`$PARROT_DISCORD_OPENAPI` points at another copy. It is loaded once per process (it is over
a megabyte) and a compiled validator is cached per (path template, method, media type).
Schemas are JSON Schema 2020-12, so they are validated with jsonschema's Draft 2020-12
validator, `$ref`s resolved inside the spec.

One deliberate leniency: `SnowflakeType` is a numeric *string* in the spec, but Discord
accepts JSON integers for snowflakes too and discord.py sends some as ints (allowed_mentions
user ids, attachment indexes), so integers >= 0 are accepted as snowflakes as well.
"""

from __future__ import annotations

import copy
import functools
import gzip
import json
import os
import re
import reprlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import jsonschema.exceptions
import jsonschema.protocols
import referencing
import referencing.jsonschema

SPEC_ENV_VAR = "PARROT_DISCORD_OPENAPI"
SPEC_URI = "urn:discord-openapi"
API_PREFIX = "/api/v10"
HTTP_METHODS = ("get", "put", "post", "patch", "delete", "head", "options")
# The upstream openapi.json, gzipped (`discord_api_spec/SOURCE.md` says from where and how).
VENDORED_SPEC = Path(__file__).resolve().parent / "discord_api_spec" / "openapi.json.gz"


def default_spec_path() -> Path:
    """`$PARROT_DISCORD_OPENAPI`, else the copy vendored in `discord_api_spec/`."""
    from_env = os.environ.get(SPEC_ENV_VAR)
    if from_env:
        return Path(from_env)
    return VENDORED_SPEC


@functools.cache
def load_spec(path: Path) -> dict[str, Any]:
    """Parse the spec once per process; raises a one-line error if it is missing."""
    if not path.is_file():
        raise FileNotFoundError(
            f"Discord OpenAPI spec not found at {path}; set {SPEC_ENV_VAR} to its location"
        )
    raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    spec = json.loads(raw.decode("utf-8"))
    return _with_lenient_snowflakes(spec)


def _with_lenient_snowflakes(spec: dict[str, Any]) -> dict[str, Any]:
    spec = copy.copy(spec)
    components = dict(spec["components"])
    schemas = dict(components["schemas"])
    strict = schemas["SnowflakeType"]
    schemas["SnowflakeType"] = {"anyOf": [strict, {"type": "integer", "minimum": 0}]}
    components["schemas"] = schemas
    spec["components"] = components
    return spec


@dataclass(frozen=True)
class SpecViolation:
    """One way a request broke the spec; `str()` is a readable one-liner."""

    method: str
    path: str
    problem: str

    def __str__(self) -> str:
        return f"{self.method} {self.path}: {self.problem}"


@dataclass(frozen=True)
class _Operation:
    template: str
    regex: re.Pattern[str]
    literal_segments: int


def _json_pointer(*parts: str) -> str:
    return "/".join(part.replace("~", "~0").replace("/", "~1") for part in parts)


class OpenApiValidator:
    """Validates (method, path, query, body) against the spec; returns the violations found."""

    def __init__(self, spec_path: Path | None = None) -> None:
        self.spec_path = spec_path or default_spec_path()
        self._spec = load_spec(self.spec_path)
        self._operations = _operations_for(self.spec_path)

    def match(self, path: str) -> tuple[str, dict[str, str]] | None:
        """The spec's path template matching a concrete path (without /api/v10), and its params."""
        for operation in self._operations:
            found = operation.regex.fullmatch(path)
            if found:
                return operation.template, found.groupdict()
        return None

    def validate(
        self,
        method: str,
        path: str,
        query: Mapping[str, str],
        body: Any,
        *,
        has_body: bool,
        media_type: str = "application/json",
    ) -> list[SpecViolation]:
        """All violations for one request; `path` excludes the /api/v10 prefix."""
        method_lower = method.lower()

        def violation(problem: str) -> SpecViolation:
            return SpecViolation(method.upper(), path, problem)

        matched = self.match(path)
        if matched is None:
            return [violation("no such path in Discord's API")]
        template, path_params = matched
        path_item = self._spec["paths"][template]
        operation = path_item.get(method_lower)
        if operation is None:
            allowed = sorted(m.upper() for m in path_item if m in HTTP_METHODS)
            return [violation(f"method not allowed for {template} (allowed: {allowed})")]

        problems: list[SpecViolation] = []
        parameters = [*path_item.get("parameters", []), *operation.get("parameters", [])]
        for index, parameter in enumerate(parameters):
            location, name = parameter.get("in"), parameter["name"]
            if location == "path":
                raw = path_params.get(name)
            elif location == "query":
                raw = query.get(name)
            else:
                continue
            if raw is None:
                if parameter.get("required"):
                    problems.append(violation(f"missing required {location} parameter {name!r}"))
                continue
            source = "" if parameter in path_item.get("parameters", []) else method_lower
            pointer = (
                _json_pointer("paths", template, "parameters", str(index), "schema")
                if not source
                else _json_pointer(
                    "paths",
                    template,
                    method_lower,
                    "parameters",
                    str(index - len(path_item.get("parameters", []))),
                    "schema",
                )
            )
            value = _coerce_parameter(raw, parameter.get("schema", {}), self._spec)
            problems.extend(
                violation(f"{location} parameter {name!r}: {message}")
                for message in self._errors(pointer, value)
            )
        known_query = {p["name"] for p in parameters if p.get("in") == "query"}
        problems.extend(
            violation(f"unknown query parameter {name!r}")
            for name in query
            if name not in known_query
        )

        request_body = operation.get("requestBody")
        if request_body is None:
            if has_body:
                problems.append(violation("sends a body but this endpoint takes none"))
            return problems
        if not has_body:
            if request_body.get("required"):
                problems.append(violation("request body is required"))
            return problems
        content = request_body.get("content", {})
        if media_type not in content:
            problems.append(
                violation(f"content type {media_type!r} not accepted ({sorted(content)})")
            )
            return problems
        pointer = _json_pointer(
            "paths", template, method_lower, "requestBody", "content", media_type, "schema"
        )
        problems.extend(violation(f"body: {message}") for message in self._errors(pointer, body))
        return problems

    def validate_response(self, method: str, path: str, status: int, body: Any) -> list[str]:
        """Problems with a JSON response the fake gives, per the spec's response schema.

        Used to keep the fake honest: its objects must look like Discord's.
        """
        matched = self.match(path)
        if matched is None:
            return []
        template, _ = matched
        operation = self._spec["paths"][template].get(method.lower())
        if operation is None:
            return []
        response = operation.get("responses", {}).get(str(status))
        if response is None:
            return [f"status {status} is not a documented response"]
        if "$ref" in response:
            name = str(response["$ref"]).rsplit("/", 1)[-1]
            base = ("components", "responses", name)
            response = self._spec["components"]["responses"][name]
        else:
            base = ("paths", template, method.lower(), "responses", str(status))
        if "application/json" not in response.get("content", {}):
            return [] if body is None else ["documented without a JSON body"]
        pointer = _json_pointer(*base, "content", "application/json", "schema")
        return self._errors(pointer, body)

    def validate_schema(self, schema_name: str, instance: Any) -> list[str]:
        """Problems with `instance` as a `components/schemas/<schema_name>` object."""
        return self._errors(_json_pointer("components", "schemas", schema_name), instance)

    def _errors(self, pointer: str, instance: Any) -> list[str]:
        validator = _validator_for(self.spec_path, pointer)
        error = jsonschema.exceptions.best_match(validator.iter_errors(instance))
        if error is None:
            return []
        error = _most_specific(error)
        location = "/".join(str(part) for part in error.absolute_path) or "(root)"
        message = error.message
        if len(message) > 200:
            message = f"{reprlib.repr(error.instance)} violates {error.validator}={error.validator_value!r}"
        return [f"at {location}: {message}"]


def _most_specific(error: jsonschema.ValidationError) -> jsonschema.ValidationError:
    """Look inside anyOf/oneOf failures for the variant the payload was meant to be.

    Discord unions are mostly discriminated by a `type` field: the variant whose errors do not
    concern `type` is the intended one. Otherwise the variant with the fewest errors is the
    closest. Its own most relevant error is the useful message.
    """
    while error.validator in ("anyOf", "oneOf") and error.context:
        by_variant: dict[Any, list[jsonschema.ValidationError]] = {}
        for sub_error in error.context:
            by_variant.setdefault(sub_error.schema_path[0], []).append(sub_error)
        candidates = [
            errors
            for errors in by_variant.values()
            if not any(
                list(sub.relative_path) == ["type"]
                or (sub.validator == "type" and not sub.relative_path)
                for sub in errors
            )
        ] or list(by_variant.values())
        fewest = min(len(errors) for errors in candidates)
        closest = [errors for errors in candidates if len(errors) == fewest]
        messages = {jsonschema.exceptions.best_match(errors).message for errors in closest}  # type: ignore[union-attr]
        if len(messages) != 1:
            return error
        best = jsonschema.exceptions.best_match(closest[0])
        if best is None:
            return error
        error = best
    return error


def _coerce_parameter(raw: str, schema: Mapping[str, Any], spec: Mapping[str, Any]) -> Any:
    """Query/path values arrive as strings; convert to the schema's scalar type before checking."""
    if "$ref" in schema:
        name = str(schema["$ref"]).rsplit("/", 1)[-1]
        schema = spec["components"]["schemas"].get(name, {})
    declared = schema.get("type")
    types = declared if isinstance(declared, list) else [declared]
    if "boolean" in types and raw.lower() in ("true", "false", "1", "0"):
        # Discord reads 1/0 as booleans too; discord.py sends with_response=1.
        return raw.lower() in ("true", "1")
    if "integer" in types and re.fullmatch(r"-?\d+", raw):
        return int(raw)
    if "number" in types:
        try:
            return float(raw)
        except ValueError:
            return raw
    return raw


@functools.cache
def _validator_for(path: Path, pointer: str) -> jsonschema.protocols.Validator:
    """One compiled validator per schema location, shared by every fake in the process."""
    schema = {"$ref": f"{SPEC_URI}#/{pointer}"}
    return jsonschema.Draft202012Validator(schema, registry=_registry_for(path))


@functools.cache
def _registry_for(path: Path) -> referencing.Registry[Any]:
    resource = referencing.Resource.from_contents(
        load_spec(path), default_specification=referencing.jsonschema.DRAFT202012
    )
    return referencing.Registry().with_resource(SPEC_URI, resource)


@functools.cache
def _operations_for(path: Path) -> tuple[_Operation, ...]:
    operations: list[_Operation] = []
    for template in load_spec(path)["paths"]:
        segments = template.strip("/").split("/")
        parts: list[str] = []
        literal = 0
        for segment in segments:
            name = re.fullmatch(r"\{(\w+)\}", segment)
            if name:
                parts.append(f"(?P<{name.group(1)}>[^/]+)")
            else:
                parts.append(re.escape(segment))
                literal += 1
        regex = re.compile("/" + "/".join(parts))
        operations.append(_Operation(template, regex, literal))
    # Literal segments win over placeholders: /messages/@original before /messages/{message_id}.
    operations.sort(key=lambda op: -op.literal_segments)
    return tuple(operations)
