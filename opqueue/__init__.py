"""Published protobuf messages of opqueue, for clients that parse its JSON strictly."""
