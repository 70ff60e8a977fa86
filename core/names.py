"""Resource names and ids as they appear on the wire, and the checks that validate them."""

from __future__ import annotations

import re
import uuid

from core.errors import InvalidArgument

PROJECT_ID = re.compile(r"[a-z][a-z0-9-]{0,62}")
OPERATION_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
JOB_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,127}")
LABEL_KEY = re.compile(r"[a-z][a-z0-9_-]{0,62}")
LABEL_VALUE = re.compile(r"[a-z0-9_-]{0,63}")


def operation_name(project: str, operation_id: str) -> str:
    """`projects/{project}/operations/{operation_id}`."""
    return f"projects/{project}/operations/{operation_id}"


def new_operation_id() -> str:
    """A random canonical UUID, used as both operation id and Celery task id."""
    return str(uuid.uuid4())


def check_project(project: str) -> str:
    """Return `project` if it is a valid project id, else raise INVALID_ARGUMENT."""
    if not PROJECT_ID.fullmatch(project):
        raise InvalidArgument(
            f"project id {shown(project)} is invalid: use 1-63 lowercase letters, digits "
            "and hyphens, starting with a letter",
            reason="INVALID_PROJECT_ID",
        )
    return project


def check_operation_id(operation_id: str) -> str:
    """Return `operation_id` if it is a canonical lowercase UUID, else raise."""
    if not OPERATION_ID.fullmatch(operation_id):
        raise InvalidArgument(
            f"operation id {shown(operation_id)} is invalid: operation ids are lowercase UUIDs",
            reason="INVALID_OPERATION_ID",
        )
    return operation_id


def check_job_name(job: str) -> str:
    """Return `job` if it is a well-formed job name, else raise INVALID_ARGUMENT."""
    if not JOB_NAME.fullmatch(job):
        raise InvalidArgument(
            f"job name {shown(job)} is invalid: use lowercase letters, digits, '.', '_' and '-'",
            reason="INVALID_JOB_NAME",
        )
    return job


def shown(value: str) -> str:
    """A name quoted for an error message, shortened so a huge input stays a short message."""
    return repr(value if len(value) <= 80 else value[:77] + "...")
