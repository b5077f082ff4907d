"""raftcoord: a Raft-based cluster coordinator.

This package is the distribution's own name: `python -m raftcoord` runs the
`raftcoord` command line. The library itself lives in the packages `raft`
(the embeddable Raft core) and `coordinator`; see the README's "Packaging"
section for the top-level names the distribution installs and why.
"""
