"""A checked cluster for property tests: peers over a fully controllable network.

`CheckedCluster` keeps messages in an explicit in-flight list (so tests can deliver
them in any order, drop or duplicate them), crashes nodes by rebuilding them from
storage, and checks Raft's safety properties after every step:

* election safety: at most one leader per term;
* log matching: two logs with an entry of the same index and term agree before it;
* leader completeness: a leader of a later term holds every committed entry;
* state machine safety: no two nodes apply different entries at one index;
* monotonicity: term and commit never go backwards (not even across a crash); vote
  never changes within a term; applied never goes backwards within an incarnation;
* configuration safety: every configuration applied keeps a quorum overlap with
  the one before it.

A leader's Ready that allows it (`may_send_before_persist`) has its messages sent
before its write, as `RaftRuntime` does; `crash_during_write` kills a node after
those messages left and before its write reached the disk, so every check above
also covers the leader replicating in parallel with its own fsync.
"""

from __future__ import annotations

from typing import Callable

import cbor2

from raft import ConfState, EntryType, Role
from raft.node import RawNode
from raft.config import Config
from raft.types import Entry, Message


class SafetyViolation(AssertionError):
    pass


def quorums_overlap(a: ConfState, b: ConfState) -> bool:
    """Whether every majority of a's voters intersects every majority of b's."""
    if not a.voters or not b.voters:
        return True
    return a.quorum() + b.quorum() > len(a.voters | b.voters)


class CheckedPeer:
    """A node plus a state machine that records every entry it applies."""

    def __init__(self, config: Config, storage_factory: Callable[[int], object]) -> None:
        self.config = config
        self.storage_factory = storage_factory
        self.storage = storage_factory(config.id)
        self.node = RawNode(config, self.storage)
        self.alive = True
        # index -> (term, type, data) of every entry reflected in the state machine
        self.state: dict[int, tuple[int, int, bytes]] = {}
        self.applied = 0
        self.confs: list[ConfState] = []
        # Set by `CheckedCluster.crash_during_write`: die once the next Ready that
        # sends before persisting has sent its messages, before its write.
        self.crash_in_write = False

    def snapshot_bytes(self) -> bytes:
        return cbor2.dumps(sorted((i, t, ty, d) for i, (t, ty, d) in self.state.items()))

    def restore_state(self, data: bytes) -> None:
        self.state = {i: (t, ty, d) for i, t, ty, d in cbor2.loads(data)} if data else {}

    def crash_and_restart(self, reopen: Callable[[object], object] | None = None) -> None:
        if reopen is not None:
            self.storage = reopen(self.storage)
        self.node = RawNode(self.config, self.storage)
        snap = self.storage.snapshot()
        self.restore_state(snap.data)
        self.applied = snap.index


class CheckedCluster:
    def __init__(
        self,
        ids: list[int],
        voters: list[int],
        storage_factory: Callable[[int], object],
        election_ticks: int = 6,
        seed: int = 0,
        max_inflight: int = 4,
        max_entries_per_message: int = 3,
        max_snapshot_chunk_bytes: int = 64,
        reopen: Callable[[object], object] | None = None,
    ) -> None:
        self.peers: dict[int, CheckedPeer] = {}
        for nid in ids:
            cfg = Config(
                id=nid,
                voters=tuple(voters) if nid in voters else (),
                election_ticks=election_ticks,
                seed=seed * 1000 + nid,
                max_inflight=max_inflight,
                max_entries_per_message=max_entries_per_message,
                max_snapshot_chunk_bytes=max_snapshot_chunk_bytes,
                # Both message-saving options, drawn from the seed so every machine
                # covers the four combinations.
                eager_commit=seed % 2 == 0,
                batch_reads=(seed // 2) % 2 == 1,
            )
            self.peers[nid] = CheckedPeer(cfg, storage_factory)
        self.reopen = reopen
        self.in_flight: list[Message] = []
        self.blocked: set[tuple[int, int]] = set()
        self.leader_of_term: dict[int, int] = {}
        # index -> (term, type, data, term in which some node first applied it)
        self.committed: dict[int, tuple[int, int, bytes, int]] = {}
        self.max_term: dict[int, int] = {nid: 0 for nid in ids}
        self.max_commit: dict[int, int] = {nid: 0 for nid in ids}
        self.vote_in_term: dict[tuple[int, int], int] = {}
        self.accepted: list[tuple[int, int, int]] = []  # (node, term, index) of proposals
        self.steps = 0
        self.writes_lost = 0  # crashes between a leader's messages and its write

    # -- driving ------------------------------------------------------------------------

    def process(self) -> None:
        for nid in sorted(self.peers):
            peer = self.peers[nid]
            if peer.alive:
                self._handle_ready(peer)
        self.check()

    def _handle_ready(self, peer: CheckedPeer) -> None:
        node = peer.node
        while node.has_ready():
            rd = node.ready()
            if rd.snapshot is not None:
                peer.storage.apply_snapshot(rd.snapshot)
                peer.restore_state(rd.snapshot.data)
                peer.applied = rd.snapshot.index
                for i, (t, ty, d) in peer.state.items():
                    self._record_commit(peer, Entry(term=t, index=i, type=EntryType(ty), data=d))
            if rd.may_send_before_persist:
                self.in_flight.extend(rd.messages)
                if peer.crash_in_write and rd.entries:
                    # The messages are on the wire; the write never happened.
                    peer.crash_in_write = False
                    self.writes_lost += 1
                    self.crash(peer.node.id, keep_sent=True)
                    return
            peer.storage.save(rd.hard_state, rd.entries, sync=rd.must_sync)
            if not rd.may_send_before_persist:
                self.in_flight.extend(rd.messages)
            for e in rd.committed_entries:
                if e.index != peer.applied + 1:
                    raise SafetyViolation(f"node {peer.node.id} applied {e.index} after {peer.applied}")
                peer.applied = e.index
                peer.state[e.index] = (e.term, int(e.type), e.data)
                self._record_commit(peer, e)
                if e.type is EntryType.CONF_CHANGE:
                    before = node.conf_state_at(e.index - 1)
                    after = node.apply_conf_change(e)
                    if not quorums_overlap(before, after):
                        raise SafetyViolation(f"configuration {before} -> {after} loses quorum overlap")
                    peer.confs.append(after)
            node.advance(rd)

    def _record_commit(self, peer: CheckedPeer, e: Entry) -> None:
        seen = self.committed.get(e.index)
        if seen is None:
            self.committed[e.index] = (e.term, int(e.type), e.data, peer.node.term)
        elif seen[:3] != (e.term, int(e.type), e.data):
            raise SafetyViolation(
                f"state machine safety: index {e.index} applied as {seen[:3]} and as {(e.term, e.type, e.data)}"
            )

    def deliver(self, position: int, duplicate: bool = False) -> None:
        if not self.in_flight:
            return
        position %= len(self.in_flight)
        m = self.in_flight[position] if duplicate else self.in_flight.pop(position)
        if (m.sender, m.to) in self.blocked:
            return
        peer = self.peers.get(m.to)
        if peer is None or not peer.alive:
            return
        peer.node.step(m)
        self.process()

    def deliver_all(self, limit: int = 100_000) -> None:
        count = 0
        while self.in_flight and count < limit:
            self.deliver(0)
            count += 1

    def drop(self, position: int) -> None:
        if self.in_flight:
            self.in_flight.pop(position % len(self.in_flight))

    def tick(self, nid: int) -> None:
        peer = self.peers[nid]
        if peer.alive:
            peer.node.tick()
            self.process()

    def tick_all(self) -> None:
        for nid in sorted(self.peers):
            if self.peers[nid].alive:
                self.peers[nid].node.tick()
        self.process()

    def crash(self, nid: int, keep_sent: bool = False) -> None:
        peer = self.peers[nid]
        peer.alive = False
        peer.crash_in_write = False
        self.in_flight = [m for m in self.in_flight if m.to != nid and (keep_sent or m.sender != nid)]

    def crash_during_write(self, nid: int) -> None:
        """Crash `nid` in its next write that follows its messages (see module doc)."""
        self.peers[nid].crash_in_write = True

    def restart(self, nid: int) -> None:
        peer = self.peers[nid]
        if peer.alive:
            return
        peer.crash_and_restart(self.reopen)
        peer.alive = True
        # The commit index need not be durable (only term, vote and entries must
        # be); it is re-learned from the leader.
        self.max_commit[nid] = peer.node.log.committed
        self.process()

    def partition(self, side: set[int]) -> None:
        self.blocked = {(a, b) for a in self.peers for b in self.peers if (a in side) != (b in side)}

    def heal(self) -> None:
        self.blocked = set()
        for nid, peer in self.peers.items():
            if not peer.alive:
                self.restart(nid)

    def leaders(self) -> list[int]:
        return [nid for nid, p in self.peers.items() if p.alive and p.node.role is Role.LEADER]

    def current_leader(self) -> int | None:
        best = None
        for nid in self.leaders():
            if best is None or self.peers[nid].node.term > self.peers[best].node.term:
                best = nid
        return best

    # -- invariants ----------------------------------------------------------------------

    def check(self) -> None:
        self.steps += 1
        for nid, peer in self.peers.items():
            node = peer.node
            if node.term < self.max_term[nid]:
                raise SafetyViolation(f"node {nid} term went back {self.max_term[nid]} -> {node.term}")
            self.max_term[nid] = node.term
            if node.log.committed < self.max_commit[nid]:
                raise SafetyViolation(f"node {nid} commit went back {self.max_commit[nid]} -> {node.log.committed}")
            self.max_commit[nid] = node.log.committed
            if node.vote:
                prev = self.vote_in_term.setdefault((nid, node.term), node.vote)
                if prev != node.vote:
                    raise SafetyViolation(f"node {nid} voted for {prev} and {node.vote} in term {node.term}")
            if node.role is Role.LEADER:
                prev = self.leader_of_term.setdefault(node.term, nid)
                if prev != nid:
                    raise SafetyViolation(f"two leaders in term {node.term}: {prev} and {nid}")
                self._check_leader_completeness(peer)
        self._check_log_matching()

    def _log(self, peer: CheckedPeer) -> dict[int, tuple[int, int, bytes]]:
        lg = peer.node.log
        first, last = lg.first_index(), lg.last_index()
        if last < first:
            return {}
        return {e.index: (e.term, int(e.type), e.data) for e in lg.entries(first, last + 1)}

    def _check_leader_completeness(self, peer: CheckedPeer) -> None:
        node = peer.node
        lg = node.log
        first, last = lg.first_index(), lg.last_index()
        for index, (term, ty, data, seen_term) in self.committed.items():
            if node.term <= seen_term:
                continue
            if index > last:
                raise SafetyViolation(f"leader {node.id} (term {node.term}) lacks committed index {index}")
            if index >= first and lg.term(index) != term:
                raise SafetyViolation(f"leader {node.id} has term {lg.term(index)} at committed index {index}, not {term}")

    def _check_log_matching(self) -> None:
        logs = [(nid, self._log(p)) for nid, p in sorted(self.peers.items())]
        for i, (a, la) in enumerate(logs):
            for b, lb in logs[i + 1 :]:
                common = sorted(set(la) & set(lb), reverse=True)
                agreed = False
                for index in common:
                    if agreed:
                        if la[index] != lb[index]:
                            raise SafetyViolation(f"log matching broken between {a} and {b} at {index}")
                    elif la[index][0] == lb[index][0]:
                        agreed = True
                        if la[index] != lb[index]:
                            raise SafetyViolation(f"same index and term, different entry: {a}/{b} at {index}")

    # -- liveness ------------------------------------------------------------------------

    def converge(self, max_rounds: int = 400) -> int:
        """Heal, then tick until one leader commits a fresh entry everywhere.

        Returns the leader's id. Raises AssertionError if that does not happen.
        """
        for peer in self.peers.values():
            peer.crash_in_write = False  # the faults are over
        self.heal()
        self.deliver_all()
        marker_index = None
        leader = None
        for _ in range(max_rounds):
            self.tick_all()
            self.deliver_all()
            leader = self.current_leader()
            if leader is None:
                continue
            node = self.peers[leader].node
            if marker_index is None or self.peers[leader].node.term != marker_term:
                try:
                    marker_index = node.propose(b"converge-marker")
                    marker_term = node.term
                except Exception:
                    continue
                self.deliver_all()
            members = node.conf_state.members()
            if all(self.peers[n].applied >= marker_index for n in members if n in self.peers):
                return leader
        raise AssertionError(f"no convergence after {max_rounds} rounds (leader {leader})")
