"""Fixtures shared by the unit tests of the API's front ends (HTTP and gRPC)."""

from __future__ import annotations

from dataclasses import replace

import fakeredis
import pytest
from flask import Flask

from app import create_app
from core.config import Settings
from core.jobs import registry
from tests.fakes import RecordingDispatcher
from tests.keys import KEYS_JSON


@pytest.fixture
def keyed(settings: Settings, redis: fakeredis.FakeRedis,
          dispatcher: RecordingDispatcher) -> Flask:
    """The app with tests/keys.py's API keys configured."""
    return create_app(replace(settings, api_keys=KEYS_JSON), redis=redis,
                      dispatcher=dispatcher,  # type: ignore[arg-type]
                      registry=registry.load_modules(settings.job_modules))
