"""Acknowledged means replicated: a store write answered only once enough replicas have it
(`OPQUEUE_STORE_MIN_REPLICAS`)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import redis
from redis.commands.core import Script
from redis.exceptions import MovedError

from core.connection import UNREACHABLE, forget_primary, primary_for
from core.errors import Unavailable

log = logging.getLogger(__name__)

# What a node that serves a key no more answers (a demoted primary; on a cluster, a moved slot).
_DEMOTED = (MovedError, redis.ReadOnlyError)


@dataclass(frozen=True)
class Replication:
    """How many replicas must have a write before it is answered, how long to wait for them,
    and whether falling short refuses the write (the API) or is only logged (workers)."""

    min_replicas: int
    timeout: float
    refuse_unreplicated: bool = True


def replicated_write(client: redis.Redis, script: Script, keys: list[str], args: list[Any],
                     replication: Replication) -> Any:
    """Run a writing script and return its reply once `replication.min_replicas` replicas
    have the write (`WAIT`, on the script's own connection to the primary of its keys);
    if they do not within the timeout, UNAVAILABLE (or, if not `refuse_unreplicated`, a
    warning): a caller is never told of a write a failover could lose."""
    wanted = replication.min_replicas
    try:
        with primary_for(client, keys[0]).pipeline(transaction=False) as pipe:
            script(keys=keys, args=args, client=pipe)
            pipe.wait(wanted, int(replication.timeout * 1000))
            reply, replicas = pipe.execute()
    except UNREACHABLE:
        forget_primary(client)  # on a cluster the shard's replica may take over
        raise
    except redis.ResponseError as exc:
        if not isinstance(exc, _DEMOTED) and "WAIT cannot be used with replica" not in str(exc):
            raise
        # The primary was demoted under us (a failover): drop its connections and let the
        # caller retry on the new one, as redis-py does for a READONLY reply.
        forget_primary(client)
        raise redis.ConnectionError("the store's primary became a replica") from exc
    if int(replicas) < wanted and not replication.refuse_unreplicated:
        log.warning("a store write reached %s of %d replicas in %gs", replicas, wanted,
                    replication.timeout)
    elif int(replicas) < wanted:
        raise Unavailable(
            f"the change reached {replicas} of the {wanted} store replica(s) it must reach "
            "before it counts; retry", reason="STORE_REPLICAS_BEHIND",
            metadata={"minReplicas": str(wanted)})
    return reply
