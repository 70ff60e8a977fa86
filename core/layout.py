"""The store's key layout version, checked by every process before it uses the store, so
that a store written in another layout is refused rather than misread."""

from __future__ import annotations

import logging
from typing import cast

import redis

from core.keyspace import LAYOUT_VERSION, Keys

log = logging.getLogger(__name__)

# Keys only the first layout (one deployment-wide key each, no project hash tags) wrote;
# every create wrote `metrics`.
_FIRST_LAYOUT = ("metrics", "queued", "expiry", "leases")


class LayoutMismatch(RuntimeError):
    """The store holds data in a key layout this version does not read."""


def check_layout(client: redis.Redis, keys: Keys) -> None:
    """Record this version's layout in a store that has none; raise LayoutMismatch if the
    store was written in another. A store that cannot be reached right now is let be (its
    first write would fail anyway)."""
    try:
        found = cast(str | None, client.get(keys.layout()))
        if found is None:
            _refuse_first_layout(client, keys)
            client.set(keys.layout(), LAYOUT_VERSION, nx=True)
            found = cast(str | None, client.get(keys.layout()))
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        log.warning("could not check the store's key layout (%s)", type(exc).__name__)
        return
    if found != LAYOUT_VERSION:
        raise LayoutMismatch(
            f"the store under key prefix {keys.prefix!r} is in key layout {found}, this "
            f"opqueue reads layout {LAYOUT_VERSION}: run the opqueue version that wrote it, "
            "or start on a new OPQUEUE_KEY_PREFIX")


def _refuse_first_layout(client: redis.Redis, keys: Keys) -> None:
    old = [f"{keys.prefix}:{name}" for name in _FIRST_LAYOUT]
    if any(client.exists(key) for key in old):  # one by one: they are on different shards
        raise LayoutMismatch(
            f"the store under key prefix {keys.prefix!r} was written by an opqueue before "
            f"per-project key hash tags (layout 1: it has {', '.join(old)}); this opqueue "
            f"reads layout {LAYOUT_VERSION}. Let the old deployment finish its operations "
            "and delete its keys, or start on a new OPQUEUE_KEY_PREFIX")
