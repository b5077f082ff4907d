"""What the core hands to its driver (`Ready`) and what it reports (`Status`)."""

from __future__ import annotations

import attrs

from .progress import ProgressState
from .types import ConfState, Entry, HardState, Message, NodeId, ReadState, Role, Snapshot, SoftState


@attrs.define
class Ready:
    """One batch of work for the driver. Handle the fields in this order:

    1. `snapshot`: if set, install it in storage (`WritableStorage.apply_snapshot`)
       and restore the application state machine from `snapshot.data`.
    2. `hard_state` and `entries`: persist them durably, in one step
       (`WritableStorage.save(hard_state, entries, sync=must_sync)`). Entries may
       overwrite a conflicting suffix of the stored log.
    3. `messages`: send them **only after** step 2 is durable. A vote or an append
       acknowledgement sent before its hard state or entries are on disk could be
       forgotten by a crash, which breaks Raft's safety. Exception: when
       `may_send_before_persist` is set they may be sent first, or while step 2
       runs (a leader replicating in parallel with its own disk write).
    4. `committed_entries`: apply them to the state machine in order. Empty NORMAL
       entries are the leaders' no-ops; CONF_CHANGE entries go to
       `RawNode.apply_conf_change`.
    5. `read_states`: each may be served once the applied index reaches its index.
    6. Call `RawNode.advance(ready)`.

    Attributes:
        soft_state: leader and role, when they changed since the last `Ready`.
        hard_state: term, vote and commit, when they changed.
        entries: new log entries to persist.
        snapshot: a snapshot received from the leader, to install.
        committed_entries: entries known committed and not yet applied.
        messages: messages to send to peers.
        read_states: completed linearizable read requests.
        must_sync: whether step 2 needs an fsync (entries, term or vote changed;
            a commit index change alone may be written lazily).
        may_send_before_persist: the messages need not wait for step 2 (set for
            a leader whose term and vote are already durable: its appends and
            heartbeats acknowledge nothing, and it counts its own entries towards
            a commit only once `advance` reports them durable; Raft dissertation
            §10.2.1). Sending after step 2 is always correct too.

    Treat a `Ready` as read-only. (It is a plain slotted class rather than a frozen
    one because the node builds one per batch, and a frozen class's constructor
    costs several times more.)
    """

    soft_state: SoftState | None
    hard_state: HardState | None
    entries: list[Entry]
    snapshot: Snapshot | None
    committed_entries: list[Entry]
    messages: list[Message]
    read_states: list[ReadState]
    must_sync: bool
    may_send_before_persist: bool = False


@attrs.frozen
class ProgressStatus:
    """A frozen copy of one follower's progress (leader only)."""

    match: int
    next: int
    state: ProgressState
    inflight: int
    is_learner: bool
    recent_active: bool
    snapshot_index: int


@attrs.frozen
class Status:
    """A frozen snapshot of a node's state, for operators and tests.

    Attributes:
        progress: per member, the leader's view of its replication (empty unless
            this node is the leader).
        pending_conf_index: index of the newest membership change if it is not yet
            committed, else 0.
        lead_transferee: the target of a leadership transfer in progress, or 0.
    """

    id: NodeId
    term: int
    vote: NodeId
    commit: int
    applied: int
    last_index: int
    role: Role
    leader: NodeId
    conf_state: ConfState
    progress: dict[NodeId, ProgressStatus]
    pending_conf_index: int
    lead_transferee: NodeId
