"""`GET /openapi.json`: a valid OpenAPI 3.1 document of every route, true to the wire."""

from __future__ import annotations

import re
import uuid
from typing import Any

import fakeredis
import pytest
from flask import Flask
from flask.testing import FlaskClient
from openapi_schema_validator import OAS31Validator
from openapi_spec_validator import OpenAPIV31SpecValidator

from app import create_app, openapi
from app.schemas import ListOperationsArgsSchema, RunJobRequestSchema
from core.config import Settings
from core.jobs import registry
from tests.conftest import run_job
from tests.fakes import RecordingDispatcher

OPERATION_KEYS = {"name", "metadata", "done", "error", "response"}
ROUTES = {
    ("get", "/v1/projects/{project}/operations"),
    ("get", "/v1/projects/{project}/operations/{operation}"),
    ("delete", "/v1/projects/{project}/operations/{operation}"),
    ("post", "/v1/projects/{project}/operations/{operation}:cancel"),
    ("post", "/v1/projects/{project}/operations/{operation}:wait"),
    ("get", "/v1/projects/{project}/operations/{operation}:watch"),
    ("get", "/v1/projects/{project}/operations:watch"),
    ("get", "/v1/projects/{project}/operations/{operation}/webhookDeliveries"),
    ("post", "/v1/projects/{project}/jobs/{job}:run"),
    ("post", "/v1/projects/{project}/jobs/{job}:batchRun"),
    ("get", "/v1/jobs"),
    ("get", "/v1/jobs/{job}"),
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/openapi.json"),
    ("get", "/metrics"),
}
PATTERNS = {
    "project": "^[a-z][a-z0-9-]{0,62}$",
    "operation": "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$",
    "job": "^[a-z0-9][a-z0-9._-]{0,127}$",
}
HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


@pytest.fixture
def document(client: FlaskClient) -> dict[str, Any]:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    body: dict[str, Any] = response.get_json()
    return body


def validator(document: dict[str, Any], component: str) -> OAS31Validator:
    """A JSON Schema validator for one component schema, its `$ref`s resolved in `document`."""
    return OAS31Validator({**document, "$ref": f"#/components/schemas/{component}"})


def test_the_document_is_valid_openapi_3_1(document: dict[str, Any]) -> None:
    assert document["openapi"] == "3.1.0"
    OpenAPIV31SpecValidator(document).validate()


def test_every_route_of_the_url_map_is_documented_and_nothing_else(
        app: Flask, document: dict[str, Any]) -> None:
    wire_names = {"operation_id": "operation"}
    registered = {
        (method.lower(), re.sub(r"<(?:\w+:)?(\w+)>",
                                lambda m: "{" + wire_names.get(m[1], m[1]) + "}", rule.rule))
        for rule in app.url_map.iter_rules() if openapi.is_api_route(rule)
        for method in (rule.methods or set()) - {"HEAD", "OPTIONS"}
    }
    documented = {(method, path) for path, item in document["paths"].items()
                  for method in item if method in HTTP_METHODS}
    assert documented == registered
    assert documented == ROUTES


def test_path_parameters_carry_their_patterns(document: dict[str, Any]) -> None:
    for path, item in document["paths"].items():
        parameters = {p["name"]: p for p in item.get("parameters", []) if p["in"] == "path"}
        assert set(parameters) == set(re.findall(r"{(\w+)}", path)), path
        for name, parameter in parameters.items():
            assert parameter["required"] is True
            assert parameter["schema"] == {"type": "string", "pattern": PATTERNS[name]}


def test_the_operation_schema_has_exactly_the_wire_keys(document: dict[str, Any]) -> None:
    operation = document["components"]["schemas"]["Operation"]
    assert set(operation["properties"]) == OPERATION_KEYS
    assert operation["additionalProperties"] is False
    assert set(operation["required"]) == {"name", "metadata", "done"}


def test_every_operation_documents_its_result_and_the_error_envelope(
        document: dict[str, Any]) -> None:
    for path, item in document["paths"].items():
        for method in HTTP_METHODS & item.keys():
            responses = item[method]["responses"]
            assert set(responses) == {"200", "default"}, (method, path)
            assert responses["default"] == {"$ref": "#/components/responses/Error"}
            media = ("text/event-stream" if path.endswith(":watch")
                     else "text/plain; version=0.0.4" if path == "/metrics"
                     else "application/json")
            assert responses["200"]["content"][media]["schema"]["$ref"]
    error = document["components"]["responses"]["Error"]["content"]["application/json"]
    assert error["schema"] == {"$ref": "#/components/schemas/ErrorResponse"}
    envelope = document["components"]["schemas"]["Error"]
    assert set(envelope["required"]) == {"code", "message", "status", "details"}


def test_bodies_and_query_parameters_come_from_the_wire_schemas(
        document: dict[str, Any]) -> None:
    def wire_keys(schema: Any) -> set[str]:
        return {field.data_key or name for name, field in schema().fields.items()}

    schemas = document["components"]["schemas"]
    assert set(schemas["RunJobRequest"]["properties"]) == wire_keys(RunJobRequestSchema)
    assert set(schemas["WaitOperationRequest"]["properties"]) == {"timeout"}
    listing = document["paths"]["/v1/projects/{project}/operations"]["get"]["parameters"]
    assert {p["name"] for p in listing if p["in"] == "query"} == wire_keys(
        ListOperationsArgsSchema)
    for path, component in (("/v1/projects/{project}/jobs/{job}:run", "RunJobRequest"),
                            ("/v1/projects/{project}/operations/{operation}:wait",
                             "WaitOperationRequest")):
        body = document["paths"][path]["post"]["requestBody"]["content"]["application/json"]
        assert body["schema"] == {"$ref": f"#/components/schemas/{component}"}


def test_real_responses_validate_against_their_schemas(client: FlaskClient,
                                                      document: dict[str, Any]) -> None:
    bodies = [
        ("Operation", run_job(client, labels={"team": "ml"})),
        ("ListOperationsResponse", client.get("/v1/projects/demo/operations")),
        ("ListJobsResponse", client.get("/v1/jobs")),
        ("Job", client.get("/v1/jobs/demo.sleep")),
        ("ServingStatus", client.get("/healthz")),
        ("ErrorResponse", client.get(f"/v1/projects/demo/operations/{uuid.uuid4()}")),
        ("ErrorResponse", client.get("/v1/projects/Demo/operations")),
        ("ErrorResponse", client.get("/no/such/route")),
        ("ErrorResponse", client.put("/v1/jobs")),
    ]
    for component, response in bodies:
        validator(document, component).validate(response.get_json())


@pytest.mark.parametrize(("body", "trailing_newline"), [
    ({"labels": {"team": "ml!"}}, False),
    ({"labels": {"team": "ml\n"}}, True),
    ({"labels": {"team!": "ml"}}, False),
    ({"requestId": "5d7c2a52-4f7e-4b49-9a1e-3f2b8c1d0e11-and-more"}, False),
    ({"timeout": "30s\n"}, True),
])
def test_the_server_enforces_the_published_patterns_on_the_whole_value(
        client: FlaskClient, document: dict[str, Any], body: dict[str, Any],
        trailing_newline: bool) -> None:
    # marshmallow's Regexp only anchors the start: these used to be accepted and stored.
    request = {"input": {"seconds": 1}, **body}
    if not trailing_newline:
        # Python's `$` (unlike ECMA 262's, which JSON Schema means) also matches before a
        # final newline, so a Python validator cannot judge those.
        assert not validator(document, "RunJobRequest").is_valid(request)
    response = run_job(client, **request)
    assert response.status_code == 400, response.get_json()
    violations = response.get_json()["error"]["details"][1]["fieldViolations"]
    assert violations[0]["field"].split(".")[0] in body


def test_the_document_is_built_once_per_app(settings: Settings, app: Flask,
                                            client: FlaskClient,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[Flask] = []
    real = openapi.build_document

    def counting(flask_app: Flask) -> dict[str, Any]:
        built.append(flask_app)
        return real(flask_app)

    monkeypatch.setattr(openapi, "build_document", counting)
    first, second = client.get("/openapi.json"), client.get("/openapi.json")
    assert first.data == second.data
    assert len(built) == 1
    other = create_app(settings, redis=fakeredis.FakeRedis(decode_responses=True),
                       dispatcher=RecordingDispatcher(),  # type: ignore[arg-type]
                       registry=registry.load_modules(settings.job_modules))
    assert other.test_client().get("/openapi.json").data == first.data
    assert len(built) == 2


def test_an_undocumented_route_fails_the_build(app: Flask) -> None:
    app.add_url_rule("/v1/extra", "extra", lambda: {})
    with pytest.raises(LookupError, match="/v1/extra"):
        openapi.build_document(app)


def test_only_the_public_routes_need_no_api_key(document: dict[str, Any]) -> None:
    open_to_all = {f"{method.upper()} {path}" for path, item in document["paths"].items()
                   for method, operation in item.items()
                   if isinstance(operation, dict) and operation.get("security") == []}
    assert open_to_all == {"GET /healthz", "GET /readyz", "GET /openapi.json", "GET /metrics"}
    schemes = set(document["components"]["securitySchemes"])
    assert schemes == {"bearer", "googApiKey"}
