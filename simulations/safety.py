"""Raft's safety properties, checked incrementally after every step of the world.

The world calls the hooks below while it drives the nodes; each hook checks what
changed, so the cost per step stays small. A broken property raises
`SafetyViolation` naming the invariant.

Invariants (Raft paper figure 3, plus durability):

* election safety: at most one leader per term;
* log matching: two entries with the same index and term carry the same data and
  follow the same previous term (so, inductively, the logs agree up to there);
* leader completeness: a new leader holds every entry known committed in an earlier
  term (a candidate that collects its votes late, e.g. after a pause, may lead an
  old term after later terms committed more: those entries are not required);
* state machine safety: no two nodes apply different entries at one index; a node
  applies indexes in order without gaps;
* durability: a committed entry is durable on a quorum when first applied (with
  membership changes: a quorum of the configuration in force at its index, or of
  one proposed after it, which the leader may have counted with); a
  restarted node recovers at least what it fsynced (term, vote, entries) and its
  recovered committed prefix matches what was committed;
* monotonicity: per node, term never decreases (also across restarts), the vote
  never changes within a term, the commit index never decreases within a run of the
  process and never exceeds the last persisted index.
"""

from __future__ import annotations

import bisect
from typing import Any, Iterable, Sequence

from raft.codec import decode_conf_change_entry
from raft.errors import CodecError, CompactedError, UnavailableError
from raft.storage import MemoryStorage
from raft.types import NONE, Entry, EntryType, HardState, Snapshot

_CONF_CHANGE = EntryType.CONF_CHANGE


class SafetyViolation(Exception):
    """A Raft safety invariant does not hold.

    Attributes:
        invariant: the short name of the broken invariant.
        detail: what was observed.
    """

    def __init__(self, invariant: str, detail: str) -> None:
        self.invariant = invariant
        self.detail = detail
        super().__init__(f"{invariant}: {detail}")


def _term_at(storage: Any, index: int) -> int | None:
    """The term of `index` in `storage`, or None when compacted away or missing."""
    try:
        return storage.term(index)
    except (CompactedError, UnavailableError):
        return None


class SafetyChecker:
    """Accumulates what the cluster has shown so far and checks each new step.

    Args:
        voters: the initial voting members (the quorum for durability checks until
            a membership change is seen).
    """

    def __init__(self, voters: Sequence[int]) -> None:
        self.voters = tuple(voters)
        self.quorum = len(self.voters) // 2 + 1
        # Committed configurations as (index, voters), in index order.
        self.configs: list[tuple[int, frozenset[int]]] = [(0, frozenset(self.voters))]
        # Configurations proposed in any log (committed or not), by index.
        self.proposed_configs: dict[int, set[frozenset[int]]] = {}
        self._proposed_indexes: list[int] = []  # sorted keys of proposed_configs
        self.leader_of_term: dict[int, int] = {}
        # (index, term) -> (data, previous term); the log-matching witness.
        self.entries_seen: dict[tuple[int, int], tuple[bytes, int]] = {}
        # Committed entries by index as (term, data), learned from applications.
        self.committed: dict[int, tuple[int, bytes]] = {}
        # Index -> a term no earlier than the one in which it was committed: the term
        # of the first node to apply it (a node learns of a commit from a leader of
        # its own term, and that leader's term is at least the committing one's).
        self.committed_by_term: dict[int, int] = {}
        self.max_committed = 0
        self.hard_state: dict[int, HardState] = {}
        self.applied: dict[int, int] = {}
        self.leader_changes = 0

    # -- hooks ------------------------------------------------------------------

    def on_start(self, node: int, storage: Any) -> None:
        """A brand-new node starts on `storage`."""
        self.hard_state[node] = storage.initial_state()[0]
        self.applied[node] = storage.snapshot().index

    def on_leader(self, node: int, term: int, storage: Any) -> None:
        """`node` became leader of `term` (after persisting its Ready)."""
        holder = self.leader_of_term.get(term)
        if holder is not None and holder != node:
            raise SafetyViolation("election safety",
                                  f"nodes {holder} and {node} are both leader of term {term}")
        if holder is None:
            self.leader_of_term[term] = node
            self.leader_changes += 1
        # Leader completeness: every entry committed in an earlier term is in the new
        # leader's log (checking the newest such entry covers the ones before it).
        required = self.max_committed
        by_term = self.committed_by_term
        while required and by_term.get(required, 0) >= term:
            required -= 1  # possibly committed in this term or a later one
        if required:
            last = storage.last_index()
            if last < required:
                raise SafetyViolation(
                    "leader completeness",
                    f"leader {node} of term {term} has last index {last} < {required}, committed "
                    f"by term {by_term.get(required, '?')}")
            committed_term = self.committed[required][0]
            term_there = _term_at(storage, required)
            if term_there is not None and term_there != committed_term:
                raise SafetyViolation(
                    "leader completeness",
                    f"leader {node} of term {term} has term {term_there} at committed index "
                    f"{required}, committed term is {committed_term}")

    def on_hard_state(self, node: int, hs: HardState, last_index: int) -> None:
        """`node` persisted `hs` with its log ending at `last_index`."""
        old = self.hard_state.get(node)
        if old is not None:
            if hs.term < old.term:
                raise SafetyViolation("term monotonic", f"node {node} term {old.term} -> {hs.term}")
            if hs.term == old.term and old.vote != NONE and hs.vote != old.vote:
                raise SafetyViolation(
                    "one vote per term",
                    f"node {node} changed its vote in term {hs.term} from {old.vote} to {hs.vote}")
            if hs.commit < old.commit:
                raise SafetyViolation("commit monotonic", f"node {node} commit {old.commit} -> {hs.commit}")
        if hs.commit > last_index:
            raise SafetyViolation("commit within log",
                                  f"node {node} commit {hs.commit} beyond its last index {last_index}")
        self.hard_state[node] = hs

    def on_append(self, node: int, entries: Sequence[Entry], prev_term: int | None) -> None:
        """`node` persisted `entries` (contiguous) after an entry of term `prev_term`
        (None when unknown, e.g. compacted)."""
        seen = self.entries_seen
        for entry in entries:
            if entry.type is _CONF_CHANGE:
                self._saw_config(entry)
            term = entry.term
            key = (entry.index, term)
            witness = seen.get(key)
            if witness is None:
                seen[key] = (entry.data, -1 if prev_term is None else prev_term)
            else:
                data, witness_prev = witness
                if data != entry.data:
                    raise SafetyViolation(
                        "log matching",
                        f"node {node} holds a different entry at index {entry.index} term {entry.term}")
                if prev_term is not None and witness_prev >= 0 and witness_prev != prev_term:
                    raise SafetyViolation(
                        "log matching",
                        f"node {node}: entry {entry.index}/{entry.term} follows term {prev_term}, "
                        f"elsewhere term {witness_prev}")
                if witness_prev < 0 and prev_term is not None:
                    seen[key] = (data, prev_term)
            prev_term = term

    def on_snapshot_installed(self, node: int, snapshot: Snapshot) -> None:
        index = snapshot.index
        self.applied[node] = max(self.applied.get(node, 0), index)
        known = self.committed.get(index)
        if known is not None and known[0] != snapshot.term:
            raise SafetyViolation(
                "state machine safety",
                f"node {node} installed a snapshot at {index} term {snapshot.term}, "
                f"committed term there is {known[0]}")

    def on_apply(self, node: int, entry: Entry, disks: dict[int, Any]) -> None:
        """`node` applies committed `entry`. `disks` gives every node's disk."""
        index = entry.index
        applied = self.applied
        expected = applied.get(node, 0) + 1
        if index != expected:
            raise SafetyViolation("applied in order",
                                  f"node {node} applied index {index}, expected {expected}")
        applied[node] = index
        known = self.committed.get(index)
        if known is not None:
            if known[0] != entry.term or known[1] != entry.data:
                raise SafetyViolation(
                    "state machine safety",
                    f"node {node} applied entry {index} of term {entry.term}; another node "
                    f"applied term {known[0]} there")
            return
        term = entry.term
        self.committed[index] = (term, entry.data)
        hard_state = self.hard_state.get(node)
        self.committed_by_term[index] = hard_state.term if hard_state is not None else term
        if index > self.max_committed:
            self.max_committed = index
        if self.proposed_configs:
            self._check_durable_reconfigured(node, entry, disks)
            return
        # Durability: a committed entry lives on the disks of a quorum. Counting
        # stops at a quorum: the verdict is the same.
        durable = _durable_count(self.voters, index, term, disks, enough=self.quorum)
        if durable < self.quorum:
            raise SafetyViolation(
                "committed entries are durable",
                f"entry {entry.index}/{entry.term} applied by node {node} is fsynced on only "
                f"{durable} of {len(self.voters)} voters")

    # -- membership changes -------------------------------------------------------

    def _saw_config(self, entry: Entry) -> None:
        try:
            voters = decode_conf_change_entry(entry.data)[1].voters
        except CodecError:
            return  # the core refuses it too; nothing to count with
        known = self.proposed_configs.get(entry.index)
        if known is None:
            self.proposed_configs[entry.index] = {voters}
            bisect.insort(self._proposed_indexes, entry.index)
        else:
            known.add(voters)

    def _check_durable_reconfigured(self, node: int, entry: Entry, disks: dict[int, Any]) -> None:
        """Durability once the configuration has changed: a leader counts a quorum of
        the newest configuration in its log, which is the one in force at the entry or
        one proposed after it (committed or later truncated)."""
        index = entry.index
        if entry.type is _CONF_CHANGE:
            try:
                self.configs.append((index, decode_conf_change_entry(entry.data)[1].voters))
            except CodecError:
                pass
        in_force = self.configs[-1][1]  # committed changes arrive in index order
        candidates = [in_force]
        indexes = self._proposed_indexes
        for at in indexes[bisect.bisect_right(indexes, index):]:
            candidates.extend(self.proposed_configs[at])
        counts = [_durable_count(voters, index, entry.term, disks) for voters in candidates]
        if any(count > len(voters) // 2 for count, voters in zip(counts, candidates)):
            return
        raise SafetyViolation(
            "committed entries are durable",
            f"entry {index}/{entry.term} applied by node {node} is fsynced on only "
            f"{counts[0]} of the voters {sorted(in_force)} (nor on a quorum of a configuration "
            f"proposed after it)")

    def on_recover(self, node: int, before: MemoryStorage, unsynced: list, recovered: Any) -> None:
        """`node` restarted. `before` is what it had fsynced when it crashed,
        `unsynced` the writes made since; `recovered` is the storage it reopened.

        A correct disk gives back `before` plus a prefix of `unsynced` (a crash may
        keep some of the writes that had not been fsynced, in order).
        """
        from .disk import copy_storage, replay  # local: disk imports nothing from here

        candidate = copy_storage(before)
        matched = _same_storage(candidate, recovered)
        for write in unsynced:
            if matched:
                break
            replay(candidate, write)
            matched = _same_storage(candidate, recovered)
        if not matched:
            hs, _ = recovered.initial_state()
            raise SafetyViolation(
                "fsynced state survives crashes",
                f"node {node} fsynced {_summary(before)} (+{len(unsynced)} unsynced writes) "
                f"but recovered {_summary(recovered)}")
        hs, _ = recovered.initial_state()
        # Every term or vote change is fsynced before anyone hears of it, so the
        # last ones the process persisted must come back.
        previous = self.hard_state.get(node)
        if previous is not None and (hs.term < previous.term or (
                hs.term == previous.term and previous.vote != NONE and hs.vote != previous.vote)):
            raise SafetyViolation(
                "term and vote survive crashes",
                f"node {node} had term {previous.term} vote {previous.vote} before the crash, "
                f"recovered term {hs.term} vote {hs.vote}")
        # The recovered committed prefix must match what the cluster committed.
        first = max(recovered.first_index(), 1)
        last = min(recovered.last_index(), self.max_committed, hs.commit)
        committed = self.committed
        for index in range(first, last + 1):
            known = committed.get(index)
            if known is not None and _term_at(recovered, index) != known[0]:
                raise SafetyViolation(
                    "committed entries survive crashes",
                    f"node {node} recovered term {_term_at(recovered, index)} at committed "
                    f"index {index}, committed term is {known[0]}")
        self.hard_state[node] = hs
        self.applied[node] = recovered.snapshot().index


def _durable_count(voters: Iterable[int], index: int, term: int, disks: dict[int, Any],
                   enough: int = 0) -> int:
    """How many of `voters` have entry `index` of `term` (or a snapshot past it)
    fsynced; counting stops at `enough` when it is given."""
    durable = 0
    for voter in voters:
        disk = disks.get(voter)
        if disk is None:
            continue
        shadow = disk.durable
        try:
            held = shadow.term(index) == term
        except (CompactedError, UnavailableError):
            held = False
        if held or shadow.snapshot().index >= index:
            durable += 1
            if durable == enough:
                break
    return durable


def _summary(storage: Any) -> str:
    hs, _ = storage.initial_state()
    last = storage.last_index()
    return (f"term {hs.term} vote {hs.vote} commit {hs.commit}, snapshot {storage.snapshot().index}, "
            f"log up to {last} (term {_term_at(storage, last)})")


def _same_storage(a: MemoryStorage, b: Any) -> bool:
    """Same hard state, snapshot index and entry terms."""
    if a.initial_state()[0] != b.initial_state()[0]:
        return False
    if a.snapshot().index != b.snapshot().index or a.last_index() != b.last_index():
        return False
    first, last = a.first_index(), a.last_index()
    if last < first:
        return True
    return [e.term for e in a.entries(first, last + 1)] == [e.term for e in b.entries(first, last + 1)]
