"""The per-project key layout (issue #15): its version is recorded and checked, and what is
kept per project is added up across projects where it is read."""

from __future__ import annotations

import fakeredis
import pytest
from flask.testing import FlaskClient

from core import metrics
from core.config import Settings
from core.keyspace import LAYOUT_VERSION, Keys
from core.layout import LayoutMismatch
from core.store import OperationStore, operation_store
from tests.conftest import run_job


def test_a_new_store_records_the_layout_it_is_written_in(settings: Settings,
                                                         redis: fakeredis.FakeRedis) -> None:
    operation_store(settings, redis)
    assert redis.get(Keys(settings.key_prefix).layout()) == LAYOUT_VERSION
    operation_store(settings, redis)  # and the next process finds it so


def test_a_store_of_the_first_layout_is_refused_not_misread(
        settings: Settings, redis: fakeredis.FakeRedis) -> None:
    redis.hset(f"{settings.key_prefix}:metrics", "created|demo.sleep|", 3)
    with pytest.raises(LayoutMismatch, match="before per-project key hash tags"):
        operation_store(settings, redis)
    assert redis.get(Keys(settings.key_prefix).layout()) is None


def test_a_store_of_another_layout_version_is_refused(settings: Settings,
                                                      redis: fakeredis.FakeRedis) -> None:
    redis.set(Keys(settings.key_prefix).layout(), "2")
    with pytest.raises(LayoutMismatch, match="is in key layout 2"):
        operation_store(settings, redis)


def test_every_key_of_a_project_has_the_project_as_its_hash_tag() -> None:
    keys = Keys("opqueue")
    for key in (keys.operation("p-1", "x"), keys.index("p-1"), keys.request("p-1", "r"),
                keys.reaped("p-1"), keys.leases("p-1"), keys.queued("p-1"),
                keys.events("p-1"), keys.outbox("p-1"), keys.task_outbox("p-1"),
                keys.deliveries("p-1", "x"), keys.metrics("p-1"), keys.changes("p-1")):
        assert key.startswith("opqueue:{p-1}:"), key


def test_counters_are_added_up_across_projects(client: FlaskClient,
                                               store: OperationStore) -> None:
    run_job(client, project="one")
    run_job(client, project="two")
    run_job(client, project="two")
    assert store.projects.all() == ["one", "two"]
    assert metrics.read(store.redis, store.keys).created == {"demo.sleep": 3}
