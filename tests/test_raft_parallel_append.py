"""A leader replicates while its own write runs (Raft dissertation §10.2.1).

`Ready.may_send_before_persist` lets a driver send a leader's messages before its
write is durable; the leader then counts its own copy only once `advance` reports
it durable. The stateful tests (`crash_during_write`) check safety under crashes
in that window; these pin the rules down one by one.
"""

from __future__ import annotations

from raft import Role
from raft.types import AppendEntries, AppendResponse, VoteRequest, VoteResponse

from raft_harness import Network, Peer, make_config


def _settled(n: int = 3) -> Network:
    net = Network.of(n, election_ticks=10, heartbeat_ticks=2)
    net.campaign(1)
    net.propose(1, b"warm-up")
    return net


def test_only_a_leader_with_a_durable_term_may_send_first() -> None:
    net = Network.of(3, election_ticks=10, heartbeat_ticks=2, pre_vote=False)
    candidate = net.peers[1].node
    candidate.campaign()
    rd = candidate.ready()
    assert rd.must_sync and any(isinstance(m, VoteRequest) for m in rd.messages)
    assert not rd.may_send_before_persist  # the vote for itself must be durable first
    net.peers[1].storage.save(rd.hard_state, rd.entries)
    candidate.advance(rd)
    voter = net.peers[2].node
    voter.step(next(m for m in rd.messages if m.to == 2))
    rd = voter.ready()
    assert any(isinstance(m, VoteResponse) for m in rd.messages)
    assert not rd.may_send_before_persist  # a granted vote promises its durability

    net = _settled()
    leader, follower = net.peers[1].node, net.peers[2].node
    leader.propose(b"x")
    rd = leader.ready()
    assert rd.entries and rd.may_send_before_persist
    net.peers[1].storage.save(rd.hard_state, rd.entries)
    leader.advance(rd)
    follower.step(next(m for m in rd.messages if isinstance(m, AppendEntries) and m.to == 2))
    rd = follower.ready()
    assert any(isinstance(m, AppendResponse) for m in rd.messages)
    assert not rd.may_send_before_persist  # an acknowledgement promises durability


def test_a_leader_counts_its_own_entry_only_once_advance_reports_it_durable() -> None:
    net = _settled()
    leader = net.peers[1].node
    before = leader.status().progress[1].match
    index = leader.propose(b"x")
    assert leader.status().progress[1].match == before  # appended, not durable
    rd = leader.ready()
    net.peers[1].storage.save(rd.hard_state, rd.entries)
    leader.advance(rd)
    assert leader.status().progress[1].match == index


def test_a_single_voter_commits_its_entry_after_the_write_not_with_it() -> None:
    peer = Peer(make_config(1, [1]))
    node = peer.node
    node.campaign()
    peer.handle_ready()
    assert node.role is Role.LEADER
    index = node.propose(b"only")
    rd = node.ready()
    assert [e.index for e in rd.entries] == [index]
    assert index not in [e.index for e in rd.committed_entries]
    assert node.commit_index < index
    peer.storage.save(rd.hard_state, rd.entries)
    node.advance(rd)
    assert node.commit_index == index and node.has_ready()
    rd = node.ready()
    assert [e.data for e in rd.committed_entries] == [b"only"]


def test_followers_acknowledgements_alone_commit_nothing_the_leader_lost() -> None:
    # The leader's messages leave, then it crashes before its write: the
    # followers hold the entry, the leader does not, and a new leader (which has
    # it) is the only one that can commit it.
    net = _settled()
    old = net.peers[1]
    index = old.node.propose(b"in-flight")
    rd = old.node.ready()
    assert rd.may_send_before_persist
    for m in rd.messages:  # sent first...
        net.peers[m.to].node.step(m)
        net.peers[m.to].handle_ready()
    old.restart()  # ...and the write never happened
    assert old.storage.last_index() < index
    net.queue.clear()
    net.isolate(1)
    net.tick(30, only=[2, 3])
    new = next(n for n in (2, 3) if net.peers[n].node.role is Role.LEADER)
    net.propose(new, b"next")
    assert b"in-flight" in net.peers[2].app_data() and b"in-flight" in net.peers[3].app_data()
    net.heal()
    net.tick(5)
    assert old.app_data() == net.peers[new].app_data()
