"""Malformed remote input: the core drops it (counting it in `dropped_messages`),
keeps its log and state intact, and goes on serving the next valid message.

Every message here is one a correct peer never sends; the codec accepts all of them
(they are well-typed), so the core itself must refuse them.
"""

from __future__ import annotations

import random

import pytest

from raft import (
    AppendEntries,
    AppendResponse,
    Config,
    Entry,
    HardState,
    InstallSnapshot,
    MemoryStorage,
    ReadIndexResponse,
    ReadState,
    Role,
    SnapshotMetadata,
    SnapshotResponse,
)
from raft.log import RaftLog
from raft.progress import ProgressState

from raft_harness import Network, Peer, log_of

ET = 10


def follower(terms=(1, 1, 2), term: int = 2, commit: int = 1) -> Peer:
    """Node 1 of {1, 2, 3}, a follower of leader 2 in `term` holding `terms`."""
    storage = MemoryStorage()
    storage.save(HardState(term=term, commit=commit), [Entry(term=t, index=i) for i, t in enumerate(terms, 1)])
    peer = Peer(Config(id=1, voters=(1, 2, 3), election_ticks=ET, seed=1), storage)
    peer.handle_ready()
    return peer


def snapshot_of(peer: Peer) -> tuple:
    node = peer.node
    return (log_of(peer), node.term, node.vote, node.commit_index, node.applied_index, node.role, node.leader)


def assert_dropped_and_intact(peer: Peer, message) -> None:
    before = snapshot_of(peer)
    dropped = peer.node.dropped_messages
    peer.node.step(message)  # must not raise
    assert peer.node.dropped_messages == dropped + 1
    assert peer.handle_ready() == []
    assert not peer.node.has_ready()
    assert snapshot_of(peer) == before


def append(prev_index: int, prev_term: int, entries, term: int = 2, commit: int = 1) -> AppendEntries:
    return AppendEntries(
        term=term, sender=2, to=1, prev_index=prev_index, prev_term=prev_term, entries=tuple(entries), commit=commit
    )


def assert_valid_append_still_works(peer: Peer) -> None:
    last = peer.node.log.last_index()
    term = peer.node.log.last_term()
    peer.node.step(append(last, term, [Entry(term=2, index=last + 1, data=b"ok")], commit=last + 1))
    out = peer.handle_ready()
    assert out == [AppendResponse(term=2, sender=1, to=2, success=True, index=last + 1)]
    assert log_of(peer)[-1] == (last + 1, 2)
    assert peer.node.commit_index == last + 1
    assert peer.applied[-1].data == b"ok"
    assert not peer.node.has_ready()


# -- AppendEntries --------------------------------------------------------------------


@pytest.mark.parametrize(
    "prev_index,prev_term,entries",
    [
        # The first entry does not follow prev_index: a gap after index 3...
        (3, 2, [Entry(term=2, index=5)]),
        (3, 2, [Entry(term=2, index=9), Entry(term=2, index=10)]),
        # ...or an entry claimed to be both at prev_index and after it.
        (3, 2, [Entry(term=2, index=3)]),
        (2, 1, [Entry(term=2, index=1)]),
        # Not contiguous.
        (3, 2, [Entry(term=2, index=4), Entry(term=2, index=6)]),
        (3, 2, [Entry(term=2, index=4), Entry(term=2, index=4)]),
        (3, 2, [Entry(term=2, index=5), Entry(term=2, index=4)]),
        # Terms going down, within the entries or below prev_term.
        (3, 2, [Entry(term=2, index=4), Entry(term=1, index=5)]),
        (3, 2, [Entry(term=1, index=4)]),
        # An entry of a term later than the leader's own.
        (3, 2, [Entry(term=3, index=4)]),
    ],
)
def test_malformed_append_is_dropped_and_the_log_stays_intact(prev_index, prev_term, entries):
    peer = follower()
    assert_dropped_and_intact(peer, append(prev_index, prev_term, entries, commit=5))
    assert_valid_append_still_works(peer)


def test_malformed_append_from_a_higher_term_changes_nothing():
    # Checked before the term check: a malformed message must not even bump the term.
    peer = follower()
    assert_dropped_and_intact(peer, append(3, 2, [Entry(term=3, index=7)], term=3))
    assert peer.node.term == 2
    assert_valid_append_still_works(peer)


def test_random_appends_never_break_the_log():
    # Random (mostly malformed) appends: the node never raises, its log stays
    # contiguous with non-decreasing terms, and every Ready batch drains.
    rng = random.Random(5)
    peer = follower()
    for _ in range(2000):
        term = peer.node.term + rng.choice((0, 0, 0, 1))
        prev_index = rng.randint(0, peer.node.log.last_index() + 2)
        start = prev_index + 1 + rng.choice((0, 0, 0, -1, 1, 3))
        entries, t = [], rng.randint(max(1, term - 2), term)
        for i in range(rng.randint(0, 3)):
            entries.append(Entry(term=t, index=start + i + rng.choice((0, 0, 0, 0, 1))))
            t += rng.choice((0, 0, 0, 1, -1))
        prev_term = rng.randint(0, term)
        commit = rng.randint(0, prev_index + 4)
        peer.node.step(append(prev_index, prev_term, entries, term=term, commit=commit))
        peer.handle_ready()  # (looped forever on a log with a gap)
        assert not peer.node.has_ready()
        log = log_of(peer)
        assert [i for i, _ in log] == list(range(1, len(log) + 1))
        terms = [t for _, t in log]
        assert terms == sorted(terms) and (not terms or terms[-1] <= peer.node.term)
        assert peer.node.applied_index <= peer.node.commit_index <= peer.node.log.last_index()
        # What was applied (committed) is never rewritten.
        assert log[: len(peer.applied)] == [(e.index, e.term) for e in peer.applied]
    assert peer.node.dropped_messages > 0


def test_raft_log_refuses_to_leave_a_gap():
    storage = MemoryStorage()
    storage.save(None, [Entry(term=1, index=1), Entry(term=1, index=2)])
    raft_log = RaftLog(storage)
    raft_log.append([Entry(term=1, index=3)])
    with pytest.raises(ValueError):
        raft_log.append([Entry(term=1, index=5)])
    assert raft_log.last_index() == 3
    assert [e.index for e in raft_log.entries(1, 4)] == [1, 2, 3]


# -- InstallSnapshot / SnapshotResponse -----------------------------------------------


def chunk(offset: int = 0, index: int = 10, snap_term: int = 2, term: int = 2, done: bool = True) -> InstallSnapshot:
    """One whole-snapshot chunk; its data is an empty CBOR list (the harness's state)."""
    meta = SnapshotMetadata(index=index, term=snap_term, conf_state=follower().node.conf_state)
    return InstallSnapshot(term=term, sender=2, to=1, metadata=meta, offset=offset, data=b"\x80", done=done)


@pytest.mark.parametrize(
    "message",
    [
        chunk(offset=-1),
        chunk(snap_term=3),  # a snapshot of a later term than its sender's
        chunk(snap_term=0),  # index 10 cannot have term 0
    ],
)
def test_malformed_snapshot_chunk_is_dropped(message):
    peer = follower()
    assert_dropped_and_intact(peer, message)
    # A valid snapshot still installs.
    peer.node.step(chunk())
    out = peer.handle_ready()
    assert out == [AppendResponse(term=2, sender=1, to=2, success=True, index=10)]
    assert peer.snapshots_installed == 1
    assert peer.node.commit_index == 10
    assert not peer.node.has_ready()


def leader_streaming_a_snapshot() -> tuple[Network, int]:
    """Leader 1 in SNAPSHOT state towards node 3, its first chunk in flight."""
    net = Network.of(3, election_ticks=ET, max_snapshot_chunk_bytes=16)
    net.campaign(1)
    net.isolate(3)
    for i in range(10):
        net.propose(1, b"payload-%02d" % i)
    snap = net.peers[1].compact()
    net.heal()
    net.drop_if(lambda m: m.to == 3 or m.sender == 3)  # keep the exchange in our hands
    leader = net.peers[1]
    # A heartbeat response marks node 3 active; its rejection starts the snapshot.
    leader.node.step(AppendResponse(term=leader.node.term, sender=3, to=1, success=False, index=0))
    leader.node.tick()
    net.deliver()
    leader.node.step(
        AppendResponse(term=leader.node.term, sender=3, to=1, success=False, index=leader.node.status().progress[3].next - 1)
    )
    out = leader.handle_ready()
    assert any(isinstance(m, InstallSnapshot) and m.to == 3 for m in out)
    assert leader.node.status().progress[3].state is ProgressState.SNAPSHOT
    return net, snap.index


@pytest.mark.parametrize("next_offset", [-1, -16, 10**9])
def test_snapshot_response_with_an_offset_outside_the_snapshot_is_dropped(next_offset):
    net, index = leader_streaming_a_snapshot()
    leader = net.peers[1]
    term = leader.node.term
    dropped = leader.node.dropped_messages
    leader.node.step(SnapshotResponse(term=term, sender=3, to=1, snapshot_index=index, next_offset=next_offset))
    assert leader.node.dropped_messages == dropped + 1
    assert leader.handle_ready() == []
    # A valid acknowledgement resumes streaming from its offset.
    leader.node.step(SnapshotResponse(term=term, sender=3, to=1, snapshot_index=index, next_offset=16))
    (resumed,) = leader.handle_ready()
    assert isinstance(resumed, InstallSnapshot) and resumed.offset == 16 and len(resumed.data) <= 16


# -- AppendResponse -------------------------------------------------------------------


@pytest.mark.parametrize("hint_index,hint_term", [(10**9, 0), (10**9, 1), (10**9, 10**9), (-5, 0), (-5, 3)])
def test_rejection_with_a_hint_beyond_the_log_keeps_next_within_the_log(hint_index, hint_term):
    net = Network.of(3, election_ticks=ET)
    net.campaign(1)
    for i in range(3):
        net.propose(1, b"v%d" % i)
    leader = net.peers[1]
    last = leader.node.log.last_index()
    leader.node.step(
        AppendResponse(
            term=leader.node.term, sender=2, to=1, success=False, index=last, hint_index=hint_index, hint_term=hint_term
        )
    )
    pr = leader.node.status().progress[2]
    assert 1 <= pr.next <= last + 1
    net.deliver()
    net.propose(1, b"after")
    assert net.peers[2].app_data() == [b"v0", b"v1", b"v2", b"after"]
    assert leader.node.status().progress[2].match == leader.node.log.last_index()


# -- ReadIndexResponse ----------------------------------------------------------------


def test_read_index_response_only_from_the_leader():
    peer = follower()
    peer.node.step(append(3, 2, []))  # learn leader 2
    peer.handle_ready()
    assert peer.node.leader == 2
    # From a node that is not the leader of this term, or with a negative index.
    assert_dropped_and_intact(peer, ReadIndexResponse(term=2, sender=3, to=1, index=3, context=b"r"))
    assert_dropped_and_intact(peer, ReadIndexResponse(term=2, sender=2, to=1, index=-1, context=b"r"))
    assert peer.read_states == []
    peer.node.step(ReadIndexResponse(term=2, sender=2, to=1, index=3, context=b"r"))
    peer.handle_ready()
    assert peer.read_states == [ReadState(index=3, context=b"r")]


def test_leader_drops_read_index_responses():
    net = Network.of(3, election_ticks=ET)
    net.campaign(1)
    leader = net.peers[1]
    assert leader.node.role is Role.LEADER
    dropped = leader.node.dropped_messages
    leader.node.step(ReadIndexResponse(term=leader.node.term, sender=2, to=1, index=1, context=b"r"))
    assert leader.node.dropped_messages == dropped + 1
    leader.handle_ready()
    assert leader.read_states == []
