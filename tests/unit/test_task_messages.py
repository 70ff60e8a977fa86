"""The task messages workers/dispatch.py builds by hand are the ones Celery's `send_task` builds.

Both publish through kombu's in-memory transport (no broker), and the two messages are
compared whole: headers, properties and body. Two differences are ours on purpose: the
`kwargsrepr` header, which keeps job inputs out of worker logs, and the delivery tag, a
random id per message. When raising the celery bound in pyproject.toml, this test says
whether Celery's protocol 2 messages changed.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from kombu.utils.json import loads

from core.config import Settings
from core.jobs import JobSpec, registry
from core.names import new_operation_id
from core.task_outbox import Submission
from workers.celery_app import OpqueueCelery
from workers.dispatch import Dispatcher

JOB_INPUT = {"seconds": 1.5, "steps": 3, "note": "ünïcode"}


@pytest.fixture
def celery() -> Iterator[OpqueueCelery]:
    app = OpqueueCelery(Settings(broker_url="memory://", queue=f"messages-{new_operation_id()}"))
    yield app
    app.close()


@pytest.fixture
def spec() -> JobSpec:
    return registry.load_modules(("core.demo_jobs",)).get("demo.sleep")


def taken(celery: OpqueueCelery) -> dict[str, Any]:
    """The next message on the app's queue, as a consumer receives it."""
    with celery.connection_for_write() as connection:
        message = connection.default_channel.basic_get(celery.amqp.default_queue.name,
                                                       no_ack=True)
    assert message is not None, "nothing was published"
    return {"headers": dict(message.headers), "properties": dict(message.properties),
            "content_type": message.content_type, "encoding": message.content_encoding,
            "body": loads(message.body)}


def test_dispatch_builds_what_send_task_builds(celery: OpqueueCelery, spec: JobSpec) -> None:
    task_id, timeout = new_operation_id(), 42.5
    grace = celery.settings.cancel_grace_seconds
    Dispatcher(celery).enqueue_many([Submission("demo", task_id, spec.name, JOB_INPUT, timeout)])
    ours = taken(celery)
    celery.send_task(spec.name, kwargs={"project": "demo", "input": JOB_INPUT}, task_id=task_id,
                     time_limit=timeout + grace, soft_time_limit=timeout)
    celerys = taken(celery)

    assert ours["headers"].pop("kwargsrepr") == "{'project': 'demo', 'input': ...}"
    assert "seconds" in celerys["headers"].pop("kwargsrepr")  # Celery's shows the input
    assert ours["properties"].pop("delivery_tag") != celerys["properties"].pop("delivery_tag")
    assert ours == celerys
    assert ours["body"][1] == {"project": "demo", "input": JOB_INPUT}
    assert ours["headers"]["timelimit"] == [timeout + grace, timeout]


def test_many_messages_in_one_batch_are_each_the_same_as_one(celery: OpqueueCelery,
                                                              spec: JobSpec) -> None:
    ids = [new_operation_id() for _ in range(3)]
    Dispatcher(celery).enqueue_many([Submission("demo", i, spec.name, JOB_INPUT, 5.0) for i in ids])
    batch = [taken(celery) for _ in ids]
    Dispatcher(celery).enqueue_many([Submission("demo", ids[0], spec.name, JOB_INPUT, 5.0)])
    single = taken(celery)
    assert [message["headers"]["id"] for message in batch] == ids
    for message in (batch[0], single):
        message["properties"].pop("delivery_tag")
    assert batch[0] == single
