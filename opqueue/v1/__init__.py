"""opqueue.v1 messages, generated from protos/opqueue/v1 by `make protos`."""
