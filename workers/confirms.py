"""The RabbitMQ transport that task messages are published through: a batch of messages,
one wait for the broker's confirms.

kombu's py-amqp transport with `confirm_publish` waits for RabbitMQ's confirm after every
message, so a batch of n messages cost n round trips and 2n system calls, each one handing
the GIL to the process's other threads and waiting to get it back. Here a publish batch
(kombu's `Producer.batch`, as `Dispatcher.enqueue_many` uses) sends all its messages in one
socket write and then waits once, until the broker has confirmed them all (it acknowledges
many with one `basic.ack`, `multiple` set). A message the broker refuses (`basic.nack`), a
connection lost or a confirm not come within `CONFIRM_TIMEOUT_SECONDS` fails the batch: its
publisher keeps the outbox entries and publishes them again, a copy published twice being
harmless. Publishes outside a batch (Celery's remote control) keep kombu's one confirm
each.
"""

from __future__ import annotations

from typing import Any

from amqp import spec
from amqp.exceptions import MessageNacked
from kombu.transport import pyamqp

CONFIRM_TIMEOUT_SECONDS = 10.0  # a broker silent for this long is treated as down


class ConfirmBatch:
    """Messages to publish on a confirm-mode channel: sent together, their confirms awaited
    together."""

    def __init__(self, channel: ConfirmingChannel, max_size: int) -> None:
        self.channel = channel
        self.max_size = max_size
        self._held: list[tuple[Any, dict[str, Any]]] = []  # (message, basic_publish args)

    def publish(self, message: Any, **kwargs: Any) -> None:
        """Hold one message for `flush`."""
        self._held.append((message, kwargs))
        if len(self._held) >= self.max_size:
            self.flush()

    def flush(self) -> None:
        """Send the held messages and wait until the broker has confirmed them all
        (MessageNacked if it refused one, a connection error if it went away)."""
        held, self._held = self._held, []
        if held:
            self.channel.await_confirms(self.channel.send_all(held))

    def discard(self) -> None:
        """Drop the messages not sent yet."""
        self._held = []

    def close(self) -> None:
        """Nothing to release: the channel belongs to its connection."""


class ConfirmingChannel(pyamqp.Channel):
    """kombu's AMQP channel, able to send many messages in confirm mode at once and await
    their confirms together (`create_publish_batch`)."""

    _confirm_selected: bool  # py-amqp's: the channel is in confirm mode

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._published = 0  # messages sent in confirm mode: the last delivery tag
        self._confirmed = 0  # every tag up to this one is confirmed...
        self._confirmed_above: set[int] = set()  # ...and these too (acks out of order)
        self._refused: set[int] = set()
        self.events["basic_ack"].add(self._on_confirm)
        self.events["basic_nack"].add(self._on_refusal)

    def create_publish_batch(self, max_size: int) -> ConfirmBatch:
        """A batch for `Producer.batch`."""
        return ConfirmBatch(self, max_size)

    def send_all(self, messages: list[tuple[Any, dict[str, Any]]]) -> list[int]:
        """Publish (message, basic_publish arguments) pairs in confirm mode with one socket
        write, without waiting for their confirms: their delivery tags.

        One write, not one per message (and no poll for a `connection.blocked` between
        them, as py-amqp's `basic_publish` makes): under load, every system call hands
        the GIL to another thread and waits to get it back."""
        if not self._confirm_selected:
            self._confirm_selected = True
            self.confirm_select()
        transport = self.connection.transport
        frames: list[bytes] = []
        write, transport._write = transport._write, lambda data: frames.append(bytes(data))
        try:
            for message, options in messages:
                self.send_method(spec.Basic.Publish, "Bssbb", (
                    0, options.get("exchange", ""), options.get("routing_key", ""),
                    options.get("mandatory", False), options.get("immediate", False)), message)
        finally:
            transport._write = write
        transport.write(b"".join(frames))
        first, self._published = self._published + 1, self._published + len(messages)
        return list(range(first, self._published + 1))

    def _basic_publish(self, *args: Any, **kwargs: Any) -> Any:
        # A publish outside a batch in confirm mode takes the next delivery tag too.
        result = super()._basic_publish(*args, **kwargs)
        if self._confirm_selected:
            self._published += 1
        return result

    def await_confirms(self, tags: list[int]) -> None:
        """Read the broker's confirms until every one of `tags` is confirmed."""
        if not tags:
            return
        try:
            while not (refused := self._refused.intersection(tags)):
                if all(tag <= self._confirmed or tag in self._confirmed_above for tag in tags):
                    return
                self.wait([spec.Basic.Ack, spec.Basic.Nack], timeout=CONFIRM_TIMEOUT_SECONDS)
            raise MessageNacked(f"RabbitMQ refused {len(refused)} message(s)")
        finally:  # refusals up to here are answered, theirs or another publisher's
            self._refused = {tag for tag in self._refused if tag > max(tags)}

    def _on_confirm(self, delivery_tag: int, multiple: bool) -> None:
        if multiple:
            self._confirmed = max(self._confirmed, delivery_tag)
            self._confirmed_above = {tag for tag in self._confirmed_above
                                     if tag > self._confirmed}
        else:
            self._confirmed_above.add(delivery_tag)
        while self._confirmed + 1 in self._confirmed_above:
            self._confirmed += 1
            self._confirmed_above.discard(self._confirmed)

    def _on_refusal(self, delivery_tag: int, multiple: bool) -> None:
        first = self._confirmed + 1 if multiple else delivery_tag
        self._refused.update(tag for tag in range(first, delivery_tag + 1)
                             if tag not in self._confirmed_above)
        self._on_confirm(delivery_tag, multiple)  # answered: no longer awaited


class ConfirmingConnection(pyamqp.Connection):
    """An AMQP connection whose channels are `ConfirmingChannel`s."""

    Channel = ConfirmingChannel


class ConfirmingTransport(pyamqp.Transport):
    """kombu's AMQP transport with publish batches awaiting their confirms once: what the
    API and the relays publish through on RabbitMQ."""

    Connection = ConfirmingConnection
    implements = pyamqp.Transport.implements.extend(batch_publish=True)
