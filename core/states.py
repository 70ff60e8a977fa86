"""The operation state machine, as data.

`TRANSITIONS` says, for each lifecycle event, which state it moves an operation from and
to. An event that finds the operation in a state not listed changes nothing; terminal
states appear on no left-hand side, so the first terminal write wins.
"""

from enum import StrEnum


class State(StrEnum):
    """`metadata.state` of an operation (AIP-216 words)."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    CANCELLING = "CANCELLING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


TERMINAL = frozenset({State.SUCCEEDED, State.FAILED, State.CANCELLED})
# States in which a worker holds the operation's lease.
LEASED = frozenset({State.RUNNING, State.CANCELLING})


class Event(StrEnum):
    """Something that happens to an operation."""

    START = "start"
    PROGRESS = "progress"
    RETRY = "retry"
    SUCCEED = "succeed"
    FAIL = "fail"
    REQUEST_CANCEL = "request_cancel"
    CONFIRM_CANCEL = "confirm_cancel"
    WORKER_LOST = "worker_lost"
    HAND_BACK = "hand_back"


TRANSITIONS: dict[Event, dict[State, State]] = {
    # RUNNING → RUNNING is a redelivery taking over from a lost worker, allowed only once
    # the lost worker's lease has expired (the store checks it).
    Event.START: {State.PENDING: State.RUNNING, State.RUNNING: State.RUNNING},
    Event.PROGRESS: {State.RUNNING: State.RUNNING, State.CANCELLING: State.CANCELLING},
    # A retry of a job whose cancellation was asked for is not run again.
    Event.RETRY: {State.RUNNING: State.PENDING, State.CANCELLING: State.CANCELLED},
    # Cancellation is best effort: a job that returns before it notices the request succeeds.
    Event.SUCCEED: {State.RUNNING: State.SUCCEEDED, State.CANCELLING: State.SUCCEEDED},
    Event.FAIL: {
        State.PENDING: State.FAILED,
        State.RUNNING: State.FAILED,
        State.CANCELLING: State.FAILED,
    },
    # Asking again while CANCELLING changes nothing, so the grace period is never extended.
    Event.REQUEST_CANCEL: {State.PENDING: State.CANCELLED, State.RUNNING: State.CANCELLING},
    # The worker running the job died; its message is redelivered.
    Event.WORKER_LOST: {State.RUNNING: State.PENDING, State.CANCELLING: State.CANCELLED},
    # A stopping worker (warm shutdown) gave the job back; it is queued again, and this run
    # is not counted as a redelivery.
    Event.HAND_BACK: {State.RUNNING: State.PENDING, State.CANCELLING: State.CANCELLED},
    Event.CONFIRM_CANCEL: {
        State.PENDING: State.CANCELLED,
        State.RUNNING: State.CANCELLED,
        State.CANCELLING: State.CANCELLED,
    },
}
