"""The sans-IO Raft node.

Theory of operation
-------------------
`RawNode` is a synchronous, deterministic state machine. Its inputs are `tick()`
(abstract time), `step(message)` (a message from a peer), and local requests
(`propose`, `propose_conf_change`, `read_index`, `campaign`, `transfer_leadership`).
Its output is a `Ready` batch which the driver persists, sends and applies before
calling `advance(ready)`. The node does no I/O, reads no clock, and draws randomness
only from a `random.Random` seeded by `Config.seed`; the same inputs always produce
the same `Ready` sequence.

Rules
-----
1. Terms only grow. A message with a higher term makes the node a follower of that
   term, except pre-vote traffic (which never changes terms) and vote requests
   ignored under a leader lease (check-quorum: a follower that heard from a live
   leader within the election timeout ignores them unless they come from a
   leadership transfer).
2. Messages of a lower term are dropped; stale leaders and pre-candidates are told
   the current term so they step down.
3. One vote per term, for a candidate whose log is at least as up to date as ours.
   Only the votes of a candidate's own voters count, so learners never decide.
4. A leader commits an entry only when a majority of voters store it and it is of
   the leader's current term (Raft §5.4.2); earlier entries commit with it.
5. Membership changes are one server at a time (Raft dissertation §4.1): a
   configuration takes effect as soon as its entry is in the log, at most one change
   may be uncommitted, and a new leader accepts a change only after it has committed
   an entry of its own term. Consecutive configurations differ by one voter, so
   their majorities always overlap. Truncating a change from the log reverts it.
6. Everything in a `Ready` is persisted before its messages are sent (see `Ready`),
   with one exception: a leader's messages may go out while its own write is
   still in progress (`Ready.may_send_before_persist`, Raft dissertation §10.2.1).
   That is safe because the leader counts itself in a commit quorum only for
   entries the driver has reported durable (`advance`), and because a leader's
   messages acknowledge nothing of its own: its term and vote were persisted
   before it became leader.
7. Remote input is never trusted to be well formed: malformed or out-of-range
   messages are dropped (and counted), they never raise. So are messages no
   correct peer in the sender's place sends: a TimeoutNow not from our leader, a
   snapshot without voters or beyond `Config.max_snapshot_bytes`, a read answer
   that answers no request this node forwarded to its leader in this term.
"""

from __future__ import annotations

import enum
import logging
import random
from typing import Callable

from . import codec
from .config import Config
from .errors import CompactedError, DropReason, ProposalDropped, UnavailableError
from .log import RaftLog
from .progress import Progress, ProgressState
from .ready import ProgressStatus, Ready, Status
from .storage import Storage
from .types import (
    NONE,
    AppendEntries,
    AppendResponse,
    ConfChange,
    ConfChangeType,
    ConfState,
    Entry,
    EntryType,
    HardState,
    Heartbeat,
    HeartbeatResponse,
    InstallSnapshot,
    Message,
    NodeId,
    ReadIndexRequest,
    ReadIndexResponse,
    ReadState,
    Role,
    Snapshot,
    SnapshotMetadata,
    SnapshotResponse,
    SoftState,
    TimeoutNow,
    VoteRequest,
    VoteResponse,
)

log = logging.getLogger(__name__)

_LEADER_TRAFFIC = (AppendEntries, Heartbeat, InstallSnapshot)

# Forwarded reads a follower remembers while it waits for the leader's answers. A
# read whose answer was lost stays until the term ends or this many newer reads
# push it out; asking again (as `RaftRuntime` does) registers it anew.
_MAX_FORWARDED_READS = 4096


def next_conf_state(conf: ConfState, change: ConfChange) -> ConfState:
    """The configuration after applying `change` to `conf`.

    Total: a change that makes no sense (adding an existing voter, demoting a voter
    to learner) leaves the configuration as it is. `propose_conf_change` refuses
    such changes before they reach the log.
    """
    voters, learners, node = set(conf.voters), set(conf.learners), change.node_id
    if change.type is ConfChangeType.ADD_VOTER:
        learners.discard(node)
        voters.add(node)
    elif change.type is ConfChangeType.ADD_LEARNER:
        if node not in voters:
            learners.add(node)
    else:
        voters.discard(node)
        learners.discard(node)
    return ConfState(voters=frozenset(voters), learners=frozenset(learners))


def _check_append_entries(m: AppendEntries) -> None:
    """Raise ValueError unless `m.entries` continue the log at `m.prev_index`: the
    indexes follow on one by one and the terms never go down nor exceed `m.term`.

    Appending anything else would leave a gap or an impossible log behind, which a
    correct leader never sends; checked before the message changes any state.
    """
    index = m.prev_index
    term = m.prev_term
    for e in m.entries:
        index += 1
        if e.index != index:
            raise ValueError(f"entry index {e.index} where {index} was expected (prev_index {m.prev_index})")
        if e.term < term:
            raise ValueError(f"entry {index} has term {e.term}, below the term {term} before it")
        term = e.term
    if term > m.term:
        raise ValueError(f"entry term {term} beyond the message term {m.term}")


def _check_snapshot_chunk(m: InstallSnapshot) -> None:
    """Raise ValueError for a snapshot chunk no correct leader sends."""
    meta = m.metadata
    if m.offset < 0:
        raise ValueError(f"negative snapshot offset {m.offset}")
    if meta.index > 0 and not 0 < meta.term <= m.term:
        raise ValueError(f"snapshot term {meta.term} outside 1..{m.term}")
    if not meta.conf_state.voters:
        # Installing it would leave a configuration in which nobody can ever be
        # elected; every real configuration keeps at least one voter.
        raise ValueError(f"snapshot {meta.index} has a configuration without voters")


class _VoteResult(enum.Enum):
    WON = "won"
    LOST = "lost"
    PENDING = "pending"


class _ReadRequest:
    __slots__ = ("index", "sender", "context", "acks")

    def __init__(self, index: int, sender: NodeId, context: bytes) -> None:
        self.index = index
        self.sender = sender
        self.context = context
        self.acks: set[NodeId] = set()


class RawNode:
    """One Raft node. See the module docstring for its rules and `Ready` for the
    driver's contract. Not thread-safe: drive it from one task."""

    def __init__(self, config: Config, storage: Storage, applied: int = 0) -> None:
        """Create a node from its configuration and (read-only) storage.

        Args:
            config: settings; `voters`/`learners` only matter for a brand-new node
                whose storage holds no configuration.
            storage: persisted state; after a restart the node resumes from it.
            applied: the index the application has already applied (when its state
                survives restarts on its own); committed entries up to it are not
                handed out again.
        """
        self.config = config
        self.id = config.id
        # Mix the id in: nodes configured with the same seed (e.g. the default 0)
        # would otherwise draw identical election timeouts and split every vote.
        # A str seed is hashed with SHA-512, so this stays deterministic.
        self._rng = random.Random(f"raft-election:{config.seed}:{config.id}")
        self.log = RaftLog(storage)
        self.role = Role.FOLLOWER
        hard_state, conf_state = storage.initial_state()
        snapshot_index = storage.first_index() - 1
        if not conf_state.voters and not conf_state.learners and snapshot_index == 0:
            conf_state = ConfState(voters=frozenset(config.voters), learners=frozenset(config.learners))
        # (index, configuration) pairs in log order: the configuration in force after
        # each membership change entry. The last one is the current configuration.
        self._conf_history: list[tuple[int, ConfState]] = [(snapshot_index, conf_state)]
        self._scan_conf_changes(self.log.first_index(), self.log.last_index())

        self.term = hard_state.term
        self.vote = hard_state.vote
        if hard_state.commit:
            self.log.commit_to(hard_state.commit)
        self.log.applied = max(self.log.applied, min(applied, self.log.committed))

        self.leader: NodeId = NONE
        self._progress: dict[NodeId, Progress] = {}
        self._votes: dict[NodeId, bool] = {}
        self._election_elapsed = 0
        self._heartbeat_elapsed = 0
        self._randomized_election_timeout = config.election_ticks
        self._reset_randomized_election_timeout()
        self._lead_transferee: NodeId = NONE
        self._uncommitted_bytes = 0
        self._uncommitted: list[tuple[int, int]] = []  # (index, size) of own proposals
        self._pending_reads: dict[bytes, _ReadRequest] = {}
        # Contexts of the reads this node forwarded to its leader in this term (an
        # ordered set): only an answer to one of them may become a ReadState.
        self._forwarded_reads: dict[bytes, None] = {}
        self._reads_before_commit: list[tuple[NodeId, bytes]] = []
        # The snapshot being received: (term, metadata, bytes so far).
        self._incoming_snapshot: tuple[int, SnapshotMetadata, bytearray] | None = None
        self._step_down_after_commit_of: int = 0
        self._broadcast_pending = False

        self._msgs: list[Message] = []
        self._read_states: list[ReadState] = []
        # The soft state (leader, role) and hard state (term, vote, commit) last
        # handed out in a Ready, as one plain tuple: has_ready compares it after
        # every input, which is cheaper than building state objects to compare.
        # (One attribute, not five: CPython shares the attribute layout of
        # instances with at most 30 attributes, and attribute access on RawNode
        # gets measurably slower beyond that.)
        self._prev_state: tuple[NodeId, Role, int, NodeId, int] = (
            NONE,
            Role.FOLLOWER,
            self.term,
            self.vote,
            self.log.committed,
        )
        self.dropped_messages = 0
        """Count of remote messages dropped as malformed or nonsensical."""

        self._handlers: dict[type, Callable[[Message], None]] = {
            VoteRequest: self._on_vote_request,
            AppendEntries: self._on_append,
            AppendResponse: self._on_append_response,
            Heartbeat: self._on_heartbeat,
            HeartbeatResponse: self._on_heartbeat_response,
            InstallSnapshot: self._on_install_snapshot,
            SnapshotResponse: self._on_snapshot_response,
            VoteResponse: self._on_vote_response,
            TimeoutNow: self._on_timeout_now,
            ReadIndexRequest: self._on_read_index_request,
            ReadIndexResponse: self._on_read_index_response,
        }

    # ==================================================================================
    # Public API
    # ==================================================================================

    @property
    def conf_state(self) -> ConfState:
        """The configuration in force (the newest one in the log)."""
        return self._conf_history[-1][1]

    @property
    def commit_index(self) -> int:
        return self.log.committed

    @property
    def applied_index(self) -> int:
        return self.log.applied

    def tick(self) -> None:
        """Advance abstract time by one tick."""
        if self.role is Role.LEADER:
            self._tick_leader()
        else:
            self._tick_election()

    def campaign(self) -> None:
        """Start an election now (with a pre-vote round when pre-vote is on)."""
        if self.role is not Role.LEADER:
            self._hup(transfer=False)

    def propose(self, data: bytes) -> int:
        """Append `data` to the log if this node is the leader.

        Returns:
            The log index of the new entry. It is committed once it appears in a
            `Ready.committed_entries`; a later leader may still overwrite it if it
            never commits.

        Raises:
            ProposalDropped: not leader, a leadership transfer is in progress, or
                too much data is uncommitted. Nothing was appended.
        """
        return self._append_proposal(EntryType.NORMAL, bytes(data))

    def propose_conf_change(self, change: ConfChange) -> int:
        """Propose a one-server membership change.

        Raises:
            ProposalDropped: not leader, a change is already pending, this leader has
                not committed an entry of its term yet, the change is invalid for the
                current configuration, or a learner to promote is not caught up.
        """
        self._check_can_propose()
        if self._pending_conf_index() > self.log.committed:
            raise ProposalDropped(DropReason.CHANGE_PENDING, self.leader)
        if self.log.term_or_zero(self.log.committed) != self.term:
            raise ProposalDropped(DropReason.LEADER_NOT_READY, self.leader)
        conf = self.conf_state
        node = change.node_id
        if change.type is ConfChangeType.ADD_VOTER:
            if node in conf.voters:
                raise ProposalDropped(DropReason.INVALID_CHANGE, self.leader, f"{node} is already a voter")
            if node in conf.learners:
                pr = self._progress.get(node)
                if pr is None or pr.match < self.log.committed:
                    raise ProposalDropped(DropReason.NOT_CAUGHT_UP, self.leader, f"learner {node}")
        elif change.type is ConfChangeType.ADD_LEARNER:
            if node in conf.members():
                raise ProposalDropped(DropReason.INVALID_CHANGE, self.leader, f"{node} is already a member")
        else:
            if node not in conf.members():
                raise ProposalDropped(DropReason.INVALID_CHANGE, self.leader, f"{node} is not a member")
            if node in conf.voters and len(conf.voters) == 1:
                raise ProposalDropped(DropReason.INVALID_CHANGE, self.leader, "cannot remove the last voter")
        data = codec.encode_conf_change_entry(change, next_conf_state(conf, change))
        return self._append_proposal(EntryType.CONF_CHANGE, data)

    def apply_conf_change(self, entry: Entry) -> ConfState:
        """Report that a committed CONF_CHANGE entry was applied.

        The core already switched configuration when the entry was appended; this
        returns the configuration in force from that entry on, for the application
        to record (for example in its snapshots).
        """
        return self.conf_state_at(entry.index)

    def conf_state_at(self, index: int) -> ConfState:
        """The configuration in force at log index `index`."""
        result = self._conf_history[0][1]
        for at, conf in self._conf_history:
            if at > index:
                break
            result = conf
        return result

    def read_index(self, context: bytes) -> None:
        """Request a linearizable read tagged with a unique `context`.

        The answer arrives as a `ReadState(index, context)` in a later `Ready`: the
        read may be served once the applied index reaches `index`. If leadership is
        lost meanwhile the request is forgotten; callers time out and retry.

        `context` must be unique across restarts of this node too (mix in a nonce
        drawn at start, as `RaftRuntime` does): a follower accepts only answers to
        reads it forwarded in its current term, but an answer meant for an earlier
        incarnation that reused the context would be indistinguishable.

        Raises:
            ProposalDropped: no leader is known to forward the request to.
        """
        context = bytes(context)
        if self.role is Role.LEADER:
            self._leader_read(self.id, context)
        elif self.leader != NONE:
            forwarded = self._forwarded_reads
            forwarded[context] = None
            if len(forwarded) > _MAX_FORWARDED_READS:
                del forwarded[next(iter(forwarded))]
            self._send(ReadIndexRequest(term=self.term, sender=self.id, to=self.leader, context=context))
        else:
            raise ProposalDropped(DropReason.NO_LEADER, NONE)

    def transfer_leadership(self, to: NodeId) -> None:
        """Hand leadership to voter `to`.

        The leader stops accepting proposals, brings `to` up to date, then tells it
        to campaign at once. The transfer is abandoned after an election timeout.

        Raises:
            ProposalDropped: this node is not the leader, or `to` is not a voter.
        """
        if self.role is not Role.LEADER:
            raise ProposalDropped(DropReason.NOT_LEADER, self.leader)
        if to == self.id:
            return
        if to not in self.conf_state.voters:
            raise ProposalDropped(DropReason.INVALID_TARGET, self.leader, f"{to} is not a voter")
        if self._lead_transferee == to:
            return
        self._lead_transferee = to
        self._election_elapsed = 0
        pr = self._progress[to]
        if pr.match == self.log.last_index():
            self._send_timeout_now(to)
        else:
            self._send_append(to)

    def step(self, m: Message) -> None:
        """Process a message from a peer. Never raises for bad remote input."""
        # Dispatched inline rather than through a helper: one call less per message.
        try:
            if m.to != self.id or m.sender == self.id or m.sender <= 0:
                self.dropped_messages += 1
                return
            cls = type(m)
            if cls is AppendEntries:
                if m.entries:
                    _check_append_entries(m)
            elif cls is InstallSnapshot:
                _check_snapshot_chunk(m)
            # Nearly every message is of our term: settle that with one comparison.
            if m.term != self.term and not self._on_other_term(m, cls):
                return
            handler = self._handlers.get(cls)
            if handler is None:
                self.dropped_messages += 1
                return
            handler(m)
        except (CompactedError, UnavailableError, ValueError) as exc:
            # A message that contradicts our log in a way a correct peer never
            # would (e.g. asks us to overwrite committed entries). Drop it.
            self.dropped_messages += 1
            log.warning("node %d dropped %s: %s", self.id, type(m).__name__, exc)

    def create_snapshot(self, index: int, data: bytes) -> Snapshot:
        """Describe a snapshot of the application state at applied index `index`.

        The driver then stores it and compacts the log (`WritableStorage.compact`).

        Raises:
            ProposalDropped: `index` is not applied yet or already compacted, or
                this node does not know the configuration in force there.
        """
        if index > self.log.applied or index < self.log.first_index():
            raise ProposalDropped(
                DropReason.NOT_APPLIED, self.leader, f"index {index} (applied {self.log.applied})"
            )
        conf_state = self.conf_state_at(index)
        if not conf_state.voters:
            # A node that joined an existing cluster learns the configuration from
            # the first membership change in its log; the voters before it were
            # never sent to it. A snapshot must name them: followers refuse one
            # without voters.
            raise ProposalDropped(DropReason.CONF_UNKNOWN, self.leader, f"no voters known at index {index}")
        meta = SnapshotMetadata(index=index, term=self.log.term(index), conf_state=conf_state)
        return Snapshot(metadata=meta, data=bytes(data))

    def has_ready(self) -> bool:
        """Whether `ready()` has anything for the driver."""
        # Drivers call this after every input, and most calls find nothing: keep
        # the checks cheap (no state objects are built just to compare them).
        if self._broadcast_pending or self._msgs or self._read_states:
            return True
        raft_log = self.log
        if raft_log.unstable_entries or raft_log.unstable_snapshot is not None:
            return True
        if raft_log.committed > raft_log.applied and raft_log.has_next_committed():
            return True
        return (self.leader, self.role, self.term, self.vote, raft_log.committed) != self._prev_state

    def ready(self) -> Ready:
        """Collect the next batch of work. Call `advance` once it is handled, before
        calling any other method of the node."""
        if self._broadcast_pending:
            self._broadcast_pending = False
            if self.role is Role.LEADER:
                self._broadcast_append()
        raft_log = self.log
        prev_leader, prev_role, prev_term, prev_vote, prev_commit = self._prev_state
        leader, role = self.leader, self.role
        soft_state = SoftState(leader, role) if leader != prev_leader or role is not prev_role else None
        term, vote, commit = self.term, self.vote, raft_log.committed
        must_sync = term != prev_term or vote != prev_vote
        # A leader's messages promise nothing about its own disk (Rule 6), as long
        # as no new term or vote waits to be persisted with them.
        send_first = role is Role.LEADER and not must_sync
        hard_state = HardState(term, vote, commit) if must_sync or commit != prev_commit else None
        unstable = raft_log.unstable_entries
        if unstable:
            entries = list(unstable)
            must_sync = True
        else:
            entries = []
        # Most batches apply nothing: skip the call when everything committed is applied.
        committed_entries = raft_log.next_committed() if raft_log.committed > raft_log.applied else []
        rd = Ready(
            soft_state,
            hard_state,
            entries,
            raft_log.unstable_snapshot,
            committed_entries,
            self._msgs,
            self._read_states,
            must_sync,
            send_first,
        )
        self._msgs = []
        self._read_states = []
        return rd

    def advance(self, rd: Ready) -> None:
        """Acknowledge that `rd` was persisted, sent and applied."""
        soft = rd.soft_state
        hard = rd.hard_state
        if soft is not None or hard is not None:
            leader, role, term, vote, commit = self._prev_state
            if soft is not None:
                leader, role = soft.leader, soft.role
            if hard is not None:
                term, vote, commit = hard.term, hard.vote, hard.commit
            self._prev_state = (leader, role, term, vote, commit)
        raft_log = self.log
        if rd.snapshot is not None:
            raft_log.stable_snap_to(rd.snapshot.index)
            raft_log.applied_to(rd.snapshot.index)
        entries = rd.entries
        if entries:
            last = entries[-1]
            raft_log.stable_to(last.index, last.term)
            if self.role is Role.LEADER:
                # Rule 6: the leader's own copy counts only now that it is durable.
                own = self._progress.get(self.id)
                if own is not None and own.maybe_update(raft_log.stable_last_index()):
                    self._maybe_commit()
        committed = rd.committed_entries
        if committed:
            raft_log.applied_to(committed[-1].index)

    def status(self) -> Status:
        """A frozen snapshot of this node's state."""
        progress = {}
        if self.role is Role.LEADER:
            for nid, pr in sorted(self._progress.items()):
                progress[nid] = ProgressStatus(
                    match=pr.match,
                    next=pr.next,
                    state=pr.state,
                    inflight=len(pr.inflights),
                    is_learner=pr.is_learner,
                    recent_active=pr.recent_active,
                    snapshot_index=pr.pending_snapshot.index if pr.pending_snapshot else 0,
                )
        pending = self._pending_conf_index()
        return Status(
            id=self.id,
            term=self.term,
            vote=self.vote,
            commit=self.log.committed,
            applied=self.log.applied,
            last_index=self.log.last_index(),
            role=self.role,
            leader=self.leader,
            conf_state=self.conf_state,
            progress=progress,
            pending_conf_index=pending if pending > self.log.committed else 0,
            lead_transferee=self._lead_transferee,
        )

    # ==================================================================================
    # State transitions
    # ==================================================================================

    def _reset_randomized_election_timeout(self) -> None:
        et = self.config.election_ticks
        self._randomized_election_timeout = et + self._rng.randrange(et)

    def _reset(self, term: int) -> None:
        if self.term != term:
            self.term = term
            self.vote = NONE
        self.leader = NONE
        self._election_elapsed = 0
        self._heartbeat_elapsed = 0
        self._reset_randomized_election_timeout()
        self._votes = {}
        self._lead_transferee = NONE
        self._pending_reads = {}
        self._forwarded_reads = {}
        self._reads_before_commit = []
        self._progress = {}
        self._uncommitted_bytes = 0
        self._uncommitted = []
        self._step_down_after_commit_of = 0
        self._broadcast_pending = False

    def _become_follower(self, term: int, leader: NodeId) -> None:
        self._reset(term)
        self.role = Role.FOLLOWER
        self.leader = leader

    def _become_pre_candidate(self) -> None:
        # Pre-vote changes neither term nor vote: a partitioned node that keeps
        # failing pre-votes never inflates its term and disrupts the cluster.
        self._votes = {}
        self._election_elapsed = 0
        self._reset_randomized_election_timeout()
        self.role = Role.PRE_CANDIDATE
        self.leader = NONE

    def _become_candidate(self) -> None:
        self._reset(self.term + 1)
        self.vote = self.id
        self.role = Role.CANDIDATE

    def _become_leader(self) -> None:
        self._reset(self.term)
        self.role = Role.LEADER
        self.leader = self.id
        last = self.log.last_index()
        conf = self.conf_state
        for nid in conf.members():
            self._progress[nid] = Progress(last + 1, self.config.max_inflight, is_learner=nid in conf.learners)
        own = self._progress.get(self.id)
        if own is not None:
            own.match = self.log.stable_last_index()  # counted once durable (Rule 6)
            own.become_replicate()
            own.recent_active = True
        if self.id not in conf.voters:
            # Elected only to commit our own removal; step down once it commits.
            self._step_down_after_commit_of = self._pending_conf_index()
        # The no-op of the new term: committing it commits every earlier entry and
        # lets the leader serve reads and accept membership changes.
        self._append_entries([Entry(term=self.term, index=last + 1)])
        self._broadcast_pending = True
        log.debug("node %d became leader of term %d", self.id, self.term)

    def _promotable(self) -> bool:
        if self.id in self.conf_state.voters:
            return True
        # Our removal is in the log but not committed. We may hold the only copy of
        # it (a leader that removed itself and crashed), and the others then cannot
        # win our vote: keep campaigning until the removal commits, or nobody can.
        pending = self._pending_conf_index()
        return pending > self.log.committed and self.id in self.conf_state_at(pending - 1).voters

    # ==================================================================================
    # Ticks and elections
    # ==================================================================================

    def _tick_election(self) -> None:
        self._election_elapsed += 1
        if self._election_elapsed >= self._randomized_election_timeout and self._promotable():
            self._election_elapsed = 0
            self._hup(transfer=False)

    def _tick_leader(self) -> None:
        self._heartbeat_elapsed += 1
        self._election_elapsed += 1
        if self._election_elapsed >= self.config.election_ticks:
            self._election_elapsed = 0
            if self.config.check_quorum and not self._quorum_active():
                log.debug("node %d steps down: quorum not active", self.id)
                self._become_follower(self.term, NONE)
                return
            if self._lead_transferee != NONE:
                self._lead_transferee = NONE  # abandoned: took longer than a timeout
        if self._heartbeat_elapsed >= self.config.heartbeat_ticks:
            self._heartbeat_elapsed = 0
            self._broadcast_heartbeat(self._last_pending_read_context())

    def _quorum_active(self) -> bool:
        voters = self.conf_state.voters
        active = 0
        for nid, pr in self._progress.items():
            if nid == self.id:
                if nid in voters:
                    active += 1
                continue
            if pr.recent_active and nid in voters:
                active += 1
            pr.recent_active = False
        return active >= self.conf_state.quorum()

    def _hup(self, transfer: bool) -> None:
        if not self._promotable():
            return
        if self.config.pre_vote and not transfer:
            self._campaign(pre_vote=True, transfer=False)
        else:
            self._campaign(pre_vote=False, transfer=transfer)

    def _campaign(self, pre_vote: bool, transfer: bool) -> None:
        if pre_vote:
            self._become_pre_candidate()
            vote_term = self.term + 1
        else:
            self._become_candidate()
            vote_term = self.term
        self._votes[self.id] = True
        if self._tally() is _VoteResult.WON:
            if pre_vote:
                self._campaign(pre_vote=False, transfer=False)
            else:
                self._become_leader()
            return
        last_index = self.log.last_index()
        last_term = self.log.last_term()
        for nid in sorted(self.conf_state.voters):
            if nid != self.id:
                self._send(
                    VoteRequest(
                        term=vote_term,
                        sender=self.id,
                        to=nid,
                        last_log_index=last_index,
                        last_log_term=last_term,
                        pre_vote=pre_vote,
                        transfer=transfer,
                    )
                )

    def _tally(self) -> _VoteResult:
        voters = self.conf_state.voters
        granted = sum(1 for nid, g in self._votes.items() if g and nid in voters)
        rejected = sum(1 for nid, g in self._votes.items() if not g and nid in voters)
        quorum = self.conf_state.quorum()
        if granted >= quorum:
            return _VoteResult.WON
        if rejected > len(voters) - quorum:
            return _VoteResult.LOST
        return _VoteResult.PENDING

    # ==================================================================================
    # Message dispatch
    # ==================================================================================

    def _on_other_term(self, m: Message, cls: type) -> bool:
        """Rules 1 and 2 for a message of another term. Returns whether its handler
        should still run (in our possibly new term)."""
        if m.term > self.term:
            if cls is VoteRequest:
                in_lease = (
                    self.config.check_quorum
                    and self.leader != NONE
                    and self._election_elapsed < self.config.election_ticks
                )
                if in_lease and not m.transfer:
                    return False  # a live leader exists: don't let a stray candidate disrupt it
                if not m.pre_vote:
                    self._become_follower(m.term, NONE)
            elif cls is VoteResponse and m.pre_vote and m.granted:
                pass  # granted pre-votes carry the future term; nobody changes term
            elif cls in _LEADER_TRAFFIC:
                self._become_follower(m.term, m.sender)
            else:
                self._become_follower(m.term, NONE)
            return True
        if cls in (AppendEntries, Heartbeat) and (self.config.check_quorum or self.config.pre_vote):
            # Tell a stale leader about the new term so it steps down; needed
            # with check-quorum/pre-vote, where our vote requests won't reach it.
            self._send(AppendResponse(term=self.term, sender=self.id, to=m.sender, success=False, index=0))
        elif cls is VoteRequest and m.pre_vote:
            self._send(VoteResponse(term=self.term, sender=self.id, to=m.sender, granted=False, pre_vote=True))
        return False

    def _on_vote_request(self, m: VoteRequest) -> None:
        # A node that believes it is a learner still answers: only a candidate whose
        # configuration promoted it asks, and refusing could deadlock an election
        # the promotion made depend on it. A learner's vote is never *counted*:
        # candidates tally only the voters of their own configuration.
        can_vote = (
            self.vote == m.sender
            or (self.vote == NONE and self.leader == NONE)
            or (m.pre_vote and m.term > self.term)
        )
        if can_vote and self.log.is_up_to_date(m.last_log_index, m.last_log_term):
            self._send(VoteResponse(term=m.term, sender=self.id, to=m.sender, granted=True, pre_vote=m.pre_vote))
            if not m.pre_vote:
                self._election_elapsed = 0
                self.vote = m.sender
        else:
            self._send(VoteResponse(term=self.term, sender=self.id, to=m.sender, granted=False, pre_vote=m.pre_vote))

    def _on_vote_response(self, m: VoteResponse) -> None:
        if self.role is Role.PRE_CANDIDATE and m.pre_vote:
            pass
        elif self.role is Role.CANDIDATE and not m.pre_vote:
            pass
        else:
            return
        self._votes.setdefault(m.sender, m.granted)
        result = self._tally()
        if result is _VoteResult.WON:
            if self.role is Role.PRE_CANDIDATE:
                self._campaign(pre_vote=False, transfer=False)
            else:
                self._become_leader()
        elif result is _VoteResult.LOST:
            self._become_follower(self.term, NONE)

    def _on_timeout_now(self, m: TimeoutNow) -> None:
        # Only the leader of this term transfers leadership, and only to one of its
        # voters (which then shares its log and so its configuration). Obeying
        # anyone else would let any peer depose a healthy leader at will.
        if self.role is not Role.FOLLOWER or m.sender != self.leader or self.id not in self.conf_state.voters:
            self.dropped_messages += 1
            log.debug("node %d (%s, leader %d) ignored TimeoutNow from %d", self.id, self.role.value, self.leader, m.sender)
            return
        self._hup(transfer=True)

    # ==================================================================================
    # Follower side of replication
    # ==================================================================================

    def _follow(self, m: Message) -> None:
        if self.role is not Role.FOLLOWER:
            self._become_follower(m.term, m.sender)
        self.leader = m.sender
        self._election_elapsed = 0

    def _on_append(self, m: AppendEntries) -> None:
        reply_to = m.sender
        # _follow() inlined: this is the follower's busiest path.
        role = self.role
        if role is not Role.FOLLOWER:
            if role is Role.LEADER:
                self.dropped_messages += 1  # two leaders in one term cannot happen
                return
            self._become_follower(m.term, reply_to)
        self.leader = reply_to
        self._election_elapsed = 0
        raft_log = self.log
        prev_index = m.prev_index
        # Responses are built positionally: keyword calls into the attrs
        # constructors cost about a third more.
        if prev_index < raft_log.committed:
            self._msgs.append(AppendResponse(self.term, self.id, reply_to, True, raft_log.committed))
            return
        if raft_log.match_term(prev_index, m.prev_term):
            entries = m.entries
            last_new = prev_index + len(entries)
            if not entries:
                pass
            elif prev_index == raft_log.last_index():
                # The usual case: the entries follow our last one (step() checked
                # that they continue prev_index), so nothing can conflict.
                self._append_entries(entries)
            else:
                conflict = raft_log.find_conflict(entries)
                if conflict:
                    if conflict <= raft_log.committed:
                        raise ValueError(f"append conflicts with committed entry {conflict}")
                    new = entries[conflict - entries[0].index :]
                    self._append_entries(new, truncate_conf_from=conflict)
            commit = min(m.commit, last_new)
            if commit > raft_log.committed:
                raft_log.commit_to(commit)
            self._msgs.append(AppendResponse(self.term, self.id, reply_to, True, last_new))
        else:
            hint_index, hint_term = raft_log.find_conflict_by_term(min(prev_index, raft_log.last_index()), m.prev_term)
            self._send(
                AppendResponse(
                    term=self.term,
                    sender=self.id,
                    to=reply_to,
                    success=False,
                    index=m.prev_index,
                    hint_index=hint_index,
                    hint_term=hint_term,
                )
            )

    def _on_heartbeat(self, m: Heartbeat) -> None:
        if self.role is Role.LEADER:
            self.dropped_messages += 1
            return
        self._follow(m)
        self.log.commit_to(m.commit)
        self._msgs.append(HeartbeatResponse(self.term, self.id, m.sender, m.context))  # positional: see _on_append

    def _on_install_snapshot(self, m: InstallSnapshot) -> None:
        if self.role is Role.LEADER:
            self.dropped_messages += 1
            return
        self._follow(m)
        meta = m.metadata
        if meta.index <= self.log.committed:
            self._incoming_snapshot = None
            self._send(AppendResponse(term=self.term, sender=self.id, to=m.sender, success=True, index=self.log.committed))
            return
        pending = self._incoming_snapshot
        if m.offset == 0 or pending is None or pending[0] != self.term or pending[1] != meta:
            # A new transfer. The bytes held so far belong to another snapshot, or
            # to one sent by the leader of an earlier term (whose encoding of the
            # same metadata may differ): never splice them with these.
            pending = (self.term, meta, bytearray())
            self._incoming_snapshot = pending
        buf = pending[2]
        if m.offset != len(buf):
            # A chunk was lost or reordered: ask the leader to resume from here.
            self._send(SnapshotResponse(term=self.term, sender=self.id, to=m.sender, snapshot_index=meta.index, next_offset=len(buf)))
            return
        if len(buf) + len(m.data) > self.config.max_snapshot_bytes:
            self._incoming_snapshot = None
            self.dropped_messages += 1
            log.warning(
                "node %d dropped snapshot %d from %d: larger than max_snapshot_bytes (%d)",
                self.id,
                meta.index,
                m.sender,
                self.config.max_snapshot_bytes,
            )
            return
        buf += m.data
        if not m.done:
            self._send(SnapshotResponse(term=self.term, sender=self.id, to=m.sender, snapshot_index=meta.index, next_offset=len(buf)))
            return
        self._incoming_snapshot = None
        self._restore(Snapshot(metadata=meta, data=bytes(buf)))
        self._send(AppendResponse(term=self.term, sender=self.id, to=m.sender, success=True, index=meta.index))

    def _restore(self, snapshot: Snapshot) -> None:
        meta = snapshot.metadata
        if self.log.match_term(meta.index, meta.term):
            # We already have the entries it covers: just learn the commit.
            self.log.commit_to(meta.index)
            return
        self.log.restore(snapshot)
        self._conf_history = [(meta.index, meta.conf_state)]

    def _on_read_index_response(self, m: ReadIndexResponse) -> None:
        # Only our leader of this term answers reads, and only reads we forwarded
        # to it in this term: a read served at an index it did not confirm for us
        # could be stale. (An answer meant for an earlier incarnation of this node,
        # still in flight, must not serve a new read that reuses its context.)
        # Forwarded reads are forgotten at every term change, so an answer of
        # another term, or with no leader known, finds none.
        forwarded = self._forwarded_reads
        if m.sender != self.leader or m.index < 0 or m.context not in forwarded:
            self.dropped_messages += 1
            return
        del forwarded[m.context]
        self._read_states.append(ReadState(index=m.index, context=m.context))

    # ==================================================================================
    # Leader side
    # ==================================================================================

    def _check_can_propose(self) -> None:
        if self.role is not Role.LEADER:
            raise ProposalDropped(DropReason.NOT_LEADER, self.leader)
        if self._lead_transferee != NONE:
            raise ProposalDropped(DropReason.TRANSFER_IN_PROGRESS, self.leader)

    def _append_proposal(self, entry_type: EntryType, data: bytes) -> int:
        if self.role is not Role.LEADER or self._lead_transferee != NONE:
            self._check_can_propose()
        size = len(data) + 16  # == Entry.size()
        limit = self.config.max_uncommitted_bytes
        if limit and self._uncommitted_bytes and self._uncommitted_bytes + size > limit:
            raise ProposalDropped(DropReason.TOO_MUCH_UNCOMMITTED, self.leader)
        index = self.log.last_index() + 1
        entry = Entry(self.term, index, entry_type, data)
        self._uncommitted_bytes += size
        self._uncommitted.append((index, size))
        self._broadcast_pending = True
        if entry_type is EntryType.NORMAL and len(self.conf_state.voters) > 1:
            # Fast path: a local append cannot complete a quorum of two or more
            # (the leader counts itself once the entry is durable: `advance`).
            self.log.append_one(entry)
        else:
            self._append_entries([entry])
        return index

    def _append_entries(self, entries: list[Entry] | tuple[Entry, ...], truncate_conf_from: int = 0) -> None:
        """Append to the local log and track membership changes in it."""
        if truncate_conf_from:
            history = self._conf_history
            while len(history) > 1 and history[-1][0] >= truncate_conf_from:
                history.pop()
        self.log.append(entries)
        for e in entries:
            if e.type is EntryType.CONF_CHANGE:
                self._apply_conf_entry(e)
        if self.role is Role.LEADER:
            self._maybe_commit()

    def _scan_conf_changes(self, lo: int, hi: int) -> None:
        if hi < lo:
            return
        for e in self.log.entries(lo, hi + 1):
            if e.type is EntryType.CONF_CHANGE:
                self._apply_conf_entry(e)

    def _apply_conf_entry(self, e: Entry) -> None:
        try:
            _change, new = codec.decode_conf_change_entry(e.data)
        except Exception as exc:  # a corrupt change entry must not take the node down
            log.error("node %d: undecodable membership change at %d: %s", self.id, e.index, exc)
            return
        self._conf_history.append((e.index, new))
        if self.role is Role.LEADER:
            self._on_leader_conf_change(e.index, new)

    def _on_leader_conf_change(self, index: int, conf: ConfState) -> None:
        members = conf.members()
        next_index = self.log.last_index() + 1
        for nid in list(self._progress):
            if nid not in members:
                del self._progress[nid]
        for nid in members:
            pr = self._progress.get(nid)
            if pr is None:
                pr = Progress(next_index, self.config.max_inflight, is_learner=nid in conf.learners)
                if nid == self.id:
                    pr.match = self.log.stable_last_index()
                    pr.become_replicate()
                self._progress[nid] = pr
            else:
                pr.is_learner = nid in conf.learners
        if self._lead_transferee not in conf.voters:
            self._lead_transferee = NONE
        if self.id not in conf.voters:
            # Dissertation §4.2.2: a removed leader keeps managing the cluster until
            # the change commits, then steps down.
            self._step_down_after_commit_of = index
        else:
            self._step_down_after_commit_of = 0
        self._broadcast_pending = True

    def _pending_conf_index(self) -> int:
        return self._conf_history[-1][0]

    def _maybe_commit(self) -> bool:
        voters = self._conf_history[-1][1].voters
        if not voters:
            return False
        # The highest index a quorum of voters stores: the quorum-th largest match,
        # i.e. the ((len - 1) // 2)-th smallest. (A plain loop and an ascending sort
        # are cheaper than a comprehension and a reversed sort.)
        get = self._progress.get
        matches = []
        for n in voters:
            pr = get(n)
            matches.append(pr.match if pr is not None else 0)
        matches.sort()
        candidate = matches[(len(voters) - 1) // 2]
        if not self.log.maybe_commit(candidate, self.term):
            return False
        self._on_commit_advanced()
        return True

    def _on_commit_advanced(self) -> None:
        committed = self.log.committed
        pending = self._uncommitted
        if pending:
            freed = 0
            i = 0
            while i < len(pending) and pending[i][0] <= committed:
                freed += pending[i][1]
                i += 1
            if i:
                del pending[:i]
                self._uncommitted_bytes -= freed
        if self._reads_before_commit and self.log.term_or_zero(committed) == self.term:
            queued, self._reads_before_commit = self._reads_before_commit, []
            for sender, context in queued:
                self._leader_read(sender, context)
        if self.config.eager_commit:
            self._broadcast_pending = True
        if self._step_down_after_commit_of and committed >= self._step_down_after_commit_of:
            self._hand_off_after_removal()

    def _hand_off_after_removal(self) -> None:
        # Removed from the voters and the removal is committed: pick the most
        # up-to-date remaining voter and tell it to campaign now, so the cluster
        # does not wait a whole election timeout.
        last = self.log.last_index()
        best = NONE
        for nid in sorted(self.conf_state.voters):
            pr = self._progress.get(nid)
            if pr is not None and pr.match == last:
                best = nid
                break
        self._broadcast_append()  # let everyone learn the commit first
        if best != NONE:
            self._send_timeout_now(best)
        self._become_follower(self.term, NONE)

    def _broadcast_append(self) -> None:
        for nid in sorted(self._progress):
            if nid != self.id:
                self._send_append(nid)

    def _broadcast_heartbeat(self, context: bytes) -> None:
        committed = self.log.committed
        for nid in sorted(self._progress):
            if nid == self.id:
                continue
            pr = self._progress[nid]
            # Positional: keyword calls into the attrs constructor cost about a third more.
            self._msgs.append(Heartbeat(self.term, self.id, nid, min(pr.match, committed), context))

    def _send_append(self, to: NodeId, send_if_empty: bool = True) -> bool:
        pr = self._progress[to]
        raft_log = self.log
        next_index = pr.next
        last = raft_log.last_index()
        if next_index > last and not send_if_empty:
            # Nothing new to send: the usual answer after an acknowledgement, so it is
            # settled first. (The prev_term lookup below cannot fail here, as
            # next_index <= last + 1 always holds.)
            return False
        if pr.is_paused():
            return False
        prev_index = next_index - 1
        try:
            prev_term = raft_log.term(prev_index)
            if next_index <= last:
                config = self.config
                hi = min(last + 1, next_index + config.max_entries_per_message)
                entries = raft_log.entries(next_index, hi, config.max_bytes_per_message)
            else:
                entries = []
        except CompactedError:
            return self._start_snapshot(to, pr)
        if not entries and not send_if_empty:
            return False
        # Positional: keyword calls into the attrs constructor cost about a third more.
        self._msgs.append(AppendEntries(self.term, self.id, to, prev_index, prev_term, tuple(entries), raft_log.committed))
        pr.sent_entries(entries[-1].index if entries else None)
        return True

    def _start_snapshot(self, to: NodeId, pr: Progress) -> bool:
        if not pr.recent_active:
            return False  # don't stream a snapshot to a node we have not heard from
        snapshot = self.log.storage.snapshot()
        if snapshot.is_empty():
            return False
        pr.become_snapshot(snapshot)
        self._send_snapshot_chunk(to, pr)
        return True

    def _send_snapshot_chunk(self, to: NodeId, pr: Progress) -> None:
        snapshot = pr.pending_snapshot
        assert snapshot is not None
        offset = pr.snapshot_acked
        chunk = snapshot.data[offset : offset + self.config.max_snapshot_chunk_bytes]
        done = offset + len(chunk) >= len(snapshot.data)
        self._send(
            InstallSnapshot(
                term=self.term, sender=self.id, to=to, metadata=snapshot.metadata, offset=offset, data=chunk, done=done
            )
        )
        pr.snapshot_resend_armed = False

    def _send_timeout_now(self, to: NodeId) -> None:
        self._send(TimeoutNow(term=self.term, sender=self.id, to=to))

    def _responding_progress(self, sender: NodeId) -> Progress | None:
        """The progress of a member answering us while we lead, marked active."""
        if self.role is not Role.LEADER:
            return None
        pr = self._progress.get(sender)
        if pr is not None:
            pr.recent_active = True
        return pr

    def _on_append_response(self, m: AppendResponse) -> None:
        # _responding_progress() inlined: this is the leader's busiest path.
        if self.role is not Role.LEADER:
            return
        pr = self._progress.get(m.sender)
        if pr is None:
            return
        pr.recent_active = True
        if not m.success:
            if m.hint_term > 0:
                match_hint, _ = self.log.find_conflict_by_term(m.hint_index, m.hint_term)
            else:
                match_hint = m.hint_index
            if pr.maybe_decrease_to(m.index, match_hint):
                if pr.state is ProgressState.REPLICATE:
                    pr.become_probe()
                self._send_append(m.sender)
            return
        raft_log = self.log
        last = raft_log.last_index()  # nothing below appends to the log
        if m.index > last:
            self.dropped_messages += 1  # acknowledges entries we never sent
            return
        if not pr.maybe_update(m.index):
            if pr.state is ProgressState.PROBE and pr.match == m.index:
                pr.paused = False
                self._send_append(m.sender, send_if_empty=False)
            return
        if pr.state is ProgressState.PROBE:
            pr.become_replicate()
        elif pr.state is ProgressState.SNAPSHOT:
            if pr.pending_snapshot is None or pr.match >= pr.pending_snapshot.index:
                pr.become_replicate()
        else:
            pr.inflights.free_le(m.index)
        # A match that stays within the commit index cannot move the quorum-th
        # largest match past it (and every other match change already tried to
        # commit): skip the computation for the acknowledgements after a quorum.
        if pr.match > raft_log.committed:
            self._maybe_commit()
            if self.role is not Role.LEADER:
                return  # the commit removed us from the configuration and we stepped down
        # Keep streaming while the window allows and there is more to send (most
        # acknowledgements find everything already sent: no call then).
        if pr.next <= last:
            while self._send_append(m.sender, send_if_empty=False):
                pass
        if m.sender == self._lead_transferee and pr.match == last:
            self._send_timeout_now(m.sender)

    def _on_heartbeat_response(self, m: HeartbeatResponse) -> None:
        pr = self._responding_progress(m.sender)
        if pr is None:
            return
        if pr.state is ProgressState.SNAPSHOT:
            if pr.snapshot_resend_armed:
                self._send_snapshot_chunk(m.sender, pr)  # a chunk or its ack was lost
            else:
                pr.snapshot_resend_armed = True
        else:
            pr.paused = False
            if pr.state is ProgressState.REPLICATE and pr.inflights.full():
                # Acknowledgements may have been lost; free a slot so replication
                # cannot stall. A gap shows up as a rejection and a probe.
                pr.inflights.free_first()
            if pr.match < self.log.last_index():
                self._send_append(m.sender)
        if m.context and m.sender in self.conf_state.voters:
            self._ack_read(m.sender, m.context)

    def _on_snapshot_response(self, m: SnapshotResponse) -> None:
        pr = self._responding_progress(m.sender)
        if pr is None:
            return
        snap = pr.pending_snapshot
        if pr.state is not ProgressState.SNAPSHOT or snap is None or snap.index != m.snapshot_index:
            return
        if not 0 <= m.next_offset <= len(snap.data):
            self.dropped_messages += 1
            return
        pr.snapshot_acked = m.next_offset
        self._send_snapshot_chunk(m.sender, pr)

    # ==================================================================================
    # Linearizable reads (ReadIndex, Raft dissertation §6.4)
    # ==================================================================================

    def _leader_read(self, sender: NodeId, context: bytes) -> None:
        if self.log.term_or_zero(self.log.committed) != self.term:
            # Until the no-op of this term commits, our commit index may lag what
            # earlier leaders committed: wait for it.
            self._reads_before_commit.append((sender, context))
            return
        index = self.log.committed
        voters = self.conf_state.voters
        if voters == {self.id}:
            self._answer_read(sender, index, context)
            return
        if context in self._pending_reads:
            return  # duplicate context: the first request answers both
        req = _ReadRequest(index, sender, context)
        if self.id in voters:
            req.acks.add(self.id)
        self._pending_reads[context] = req
        if not self.config.batch_reads:
            self._broadcast_heartbeat(context)
        # else the next heartbeat carries the newest pending context (_tick_leader)

    def _last_pending_read_context(self) -> bytes:
        if not self._pending_reads:
            return b""
        return next(reversed(self._pending_reads))

    def _ack_read(self, voter: NodeId, context: bytes) -> None:
        req = self._pending_reads.get(context)
        if req is None:
            return
        req.acks.add(voter)
        if len(req.acks & self.conf_state.voters) < self.conf_state.quorum():
            return
        # A quorum answered a heartbeat sent after every earlier request was
        # registered, so all of them are confirmed too.
        while self._pending_reads:
            ctx, earlier = next(iter(self._pending_reads.items()))
            del self._pending_reads[ctx]
            self._answer_read(earlier.sender, earlier.index, earlier.context)
            if ctx == context:
                break

    def _answer_read(self, sender: NodeId, index: int, context: bytes) -> None:
        if sender == self.id:
            self._read_states.append(ReadState(index=index, context=context))
        else:
            self._send(ReadIndexResponse(term=self.term, sender=self.id, to=sender, index=index, context=context))

    def _on_read_index_request(self, m: ReadIndexRequest) -> None:
        if self.role is Role.LEADER:
            self._leader_read(m.sender, m.context)
        elif self.leader != NONE and self.leader != m.sender:
            self.dropped_messages += 1  # not ours to answer; the follower will retry

    # ==================================================================================
    # Output
    # ==================================================================================

    def _send(self, m: Message) -> None:
        self._msgs.append(m)
