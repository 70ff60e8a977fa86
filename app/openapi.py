"""`GET /openapi.json`: the OpenAPI 3.1 document of every route, built from the routes.

Each API view says what the document needs to know about it next to its route, with
`@documented(...)`: its 200 body, request body and query. Paths, methods, path parameters,
summaries (the view's docstring) and who may call it come from the app's URL map and the
views, so a route without `@documented` fails the build instead of going undocumented.
Bodies come from `app.schemas` through apispec's marshmallow plugin and from the
documentation-only schemas of `app.openapi_schemas`.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import Blueprint, Flask, Response, current_app
from marshmallow import Schema, ValidationError, fields
from werkzeug.routing import Rule

from app.auth import PUBLIC, View, public
from app.openapi_schemas import COMPONENTS, RAW_COMPONENTS
from core.names import JOB_NAME, OPERATION_ID, PROJECT_ID

bp = Blueprint("openapi", __name__)

_EXTENSION = "opqueue.openapi"
_JSON = "application/json"


def _path_parameter(name: str, pattern: re.Pattern[str], description: str,
                    example: str) -> dict[str, Any]:
    return {"in": "path", "name": name, "required": True, "description": description,
            "schema": {"type": "string", "pattern": f"^{pattern.pattern}$"}, "example": example}


# Flask's name of a path variable → its OpenAPI parameter.
_PATH_PARAMETERS = {
    "project": _path_parameter(
        "project", PROJECT_ID, "project id: 1-63 lowercase letters, digits and hyphens, "
                               "starting with a letter", "demo"),
    "operation_id": _path_parameter(
        "operation", OPERATION_ID, "operation id: a lowercase UUID",
        "0b0c8a4e-6f7e-4c3b-9d55-2f1e0a8b9c7d"),
    "job": _path_parameter("job", JOB_NAME, "job type name", "demo.sleep"),
}


@dataclass(frozen=True)
class RouteDoc:
    """What the URL map does not know about an API view."""

    response: str  # component name of the 200 body
    body: str | None = None  # component name of the (optional) JSON request body
    query: type[Schema] | None = None
    content: str = _JSON  # media type of the 200 body
    operation_id: str = ""  # empty: the view's name in UpperCamelCase (`get_job` → GetJob)


def documented(response: str, *, body: str | None = None, query: type[Schema] | None = None,
               content: str = _JSON, operation_id: str = "") -> Callable[[View], View]:
    """Describe an API view for the document: its 200 body, request body and query."""
    def mark(view: View) -> View:
        view.api_doc = RouteDoc(response, body, query, content,  # type: ignore[attr-defined]
                                operation_id or _camel(view.__name__))
        return view
    return mark


def _camel(name: str) -> str:
    return "".join(word.capitalize() for word in name.split("_"))


_METHODS = ("get", "post", "delete")
# A Flask path variable, `<name>` or `<converter:name>`.
_VARIABLE = re.compile(r"<(?:[^<>:]+:)?([^<>]+)>")
# Blueprints of pages for people (the dashboard, the API docs) and Flask's own static
# files: not API calls, so neither in the document nor `@documented`.
NOT_API = frozenset({"static", "ui", "docs"})


def is_api_route(rule: Rule) -> bool:
    """Whether `rule` belongs to the API, and so to its document."""
    return rule.endpoint.partition(".")[0] not in NOT_API


def build_document(app: Flask) -> dict[str, Any]:
    """The OpenAPI 3.1 document of every route of `app`."""
    plugin = MarshmallowPlugin()
    spec = APISpec(
        title="opqueue", version="v1", openapi_version="3.1.0", plugins=[plugin],
        info={"description": "Jobs as google.longrunning.Operation resources over HTTP/JSON."})
    assert plugin.converter is not None
    plugin.converter.add_attribute_function(_constant)
    plugin.converter.add_attribute_function(_dict_keys_and_size)
    plugin.converter.add_attribute_function(_wire_default)
    for name, (schema, extra) in COMPONENTS.items():
        spec.components.schema(name, extra, schema=schema)
    for name, component in RAW_COMPONENTS.items():
        spec.components.schema(name, component)
    # Either scheme will do; see app/auth.py.
    spec.components.security_scheme("bearer", {"type": "http", "scheme": "bearer"})
    spec.components.security_scheme(
        "googApiKey", {"type": "apiKey", "in": "header", "name": "x-goog-api-key"})
    spec.components.response("Error", {
        "description": "an error: Google's error envelope, with the HTTP status of its code",
        "content": {_JSON: {"schema": "ErrorResponse"}}})

    rules: dict[str, list[Rule]] = defaultdict(list)
    for rule in app.url_map.iter_rules():
        if is_api_route(rule):
            rules[_openapi_path(rule)].append(rule)
    for path, same_path in sorted(rules.items()):
        operations = {method: _operation(app, rule)
                      for rule in same_path for method in _METHODS
                      if method.upper() in (rule.methods or ())}
        parameters = [_PATH_PARAMETERS[name] for name in _variables(same_path[0])]
        spec.path(path=path, operations=operations, parameters=parameters)
    return spec.to_dict()


def _operation(app: Flask, rule: Rule) -> dict[str, Any]:
    view = app.view_functions[rule.endpoint]
    route: RouteDoc | None = getattr(view, "api_doc", None)
    if route is None:
        raise LookupError(f"route {rule.rule} ({rule.endpoint}) has no @documented(...)")
    doc = (view.__doc__ or "").strip()
    operation: dict[str, Any] = {
        "operationId": route.operation_id,
        "summary": doc.splitlines()[0] if doc else route.operation_id,
        "tags": [rule.endpoint.split(".")[0]],
        "responses": {
            "200": {"description": "OK", "content": {route.content: {"schema": route.response}}},
            "default": "Error",
        },
    }
    public = getattr(view, "required_role", None) == PUBLIC
    operation["security"] = [] if public else [{"bearer": []}, {"googApiKey": []}]
    if route.query is not None:
        operation["parameters"] = [{"in": "query", "schema": route.query}]
    if route.body is not None:
        # An empty body counts as `{}`.
        operation["requestBody"] = {"required": False,
                                    "content": {_JSON: {"schema": route.body}}}
    return operation


def _variables(rule: Rule) -> list[str]:
    return _VARIABLE.findall(rule.rule)


def _openapi_path(rule: Rule) -> str:
    """`/v1/projects/<project>/operations/<operation_id>:cancel` → `.../{operation}:cancel`."""
    return _VARIABLE.sub(lambda match: "{" + _PATH_PARAMETERS[match.group(1)]["name"] + "}",
                         rule.rule)


def _constant(self: Any, field: fields.Field[Any], **_: Any) -> dict[str, Any]:
    """`fields.Constant` → `const` (apispec writes only a `default`)."""
    return {"const": field.constant} if isinstance(field, fields.Constant) else {}


def _dict_keys_and_size(self: Any, field: fields.Field[Any], ret: dict[str, Any],
                        **_: Any) -> dict[str, Any]:
    """A `fields.Dict`'s key rules → `propertyNames`, its `Length` → min/maxProperties."""
    if not isinstance(field, fields.Dict):
        return {}
    extra: dict[str, Any] = {}
    for length, properties in (("minLength", "minProperties"), ("maxLength", "maxProperties")):
        if length in ret:
            extra[properties] = ret.pop(length)
    if field.key_field is not None:
        keys = {key: value for key, value in self.field2property(field.key_field).items()
                if key in ("pattern", "minLength", "maxLength")}
        if keys:
            extra["propertyNames"] = keys
    return extra


def _wire_default(self: Any, field: fields.Field[Any], ret: dict[str, Any],
                  **_: Any) -> dict[str, Any]:
    """Drop a `load_default` the field itself would reject: it stands for "absent"."""
    if "default" in ret and ret["default"] is not None:
        try:
            for validator in field.validators:
                validator(ret["default"])
        except ValidationError:
            del ret["default"]
    return {}


@bp.get("/openapi.json")
@public
@documented("OpenApiDocument", operation_id="GetOpenApi")
def get_openapi() -> Response:
    """This document: the OpenAPI 3.1 description of every route."""
    text = current_app.extensions.get(_EXTENSION)
    if text is None:
        # Built on first use, once every blueprint is registered; then kept for the app.
        text = current_app.extensions[_EXTENSION] = json.dumps(build_document(current_app))
    return current_app.response_class(text, mimetype=_JSON)
