"""`Publisher`: concurrent requests' outbox entries published as one batch."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from core.task_outbox import Entry, Submission
from tests.waiting import eventually
from workers.publisher import Publisher


def entry(name: str) -> Entry:
    return Entry(name, Submission("demo", name, "demo.sleep", {}, 1.0), stored_ms=0)


class Outbox:
    """Records the entries removed."""

    def __init__(self, *, broken: bool = False) -> None:
        self.removed: list[str] = []
        self.broken = broken

    def remove(self, entries: list[Entry]) -> None:
        if self.broken:
            raise ConnectionError("the store went away")
        self.removed += [e.member for e in entries]


class GatedRelay:
    """A relay whose first batch waits until a gate opens; records every batch."""

    def __init__(self, *, fails: bool = False, outbox: Outbox | None = None) -> None:
        self.batches: list[list[str]] = []
        self.first_started, self.gate = threading.Event(), threading.Event()
        self.fails = fails
        self.outbox = outbox or Outbox()

    def send(self, entries: list[Entry]) -> None:
        self.batches.append([e.member for e in entries])
        if len(self.batches) == 1:
            self.first_started.set()
            assert self.gate.wait(timeout=30)
        if self.fails:
            raise ConnectionError("the broker went away")


def publish_while_the_first_batch_is_out(relay: GatedRelay, others: int) -> list[Any]:
    """One thread publishes `first`; while its batch is out, `others` threads publish one
    entry each; then the first batch ends. What each call raised (None: nothing)."""
    publisher = Publisher(relay)  # type: ignore[arg-type]

    def publish(name: str) -> Exception | None:
        try:
            publisher.publish([entry(name)])
        except Exception as exc:
            return exc
        return None

    with ThreadPoolExecutor(others + 1) as pool:
        first = pool.submit(publish, "first")
        assert relay.first_started.wait(timeout=30)
        rest = [pool.submit(publish, f"e{n}") for n in range(others)]
        eventually(lambda: len(publisher._handed) == others,
                   what="every other request to hand its entry over")
        relay.gate.set()
        return [first.result(timeout=30)] + [future.result(timeout=30) for future in rest]


def test_entries_handed_over_meanwhile_go_out_together_in_the_next_batch() -> None:
    relay = GatedRelay()
    assert publish_while_the_first_batch_is_out(relay, others=5) == [None] * 6
    assert relay.batches[0] == ["first"]
    assert sorted(relay.batches[1]) == [f"e{n}" for n in range(5)]
    assert len(relay.batches) == 2
    assert sorted(relay.outbox.removed) == sorted(relay.batches[0] + relay.batches[1])


def test_every_request_of_a_failed_batch_gets_its_error() -> None:
    relay = GatedRelay(fails=True)
    outcomes = publish_while_the_first_batch_is_out(relay, others=3)
    assert [type(outcome) for outcome in outcomes] == [ConnectionError] * 4
    assert len(relay.batches) == 2
    assert relay.outbox.removed == []  # left for the caller to delete, or a relay to send


def test_published_entries_the_store_could_not_remove_still_answer_published(
        caplog: pytest.LogCaptureFixture) -> None:
    relay = GatedRelay(outbox=Outbox(broken=True))
    relay.gate.set()
    Publisher(relay).publish([entry("confirmed")])  # type: ignore[arg-type]
    assert relay.batches == [["confirmed"]]
    assert "a relay will publish them again" in caplog.text


def test_nothing_to_publish_publishes_nothing() -> None:
    relay = GatedRelay()
    Publisher(relay).publish([])  # type: ignore[arg-type]
    assert relay.batches == []


def test_a_lone_request_publishes_its_own_batch() -> None:
    relay = GatedRelay()
    relay.gate.set()
    Publisher(relay).publish([entry("alone")])  # type: ignore[arg-type]
    assert relay.batches == [["alone"]]


def test_a_request_that_waited_too_long_is_not_published_later(
        monkeypatch: pytest.MonkeyPatch) -> None:
    relay = GatedRelay()
    publisher = Publisher(relay)  # type: ignore[arg-type]
    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(publisher.publish, [entry("first")])
        assert relay.first_started.wait(timeout=30)
        monkeypatch.setattr("workers.publisher.HANDOFF_TIMEOUT_SECONDS", 0.05)
        with pytest.raises(TimeoutError):
            publisher.publish([entry("late")])  # the caller deletes its operation
        relay.gate.set()
        first.result(timeout=30)
    publisher.publish([entry("next")])
    assert relay.batches == [["first"], ["next"]]
