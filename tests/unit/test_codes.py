"""The one `google.rpc.Code` table (opqueue/codes.py) is code.proto's, for client and server."""

from __future__ import annotations

from google.rpc import code_pb2

from core import codes as server_codes
from core import errors as server_errors
from opqueue import errors as client_errors
from opqueue.codes import HTTP_STATUS, Code


def test_the_table_holds_exactly_the_codes_of_code_proto() -> None:
    assert {code.name: code.value for code in Code} == dict(code_pb2.Code.items())


def test_every_code_has_an_http_status() -> None:
    assert set(HTTP_STATUS) == set(Code)
    assert HTTP_STATUS[Code.NOT_FOUND] == 404
    assert HTTP_STATUS[Code.UNAUTHENTICATED] == 401


def test_client_and_server_errors_use_the_same_table() -> None:
    assert server_codes.Code is Code
    assert server_codes.HTTP_STATUS is HTTP_STATUS
    assert set(server_errors.BY_CODE) == set(client_errors.BY_CODE) == set(Code) - {Code.OK}
    for code, server_class in server_errors.BY_CODE.items():
        assert server_class.__name__ == client_errors.BY_CODE[code].__name__
