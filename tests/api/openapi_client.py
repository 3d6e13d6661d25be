"""A client generated at run time from the committed OpenAPI document.

Every operation of ``schema/openapi.yaml`` becomes a method named after its ``operationId``
(``client.listBlocks(limit=2)``); path, query and header parameters are taken from the document
(an unknown or missing required argument is an error here, before any request), the request
body is sent as JSON, and every response is validated against the document's schema for its
status code and content type. So the test exercises the document as much as the server: if
the two disagree on a name, a type, a required field or a status, the call fails.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft7Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "schema" / "openapi.yaml"
_ROOT = "urn:cybermesh:openapi"


def load_document(path: Path = SCHEMA_PATH) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


def to_json_schema(node: Any) -> Any:
    """OpenAPI 3.0 schema objects -> JSON Schema (nullable, component refs)."""
    if isinstance(node, list):
        return [to_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    converted = {key: to_json_schema(value) for key, value in node.items()
                 if key not in ("nullable", "example", "readOnly", "writeOnly")}
    if isinstance(converted.get("$ref"), str) and converted["$ref"].startswith("#/"):
        converted["$ref"] = _ROOT + converted["$ref"]
    if node.get("format") == "uri":
        converted.pop("format")  # absolute URLs; not asserted by the draft-7 validator
    if node.get("nullable"):
        if "enum" in converted and None not in converted["enum"]:
            converted["enum"] = [*converted["enum"], None]
        return {"anyOf": [converted, {"type": "null"}]}
    return converted


@dataclass
class ApiResponse:
    status: int
    content_type: str
    body: Any
    headers: dict[str, str]


class SchemaMismatch(AssertionError):
    pass


Transport = Callable[[str, str, dict[str, str], bytes | None], ApiResponse]


def urllib_transport(method: str, url: str, headers: dict[str, str],
                     data: bytes | None) -> ApiResponse:
    request = urllib.request.Request(  # noqa: S310 - http(s) base URL from the test
        url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as raw:  # noqa: S310
            return ApiResponse(raw.status, raw.headers.get_content_type(),
                               json.loads(raw.read() or b"null"), dict(raw.headers))
    except urllib.error.HTTPError as error:
        return ApiResponse(error.code, error.headers.get_content_type(),
                           json.loads(error.read() or b"null"), dict(error.headers))


class GeneratedClient:
    def __init__(self, document: dict[str, Any], base_url: str, token: str | None = None,
                 transport: Transport = urllib_transport):
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.transport = transport
        components = to_json_schema(document.get("components", {}))
        self._registry = Registry().with_resource(
            _ROOT, Resource.from_contents({"components": components},
                                          default_specification=DRAFT7))
        self.operations: dict[str, Callable[..., ApiResponse]] = {}
        for path, item in document["paths"].items():
            for method, operation in item.items():
                call = self._operation(method.upper(), path, operation)
                self.operations[operation["operationId"]] = call
                setattr(self, operation["operationId"], call)

    def _operation(self, method: str, path: str,
                   operation: dict[str, Any]) -> Callable[..., ApiResponse]:
        parameters = {p["name"]: p for p in operation.get("parameters", [])}
        has_body = "requestBody" in operation

        def call(body: Any = None, **arguments: Any) -> ApiResponse:
            unknown = set(arguments) - {name.replace("-", "_") for name in parameters}
            if unknown:
                raise TypeError(f"{operation['operationId']}: unknown arguments {unknown}")
            if body is not None and not has_body:
                raise TypeError(f"{operation['operationId']} takes no body")
            url_path, query, headers = path, {}, {"Accept": "application/json"}
            for name, spec in parameters.items():
                value = arguments.get(name.replace("-", "_"))
                if value is None:
                    if spec.get("required"):
                        raise TypeError(f"{operation['operationId']}: {name} is required")
                    continue
                if spec["in"] == "path":
                    url_path = url_path.replace("{" + name + "}",
                                                urllib.parse.quote(str(value), safe=""))
                elif spec["in"] == "query":
                    query[name] = str(value)
                elif spec["in"] == "header":
                    headers[name] = str(value)
            if self.token:
                headers["Authorization"] = f"Bearer {self.token}"
            data = None
            if body is not None:
                data = json.dumps(body).encode()
                headers["Content-Type"] = "application/json"
            url = self.base_url + url_path + ("?" + urllib.parse.urlencode(query) if query
                                              else "")
            response = self.transport(method, url, headers, data)
            self._check(operation, response)
            return response

        call.__name__ = operation["operationId"]
        return call

    def _check(self, operation: dict[str, Any], response: ApiResponse) -> None:
        documented = operation["responses"].get(str(response.status))
        if documented is None:
            raise SchemaMismatch(f"{operation['operationId']}: status {response.status} is not "
                                 f"documented ({response.body})")
        content = documented.get("content", {})
        if response.content_type not in content:
            raise SchemaMismatch(f"{operation['operationId']}: {response.status} with "
                                 f"{response.content_type}, documented {list(content)}")
        schema = to_json_schema(content[response.content_type]["schema"])
        errors = sorted(Draft7Validator(schema, registry=self._registry).iter_errors(
            response.body), key=str)
        if errors:
            raise SchemaMismatch(f"{operation['operationId']} {response.status}: "
                                 f"{errors[0].message} at {list(errors[0].absolute_path)}")
