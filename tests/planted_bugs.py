"""TEST-ONLY broken variants of the raft core, the disk and the driver.

Each one breaks exactly one rule the simulator's checkers guard; the tests in
test_sim_planted.py show that a modest seed sweep catches every one. Nothing here
may be used outside tests.
"""

from __future__ import annotations

import random

from raft.disk_storage import inspect_data_dir
from raft.node import RawNode
from raft.types import ConfState, VoteResponse

from simulations.disk import FileDisk
from simulations.history import OpKind, Outcome
from simulations.world import World


class DoubleVoteNode(RawNode):
    """Grants every up-to-date candidate its vote, even after voting in the term."""

    def _on_vote_request(self, m):
        if self.log.is_up_to_date(m.last_log_index, m.last_log_term):
            self._send(VoteResponse(term=m.term, sender=self.id, to=m.sender, granted=True,
                                    pre_vote=m.pre_vote))
            if not m.pre_vote:
                self._election_elapsed = 0
                self.vote = m.sender
        else:
            self._send(VoteResponse(term=self.term, sender=self.id, to=m.sender, granted=False,
                                    pre_vote=m.pre_vote))




class ForgetfulDisk(FileDisk):
    """A disk whose crash also loses the last fsynced batch (a lying fsync)."""

    def crash(self, rng: random.Random) -> None:
        super().crash(rng)
        # Cut the last complete record off the newest log segment.
        segments = [name for name in self.fs.listdir(self.path) if name.endswith(".seg")]
        if not segments:
            return
        path = f"{self.path}/{segments[-1]}"
        # Where the records end: preallocated zeros may follow them.
        size = next(x["used"] for x in inspect_data_dir(self.path, self.fs)["segments"]
                    if x["name"] == segments[-1])
        if size > 64:
            handle = self.fs.open_append(path)
            handle.truncate(size - min(size - 32, 48))
            handle.fsync()
            handle.close()


class StaleReadWorld(World):
    """A driver that serves gets from the local state machine, skipping read-index."""

    def _on_request(self, node_id, request):
        client, op = request
        node = self.nodes[node_id]
        if op.kind is OpKind.GET and node.up and not node.paused:
            self.push(0.001, 3, request, (Outcome.OK, node.kv.get(op.key), node_id))
            return
        super()._on_request(node_id, request)


class EarlyAckWorld(World):
    """A driver that acknowledges writes as soon as the leader appends them."""

    def _on_request(self, node_id, request):
        client, op = request
        node = self.nodes[node_id]
        before = dict(node.pending_writes)
        super()._on_request(node_id, request)
        if op.kind is OpKind.PUT and node.up and len(node.pending_writes) > len(before):
            self.push(0.001, 3, request, (Outcome.OK, None, node_id))


class SmallQuorumNode(RawNode):
    """Counts one replica too few when deciding commitment (quorum off by one)."""

    def _maybe_commit(self):
        voters = self.conf_state.voters
        matches = sorted((self._progress[n].match if n in self._progress else 0 for n in voters),
                         reverse=True)
        candidate = matches[max(self.conf_state.quorum() - 2, 0)]
        if not self.log.maybe_commit(candidate, self.term):
            return False
        self._on_commit_advanced()
        return True


class ConfigAmnesiaNode(RawNode):
    """Restarts with the configuration it was first started with, forgetting the
    membership changes in its snapshot and log (as if a driver rebuilt the member
    list from static settings instead of the node's storage)."""

    def __init__(self, config, storage, applied: int = 0) -> None:
        super().__init__(config, storage, applied)
        first, _ = self._conf_history[0]
        self._conf_history = [(first, ConfState(voters=frozenset(config.voters)))]


class EndlessReadyNode(RawNode):
    """Once it leads, always claims to have work ready: a driver loop that drains
    Ready batches until `has_ready()` is false never returns (a livelock)."""

    def has_ready(self) -> bool:
        return self.role.value == "leader" or super().has_ready()


class SelfReschedulingWorld(World):
    """The healed phase's convergence check reschedules itself at the same
    instant: virtual time stops while events keep coming."""

    def _check_converged(self) -> None:
        self.push(0.0, 8)  # CHECK, again now


class OldTermCommitNode(RawNode):
    """Commits whatever index a quorum stores, even an entry of an earlier term
    (the Raft paper's figure 8): a later leader may still overwrite it."""

    def _maybe_commit(self):
        voters = self.conf_state.voters
        matches = sorted(self._progress[n].match if n in self._progress else 0 for n in voters)
        candidate = matches[(len(voters) - 1) // 2]
        if candidate <= self.log.committed or candidate > self.log.last_index():
            return False
        self.log.committed = candidate
        self._on_commit_advanced()
        return True


class RoundlessReadNode(RawNode):
    """A leader answers a ReadIndex request at once, without the heartbeat round
    that proves it still leads: a deposed leader that has not noticed serves stale
    reads."""

    def _leader_read(self, sender, context):
        if self.log.term_or_zero(self.log.committed) != self.term:
            super()._leader_read(sender, context)  # the no-op rule is kept
            return
        self._answer_read(sender, self.log.committed, context)
