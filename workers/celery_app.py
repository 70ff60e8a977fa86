"""The Celery app: JSON only, late acks, results kept by the operation store.

`celery -A workers.celery_app worker` finds `app` here; it is built on first access from
the environment, so importing this module (as the API does to dispatch) has no side effects.
"""

from __future__ import annotations

import re
from functools import cached_property
from typing import Any

from celery import Celery
from celery.signals import setup_logging

from core import logs
from core.config import Settings
from core.errors import OperationError
from core.jobs import JobRegistry, JobSpec
from core.jobs import registry as default_registry
from core.keyspace import Keys
from core.record import encode_json
from core.store import OperationStore, operation_store
from workers.broker_connection import BrokerAMQP
from workers.context import OperationContext
from workers.supervisor import Supervisor
from workers.transport import transport_for


def broker_config(settings: Settings) -> dict[str, Any]:
    """The broker's part of the Celery settings: per broker, what makes it lose nothing."""
    if not settings.rabbitmq_broker:
        return {"broker_transport_options": {
            "global_keyprefix": Keys(settings.key_prefix).broker_prefix(),
            # Our leases find lost jobs long before this; see workers/supervisor.py.
            "visibility_timeout": settings.broker_visibility_timeout_seconds,
            # opqueue has no message priorities: one list per queue, which workers can take
            # from atomically (workers/transport.py).
            "priority_steps": [0],
            # Sentinel mode: the name the sentinels know the primary by.
            **({"master_name": settings.sentinel_master} if settings.sentinel_master else {}),
        }}
    # A replicated, durable quorum queue; its delivery limit drops a message that kills
    # every worker taking it (the leases end its operation ABORTED long before). A topic
    # exchange lets Celery's native delayed delivery (quorum queues hold no countdowns)
    # route retries and deferred deliveries back to it.
    queue = {"exchange": settings.queue, "exchange_type": "topic",
             "routing_key": settings.queue, "durable": True, "queue_arguments": {
                 "x-queue-type": "quorum", "x-delivery-limit": settings.broker_delivery_limit}}
    return {"task_queues": {settings.queue: queue},
            # Every publish waits for RabbitMQ's confirm: a message confirmed is stored.
            "broker_transport_options": {"confirm_publish": True}}


def celery_config(settings: Settings) -> dict[str, Any]:
    """Celery settings every opqueue process shares."""
    return {
        "broker_url": settings.effective_broker_url,
        "broker_connection_retry_on_startup": True,
        **broker_config(settings),
        "task_default_queue": settings.queue,
        "task_serializer": "json",
        "result_serializer": "json",
        "event_serializer": "json",
        "accept_content": ["json"],
        "result_accept_content": ["json"],
        "task_ignore_result": True,
        "task_store_errors_even_if_ignored": False,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "worker_hijack_root_logger": False,
        "worker_redirect_stdouts": False,
    }


class OpqueueCelery(Celery):  # type: ignore[misc]
    """A Celery app that knows its opqueue settings and operation store."""

    def __init__(self, settings: Settings, store: OperationStore | None = None) -> None:
        super().__init__("opqueue", task_cls="workers.base:OperationTask",
                         amqp=BrokerAMQP, set_as_current=False)
        self.settings = settings
        self.conf.update(celery_config(settings))
        self.steps["worker"].add(Supervisor)
        if store is not None:
            self.store = store

    @cached_property
    def store(self) -> OperationStore:
        """The operation store, connected on first use (after the pool forks); patient, so
        that a job rides out a failover of the store's primary."""
        return operation_store(self.settings, patient=True)

    def register_jobs(self, registry: JobRegistry) -> OpqueueCelery:
        """Make every registered job type a Celery task of the same name."""
        for spec in registry:
            self.task(
                _task_body(spec), name=spec.name, bind=True, typing=False, shared=False,
                soft_time_limit=spec.timeout,
                time_limit=spec.timeout + self.settings.cancel_grace_seconds,
                max_retries=spec.max_retries, autoretry_for=spec.retry_on,
                retry_backoff=True, retry_jitter=True, spec=spec,
                # A job's own OperationError (a cancellation included) is an outcome, logged
                # as one INFO line; a traceback is kept for what no job meant to raise.
                throws=(OperationError,))
        return self


def _task_body(spec: JobSpec) -> Any:
    def run_job(task: Any, project: str, input: dict[str, Any]) -> str:
        context = OperationContext(task.app.store, project, task.request.id,
                                   attempt=task.request.retries + 1)
        try:
            return encode_json(spec.run(context, input))
        finally:
            context.close()  # coalesced progress is written before the outcome is

    # Celery compiles a signature from the function's name, which must be an identifier.
    run_job.__name__ = run_job.__qualname__ = re.sub(r"\W", "_", spec.name)
    return run_job


def worker_app(settings: Settings | None = None) -> OpqueueCelery:
    """The app a worker process runs: settings from the environment, job modules loaded."""
    settings = settings or Settings.from_env()
    configured = settings

    def configure_logging(**_: Any) -> None:
        logs.configure(configured)

    setup_logging.connect(configure_logging, weak=False)  # instead of Celery's own setup

    app = OpqueueCelery(settings).register_jobs(
        default_registry.load_modules(settings.job_modules, settings.job_path))
    transport = transport_for(settings, "Worker")
    if transport:
        app.conf.broker_transport = transport
    return app


def __getattr__(name: str) -> OpqueueCelery:
    # `celery -A workers.celery_app` looks up `app`; build it then, not at import.
    if name == "app":
        built = worker_app()
        globals()["app"] = built
        return built
    raise AttributeError(name)
