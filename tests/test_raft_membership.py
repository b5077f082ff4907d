"""Membership changes, learners, leadership transfer, snapshots and compaction."""

from __future__ import annotations

import pytest

from raft import (
    ConfChange,
    ConfChangeType,
    ConfState,
    DropReason,
    InstallSnapshot,
    ProposalDropped,
    Role,
    TimeoutNow,
    VoteRequest,
    VoteResponse,
)
from raft.progress import ProgressState
from raft_harness import Network, Peer, make_config

ADD_VOTER = ConfChangeType.ADD_VOTER
ADD_LEARNER = ConfChangeType.ADD_LEARNER
REMOVE = ConfChangeType.REMOVE_NODE


def joining(nid: int, **kwargs) -> Peer:
    """A brand-new node that knows no configuration: it waits to be contacted."""
    return Peer(make_config(nid, (), **kwargs))


def elected(n: int, leader: int = 1, **kwargs) -> Network:
    net = Network.of(n, **kwargs)
    net.campaign(leader)
    assert net.leader() == leader
    return net


def voters(net: Network, nid: int) -> set[int]:
    return set(net.peers[nid].node.conf_state.voters)


def test_add_voter_to_single_node_cluster():
    net = elected(1)
    net.add(joining(2))
    net.change(1, ADD_VOTER, 2)
    net.tick(3)
    assert voters(net, 1) == voters(net, 2) == {1, 2}
    # The change committed (node 2 acknowledged it) and was applied on both nodes.
    for nid in (1, 2):
        assert net.peers[nid].conf_changes[-1].voters == {1, 2}
    # From now on a commit needs node 2.
    net.isolate(2)
    net.propose(1, b"needs two")
    assert net.peers[1].node.commit_index < net.peers[1].node.log.last_index()
    net.heal()
    net.tick(2)
    assert net.peers[2].app_data() == [b"needs two"]


def test_add_voter_to_three_node_cluster():
    net = elected(3)
    net.propose(1, b"before")
    net.add(joining(4))
    net.change(1, ADD_VOTER, 4)
    net.tick(3)
    for nid in range(1, 5):
        assert voters(net, nid) == {1, 2, 3, 4}
    net.propose(1, b"after")
    assert net.peers[4].app_data() == [b"before", b"after"]
    # Quorum is now 3 of 4: with two nodes cut off nothing commits.
    net.isolate(3)
    net.isolate(4)
    net.propose(1, b"stuck")
    assert b"stuck" not in net.peers[1].app_data()


def test_add_learner_and_promote_once_caught_up():
    net = elected(3)
    for i in range(5):
        net.propose(1, b"e%d" % i)
    net.add(joining(4))
    net.isolate(4)
    net.change(1, ADD_LEARNER, 4)
    assert net.peers[1].node.conf_state.learners == {4}
    # Not caught up: promotion is refused explicitly.
    with pytest.raises(ProposalDropped) as info:
        net.peers[1].node.propose_conf_change(ConfChange(ADD_VOTER, 4))
    assert info.value.reason is DropReason.NOT_CAUGHT_UP
    net.heal()
    net.tick(3)
    assert net.peers[4].app_data() == [b"e%d" % i for i in range(5)]
    assert net.peers[4].node.conf_state.learners == {4}
    net.change(1, ADD_VOTER, 4)
    net.tick(2)
    for nid in range(1, 5):
        assert voters(net, nid) == {1, 2, 3, 4}
        assert not net.peers[nid].node.conf_state.learners


def test_learner_never_votes_and_never_counts_toward_commit():
    net = Network({1: Peer(make_config(1, (1, 2))), 2: Peer(make_config(2, (1, 2)))})
    net.campaign(1)
    net.add(joining(3))
    net.change(1, ADD_LEARNER, 3)
    net.tick(2)
    assert net.peers[3].node.conf_state.learners == {3}
    # The learner holds the entry but the other voter does not: no commit.
    net.isolate(2)
    net.propose(1, b"x")
    assert net.peers[3].node.log.last_index() == net.peers[1].node.log.last_index()
    assert b"x" not in net.peers[1].app_data()
    # A learner never campaigns, however long it waits...
    net.isolate(3)
    net.tick(100, only=[3])
    assert net.peers[3].node.role is Role.FOLLOWER
    assert not [m for m in net.delivered if m.sender == 3 and type(m).__name__ == "VoteRequest"]
    # ...and its vote never counts: a candidate asks only its voters, and a granted
    # vote from a learner does not make it leader.
    net.heal()
    candidate = net.peers[2].node
    candidate.campaign()
    requests = [m for m in net.peers[2].handle_ready() if isinstance(m, VoteRequest)]
    assert requests and {m.to for m in requests} == {1}
    candidate.step(VoteResponse(term=requests[0].term, sender=3, to=2, granted=True, pre_vote=requests[0].pre_vote))
    net.peers[2].handle_ready()
    assert candidate.role is not Role.LEADER


def test_promoted_learner_that_missed_its_promotion_can_still_elect_the_leader():
    # Leader 1 (alone) promotes learner 2 and is cut off before 2 hears of it; check-
    # quorum then deposes it. Its configuration {1, 2} needs 2's vote while 2 still
    # believes it is a learner: 2 must answer, or no leader can ever be elected.
    net = elected(1)
    net.add(joining(2))
    net.change(1, ADD_LEARNER, 2)
    net.tick(2)
    net.isolate(1)
    net.change(1, ADD_VOTER, 2)
    assert voters(net, 1) == {1, 2} and net.peers[2].node.conf_state.learners == {2}
    net.tick(30)
    assert net.peers[1].node.role is not Role.LEADER
    net.heal()
    net.tick(60)
    leader = net.leader()
    net.propose(leader, b"after promotion")
    assert net.peers[1].app_data()[-1:] == net.peers[2].app_data()[-1:] == [b"after promotion"]


def test_remove_follower():
    net = elected(3)
    net.change(1, REMOVE, 3)
    net.tick(2)
    assert voters(net, 1) == voters(net, 2) == {1, 2}
    net.isolate(3)
    net.propose(1, b"two is enough")
    assert net.peers[2].app_data() == [b"two is enough"]
    # The removed node does not disrupt the cluster when it times out.
    net.heal()
    term = net.peers[1].node.term
    net.tick(60)
    assert net.peers[1].node.role is Role.LEADER and net.peers[1].node.term == term


def test_remove_leader_steps_down_after_commit_and_hands_off():
    net = elected(3)
    net.propose(1, b"x")
    net.peers[1].node.propose_conf_change(ConfChange(REMOVE, 1))
    # Until the change commits, the removed leader keeps leading.
    assert net.peers[1].node.role is Role.LEADER
    net.deliver()
    assert net.peers[1].node.role is Role.FOLLOWER
    # It handed off with TimeoutNow: a new leader exists without any tick.
    assert any(isinstance(m, TimeoutNow) and m.sender == 1 for m in net.delivered)
    new_leader = net.leader()
    assert new_leader in (2, 3)
    assert voters(net, new_leader) == {2, 3}
    net.propose(new_leader, b"y")
    assert net.peers[2].app_data() == net.peers[3].app_data() == [b"x", b"y"]
    # The old leader stays quiet: it is no longer a voter.
    net.tick(50, only=[1])
    assert net.peers[1].node.role is Role.FOLLOWER


def test_replace_leader_add_new_then_remove_old():
    net = elected(3)
    net.add(joining(4))
    net.change(1, ADD_VOTER, 4)
    net.tick(2)
    net.change(1, REMOVE, 1)
    net.tick(5)
    leader = net.leader()
    assert leader in (2, 3, 4)
    assert voters(net, leader) == {2, 3, 4}
    net.propose(leader, b"after replacement")
    for nid in (2, 3, 4):
        assert net.peers[nid].app_data() == [b"after replacement"]


def test_second_change_while_one_pending_is_refused():
    net = elected(3)
    net.isolate(2)
    net.isolate(3)
    net.add(joining(4))
    net.change(1, ADD_LEARNER, 4)
    with pytest.raises(ProposalDropped) as info:
        net.peers[1].node.propose_conf_change(ConfChange(ADD_LEARNER, 5))
    assert info.value.reason is DropReason.CHANGE_PENDING
    assert net.peers[1].node.status().pending_conf_index > 0


def test_new_leader_accepts_a_change_only_after_committing_its_term():
    net = Network.of(3)
    net.isolate(2)
    net.isolate(3)
    net.campaign(1)
    net.heal()
    net.peers[1].node.campaign()  # leader after the votes are delivered...
    net.deliver(max_messages=4)  # ...but the no-op of its term is not acknowledged
    node = net.peers[1].node
    if node.role is Role.LEADER and node.commit_index < node.log.last_index():
        with pytest.raises(ProposalDropped) as info:
            node.propose_conf_change(ConfChange(REMOVE, 3))
        assert info.value.reason is DropReason.LEADER_NOT_READY
    net.deliver()
    leader = net.leader()
    net.change(leader, REMOVE, 3 if leader != 3 else 2)


def test_invalid_changes_are_refused():
    net = elected(3)
    node = net.peers[1].node
    for change in (ConfChange(ADD_VOTER, 2), ConfChange(ADD_LEARNER, 3), ConfChange(REMOVE, 9)):
        with pytest.raises(ProposalDropped) as info:
            node.propose_conf_change(change)
        assert info.value.reason is DropReason.INVALID_CHANGE
    with pytest.raises(ProposalDropped) as info:
        net.peers[2].node.propose_conf_change(ConfChange(REMOVE, 3))
    assert info.value.reason is DropReason.NOT_LEADER and info.value.leader_hint == 1


def test_removing_the_last_voter_is_refused():
    net = elected(1)
    with pytest.raises(ProposalDropped) as info:
        net.peers[1].node.propose_conf_change(ConfChange(REMOVE, 1))
    assert info.value.reason is DropReason.INVALID_CHANGE


def test_lagging_follower_catches_up_through_snapshot_then_entries():
    net = elected(3)
    net.isolate(3)
    for i in range(30):
        net.propose(1, b"v%d" % i)
    snap = net.peers[1].compact()
    assert net.peers[1].storage.first_index() == snap.index + 1
    net.heal()
    net.tick(3)
    follower = net.peers[3]
    assert follower.snapshots_installed == 1
    assert follower.storage.snapshot().index == snap.index
    # Then entries after the snapshot.
    net.propose(1, b"after snapshot")
    assert follower.app_data() == [b"v%d" % i for i in range(30)] + [b"after snapshot"]
    assert follower.node.log.last_index() == net.peers[1].node.log.last_index()
    assert net.peers[1].node.status().progress[3].state is ProgressState.REPLICATE


def test_snapshot_sent_in_chunks_survives_a_lost_chunk():
    net = elected(3, max_snapshot_chunk_bytes=64)
    net.isolate(3)
    for i in range(40):
        net.propose(1, b"payload-%02d" % i)
    snap = net.peers[1].compact()
    chunks_needed = -(-len(snap.data) // 64)
    assert chunks_needed >= 4
    lost = []

    def lose_third_chunk(m) -> bool:
        if isinstance(m, InstallSnapshot) and m.offset == 2 * 64 and not lost:
            lost.append(m)
            return True
        return False

    net.heal()
    net.drop_if(lose_third_chunk)
    net.tick(10)
    assert lost, "the third chunk was never sent"
    chunks = [m for m in net.delivered if isinstance(m, InstallSnapshot) and m.to == 3]
    assert all(len(m.data) <= 64 for m in chunks)
    assert net.peers[3].snapshots_installed == 1
    assert net.peers[3].app_data() == [b"payload-%02d" % i for i in range(40)]


def test_compaction_requires_applied_index():
    net = elected(3)
    net.propose(1, b"x")
    node = net.peers[1].node
    with pytest.raises(ProposalDropped) as info:
        node.create_snapshot(node.applied_index + 1, b"")
    assert info.value.reason is DropReason.NOT_APPLIED
    snap = node.create_snapshot(node.applied_index, b"state")
    assert snap.metadata.conf_state.voters == {1, 2, 3}
    assert snap.term == node.term


def test_joined_node_cannot_snapshot_before_it_knows_the_configuration():
    # Node 4 learns the configuration from its own ADD_LEARNER entry (index 3). The
    # voters in force before it were never sent to it, and a snapshot claiming
    # there were none would be refused by every follower.
    net = elected(3)
    net.propose(1, b"x")
    net.add(joining(4))
    index = net.change(1, ADD_LEARNER, 4)
    node = net.peers[4].node
    assert node.applied_index == index and node.log.first_index() == 1
    for before in range(1, index):
        with pytest.raises(ProposalDropped) as info:
            node.create_snapshot(before, b"")
        assert info.value.reason is DropReason.CONF_UNKNOWN
    snap = node.create_snapshot(index, b"")
    assert snap.metadata.conf_state == ConfState(voters={1, 2, 3}, learners={4})


def test_transfer_leadership_to_up_to_date_follower():
    net = elected(3)
    net.propose(1, b"x")
    term = net.peers[1].node.term
    net.peers[1].node.transfer_leadership(2)
    net.deliver()
    assert net.leader() == 2
    assert net.peers[2].node.term == term + 1
    net.propose(2, b"y")
    assert net.peers[1].app_data() == [b"x", b"y"]


def test_transfer_leadership_to_lagging_follower():
    net = elected(3)
    net.isolate(3)
    for i in range(10):
        net.propose(1, b"e%d" % i)
    net.heal()
    node = net.peers[1].node
    node.transfer_leadership(3)
    # While the transfer runs, proposals are refused explicitly.
    with pytest.raises(ProposalDropped) as info:
        node.propose(b"refused")
    assert info.value.reason is DropReason.TRANSFER_IN_PROGRESS
    net.deliver()
    assert net.leader() == 3
    assert net.peers[3].app_data() == [b"e%d" % i for i in range(10)]


def test_transfer_is_abandoned_after_an_election_timeout():
    net = elected(3)
    net.isolate(3)
    node = net.peers[1].node
    node.transfer_leadership(3)
    assert node.status().lead_transferee == 3
    net.tick(net.peers[1].config.election_ticks)
    assert node.role is Role.LEADER
    assert node.status().lead_transferee == 0
    node.propose(b"accepted again")


def test_transfer_to_non_member_or_from_follower_is_refused():
    net = elected(3)
    with pytest.raises(ProposalDropped) as info:
        net.peers[1].node.transfer_leadership(9)
    assert info.value.reason is DropReason.INVALID_TARGET
    with pytest.raises(ProposalDropped) as info:
        net.peers[2].node.transfer_leadership(3)
    assert info.value.reason is DropReason.NOT_LEADER


def test_transfer_target_campaigns_even_with_pre_vote_and_lease():
    net = elected(3, pre_vote=True, check_quorum=True)
    net.peers[1].node.transfer_leadership(3)
    net.deliver()
    assert net.leader() == 3


def test_status_shows_configuration_and_progress():
    net = elected(3)
    net.add(joining(4))
    net.change(1, ADD_LEARNER, 4)
    net.tick(2)
    status = net.peers[1].node.status()
    assert status.conf_state.voters == {1, 2, 3}
    assert status.conf_state.learners == {4}
    assert set(status.progress) == {1, 2, 3, 4}
    assert status.progress[4].is_learner
    last = net.peers[1].node.log.last_index()
    for nid in (2, 3, 4):
        assert status.progress[nid].match == last
        assert status.progress[nid].next == last + 1
        assert status.progress[nid].state is ProgressState.REPLICATE
        assert status.progress[nid].inflight == 0
    assert net.peers[2].node.status().progress == {}


def test_restart_recovers_configuration_from_log_and_snapshot():
    net = elected(3)
    net.add(joining(4))
    net.change(1, ADD_VOTER, 4)
    net.tick(2)
    net.peers[4].restart()
    assert voters(net, 4) == {1, 2, 3, 4}
    net.peers[1].compact()
    net.peers[1].restart()
    assert voters(net, 1) == {1, 2, 3, 4}


def test_leader_that_removed_itself_and_crashed_still_lets_the_cluster_recover():
    # Node 1 leads {1, 2}, appends its own removal, and crashes before node 2 hears
    # of it. Node 1 now holds the only up-to-date log, so node 2 cannot win its vote:
    # node 1 must still campaign until its removal commits.
    net = Network({1: Peer(make_config(1, (1, 2))), 2: Peer(make_config(2, (1, 2)))})
    net.campaign(1)
    net.isolate(2)
    net.change(1, REMOVE, 1)
    assert voters(net, 1) == {2} and voters(net, 2) == {1, 2}
    net.peers[1].restart()
    net.heal()
    net.tick(100)
    assert voters(net, 2) == {2}
    assert net.leader() == 2
    net.propose(2, b"alone")
    assert net.peers[2].app_data() == [b"alone"]
