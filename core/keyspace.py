"""Every Redis key opqueue uses, built from one prefix so deployments can share a Redis.

Every key about one project carries the project as its hash tag (`PREFIX:{PROJECT}:...`), so
on a Redis Cluster all of them live on one shard and each script stays atomic there. What
sweepers, relays and metrics readers need across projects is kept per project too (its
lease set, outboxes, counters) and found through the registry of projects.
The same layout serves a single Redis, so every mode runs one code path.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.stored_ids import stored_id

# The version of this layout, kept in the store (`Keys.layout`): a store written in another
# is refused at startup rather than misread (core/layout.py).
LAYOUT_VERSION = "3"


@dataclass(frozen=True)
class Keys:
    """The key layout under one prefix."""

    prefix: str

    def _project(self, project: str) -> str:
        # Project ids are [a-z0-9-]: never a brace, so the tag is exactly the project.
        return f"{self.prefix}:{{{project}}}"

    def operation(self, project: str, operation_id: str) -> str:
        """Hash holding one operation's fields (named by the id's stored form)."""
        return f"{self._project(project)}:op:{stored_id(operation_id)}"

    def index(self, project: str) -> str:
        """Sorted set of a project's operation ids (stored form: core/stored_ids.py), scored
        by create time in microseconds."""
        return f"{self._project(project)}:idx"

    def request(self, project: str, request_id: str) -> str:
        """String mapping a client's `requestId` to the operation it created."""
        return f"{self._project(project)}:req:{request_id}"

    def reaped(self, project: str) -> str:
        """Where the reaper stopped in a project's index (a create time), so that the
        operations at its old end that are still there do not hold it up (core/lua/reap.lua)."""
        return f"{self._project(project)}:reaped"

    def leases(self, project: str) -> str:
        """Sorted set of `project/id` members of a project's running operations, scored by
        lease expiry."""
        return f"{self._project(project)}:leases"

    def queued(self, project: str) -> str:
        """Hash of project → how many of its operations are not done yet (one field)."""
        return f"{self._project(project)}:queued"

    def events(self, project: str) -> str:
        """Stream of a project's changes (created, each transition, deleted), bounded."""
        return f"{self._project(project)}:events"

    def outbox(self, project: str) -> str:
        """Sorted set of a project's webhook deliveries to make, scored by when (ms)."""
        return f"{self._project(project)}:outbox"

    def task_outbox(self, project: str) -> str:
        """Sorted set of a project's task messages stored with their operations and not yet
        confirmed by the broker, scored by when a relay may publish them (ms)."""
        return f"{self._project(project)}:task-outbox"

    def deliveries(self, project: str, operation_id: str) -> str:
        """List of an operation's webhook delivery attempts and their outcomes."""
        return f"{self._project(project)}:deliveries:{operation_id}"

    def metrics(self, project: str) -> str:
        """Hash of a project's operation counters and histograms (see core/metrics.py)."""
        return f"{self._project(project)}:metrics"

    def changes(self, project: str) -> str:
        """Pub/sub channel announcing every change of a project's operations (a sharded
        channel on a cluster, on the project's shard)."""
        return f"{self._project(project)}:changes"

    def projects(self) -> str:
        """Set of every project that has had operations: what the readers of the per-project
        structures above go through."""
        return f"{self.prefix}:projects"

    def layout(self) -> str:
        """The version of the key layout the store was written in."""
        return f"{self.prefix}:layout"

    def rate(self, key_id: str) -> str:
        """Sorted set of an API key's requests in the last second, scored by time (ms)."""
        return f"{self.prefix}:rate:key:{key_id}"

    def address_rate(self, address: str) -> str:
        """Sorted set of a client address's refused or anonymous requests in the last second."""
        return f"{self.prefix}:rate:addr:{address}"

    def long_requests(self, scope: str) -> str:
        """Sorted set of held long-request slots (`:wait`, `:watch`) of one key (scope
        `key:ID`) or of the whole deployment (`*`), scored by when each lease runs out.
        All share one hash tag: a slot is taken in both sets by one script."""
        return f"{self.prefix}:{{long-requests}}:{scope}"

    def secret(self) -> str:
        """The deployment's page-token key, shared by every API process."""
        return f"{self.prefix}:secret:page-token"

    def broker_prefix(self) -> str:
        """Prefix for the Celery broker's own keys (kombu's `global_keyprefix`)."""
        return f"{self.prefix}:broker:"
