"""Malformed remote input: the core drops it (counting it in `dropped_messages`),
keeps its log and state intact, and goes on serving the next valid message.

Every message here is one a correct peer never sends; the codec accepts all of them
(they are well-typed), so the core itself must refuse them.
"""

from __future__ import annotations

import logging
import random

import cbor2
import pytest

from raft import (
    NONE,
    AppendEntries,
    AppendResponse,
    ConfChange,
    ConfChangeType,
    Config,
    ConfigError,
    ConfState,
    Entry,
    EntryType,
    HardState,
    InstallSnapshot,
    MemoryStorage,
    ReadIndexResponse,
    ReadState,
    Role,
    SnapshotMetadata,
    SnapshotResponse,
    TimeoutNow,
    VoteRequest,
)
from raft import codec
from raft.log import RaftLog
from raft.progress import ProgressState

from raft_harness import Network, Peer, log_of, next_conf_state

ET = 10


def follower(terms=(1, 1, 2), term: int = 2, commit: int = 1, entries=(), **config) -> Peer:
    """Node 1 of {1, 2, 3}, a follower of leader 2 in `term` holding `terms` (then
    `entries`); `config` overrides the `Config` fields."""
    storage = MemoryStorage()
    stored = [Entry(term=t, index=i) for i, t in enumerate(terms, 1)] + list(entries)
    storage.save(HardState(term=term, commit=commit), stored)
    config = {"id": 1, "voters": (1, 2, 3), "election_ticks": ET, "seed": 1, **config}
    peer = Peer(Config(**config), storage)
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
    peer.node.read_index(b"r")
    peer.handle_ready()
    # From a node that is not the leader of this term, or with a negative index.
    assert_dropped_and_intact(peer, ReadIndexResponse(term=2, sender=3, to=1, index=3, context=b"r"))
    assert_dropped_and_intact(peer, ReadIndexResponse(term=2, sender=2, to=1, index=-1, context=b"r"))
    assert peer.read_states == []
    peer.node.step(ReadIndexResponse(term=2, sender=2, to=1, index=3, context=b"r"))
    peer.handle_ready()
    assert peer.read_states == [ReadState(index=3, context=b"r")]


def test_read_index_response_to_no_forwarded_read_is_dropped():
    """An answer must answer a read this node forwarded in this term: one meant for
    an earlier incarnation of the node (still in flight when it restarted), a
    duplicate, or one from an earlier term never becomes a ReadState."""
    peer = follower()
    # No leader known yet (e.g. just restarted): nobody's answer is taken.
    assert peer.node.leader == NONE
    assert_dropped_and_intact(peer, ReadIndexResponse(term=2, sender=2, to=1, index=1, context=b"old"))
    peer.node.step(append(3, 2, []))
    peer.handle_ready()
    # Never asked: e.g. the answer to a read of the node before it restarted.
    assert_dropped_and_intact(peer, ReadIndexResponse(term=2, sender=2, to=1, index=1, context=b"old"))
    peer.node.read_index(b"new")
    peer.handle_ready()
    assert_dropped_and_intact(peer, ReadIndexResponse(term=2, sender=2, to=1, index=1, context=b"old"))
    peer.node.step(ReadIndexResponse(term=2, sender=2, to=1, index=3, context=b"new"))
    peer.handle_ready()
    assert peer.read_states == [ReadState(index=3, context=b"new")]
    # Answered once: a second answer (to a request sent twice) is a duplicate.
    assert_dropped_and_intact(peer, ReadIndexResponse(term=2, sender=2, to=1, index=3, context=b"new"))
    # A new term forgets what was forwarded in the old one.
    peer.node.read_index(b"before-election")
    peer.handle_ready()
    peer.node.step(append(3, 2, [], term=3))
    peer.handle_ready()
    assert peer.node.term == 3 and peer.node.leader == 2
    assert_dropped_and_intact(peer, ReadIndexResponse(term=3, sender=2, to=1, index=3, context=b"before-election"))
    assert peer.read_states == [ReadState(index=3, context=b"new")]


def test_forwarded_reads_a_follower_remembers_are_bounded():
    """A read whose answer was lost is remembered only until newer reads push it
    out (memory stays bounded); asking again registers it anew."""
    from raft.node import _MAX_FORWARDED_READS

    peer = follower()
    peer.node.step(append(3, 2, []))
    peer.handle_ready()
    for n in range(_MAX_FORWARDED_READS + 1):
        peer.node.read_index(b"r%d" % n)
    peer.handle_ready()
    assert_dropped_and_intact(peer, ReadIndexResponse(term=2, sender=2, to=1, index=3, context=b"r0"))
    peer.node.read_index(b"r0")  # the caller asks again
    peer.handle_ready()
    last = b"r%d" % _MAX_FORWARDED_READS
    for context in (b"r0", last):
        peer.node.step(ReadIndexResponse(term=2, sender=2, to=1, index=3, context=context))
    peer.handle_ready()
    assert peer.read_states == [ReadState(index=3, context=b"r0"), ReadState(index=3, context=last)]


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


# -- TimeoutNow -----------------------------------------------------------------------


def following_leader_2(peer: Peer) -> Peer:
    """`peer` after an empty AppendEntries from leader 2 of its term."""
    node = peer.node
    peer.node.step(append(node.log.last_index(), node.log.last_term(), [], term=node.term))
    peer.handle_ready()
    assert node.leader == 2 and node.role is Role.FOLLOWER
    return peer


def assert_campaigns_for_a_transfer(peer: Peer, term: int) -> None:
    out = peer.handle_ready()
    assert peer.node.role is Role.CANDIDATE and peer.node.term == term
    assert sorted(m.to for m in out if isinstance(m, VoteRequest) and m.transfer and not m.pre_vote) == [2, 3]


def test_timeout_now_is_obeyed_only_from_the_leader_of_the_term():
    peer = following_leader_2(follower())
    # Node 3 is not the leader of term 2: only a leader hands leadership over.
    assert_dropped_and_intact(peer, TimeoutNow(term=2, sender=3, to=1))
    assert peer.node.leader == 2
    assert_valid_append_still_works(peer)
    # From the leader itself it starts an election at once, skipping pre-vote.
    peer.node.step(TimeoutNow(term=2, sender=2, to=1))
    assert_campaigns_for_a_transfer(peer, term=3)


def test_timeout_now_is_dropped_while_no_leader_is_known():
    peer = follower()  # (re)started: it has not heard from the leader of term 2 yet
    assert peer.node.leader == 0
    assert_dropped_and_intact(peer, TimeoutNow(term=2, sender=2, to=1))
    assert_valid_append_still_works(peer)


def test_timeout_now_is_dropped_by_a_pre_candidate():
    peer = following_leader_2(follower())
    for _ in range(2 * ET):
        peer.node.tick()
    assert peer.node.role is Role.PRE_CANDIDATE and peer.node.leader == 0
    peer.handle_ready()
    assert_dropped_and_intact(peer, TimeoutNow(term=2, sender=2, to=1))
    assert peer.node.role is Role.PRE_CANDIDATE and peer.node.term == 2
    assert_valid_append_still_works(peer)  # the leader's traffic still makes it follow


def test_timeout_now_from_a_higher_term_does_not_start_an_election():
    peer = following_leader_2(follower())
    dropped = peer.node.dropped_messages
    peer.node.step(TimeoutNow(term=3, sender=3, to=1))
    # A higher term is learned (rule 1), but nobody is known to lead it: no election.
    assert peer.node.dropped_messages == dropped + 1
    assert peer.node.term == 3 and peer.node.role is Role.FOLLOWER and peer.node.leader == 0
    assert not any(isinstance(m, VoteRequest) for m in peer.handle_ready())
    peer.node.step(append(3, 2, [Entry(term=3, index=4, data=b"ok")], term=3, commit=4))
    peer.handle_ready()
    assert peer.node.leader == 2 and peer.node.commit_index == 4 and peer.applied[-1].data == b"ok"


def test_learner_ignores_timeout_now():
    peer = following_leader_2(follower(voters=(2, 3), learners=(1,)))
    assert_dropped_and_intact(peer, TimeoutNow(term=2, sender=2, to=1))
    assert_valid_append_still_works(peer)


def test_node_whose_removal_is_in_its_log_ignores_timeout_now():
    # Its removal (index 4) is not committed yet: it may still campaign on its own
    # when the election times out, but a transfer is never meant for it.
    before = ConfState(voters={1, 2, 3})
    removal = codec.encode_conf_change_entry(
        ConfChange(ConfChangeType.REMOVE_NODE, 1), next_conf_state(before, ConfChange(ConfChangeType.REMOVE_NODE, 1))
    )
    peer = following_leader_2(follower(commit=3, entries=[Entry(term=2, index=4, type=EntryType.CONF_CHANGE, data=removal)]))
    assert peer.node.conf_state.voters == {2, 3}
    assert_dropped_and_intact(peer, TimeoutNow(term=2, sender=2, to=1))
    assert_valid_append_still_works(peer)


def test_a_stray_timeout_now_leaves_the_cluster_serving():
    net = Network.of(3, election_ticks=ET)
    net.campaign(1)
    term = net.peers[1].node.term
    net.peers[2].node.step(TimeoutNow(term=term, sender=3, to=2))
    net.deliver()
    assert net.leader() == 1 and all(p.node.term == term for p in net.peers.values())
    net.propose(1, b"still-serving")
    assert all(p.app_data() == [b"still-serving"] for p in net.peers.values())
    # A real transfer still works.
    net.peers[1].node.transfer_leadership(2)
    net.deliver()
    assert net.leader() == 2 and net.peers[2].node.term == term + 1


# -- Snapshot transfers ---------------------------------------------------------------


def snapshot_payload(fill: bytes, size: int = 40) -> bytes:
    """A snapshot payload of `size` bytes the harness can apply: a CBOR list of one
    byte string (whose header takes one more byte beyond 23 bytes)."""
    data = cbor2.dumps([fill * (size - (2 if size <= 25 else 3))])
    assert len(data) == size
    return data


def chunks(data: bytes, size: int = 16, index: int = 10, term: int = 2, sender: int = 2, conf=None) -> list:
    """`data` as the InstallSnapshot chunks a leader of `term` sends."""
    meta = SnapshotMetadata(index=index, term=2, conf_state=conf or ConfState(voters={1, 2, 3}))
    return [
        InstallSnapshot(
            term=term, sender=sender, to=1, metadata=meta, offset=o, data=data[o : o + size], done=o + size >= len(data)
        )
        for o in range(0, len(data), size)
    ]


def resume_from(out, sender: int = 2, term: int = 2) -> int:
    (response,) = out
    assert isinstance(response, SnapshotResponse) and response.to == sender and response.term == term
    return response.next_offset


def test_max_snapshot_bytes_must_be_positive():
    assert Config(id=1).max_snapshot_bytes == 1 << 30
    for bad in (0, -1, 1.5):
        with pytest.raises(ConfigError):
            Config(id=1, max_snapshot_bytes=bad)


def test_snapshot_larger_than_max_snapshot_bytes_is_dropped(caplog):
    peer = follower(max_snapshot_bytes=32)
    first, second, third = chunks(snapshot_payload(b"x", 40))
    peer.node.step(first)
    assert resume_from(peer.handle_ready()) == 16
    peer.node.step(second)
    assert resume_from(peer.handle_ready()) == 32
    # The third chunk would take the transfer to 40 bytes: the transfer is given up.
    with caplog.at_level(logging.WARNING, logger="raft.node"):
        assert_dropped_and_intact(peer, third)
    assert "max_snapshot_bytes" in caplog.text
    assert peer.snapshots_installed == 0
    # The bytes received so far were let go: a resent chunk restarts the transfer.
    peer.node.step(second)
    assert resume_from(peer.handle_ready()) == 0
    # The node keeps serving: a snapshot within the bound installs, entries follow.
    for c in chunks(snapshot_payload(b"y", 32)):
        peer.node.step(c)
    out = peer.handle_ready()
    assert out[-1] == AppendResponse(term=2, sender=1, to=2, success=True, index=10)
    assert peer.snapshots_installed == 1 and peer.app_data() == [b"y" * 29]
    assert_valid_append_still_works(peer)


def test_snapshot_chunks_of_another_snapshot_are_never_spliced():
    peer = follower()
    old = chunks(snapshot_payload(b"a"), index=10)
    new = chunks(snapshot_payload(b"b"), index=11)
    peer.node.step(old[0])
    assert resume_from(peer.handle_ready()) == 16
    # The next offset, but of another snapshot: it starts over from byte 0.
    peer.node.step(new[1])
    assert resume_from(peer.handle_ready()) == 0
    peer.node.step(new[2])
    assert resume_from(peer.handle_ready()) == 0
    assert peer.snapshots_installed == 0
    for c in new:
        peer.node.step(c)
    peer.handle_ready()
    assert peer.snapshots_installed == 1 and peer.app_data() == [b"b" * 37]
    assert peer.node.commit_index == 11


def test_snapshot_resent_by_a_new_leader_is_never_spliced_with_the_old_leaders_bytes():
    # Same metadata, but the new leader encoded the payload differently.
    peer = follower()
    from_2 = chunks(snapshot_payload(b"a"))
    from_3 = chunks(snapshot_payload(b"b"), term=3, sender=3)
    peer.node.step(from_2[0])
    assert resume_from(peer.handle_ready()) == 16
    peer.node.step(from_3[1])  # leader 3 of term 3 continues at byte 16
    assert resume_from(peer.handle_ready(), sender=3, term=3) == 0
    peer.node.step(from_3[2])
    assert resume_from(peer.handle_ready(), sender=3, term=3) == 0
    assert peer.snapshots_installed == 0
    for c in from_3:
        peer.node.step(c)
    peer.handle_ready()
    assert peer.snapshots_installed == 1 and peer.app_data() == [b"b" * 37]


def test_snapshot_chunk_out_of_order_asks_to_resume():
    peer = follower()
    first, second, third = chunks(snapshot_payload(b"a"))
    peer.node.step(second)  # the first chunk was lost
    assert resume_from(peer.handle_ready()) == 0
    peer.node.step(first)
    assert resume_from(peer.handle_ready()) == 16
    peer.node.step(third)  # the second chunk was lost
    assert resume_from(peer.handle_ready()) == 16
    peer.node.step(second)
    peer.node.step(third)
    peer.handle_ready()
    assert peer.snapshots_installed == 1 and peer.app_data() == [b"a" * 37]


@pytest.mark.parametrize(
    "conf",
    [ConfState(), ConfState(learners={1}), ConfState(learners={1, 2, 3})],
    ids=["empty", "only this learner", "only learners"],
)
def test_snapshot_without_voters_is_refused(conf):
    # Installed, it would leave a configuration in which nobody can be elected.
    peer = follower()
    for c in chunks(snapshot_payload(b"a", 16), conf=conf):
        assert_dropped_and_intact(peer, c)
    assert peer.snapshots_installed == 0 and peer.node.conf_state.voters == {1, 2, 3}
    # A valid snapshot still installs, and the node can still campaign.
    for c in chunks(snapshot_payload(b"b", 16)):
        peer.node.step(c)
    peer.handle_ready()
    assert peer.snapshots_installed == 1 and peer.node.commit_index == 10
    for _ in range(2 * ET):
        peer.node.tick()
    assert peer.node.role is Role.PRE_CANDIDATE
    assert sorted(m.to for m in peer.handle_ready() if isinstance(m, VoteRequest)) == [2, 3]
