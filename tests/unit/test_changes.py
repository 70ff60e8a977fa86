"""The change listener (app/changes.py): it subscribes to the channels of the projects its
waiters wait on, wakes them on a change there, and lets go of projects no one waits on."""

from __future__ import annotations

import threading

import fakeredis
import pytest

from app import changes
from app.changes import ChangeListener
from core.keyspace import Keys
from tests.waiting import eventually

KEYS = Keys("t")


def test_a_waiter_is_woken_by_a_change_of_its_project_only(redis: fakeredis.FakeRedis) -> None:
    listener = ChangeListener(redis, KEYS)
    woken = threading.Event()
    waiter = threading.Thread(target=lambda: listener.wait(
        ["projects/one/operations/x"], 120, woken.is_set))
    waiter.start()
    eventually(lambda: redis.pubsub_channels() == [KEYS.changes("one")],
               what="the listener to subscribe to the project's channel")
    woken.set()  # ready() says yes once checked again: only a change makes it check
    redis.publish(KEYS.changes("one"), '{"name": "projects/one/operations/x", '
                                       '"project": "one"}')
    waiter.join(timeout=30)
    assert not waiter.is_alive()


def test_projects_no_one_waits_on_are_let_go(redis: fakeredis.FakeRedis,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(changes, "IDLE_SECONDS", 0.0)
    listener = ChangeListener(redis, KEYS)
    assert not listener.wait(["projects/one"], 0.2, lambda: False)
    eventually(lambda: redis.pubsub_channels() == [], what="the project to be let go")

