"""The message-saving options: `Config.eager_commit=False` and `Config.batch_reads`.

Both trade a little follower/read latency for fewer messages; neither may change
what is committed or make a read stale.
"""

from __future__ import annotations

from raft import ReadState
from raft.types import AppendEntries, AppendResponse, Heartbeat, HeartbeatResponse

from raft_harness import Network

ET = 10


def _cluster(**options) -> Network:
    net = Network.of(5, election_ticks=ET, heartbeat_ticks=2, **options)
    net.campaign(1)
    net.propose(1, b"warm-up")  # the no-op and one write, fully settled
    net.tick(2)  # a heartbeat round: everyone learns the commit index
    return net


def _messages_for_one_write(net: Network) -> list:
    before = len(net.delivered)
    net.propose(1, b"x")
    return net.delivered[before:]


def test_eager_commit_tells_followers_at_once_with_an_extra_round():
    net = _cluster(eager_commit=True)
    sent = _messages_for_one_write(net)
    index = net.peers[1].node.commit_index
    assert all(p.node.commit_index == index for p in net.peers.values())
    appends = [m for m in sent if isinstance(m, AppendEntries)]
    assert len(appends) == 8  # the entry to 4 followers, then the commit to 4
    assert len([m for m in sent if isinstance(m, AppendResponse)]) == 8


def test_lazy_commit_halves_messages_and_followers_learn_at_the_next_heartbeat():
    net = _cluster(eager_commit=False)
    sent = _messages_for_one_write(net)
    leader = net.peers[1].node
    index = leader.commit_index
    assert [p.node.commit_index for p in net.peers.values()] == [index] + [index - 1] * 4
    assert [type(m).__name__ for m in sent].count("AppendEntries") == 4
    assert [type(m).__name__ for m in sent].count("AppendResponse") == 4
    assert net.peers[1].app_data()[-1] == b"x"  # applied (and answerable) on the leader
    net.tick(2)
    assert all(p.node.commit_index == index for p in net.peers.values())
    assert all(p.app_data() == net.peers[1].app_data() for p in net.peers.values())


def test_lazy_commit_a_new_write_carries_the_previous_commit():
    net = _cluster(eager_commit=False)
    net.propose(1, b"a")
    first = net.peers[1].node.commit_index
    net.propose(1, b"b")
    # The AppendEntries of "b" carried the commit of "a".
    assert all(p.node.commit_index >= first for p in net.peers.values())


def test_batched_reads_share_the_next_heartbeat_round():
    net = _cluster(batch_reads=True)
    leader = net.peers[1]
    commit = leader.node.commit_index
    leader.node.read_index(b"r1")
    leader.node.read_index(b"r2")
    assert net.deliver() == 0  # no round of its own
    assert leader.read_states == []
    before = len(net.delivered)
    net.tick(2)  # the heartbeat carries the newest pending context
    sent = net.delivered[before:]
    beats = [m for m in sent if isinstance(m, Heartbeat)]
    assert len(beats) == 4 and all(m.context == b"r2" for m in beats)
    assert len([m for m in sent if isinstance(m, HeartbeatResponse)]) == 4
    assert leader.read_states == [ReadState(index=commit, context=b"r1"), ReadState(index=commit, context=b"r2")]


def test_unbatched_reads_start_a_round_each():
    net = _cluster(batch_reads=False)
    leader = net.peers[1]
    leader.node.read_index(b"r1")
    assert net.deliver() == 8
    assert [rs.context for rs in leader.read_states] == [b"r1"]


def test_batched_read_from_a_follower_is_confirmed_by_the_leaders_heartbeat():
    net = _cluster(batch_reads=True, eager_commit=False)
    net.propose(1, b"v")
    commit = net.peers[1].node.commit_index
    follower = net.peers[3]
    follower.node.read_index(b"f")
    net.deliver()
    assert follower.read_states == []
    net.tick(2)
    assert follower.read_states == [ReadState(index=commit, context=b"f")]
    # ...and by then the follower has learned the commit, so it can serve the read.
    assert follower.node.commit_index >= commit and follower.app_data()[-1] == b"v"


def test_batched_read_is_not_confirmed_by_a_minority():
    net = _cluster(batch_reads=True)
    for other in (3, 4, 5):
        net.cut(1, other)
    net.peers[1].node.read_index(b"r")
    net.tick(2)
    assert net.peers[1].read_states == []
    net.heal()
    net.tick(2)
    assert [rs.context for rs in net.peers[1].read_states] == [b"r"]
