"""The service config (protos/opqueue_v1.yaml), /openapi.json, the protos' HTTP options and
the gRPC server's routes all name the same route for every RPC."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml
from flask.testing import FlaskClient
from google.api import service_pb2
from google.protobuf import json_format

from core.errors import BAD_REQUEST, ERROR_INFO, RETRY_INFO, TYPE_PREFIX
from core.wire import METADATA_TYPE, VALUE_TYPE
from rpc.routes import SERVICES, HttpRoute, routes
from tests.stack import ROOT

CONFIG = ROOT / "protos" / "opqueue_v1.yaml"


@pytest.fixture(scope="module")
def config() -> service_pb2.Service:
    """The service config, strictly parsed as a `google.api.Service`."""
    loaded: dict[str, Any] = yaml.safe_load(CONFIG.read_text())
    assert loaded.pop("type") == "google.api.Service"
    return json_format.ParseDict(loaded, service_pb2.Service(), ignore_unknown_fields=False)


def rules(config: service_pb2.Service) -> dict[str, HttpRoute]:
    """The config's HTTP rules by selector, one each."""
    selectors = [rule.selector for rule in config.http.rules]
    assert len(selectors) == len(set(selectors)), selectors
    return {rule.selector: HttpRoute.from_rule(rule) for rule in config.http.rules}


def shape(path: str) -> str:
    """A path with each variable replaced by what it matches: `/v1/projects/*/operations/*`."""
    path = re.sub(r"\{\w+=([^}]+)\}", r"\1", path)
    return re.sub(r"\{\w+\}", "*", path)


def test_the_config_lists_every_rpc_of_both_services(config: service_pb2.Service) -> None:
    assert [api.name for api in config.apis] == [service.full_name for service in SERVICES]
    assert set(rules(config)) == {method.full_name for service in SERVICES
                                  for method in service.methods}


def test_the_grpc_server_routes_as_the_config_says(config: service_pb2.Service) -> None:
    # The Jobs routes come from jobs.proto's `google.api.http` options, so this holds the
    # proto to the config as well.
    assert dict(routes()) == rules(config)


def test_the_config_and_openapi_agree_route_by_route(config: service_pb2.Service,
                                                     client: FlaskClient) -> None:
    document = client.get("/openapi.json").get_json()
    served = {operation["operationId"]: (verb.upper(), shape(path))
              for path, item in document["paths"].items()
              for verb, operation in item.items() if verb != "parameters"}
    configured = {selector.rsplit(".", 1)[1]: (route.verb, shape(route.template))
                  for selector, route in rules(config).items()}
    assert {name: served.get(name) for name in configured} == configured


def test_the_config_names_every_type_we_pack_in_an_any(config: service_pb2.Service) -> None:
    assert {TYPE_PREFIX + entry.name for entry in config.types} == {
        METADATA_TYPE, VALUE_TYPE, ERROR_INFO, BAD_REQUEST, RETRY_INFO}
