"""Configuration of one Raft node."""

from __future__ import annotations

import attrs

from .errors import ConfigError
from .types import NodeId


def _positive(instance: object, attribute: attrs.Attribute, value: int) -> None:
    if not isinstance(value, int) or value <= 0:
        raise ConfigError(f"{attribute.name} must be a positive integer, got {value!r}")


@attrs.frozen
class Config:
    """Settings of one node. Ticks are abstract: the driver decides how long one is.

    Attributes:
        id: this node's id (a positive integer).
        voters: the initial voters of a brand-new cluster. Ignored when storage
            already holds a configuration (after a restart or a snapshot). A node
            that joins an existing cluster starts with no voters and learns the
            configuration from the leader.
        learners: the initial learners, under the same rules as `voters`.
        election_ticks: base election timeout; the real timeout is drawn uniformly
            from [election_ticks, 2 * election_ticks).
        heartbeat_ticks: how often a leader sends heartbeats.
        pre_vote: run a pre-vote round before a real election, so a partitioned node
            rejoining does not disrupt a healthy leader.
        check_quorum: a leader that has not heard from a quorum within an election
            timeout steps down, and a follower that heard from a live leader within
            the timeout ignores vote requests.
        max_inflight: AppendEntries messages in flight per follower in replicate state.
        max_entries_per_message: entries carried by one AppendEntries at most.
        max_bytes_per_message: entry bytes carried by one AppendEntries at most
            (at least one entry is always sent).
        max_uncommitted_bytes: proposals are refused while the uncommitted tail of
            the leader's log is larger than this (0 = no limit).
        max_snapshot_chunk_bytes: snapshot payloads are sent in chunks of this size.
        max_snapshot_bytes: the largest snapshot payload this node accepts from a
            leader (default 1 GiB). A transfer that grows beyond it is dropped and
            its buffer freed, so a faulty or hostile peer cannot exhaust memory.
            A follower that needs a larger snapshot never catches up (the leader
            keeps retrying): set this above the largest snapshot of your state.
        eager_commit: when the leader's commit index advances, tell the followers at
            once with an empty AppendEntries. Off: they learn it from the next
            AppendEntries or heartbeat, which halves the messages per write at the
            cost of followers applying up to a heartbeat later (clients waiting on
            the leader are answered just as fast).
        batch_reads: a ReadIndex request waits for the leader's next heartbeat to
            confirm leadership instead of starting its own heartbeat round, so all
            reads within a heartbeat interval share one round (fewer messages, up
            to a heartbeat interval more read latency).
        seed: seeds the node's `random.Random` (election timeout jitter); the node
            id is mixed in, so nodes sharing a seed still draw different timeouts.
    """

    id: NodeId = attrs.field(validator=_positive)
    voters: tuple[NodeId, ...] = attrs.field(default=(), converter=tuple)
    learners: tuple[NodeId, ...] = attrs.field(default=(), converter=tuple)
    election_ticks: int = attrs.field(default=10, validator=_positive)
    heartbeat_ticks: int = attrs.field(default=1, validator=_positive)
    pre_vote: bool = True
    check_quorum: bool = True
    max_inflight: int = attrs.field(default=256, validator=_positive)
    max_entries_per_message: int = attrs.field(default=4096, validator=_positive)
    max_bytes_per_message: int = attrs.field(default=1 << 20, validator=_positive)
    max_uncommitted_bytes: int = 64 << 20
    max_snapshot_chunk_bytes: int = attrs.field(default=1 << 20, validator=_positive)
    max_snapshot_bytes: int = attrs.field(default=1 << 30, validator=_positive)
    eager_commit: bool = True
    batch_reads: bool = False
    seed: int = 0

    def __attrs_post_init__(self) -> None:
        if self.heartbeat_ticks >= self.election_ticks:
            raise ConfigError("heartbeat_ticks must be smaller than election_ticks")
        if set(self.voters) & set(self.learners):
            raise ConfigError("a node cannot be both voter and learner")
        for n in (*self.voters, *self.learners):
            if not isinstance(n, int) or n <= 0:
                raise ConfigError(f"node ids must be positive integers, got {n!r}")
        if self.max_uncommitted_bytes < 0:
            raise ConfigError("max_uncommitted_bytes must be >= 0 (0 = unlimited)")
