"""Bounds on what a request may carry: its head (request line and headers), its JSON body's
depth, and its content type; Flask enforces the body size (MAX_CONTENT_LENGTH).

The HTTP server refuses by itself only what it cannot parse: over 100 header fields, or
bytes that are not HTTP/1.1 (README, Limits). Everything it passes on is checked here, so
that every refusal of a request's size is the Google error envelope.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote

from flask import request

from core.config import Settings
from core.errors import InvalidArgument


def json_depth(value: Any) -> int:
    """How deeply `value` nests objects and arrays (a scalar is 0), without recursion."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        item, depth = stack.pop()
        children: Iterable[Any]
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, depth + 1)
        stack.extend((child, depth + 1) for child in children)
    return deepest


# gunicorn's defaults, which this service documented before it moved to Granian.
MAX_REQUEST_LINE_BYTES = 4094
MAX_HEADERS = 100
MAX_HEADER_BYTES = 8190
_PATH_SAFE = "/:@!$&'()*+,;=-._~"
_UNPREFIXED_HEADERS = frozenset({"CONTENT_TYPE", "CONTENT_LENGTH"})  # WSGI drops HTTP_


def check_head() -> None:
    """INVALID_ARGUMENT if the current request's line or a header is over its limit."""
    check_head_of(request.environ)


def check_head_of(environ: Mapping[str, Any]) -> None:
    """INVALID_ARGUMENT if the line or a header of the request of WSGI `environ` is over its
    limit."""
    path, query = environ.get("PATH_INFO", ""), environ.get("QUERY_STRING", "")
    # The line as sent: the path percent-encoded again (at most 3 bytes a character).
    if len(path) * 3 + len(query) + 32 > MAX_REQUEST_LINE_BYTES and (
            len(environ["REQUEST_METHOD"]) + len(quote(path, safe=_PATH_SAFE)) + len(query) + 2
            + len(environ.get("SERVER_PROTOCOL", "")) + (1 if query else 0)
            > MAX_REQUEST_LINE_BYTES):
        raise InvalidArgument("the request line (method, path and query) is too long; the "
                              f"limit is {MAX_REQUEST_LINE_BYTES} bytes",
                              reason="REQUEST_LINE_TOO_LONG")
    headers = [len(name) - 5 + len(value) for name, value in environ.items()
               if name.startswith("HTTP_")]  # "HTTP_X_NAME": "X-Name" and its value
    headers += [len(name) + len(environ[name]) for name in _UNPREFIXED_HEADERS
                if name in environ]
    if len(headers) > MAX_HEADERS or max(headers, default=0) + 2 > MAX_HEADER_BYTES:
        raise InvalidArgument(f"the request headers are too many or too large (at most "
                              f"{MAX_HEADERS} headers of {MAX_HEADER_BYTES} bytes)",
                              reason="REQUEST_HEADERS_TOO_LARGE")


def check_depth(value: Any, settings: Settings) -> None:
    """INVALID_ARGUMENT if a request body nests deeper than allowed."""
    if json_depth(value) > settings.max_json_depth:
        raise InvalidArgument(f"the request body nests deeper than {settings.max_json_depth} "
                              "levels", reason="JSON_TOO_DEEP")



def require_json_body() -> None:
    """INVALID_ARGUMENT unless a request that carries a body says it is JSON.

    Browsers send `text/plain`, form and multipart bodies across sites without asking
    (a "simple" request); requiring `application/json` keeps web pages a developer visits
    from driving the API. A request without a body needs no content type.
    """
    if not (request.content_length or "chunked" in request.headers.get("Transfer-Encoding",
                                                                        "").lower()):
        return
    if request.mimetype != "application/json":
        shown = request.mimetype or "none"
        raise InvalidArgument(f"the request body must be JSON, sent with 'Content-Type: "
                              f"application/json' (it was {shown[:100]})",
                              reason="UNSUPPORTED_MEDIA_TYPE")
