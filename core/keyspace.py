"""Every Redis key opqueue uses, built from one prefix so deployments can share a Redis."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Keys:
    """The key layout under one prefix."""

    prefix: str

    def operation(self, project: str, operation_id: str) -> str:
        """Hash holding one operation's fields."""
        return f"{self.prefix}:op:{project}:{operation_id}"

    def index(self, project: str) -> str:
        """Sorted set of a project's operation ids, scored by create time in microseconds."""
        return f"{self.prefix}:idx:{project}"

    def request(self, project: str, request_id: str) -> str:
        """String mapping a client's `requestId` to the operation it created."""
        return f"{self.prefix}:req:{project}:{request_id}"

    def expiry(self) -> str:
        """Sorted set of `project/id` members of done operations, scored by expiry time."""
        return f"{self.prefix}:expiry"

    def leases(self) -> str:
        """Sorted set of `project/id` members of running operations, scored by lease expiry."""
        return f"{self.prefix}:leases"

    def rate(self, key_id: str) -> str:
        """Sorted set of an API key's requests in the last second, scored by time (ms)."""
        return f"{self.prefix}:rate:key:{key_id}"

    def address_rate(self, address: str) -> str:
        """Sorted set of a client address's refused or anonymous requests in the last second."""
        return f"{self.prefix}:rate:addr:{address}"

    def long_requests(self, scope: str) -> str:
        """Sorted set of held long-request slots (`:wait`, `:watch`) of one key (scope
        `key:ID`) or of the whole deployment (`*`), scored by when each lease runs out."""
        return f"{self.prefix}:long:{scope}"

    def queued(self) -> str:
        """Hash of project → how many of its operations are not done yet."""
        return f"{self.prefix}:queued"

    def events(self, project: str) -> str:
        """Stream of a project's changes (created, each transition, deleted), bounded."""
        return f"{self.prefix}:events:{project}"

    def outbox(self) -> str:
        """Sorted set of webhook deliveries to make, scored by when (milliseconds)."""
        return f"{self.prefix}:outbox"

    def task_outbox(self) -> str:
        """Sorted set of task messages stored with their operations and not yet confirmed
        by the broker, scored by when a relay may publish them (ms)."""
        return f"{self.prefix}:task-outbox"

    def deliveries(self, project: str, operation_id: str) -> str:
        """List of an operation's webhook delivery attempts and their outcomes."""
        return f"{self.prefix}:deliveries:{project}:{operation_id}"

    def metrics(self) -> str:
        """Hash of operation counters and histograms (see core/metrics.py)."""
        return f"{self.prefix}:metrics"

    def secret(self) -> str:
        """The deployment's page-token key, shared by every API process."""
        return f"{self.prefix}:secret:page-token"

    def changes(self) -> str:
        """Pub/sub channel announcing every operation change."""
        return f"{self.prefix}:changes"

    def broker_prefix(self) -> str:
        """Prefix for the Celery broker's own keys (kombu's `global_keyprefix`)."""
        return f"{self.prefix}:broker:"
