"""The public API for writing jobs: everything a job module needs, from one import.

    from opqueue.jobs import JobContext, Schema, errors, fields, job, validate

- `job(name, input_schema=..., timeout=..., max_retries=..., retry_on=..., ...)` registers
  a function `f(context, **input)` as a job type;
- `JobContext` is what the function receives first (progress, cancellation, attempt);
- `errors` holds one exception class per `google.rpc.Code` (`errors.InvalidArgument`,
  `errors.NotFound`, ...) and `errors.Cancelled`;
- `Schema`, `fields`, `validate`, `validates` and `ValidationError` describe the input
  (marshmallow's, plus `fields.WholeNumber`).

Server side: it needs the service installed (`pip install 'opqueue[server]'`), not only the
client. These names are stable; opqueue's internal packages are not part of the API.
"""

from marshmallow import Schema, ValidationError, validate, validates

from core import errors
from core.jobs import JobContext, job
from opqueue import fields

__all__ = ["JobContext", "Schema", "ValidationError", "errors", "fields", "job", "validate",
           "validates"]
