"""Job types: a name, a marshmallow input schema, limits, and the function that runs it.

A job module registers its jobs with the `job` decorator; the API and the workers import
the modules listed in `Settings.job_modules`, so users add jobs without editing opqueue.
"""

from __future__ import annotations

import functools
import importlib
import os
import sys
import traceback
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import marshmallow

from core.errors import InvalidArgument, NotFound, field_violations
from core.names import check_job_name


class JobContext(Protocol):
    """What a running job sees: its operation, progress reporting and cancellation."""

    @property
    def operation_name(self) -> str: ...

    @property
    def attempt(self) -> int: ...

    @property
    def cancelled(self) -> bool: ...

    def progress(self, percent: float, message: str = "", **details: Any) -> None: ...


JobFunction = Callable[..., Any]


@dataclass(frozen=True)
class JobSpec:
    """A registered job type."""

    name: str
    function: JobFunction
    input_schema: type[marshmallow.Schema]
    description: str = ""
    timeout: float = 600.0
    max_timeout: float = 24 * 60 * 60.0
    max_retries: int = 0
    retry_on: tuple[type[Exception], ...] = ()
    safe_to_repeat: bool = True  # False: a lost worker ends the operation ABORTED

    def load_input(self, data: Any) -> dict[str, Any]:
        """Validate `data` against the input schema; INVALID_ARGUMENT naming each bad field."""
        if not isinstance(data, Mapping):
            raise InvalidArgument.for_fields({"input": "must be a JSON object"})
        try:
            loaded: dict[str, Any] = _loader(self.input_schema).load(data)
        except marshmallow.ValidationError as exc:
            raise InvalidArgument.for_fields(field_violations(exc.messages, "input")) from None
        return loaded

    def run(self, context: JobContext, data: Mapping[str, Any]) -> Any:
        """Call the job function with its validated input as keyword arguments."""
        return self.function(context, **self.load_input(data))


@functools.cache
def _loader(schema: type[marshmallow.Schema]) -> marshmallow.Schema:
    # One instance per schema: building one costs more than loading a small input with it.
    return schema(unknown=marshmallow.RAISE)


@dataclass
class JobRegistry:
    """Job types by name."""

    specs: dict[str, JobSpec] = field(default_factory=dict)

    def job(self, name: str, *, input_schema: type[marshmallow.Schema], description: str = "",
            timeout: float = 600.0, max_timeout: float = 24 * 60 * 60.0, max_retries: int = 0,
            retry_on: tuple[type[Exception], ...] = (),
            safe_to_repeat: bool = True) -> Callable[[JobFunction], JobFunction]:
        """Decorator registering a function `f(context, **input)` as job type `name`."""
        check_job_name(name)

        def register(function: JobFunction) -> JobFunction:
            if name in self.specs and self.specs[name].function is not function:
                raise ValueError(f"job {name!r} is registered twice")
            doc = (function.__doc__ or "").strip().splitlines()
            self.specs[name] = JobSpec(
                name=name, function=function, input_schema=input_schema,
                description=description or (doc[0] if doc else ""), timeout=timeout,
                max_timeout=max_timeout, max_retries=max_retries, retry_on=retry_on,
                safe_to_repeat=safe_to_repeat)
            return function

        return register

    def get(self, name: str) -> JobSpec:
        """The job type `name`, or NOT_FOUND."""
        spec = self.specs.get(check_job_name(name))
        if spec is None:
            raise NotFound(f"job type {name!r} is not registered", reason="JOB_NOT_FOUND",
                           metadata={"job": name})
        return spec

    def __iter__(self) -> Iterator[JobSpec]:
        return iter(sorted(self.specs.values(), key=lambda spec: spec.name))

    def load_modules(self, modules: Iterable[str], search_dir: str = "") -> JobRegistry:
        """Import job modules so that their `job` decorators register into this registry.

        `search_dir` (default: the working directory) is searched after the installed
        packages, so a user's own modules there never shadow opqueue's.
        """
        directory = search_dir or os.getcwd()
        if directory not in sys.path:
            sys.path.append(directory)
        for module in modules:
            try:
                importlib.import_module(module)
            except Exception as exc:
                raise JobModuleError(module, exc) from exc
        return self


class JobModuleError(ImportError):
    """A job module listed in `OPQUEUE_JOB_MODULES` could not be imported."""

    def __init__(self, module: str, cause: BaseException) -> None:
        where = ""
        frames = traceback.extract_tb(cause.__traceback__)
        if not isinstance(cause, ModuleNotFoundError) and frames:
            where = f" (at {frames[-1].filename}:{frames[-1].lineno})"
        super().__init__(f"cannot import job module {module!r} listed in "
                         f"OPQUEUE_JOB_MODULES: {type(cause).__name__}: {cause}{where}")


registry = JobRegistry()
job = registry.job

