"""A worker bootstep that looks after running jobs, on Celery's timer in the main process.

Each tick it:
- renews the leases of the jobs its own pool runs, so other workers know they are alive;
- terminates a job of its own whose cancellation was asked for more than the grace period
  ago (marked CANCELLED, its pool process killed, as `revoke(terminate=True)` does);
- recovers operations whose worker stopped renewing (a node that died): the job's message
  is put back on the queue, or the operation ends FAILED ABORTED if there is none;
- on a Redis broker, puts back messages a node took but died before starting (their
  operations have no lease yet: they are still PENDING, never attempted, long after the
  message was taken), and messages left on a queue's landing list by a node that died while
  taking them (RabbitMQ hands a dead node's messages to another worker by itself);
- publishes the task outbox's entries that their API process did not (workers/relay.py);
- drops done operations past their retention from the listing indexes;
- starts the webhook deliveries that are due (workers/webhooks.py).

It recovers other nodes' work only once the store has answered for a whole lease: after an
outage (a primary failing over), when every lease looks expired, each live node first gets
a lease's time to renew its own.
"""

from __future__ import annotations

import logging
import signal
from time import monotonic, time
from typing import Any

from celery import bootsteps
from celery.worker import state as worker_state

from core import record
from core.connection import UNREACHABLE
from core.errors import Aborted
from core.names import operation_name
from core.states import LEASED, Event, State
from core.store import OperationStore, operation_store
from core.task_outbox import TaskOutbox
from core.timestamps import now_micros
from workers.redelivery import Landed, landed, redeliver, restore, return_landed, stranded
from workers.relay import Relay
from workers.webhooks import WebhookSender

log = logging.getLogger(__name__)


class Supervisor(bootsteps.StartStopStep):  # type: ignore[misc]
    """Leases, cancellation grace and lost-worker recovery for one worker node."""

    requires = frozenset({"celery.worker.components:Timer", "celery.worker.components:Pool"})

    def __init__(self, worker: Any, **kwargs: Any) -> None:
        super().__init__(worker, **kwargs)
        self._timer_entry: Any = None
        self._webhooks: WebhookSender | None = None
        self._relay: Relay | None = None
        self._landed_since: dict[Landed, float] = {}  # when this node first saw each one
        self._store: OperationStore | None = None
        self._reachable_since: float | None = None  # monotonic time of the store's last return

    def start(self, worker: Any) -> None:
        interval = worker.app.settings.supervise_interval_seconds
        # Not the jobs' patient store: an outage skips a tick instead of stalling the timer.
        self._store = operation_store(worker.app.settings)
        self._webhooks = WebhookSender(worker.app)
        settings = worker.app.settings
        if not settings.broker_shares_store:  # else each message is queued with its operation
            # Here, not at the top: the dispatcher's module imports the Celery app, which
            # imports this one.
            from workers.dispatch import Dispatcher
            self._relay = Relay(Dispatcher.from_settings(settings),
                                TaskOutbox.of(self.store, settings))
        self._timer_entry = worker.timer.call_repeatedly(interval, self.tick, (worker,))

    def stop(self, worker: Any) -> None:
        if self._timer_entry is not None:
            self._timer_entry.cancel()
        if self._webhooks is not None:
            self._webhooks.close()

    def tick(self, worker: Any) -> None:
        """One round of supervision; a Redis outage just skips it."""
        try:
            self._watch_own_jobs(worker)
            if self._store_answered_for_a_lease(worker):
                self._recover_lost_jobs(worker)
                if worker.app.settings.redis_broker:  # others keep no taken message in reach
                    self._recover_stranded_messages(worker)
                    self._recover_landed_messages(worker)
            if self._relay is not None:
                self._relay.pump()
            self.store.reap_expired()
            if self._webhooks is not None:
                self._webhooks.pump()
        except UNREACHABLE as exc:
            self._reachable_since = None
            log.warning("supervisor cannot reach Redis (%s); will retry", type(exc).__name__)

    @property
    def store(self) -> OperationStore:
        """The store this supervisor reads and writes (once started)."""
        assert self._store is not None, "the supervisor has not started"
        return self._store

    def _store_answered_for_a_lease(self, worker: Any) -> bool:
        now = monotonic()
        if self._reachable_since is None:
            self._reachable_since = now
        lease: float = worker.app.settings.lease_seconds
        return now - self._reachable_since >= lease

    def _watch_own_jobs(self, worker: Any) -> None:
        running = [r for r in list(worker_state.active_requests) if "project" in r.kwargs]
        if not running:
            return
        store, settings = self.store, worker.app.settings
        refs = [(r.kwargs["project"], r.id) for r in running]
        store.renew_leases(refs, settings.lease_seconds)
        grace = int(settings.cancel_grace_seconds * 1_000_000)
        now = now_micros()
        for request, (state, asked_at) in zip(running, store.cancellations(refs), strict=True):
            if state in {State.CANCELLING, State.CANCELLED} and asked_at is not None \
                    and now - asked_at >= grace:
                self._terminate(worker, request)

    def _terminate(self, worker: Any, request: Any) -> None:
        project = request.kwargs["project"]
        grace = worker.app.settings.cancel_grace_seconds
        message = f"cancelled: terminated after ignoring the request for {grace:g}s"
        self.store.apply(project, request.id, Event.CONFIRM_CANCEL,
                         {record.STATUS_MESSAGE: message})
        worker_state.revoked.add(request.id)  # a redelivered copy is skipped too
        request.terminate(worker.pool, signal=signal.SIGKILL)
        log.info("terminated %s: it ignored its cancellation for the grace period",
                 operation_name(project, request.id))

    def _recover_lost_jobs(self, worker: Any) -> None:
        store = self.store
        for project, operation_id in store.expired_leases():
            name = operation_name(project, operation_id)
            # A zero-length lease: applies only if nobody renewed it meanwhile.
            moved = store.apply(project, operation_id, Event.WORKER_LOST, {
                record.STATUS_MESSAGE: "its worker was lost (it stopped renewing its lease); "
                                       "queued again"}, take_lease=0)
            if moved.after is State.PENDING:
                if redeliver(worker.app, operation_id):
                    log.warning("worker running %s was lost; redelivered", name)
                    continue
                error = Aborted("the worker running the job was lost and its message is gone",
                                reason="WORKER_LOST")
                store.apply(project, operation_id, Event.FAIL, {
                    record.ERROR: record.encode_json(error.status()),
                    record.STATUS_MESSAGE: f"aborted: {error.message}"})
                log.warning("worker running %s was lost; no message left, aborted", name)
            elif moved.after is None and moved.before not in LEASED:
                store.drop_lease(project, operation_id)  # finished or deleted meanwhile

    def _recover_stranded_messages(self, worker: Any) -> None:
        # A live node starts what it takes within milliseconds (prefetch is one per pool
        # process), or at its countdown if it is a retry's; a message held a whole lease past
        # that, its operation PENDING and unchanged for a lease too, was taken by a node that
        # died. (A pool process's death releases the operation moments before Celery requeues
        # the message: that one is left to Celery.) Should the node be alive after all, the
        # lease refuses a second run.
        store, lease = self.store, worker.app.settings.lease_seconds
        now = time()
        for message in stranded(worker.app, lease):
            if message.eta is not None and message.eta > now - lease:
                continue
            operation = store.get(message.project, message.task_id)
            if operation is not None and operation.state is State.PENDING \
                    and operation.update_time < (now - lease) * 1_000_000:
                restore(worker.app, message)
                log.warning("%s was taken by a worker that never started it; redelivered",
                            operation.name)

    def _recover_landed_messages(self, worker: Any) -> None:
        # A live node records what it takes within milliseconds; a message still on a landing
        # list after a whole lease was taken by a node that died in between. Should that node
        # record it after all, the message has moved on and stays where it is.
        now = monotonic()
        seen: dict[Landed, float] = {}
        for message in landed(worker.app, worker.app.amqp.queues.consume_from):
            since = self._landed_since.get(message, now)
            if now - since < worker.app.settings.lease_seconds:
                seen[message] = since
            elif return_landed(worker.app, message):
                log.warning("%s was taken by a worker that died taking it; redelivered",
                            operation_name(message.project, message.task_id))
        self._landed_since = seen
