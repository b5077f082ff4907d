"""cli: the `raftcoord` command line."""
