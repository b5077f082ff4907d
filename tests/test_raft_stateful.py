"""Hypothesis stateful tests: random schedules of faults against the real core.

Every rule is a fault or an input (deliver in any order, drop, duplicate, partition,
crash/restart, tick, propose; with membership churn and compaction in the second
machine). After every step `CheckedCluster.check` verifies Raft's safety properties;
teardown heals the cluster and requires a leader that commits everything it accepted.
"""

from __future__ import annotations

import os
import random
import tempfile

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from raft import ConfChange, ConfChangeType, DropReason, MemoryStorage, ProposalDropped, Role
from raft.disk_storage import DiskStorage
from raft.fs import MemoryFileSystem
from raft_model import CheckedCluster


class RaftCluster(RuleBasedStateMachine):
    """3–5 fixed voters."""

    max_nodes = 5

    def make_cluster(self, n: int, seed: int) -> CheckedCluster:
        ids = list(range(1, n + 1))
        return CheckedCluster(ids, ids, lambda nid: MemoryStorage(), seed=seed)

    @initialize(n=st.integers(3, 5), seed=st.integers(0, 2**16))
    def setup(self, n: int, seed: int) -> None:
        self.cluster = self.make_cluster(n, seed)
        self.proposals = 0

    def node_ids(self) -> list[int]:
        return sorted(self.cluster.peers)

    @rule(data=st.data())
    def tick_one(self, data) -> None:
        self.cluster.tick(data.draw(st.sampled_from(self.node_ids())))

    @rule(times=st.integers(1, 15))
    def tick_all(self, times: int) -> None:
        for _ in range(times):
            self.cluster.tick_all()

    @rule(position=st.integers(0, 1000), count=st.integers(1, 30))
    def deliver(self, position: int, count: int) -> None:
        for i in range(count):
            self.cluster.deliver(position + i)

    @rule()
    def deliver_all(self) -> None:
        self.cluster.deliver_all(limit=500)

    @rule(position=st.integers(0, 1000))
    def duplicate(self, position: int) -> None:
        self.cluster.deliver(position, duplicate=True)

    @rule(position=st.integers(0, 1000), count=st.integers(1, 5))
    def drop(self, position: int, count: int) -> None:
        for _ in range(count):
            self.cluster.drop(position)

    @rule(data=st.data())
    def partition(self, data) -> None:
        ids = self.node_ids()
        side = data.draw(st.sets(st.sampled_from(ids), min_size=1, max_size=len(ids) - 1))
        self.cluster.partition(set(side))

    @rule()
    def heal_network(self) -> None:
        self.cluster.blocked = set()

    @rule(data=st.data())
    def crash(self, data) -> None:
        alive = [n for n in self.node_ids() if self.cluster.peers[n].alive]
        if len(alive) > 1:
            self.cluster.crash(data.draw(st.sampled_from(alive)))

    @rule(data=st.data())
    def crash_during_write(self, data) -> None:
        # Usually the leader: the one whose messages may leave before its write.
        leader = self.cluster.current_leader()
        nid = leader if leader is not None and data.draw(st.booleans()) else data.draw(
            st.sampled_from(self.node_ids()))
        self.cluster.crash_during_write(nid)

    @rule(data=st.data())
    def restart(self, data) -> None:
        dead = [n for n in self.node_ids() if not self.cluster.peers[n].alive]
        if dead:
            self.cluster.restart(data.draw(st.sampled_from(dead)))

    @rule(data=st.data(), count=st.integers(1, 5))
    def propose(self, data, count: int) -> None:
        nid = data.draw(st.sampled_from(self.node_ids()))
        peer = self.cluster.peers[nid]
        if not peer.alive:
            return
        for _ in range(count):
            self.proposals += 1
            try:
                index = peer.node.propose(b"p%d" % self.proposals)
            except ProposalDropped as exc:
                assert peer.node.role is not Role.LEADER or exc.reason.name != "NOT_LEADER"
                return
            self.cluster.accepted.append((nid, peer.node.term, index))
        self.cluster.process()

    @rule(data=st.data())
    def campaign(self, data) -> None:
        nid = data.draw(st.sampled_from(self.node_ids()))
        if self.cluster.peers[nid].alive:
            self.cluster.peers[nid].node.campaign()
            self.cluster.process()

    def teardown(self) -> None:
        cluster = getattr(self, "cluster", None)
        if cluster is None:
            return
        leader = cluster.converge()
        node = cluster.peers[leader].node
        for nid, term, index in cluster.accepted:
            if nid == leader and term == node.term:
                assert index in cluster.committed and cluster.committed[index][0] == term, (
                    f"leader {leader} accepted index {index} in term {term} but it never committed"
                )
        # Every live member converged to the same applied state.
        members = node.conf_state.members()
        states = {n: cluster.peers[n].state for n in members}
        upto = min(cluster.peers[n].applied for n in members)
        reference = {i: v for i, v in states[leader].items() if i <= upto}
        for n, state in states.items():
            assert {i: v for i, v in state.items() if i <= upto and i in reference} == {
                i: v for i, v in reference.items() if i in state
            }, f"node {n} diverged"


class RaftMembershipCluster(RaftCluster):
    """Membership churn between 1 and 7 voters with learners, plus compaction."""

    @initialize(n=st.integers(1, 5), seed=st.integers(0, 2**16))
    def setup(self, n: int, seed: int) -> None:
        ids = list(range(1, 8))
        self.cluster = CheckedCluster(ids, list(range(1, n + 1)), lambda nid: MemoryStorage(), seed=seed)
        self.proposals = 0

    def _leader(self):
        leader = self.cluster.current_leader()
        return None if leader is None else self.cluster.peers[leader].node

    @rule(kind=st.sampled_from(list(ConfChangeType)), node_id=st.integers(1, 7))
    def change_membership(self, kind: ConfChangeType, node_id: int) -> None:
        node = self._leader()
        if node is None:
            return
        before = node.conf_state
        try:
            node.propose_conf_change(ConfChange(kind, node_id))
        except ProposalDropped:
            return
        after = node.conf_state
        assert len(before.voters ^ after.voters) <= 1, "more than one voter changed at once"
        self.cluster.process()

    @rule(data=st.data())
    def compact(self, data) -> None:
        nid = data.draw(st.sampled_from(self.node_ids()))
        peer = self.cluster.peers[nid]
        if not peer.alive:
            return
        node = peer.node
        lo = node.log.first_index()
        hi = peer.applied
        if hi < lo:
            return
        index = data.draw(st.integers(lo, hi))
        state = {i: v for i, v in peer.state.items() if i <= index}
        saved, peer.state = peer.state, state
        try:
            snap = node.create_snapshot(index, peer.snapshot_bytes())
        except ProposalDropped as exc:
            # A node that joined does not know the voters before its first change.
            assert exc.reason is DropReason.CONF_UNKNOWN and not node.conf_state_at(index).voters
            return
        finally:
            peer.state = saved
        peer.storage.compact(snap)
        self.cluster.process()


class RaftDiskCluster(RaftMembershipCluster):
    """Membership churn and compaction over the real `DiskStorage` format on an
    in-memory file system whose crashes lose (or tear) everything not fsynced."""

    @initialize(n=st.integers(1, 5), seed=st.integers(0, 2**16))
    def setup(self, n: int, seed: int) -> None:
        rng = random.Random(seed)

        def open_storage(nid: int) -> DiskStorage:
            # Tiny segments so rollover and segment deletion happen too.
            return DiskStorage(f"/node{nid}", fs=MemoryFileSystem(), segment_bytes=512)

        def power_cut_and_reopen(storage: DiskStorage) -> DiskStorage:
            fs = storage.fs
            fs.crash(rng)
            return DiskStorage(storage.path, fs=fs, segment_bytes=512)

        ids = list(range(1, 8))
        self.cluster = CheckedCluster(
            ids, list(range(1, n + 1)), open_storage, seed=seed, reopen=power_cut_and_reopen
        )
        self.proposals = 0


class RaftTempDirCluster(RaftCluster):
    """The core over `DiskStorage` in a real temporary directory; a crash closes
    the storage and reopens it from the files."""

    @initialize(n=st.integers(3, 5), seed=st.integers(0, 2**16))
    def setup(self, n: int, seed: int) -> None:
        self.tmp = tempfile.TemporaryDirectory(prefix="raftcoord-stateful-")
        root = self.tmp.name

        def open_storage(nid: int) -> DiskStorage:
            return DiskStorage(os.path.join(root, f"node{nid}"), segment_bytes=4096)

        def reopen(storage: DiskStorage) -> DiskStorage:
            storage.close()
            return DiskStorage(storage.path, segment_bytes=4096)

        ids = list(range(1, n + 1))
        self.cluster = CheckedCluster(ids, ids, open_storage, seed=seed, reopen=reopen)
        self.proposals = 0

    def teardown(self) -> None:
        try:
            super().teardown()
        finally:
            for peer in self.cluster.peers.values():
                peer.storage.close()
            self.tmp.cleanup()


TestRaftCluster = RaftCluster.TestCase
TestRaftCluster.settings = settings(max_examples=150, stateful_step_count=60, deadline=None)

TestRaftMembershipCluster = RaftMembershipCluster.TestCase
TestRaftMembershipCluster.settings = settings(max_examples=150, stateful_step_count=60, deadline=None)

TestRaftDiskCluster = RaftDiskCluster.TestCase
TestRaftDiskCluster.settings = settings(max_examples=60, stateful_step_count=50, deadline=None)

TestRaftTempDirCluster = RaftTempDirCluster.TestCase
TestRaftTempDirCluster.settings = settings(max_examples=10, stateful_step_count=40, deadline=None)
