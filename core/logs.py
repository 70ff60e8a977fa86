"""Logging for the API and the workers: text or JSON, with the operation in scope.

While a worker runs a job (and wherever code binds one), every log line carries
`operation` (its name) and `job`, the job's own lines included.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token

from pythonjsonlogger.json import JsonFormatter

from core.config import Settings

_OPERATION: ContextVar[tuple[str, str]] = ContextVar("opqueue_operation", default=("", ""))
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s%(context)s: %(message)s"
JSON_FIELDS = "%(asctime)s %(levelname)s %(name)s %(message)s %(operation)s %(job)s"


class OperationContext(logging.Filter):
    """Adds `operation` and `job` to every record (empty when no operation is in scope)."""

    def filter(self, record: logging.LogRecord) -> bool:
        bound_name, bound_job = _OPERATION.get()
        record.__dict__.update(operation=getattr(record, "operation", "") or bound_name,
                               job=getattr(record, "job", "") or bound_job)
        return True


class TextFormatter(logging.Formatter):
    """`time LEVEL logger [operation job]: message`, the brackets only when there is one."""

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's name
        operation = getattr(record, "operation", "")
        context = f" [{operation} {getattr(record, 'job', '')}]" if operation else ""
        return TEXT_FORMAT % {**record.__dict__, "context": context}


def bind(name: str, job: str) -> Token[tuple[str, str]]:
    """From now on, log lines are about operation `name` of job type `job` (see `unbind`)."""
    return _OPERATION.set((name, job))


def unbind(token: Token[tuple[str, str]]) -> None:
    """Undo a `bind`."""
    _OPERATION.reset(token)


@contextmanager
def operation_scope(name: str, job: str) -> Iterator[None]:
    """Every log line inside is about operation `name` of job type `job`."""
    token = bind(name, job)
    try:
        yield
    finally:
        unbind(token)


def configure(settings: Settings) -> None:
    """Send log lines to stderr in `settings.log_format` at `settings.log_level`."""
    handler = logging.StreamHandler()
    handler.addFilter(OperationContext())
    if settings.log_format == "json":
        handler.setFormatter(JsonFormatter(JSON_FIELDS, rename_fields={
            "asctime": "time", "levelname": "level", "name": "logger"}))
    else:
        handler.setFormatter(TextFormatter(TEXT_FORMAT))
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(settings.log_level)
