"""Job modules: found in the user's directory, refused in one line when they cannot load."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

import opqueue.jobs
from core.jobs import JobModuleError, JobRegistry


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Path]:
    """A directory of the user's, left off sys.path again afterwards."""
    yield tmp_path
    if str(tmp_path) in sys.path:
        sys.path.remove(str(tmp_path))


def test_a_module_in_the_given_directory_is_imported_after_installed_packages(
        project: Path) -> None:
    name = f"userjobs_{uuid.uuid4().hex}"
    (project / f"{name}.py").write_text("LOADED = True\n")
    JobRegistry().load_modules([name], str(project))
    assert sys.modules[name].LOADED
    assert sys.path.index(str(project)) > sys.path.index(str(Path(opqueue.__file__).parents[1]))


def test_a_missing_module_is_one_line_naming_it(project: Path) -> None:
    with pytest.raises(JobModuleError) as raised:
        JobRegistry().load_modules(["nosuchpackage.jobs"], str(project))
    assert str(raised.value) == ("cannot import job module 'nosuchpackage.jobs' listed in "
                                 "OPQUEUE_JOB_MODULES: ModuleNotFoundError: No module named "
                                 "'nosuchpackage'")


def test_a_module_that_fails_says_where(project: Path) -> None:
    name = f"brokenjobs_{uuid.uuid4().hex}"
    (project / f"{name}.py").write_text("import json\n\nraise ValueError('bad config')\n")
    with pytest.raises(JobModuleError) as raised:
        JobRegistry().load_modules([name], str(project))
    assert str(raised.value) == (
        f"cannot import job module {name!r} listed in OPQUEUE_JOB_MODULES: ValueError: "
        f"bad config (at {project / f'{name}.py'}:3)")


def test_the_job_author_api_has_everything_a_job_needs() -> None:
    assert set(opqueue.jobs.__all__) == {"JobContext", "Schema", "ValidationError", "errors",
                                         "fields", "job", "validate", "validates"}
    assert opqueue.jobs.fields.WholeNumber is not None
    assert opqueue.jobs.fields.String is not None
    assert issubclass(opqueue.jobs.errors.NotFound, opqueue.jobs.errors.OperationError)
