"""coordinator: a replicated partition-assignment state machine built on `raft`."""
