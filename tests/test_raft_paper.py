"""The Raft paper's §5 scenarios (the ones etcd-raft, raft-rs and dragonboat port),
written as black-box tests of `RawNode`.

Each test drives a node only through its public surface: `tick`, `campaign`,
`propose`, `read_index`, `step` with hand-built messages, `ready`/`advance` (through
`Peer.handle_ready`), and `status`. Section references are to Ongaro & Ousterhout,
"In Search of an Understandable Consensus Algorithm" (extended version).
"""

from __future__ import annotations

import collections
from typing import Iterable

import pytest

from raft import (
    AppendEntries,
    AppendResponse,
    Config,
    DropReason,
    Entry,
    HardState,
    Heartbeat,
    HeartbeatResponse,
    MemoryStorage,
    ProposalDropped,
    ReadIndexRequest,
    ReadState,
    Role,
    VoteRequest,
    VoteResponse,
)
from raft import codec

from raft_harness import Network, Peer, log_of

ET = 10
"""Base election timeout (ticks) used throughout unless a test says otherwise."""


# -------------------------------------------------------------------------------------
# Helpers
# -------------------------------------------------------------------------------------


def entries_of(terms: Iterable[int], start: int = 1) -> list[Entry]:
    """Entries with the given terms at consecutive indexes starting at `start`."""
    return [Entry(term=t, index=i) for i, t in enumerate(terms, start)]


def make_peer(
    nid: int = 1,
    voters: Iterable[int] = (1, 2, 3),
    *,
    terms: Iterable[int] = (),
    hard_state: HardState | None = None,
    **config_kwargs,
) -> Peer:
    """A node whose storage already holds a log with the given entry terms."""
    storage = MemoryStorage()
    ents = entries_of(terms)
    if ents:
        storage.save(None, ents)
    if hard_state is not None:
        storage.set_hard_state(hard_state)
    config_kwargs.setdefault("seed", nid)
    config_kwargs.setdefault("election_ticks", ET)
    return Peer(Config(id=nid, voters=tuple(voters), **config_kwargs), storage)


def others(peer: Peer) -> list[int]:
    return sorted(peer.node.conf_state.voters - {peer.id})


def of_type(messages: Iterable, cls: type) -> list:
    return [m for m in messages if type(m) is cls]


def grant(peer: Peer, sender: int, pre_vote: bool) -> None:
    """Step a granted (pre-)vote from `sender` into a (pre-)candidate."""
    term = peer.node.term + 1 if pre_vote else peer.node.term
    peer.node.step(VoteResponse(term=term, sender=sender, to=peer.id, granted=True, pre_vote=pre_vote))


def reject(peer: Peer, sender: int, pre_vote: bool) -> None:
    # A voter rejects with its own term, which is the candidate's term here.
    peer.node.step(VoteResponse(term=peer.node.term, sender=sender, to=peer.id, granted=False, pre_vote=pre_vote))


def elect(peer: Peer, voters_granting: Iterable[int] | None = None) -> list:
    """Make `peer` leader by campaigning and stepping granted votes into it.

    Returns the messages it emitted after becoming leader.
    """
    granting = list(voters_granting) if voters_granting is not None else others(peer)
    peer.node.campaign()
    if peer.node.role is Role.PRE_CANDIDATE:
        for v in granting:
            if peer.node.role is Role.PRE_CANDIDATE:
                grant(peer, v, pre_vote=True)
    if peer.node.role is Role.CANDIDATE:
        for v in granting:
            if peer.node.role is Role.CANDIDATE:
                grant(peer, v, pre_vote=False)
    assert peer.node.role is Role.LEADER
    return peer.handle_ready()


def ack(peer: Peer, sender: int, index: int) -> None:
    peer.node.step(AppendResponse(term=peer.node.term, sender=sender, to=peer.id, success=True, index=index))


def leader_with_acked_noop(n: int = 3, **config_kwargs) -> Peer:
    """Leader 1 of an n-node cluster whose no-op (index 1) every follower stored."""
    peer = make_peer(1, range(1, n + 1), **config_kwargs)
    elect(peer)
    for v in others(peer):
        ack(peer, v, 1)
    peer.handle_ready()
    assert peer.node.commit_index == 1
    return peer


def tick_until(peer: Peer, predicate, limit: int) -> int:
    """Tick until `predicate()` holds; return the number of ticks taken."""
    for ticks in range(1, limit + 1):
        peer.node.tick()
        if predicate():
            return ticks
    raise AssertionError(f"condition not reached within {limit} ticks")


# -------------------------------------------------------------------------------------
# §5.1 Terms
# -------------------------------------------------------------------------------------


def test_node_starts_as_follower():
    peer = make_peer()
    st = peer.node.status()
    assert (st.role, st.term, st.vote, st.leader, st.commit) == (Role.FOLLOWER, 0, 0, 0, 0)


def _put_in_role(peer: Peer, role: Role) -> None:
    if role is Role.FOLLOWER:
        return
    peer.node.campaign()
    assert peer.node.role is Role.PRE_CANDIDATE
    if role is Role.PRE_CANDIDATE:
        return
    grant(peer, 2, pre_vote=True)
    assert peer.node.role is Role.CANDIDATE
    if role is Role.CANDIDATE:
        return
    grant(peer, 2, pre_vote=False)
    assert peer.node.role is Role.LEADER


@pytest.mark.parametrize("role", list(Role))
@pytest.mark.parametrize("kind", ["append", "heartbeat", "vote"])
def test_higher_term_message_makes_any_role_a_follower_of_that_term(role, kind):
    # §5.1: "If a server's current term is smaller than the other's, it updates its
    # current term to the larger value; a candidate or leader reverts to follower."
    # check_quorum is off so a leader's lease does not hide the vote request.
    peer = make_peer(check_quorum=False)
    _put_in_role(peer, role)
    peer.handle_ready()
    higher = peer.node.term + 5
    if kind == "append":
        msg = AppendEntries(term=higher, sender=2, to=1, prev_index=0, prev_term=0, entries=(), commit=0)
        leader = 2
    elif kind == "heartbeat":
        msg = Heartbeat(term=higher, sender=2, to=1, commit=0)
        leader = 2
    else:
        msg = VoteRequest(term=higher, sender=3, to=1, last_log_index=0, last_log_term=0)
        leader = 0
    peer.node.step(msg)
    st = peer.node.status()
    assert (st.role, st.term, st.leader) == (Role.FOLLOWER, higher, leader)
    peer.handle_ready()
    assert peer.storage.hard_state.term == higher


def test_pre_vote_request_of_a_higher_term_does_not_change_the_term():
    peer = make_peer()
    peer.node.step(VoteRequest(term=7, sender=2, to=1, last_log_index=0, last_log_term=0, pre_vote=True))
    (resp,) = peer.handle_ready()
    assert resp == VoteResponse(term=7, sender=1, to=2, granted=True, pre_vote=True)
    st = peer.node.status()
    assert (st.term, st.vote, st.role) == (0, 0, Role.FOLLOWER)


@pytest.mark.parametrize("role", [Role.FOLLOWER, Role.CANDIDATE, Role.LEADER])
def test_stale_term_messages_are_ignored(role):
    # §5.1: "If a server receives a request with a stale term number, it rejects it."
    peer = make_peer(hard_state=HardState(term=4), pre_vote=False, terms=[1, 2])
    if role is not Role.FOLLOWER:
        peer.node.campaign()
    if role is Role.LEADER:
        grant(peer, 2, pre_vote=False)
    peer.handle_ready()
    before = peer.node.status()
    stale = before.term - 1
    for msg in [
        AppendEntries(term=stale, sender=2, to=1, prev_index=2, prev_term=2, entries=entries_of([3], 3), commit=3),
        Heartbeat(term=stale, sender=2, to=1, commit=2),
        VoteRequest(term=stale, sender=3, to=1, last_log_index=9, last_log_term=9),
        VoteResponse(term=stale, sender=3, to=1, granted=True),
        AppendResponse(term=stale, sender=3, to=1, success=True, index=before.last_index),
        HeartbeatResponse(term=stale, sender=3, to=1),
    ]:
        peer.node.step(msg)
        out = peer.handle_ready()
        # The only reaction allowed is telling a stale leader the current term.
        for m in out:
            assert type(m) is AppendResponse and not m.success and m.term == before.term
        after = peer.node.status()
        assert (after.term, after.vote, after.role, after.leader, after.commit, after.last_index) == (
            before.term,
            before.vote,
            before.role,
            before.leader,
            before.commit,
            before.last_index,
        ), type(msg).__name__


def test_stale_leader_learns_the_new_term_and_steps_down():
    old_leader = make_peer(1)
    elect(old_leader)
    follower = make_peer(2, hard_state=HardState(term=old_leader.node.term + 1))
    old_leader.node.tick()  # heartbeat_ticks=1
    beats = of_type(old_leader.handle_ready(), Heartbeat)
    follower.node.step(next(m for m in beats if m.to == 2))
    (reply,) = follower.handle_ready()
    old_leader.node.step(reply)
    assert old_leader.node.role is Role.FOLLOWER
    assert old_leader.node.term == follower.node.term


# -------------------------------------------------------------------------------------
# §5.2 Leader election
# -------------------------------------------------------------------------------------


@pytest.mark.parametrize("heartbeat_ticks", [1, 3])
def test_leader_broadcasts_heartbeats_every_heartbeat_ticks(heartbeat_ticks):
    peer = make_peer(1, (1, 2, 3), heartbeat_ticks=heartbeat_ticks)
    elect(peer)
    ack(peer, 2, 1)  # 2 stored the no-op, 3 did not answer
    peer.handle_ready()
    assert peer.node.commit_index == 1
    for round_ in range(3):
        for _ in range(heartbeat_ticks - 1):
            peer.node.tick()
            assert not of_type(peer.handle_ready(), Heartbeat)
        peer.node.tick()
        beats = sorted(of_type(peer.handle_ready(), Heartbeat), key=lambda m: m.to)
        term = peer.node.term
        # Commit is capped by each follower's match so nobody commits what it lacks.
        assert beats == [
            Heartbeat(term=term, sender=1, to=2, commit=1),
            Heartbeat(term=term, sender=1, to=3, commit=0),
        ]


@pytest.mark.parametrize("role", [Role.FOLLOWER, Role.CANDIDATE])
def test_election_timeout_starts_a_new_election(role):
    # §5.2: followers and candidates that time out start an election in term + 1.
    peer = make_peer(1, (1, 2, 3), terms=[1, 1, 2], hard_state=HardState(term=2), pre_vote=False)
    if role is Role.CANDIDATE:
        peer.node.campaign()
        assert peer.node.role is Role.CANDIDATE
        peer.handle_ready()
    term = peer.node.term
    tick_until(peer, lambda: peer.node.term == term + 1, 2 * ET)
    st = peer.node.status()
    assert (st.role, st.term, st.vote) == (Role.CANDIDATE, term + 1, 1)
    requests = of_type(peer.handle_ready(), VoteRequest)
    assert sorted(requests, key=lambda m: m.to) == [
        VoteRequest(term=term + 1, sender=1, to=v, last_log_index=3, last_log_term=2) for v in (2, 3)
    ]
    assert peer.storage.hard_state.term == term + 1 and peer.storage.hard_state.vote == 1


@pytest.mark.parametrize("role", [Role.FOLLOWER, Role.PRE_CANDIDATE])
def test_election_timeout_with_pre_vote_runs_a_pre_vote_round_first(role):
    peer = make_peer(1, (1, 2, 3), terms=[1, 1, 2], hard_state=HardState(term=2, vote=3))
    if role is Role.PRE_CANDIDATE:
        peer.node.campaign()
        peer.handle_ready()
    tick_until(peer, lambda: bool(peer.node.has_ready() and peer.node.role is Role.PRE_CANDIDATE), 2 * ET)
    st = peer.node.status()
    # No term change and no vote: a node that cannot win never disturbs the cluster.
    assert (st.role, st.term, st.vote) == (Role.PRE_CANDIDATE, 2, 3)
    out = peer.handle_ready()
    requests = of_type(out, VoteRequest)
    assert sorted(requests, key=lambda m: m.to) == [
        VoteRequest(term=3, sender=1, to=v, last_log_index=3, last_log_term=2, pre_vote=True) for v in (2, 3)
    ]
    assert peer.storage.hard_state == HardState(term=2, vote=3)


# (cluster size, votes answered: voter -> granted?, expected role). §5.2 one round.
ONE_ROUND_ELECTIONS = [
    (1, {}, Role.LEADER),
    (3, {2: True, 3: True}, Role.LEADER),
    (3, {2: True}, Role.LEADER),
    (3, {2: True, 3: False}, Role.LEADER),
    (5, {2: True, 3: True, 4: True, 5: True}, Role.LEADER),
    (5, {2: True, 3: True, 4: True}, Role.LEADER),
    (5, {2: True, 3: True}, Role.LEADER),
    (5, {2: True, 3: True, 4: False, 5: False}, Role.LEADER),
    # Lost: a majority rejected.
    (3, {2: False, 3: False}, Role.FOLLOWER),
    (5, {2: False, 3: False, 4: False, 5: False}, Role.FOLLOWER),
    (5, {2: True, 3: False, 4: False, 5: False}, Role.FOLLOWER),
    (5, {2: False, 3: False, 4: False}, Role.FOLLOWER),
    # Undecided: neither a majority of grants nor of rejections yet.
    (3, {}, None),
    (3, {2: False}, None),
    (5, {2: True}, None),
    (5, {2: False, 3: False}, None),
    (5, {2: True, 3: False, 4: False}, None),
    (5, {}, None),
]


@pytest.mark.parametrize("size,votes,expected", ONE_ROUND_ELECTIONS)
def test_one_round_election(size, votes, expected):
    peer = make_peer(1, range(1, size + 1), pre_vote=False)
    peer.node.campaign()
    for voter, granted in votes.items():
        (grant if granted else reject)(peer, voter, pre_vote=False)
    st = peer.node.status()
    assert st.role is (expected or Role.CANDIDATE)
    assert st.term == 1


@pytest.mark.parametrize("size,votes,expected", ONE_ROUND_ELECTIONS)
def test_one_round_election_with_pre_vote(size, votes, expected):
    # The same vote pattern in both rounds: the pre-vote round decides first, and a
    # lost or undecided pre-vote leaves the term untouched.
    peer = make_peer(1, range(1, size + 1))
    peer.node.campaign()
    for voter, granted in votes.items():
        if peer.node.role is Role.PRE_CANDIDATE:
            (grant if granted else reject)(peer, voter, pre_vote=True)
    if peer.node.role is Role.CANDIDATE:
        for voter, granted in votes.items():
            (grant if granted else reject)(peer, voter, pre_vote=False)
    st = peer.node.status()
    if expected is Role.LEADER:
        assert (st.role, st.term) == (Role.LEADER, 1)
    else:
        assert (st.role, st.term, st.vote) == (expected or Role.PRE_CANDIDATE, 0, 0)


@pytest.mark.parametrize(
    "vote,candidate,granted",
    [(0, 2, True), (0, 3, True), (2, 2, True), (3, 3, True), (2, 3, False), (3, 2, False)],
)
def test_follower_votes_first_come_first_served(vote, candidate, granted):
    peer = make_peer(1, (1, 2, 3), hard_state=HardState(term=1, vote=vote), pre_vote=False)
    peer.node.step(VoteRequest(term=1, sender=candidate, to=1, last_log_index=0, last_log_term=0))
    (resp,) = peer.handle_ready()
    assert resp == VoteResponse(term=1, sender=1, to=candidate, granted=granted)
    assert peer.storage.hard_state.vote == (candidate if granted else vote)


def test_follower_votes_at_most_once_per_term_over_a_sequence():
    peer = make_peer(1, (1, 2, 3), pre_vote=False)
    answers = []
    for candidate in (2, 3, 2, 3):
        peer.node.step(VoteRequest(term=1, sender=candidate, to=1, last_log_index=0, last_log_term=0))
        (resp,) = peer.handle_ready()
        answers.append((candidate, resp.granted))
    assert answers == [(2, True), (3, False), (2, True), (3, False)]
    # A new term frees the vote.
    peer.node.step(VoteRequest(term=2, sender=3, to=1, last_log_index=0, last_log_term=0))
    (resp,) = peer.handle_ready()
    assert resp.granted and peer.storage.hard_state == HardState(term=2, vote=3)


@pytest.mark.parametrize("term_delta", [0, 1])
@pytest.mark.parametrize("kind", ["append", "heartbeat"])
def test_candidate_falls_back_to_follower_on_leader_traffic(term_delta, kind):
    # §5.2: a candidate receiving AppendEntries from a leader whose term is at least
    # its own recognises that leader and returns to follower.
    peer = make_peer(1, (1, 2, 3), pre_vote=False)
    peer.node.campaign()
    assert peer.node.role is Role.CANDIDATE
    term = peer.node.term + term_delta
    if kind == "append":
        msg = AppendEntries(term=term, sender=2, to=1, prev_index=0, prev_term=0, entries=(), commit=0)
    else:
        msg = Heartbeat(term=term, sender=2, to=1, commit=0)
    peer.node.step(msg)
    st = peer.node.status()
    assert (st.role, st.term, st.leader) == (Role.FOLLOWER, term, 2)


def _ticks_to_first_election(seed: int, pre_vote: bool = True) -> int:
    peer = make_peer(1, (1, 2, 3), seed=seed, pre_vote=pre_vote)
    return tick_until(peer, lambda: peer.node.role is not Role.FOLLOWER, 2 * ET + 1)


def test_election_timeouts_are_uniform_over_et_to_2et():
    # §5.2: randomized election timeouts, drawn from [et, 2et).
    counts = collections.Counter(_ticks_to_first_election(seed) for seed in range(2000))
    assert set(counts) == set(range(ET, 2 * ET))
    expected = 2000 / ET
    for value, count in counts.items():
        assert 0.6 * expected < count < 1.4 * expected, (value, counts)


def test_candidate_timeouts_are_rerandomized_each_round():
    peer = make_peer(1, (1, 2, 3), seed=7, pre_vote=False)
    seen = []
    for _ in range(300):
        term = peer.node.term
        seen.append(tick_until(peer, lambda: peer.node.term == term + 1, 2 * ET))
        peer.handle_ready()
    assert set(seen) == set(range(ET, 2 * ET))


def _first_timeout_collides(configs: list[Config]) -> bool:
    """Whether more than one node of a fresh cluster times out on the same first tick."""
    peers = [Peer(c) for c in configs]
    for _ in range(2 * ET + 1):
        for p in peers:
            p.node.tick()
        fired = [p for p in peers if p.node.role is not Role.FOLLOWER]
        if fired:
            return len(fired) > 1
    raise AssertionError("nobody timed out")


@pytest.mark.parametrize("seeding", ["distinct", "shared"])
def test_election_timeouts_rarely_collide(seeding):
    # §5.2: randomization makes split votes rare. With 5 nodes and timeouts uniform
    # over 10 values, P(the earliest timeout is shared) is about 0.3; etcd checks the
    # same bound. "shared" is the default configuration: every node has seed 0 and
    # must still not march in lockstep.
    rounds, conflicts = 300, 0
    ids = range(1, 6)
    for r in range(rounds):
        if seeding == "distinct":
            configs = [Config(id=i, voters=tuple(ids), seed=r * 100 + i) for i in ids]
        else:
            configs = [Config(id=i, voters=tuple(ids), seed=r) for i in ids]
        conflicts += _first_timeout_collides(configs)
    assert conflicts / rounds <= 0.35


# -------------------------------------------------------------------------------------
# §5.3 Log replication
# -------------------------------------------------------------------------------------


def test_leader_starts_replication_on_propose():
    peer = leader_with_acked_noop()
    term = peer.node.term
    index = peer.node.propose(b"some data")
    assert index == 2
    rd = peer.node.ready()
    assert rd.entries == [Entry(term=term, index=2, data=b"some data")]
    appends = sorted(of_type(rd.messages, AppendEntries), key=lambda m: m.to)
    assert appends == [
        AppendEntries(term=term, sender=1, to=v, prev_index=1, prev_term=term, entries=tuple(rd.entries), commit=1)
        for v in (2, 3)
    ]
    peer.node.advance(rd)


@pytest.mark.parametrize(
    "size,acks,committed",
    [
        (1, set(), True),
        (3, set(), False),
        (3, {2}, True),
        (3, {2, 3}, True),
        (5, set(), False),
        (5, {2}, False),
        (5, {2, 3}, True),
        (5, {2, 3, 4}, True),
        (5, {2, 3, 4, 5}, True),
    ],
)
def test_leader_commits_only_with_a_majority(size, acks, committed):
    # §5.3: an entry is committed once the leader replicated it on a majority, and
    # the leader tells the application so (committed_entries) only then.
    peer = leader_with_acked_noop(size)
    index = peer.node.propose(b"x")
    peer.handle_ready()
    assert peer.node.commit_index == index - 1 or size == 1
    for v in sorted(acks):
        ack(peer, v, index)
    peer.handle_ready()
    assert (peer.node.commit_index == index) is committed
    assert (b"x" in peer.app_data()) is committed


def test_commit_index_advances_step_by_step_with_quorum_acks():
    peer = leader_with_acked_noop(5)
    for data in (b"a", b"b", b"c"):
        peer.node.propose(data)
    peer.handle_ready()
    ack(peer, 2, 4)
    ack(peer, 3, 2)
    assert peer.node.commit_index == 2  # matches 4, 4, 2, 1, 1 -> quorum of 3 has 2
    ack(peer, 4, 3)
    assert peer.node.commit_index == 3
    ack(peer, 5, 4)
    assert peer.node.commit_index == 4
    peer.handle_ready()
    assert peer.app_data() == [b"a", b"b", b"c"]


@pytest.mark.parametrize("terms", [[], [2], [1, 2], [1], [1, 1, 2, 2, 2]])
def test_leader_commits_preceding_entries(terms):
    # §5.3/5.4.2: committing an entry of the current term commits everything before it.
    peer = make_peer(1, (1, 2, 3), terms=terms, hard_state=HardState(term=2))
    elect(peer)
    index = peer.node.propose(b"x")
    for v in (2, 3):
        ack(peer, v, index)
    peer.handle_ready()
    term = peer.node.term
    expected = entries_of(terms) + [Entry(term=term, index=len(terms) + 1), Entry(term=term, index=len(terms) + 2, data=b"x")]
    assert peer.applied == expected


@pytest.mark.parametrize(
    "entries,leader_commit,expected_commit",
    [
        (entries_of([1], 1), 1, 1),
        (entries_of([1, 1], 1), 1, 1),
        (entries_of([1, 1], 1), 2, 2),
        (entries_of([1, 1], 1), 3, 2),  # never beyond the last new entry
        ([], 7, 0),
    ],
)
def test_follower_commits_what_the_leader_says(entries, leader_commit, expected_commit):
    peer = make_peer(1, (1, 2, 3), hard_state=HardState(term=1))
    peer.node.step(
        AppendEntries(term=1, sender=2, to=1, prev_index=0, prev_term=0, entries=tuple(entries), commit=leader_commit)
    )
    peer.handle_ready()
    assert peer.node.commit_index == expected_commit
    assert peer.applied == entries[:expected_commit]


def test_follower_commit_is_capped_by_the_last_new_entry_not_its_log_end():
    # The follower holds extra entries the leader may not share; an append covering
    # only index 1 must not commit 2 and 3 even though leader commit is 3.
    peer = make_peer(1, (1, 2, 3), terms=[1, 1, 1], hard_state=HardState(term=1))
    peer.node.step(AppendEntries(term=1, sender=2, to=1, prev_index=0, prev_term=0, entries=tuple(entries_of([1])), commit=3))
    out = peer.handle_ready()
    assert peer.node.commit_index == 1
    assert out == [AppendResponse(term=1, sender=1, to=2, success=True, index=1)]


@pytest.mark.parametrize(
    "prev_index,prev_term,success,index,hint",
    [
        (0, 0, True, 1, None),  # below commit: answer with the commit index
        (1, 1, True, 1, None),
        (2, 2, True, 2, None),
        (2, 1, False, 2, (1, 1)),  # mismatching term at 2: back off to 1
        (3, 3, False, 3, (2, 2)),  # beyond our log: hint our last entry
        (5, 1, False, 5, (1, 1)),
    ],
)
def test_follower_checks_prev_index_and_term(prev_index, prev_term, success, index, hint):
    # §5.3 consistency check, plus the (hint_index, hint_term) used to back off fast.
    peer = make_peer(1, (1, 2, 3), terms=[1, 2], hard_state=HardState(term=2, commit=1))
    peer.node.step(AppendEntries(term=2, sender=2, to=1, prev_index=prev_index, prev_term=prev_term, entries=(), commit=1))
    (resp,) = peer.handle_ready()
    assert (resp.success, resp.index, resp.term, resp.to) == (success, index, 2, 2)
    if hint is not None:
        assert (resp.hint_index, resp.hint_term) == hint
    assert log_of(peer) == [(1, 1), (2, 2)]


@pytest.mark.parametrize(
    "prev_index,prev_term,new_terms,expected",
    [
        (2, 2, [3], [1, 2, 3]),
        (1, 1, [3, 4], [1, 3, 4]),
        (0, 0, [1], [1, 2]),  # matching entries: nothing is truncated
        (0, 0, [3], [3]),
        (1, 1, [2], [1, 2]),
        (1, 1, [2, 3, 3], [1, 2, 3, 3]),
    ],
)
def test_follower_appends_and_truncates_conflicting_suffix(prev_index, prev_term, new_terms, expected):
    # §5.3: "If an existing entry conflicts with a new one (same index but different
    # terms), delete the existing entry and all that follow it."
    peer = make_peer(1, (1, 2, 3), terms=[1, 2], hard_state=HardState(term=2))
    new = tuple(entries_of(new_terms, prev_index + 1))
    peer.node.step(AppendEntries(term=4, sender=2, to=1, prev_index=prev_index, prev_term=prev_term, entries=new, commit=0))
    (resp,) = peer.handle_ready()
    assert resp.success and resp.index == prev_index + len(new)
    assert [t for _, t in log_of(peer)] == expected
    # What the driver persisted is the same log.
    stored = peer.storage.entries(1, peer.storage.last_index() + 1)
    assert [e.term for e in stored] == expected


# Figure 7 of the paper. The leader (term 8) and six possible followers.
FIGURE_7_LEADER = [1, 1, 1, 4, 4, 5, 5, 6, 6, 6]
FIGURE_7_FOLLOWERS = {
    "a": [1, 1, 1, 4, 4, 5, 5, 6, 6],
    "b": [1, 1, 1, 4],
    "c": [1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 6],
    "d": [1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7],
    "e": [1, 1, 1, 4, 4, 4, 4],
    "f": [1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3],
}


def _sync_leader_and_follower(leader_terms: list[int], follower_terms: list[int], election_term: int) -> tuple[Network, int]:
    """Elect node 1 (log `leader_terms`) in term `election_term` of a 3-node cluster
    with the votes of absent node 3, then let it repair node 2 (`follower_terms`).

    Returns the network and the number of rejected appends node 2 sent.
    """
    leader = make_peer(1, (1, 2, 3), terms=leader_terms, hard_state=HardState(term=election_term - 1))
    follower = make_peer(2, (1, 2, 3), terms=follower_terms, hard_state=HardState(term=election_term - 1))
    net = Network({1: leader, 2: follower})  # node 3 only votes, by hand
    leader.node.campaign()
    grant(leader, 3, pre_vote=True)
    grant(leader, 3, pre_vote=False)
    assert leader.node.role is Role.LEADER and leader.node.term == election_term
    net.deliver()
    net.tick(2)  # heartbeats let the follower learn the final commit index
    rejections = [m for m in net.delivered if type(m) is AppendResponse and m.sender == 2 and not m.success]
    return net, len(rejections)


@pytest.mark.parametrize("case", sorted(FIGURE_7_FOLLOWERS))
def test_figure_7_followers_converge_to_the_leader_log(case):
    # §5.3, figure 7: whatever a follower's log looks like, the leader forces it to
    # duplicate its own, finding the last agreeing entry by backing off.
    follower_terms = FIGURE_7_FOLLOWERS[case]
    net, rejections = _sync_leader_and_follower(FIGURE_7_LEADER, follower_terms, election_term=8)
    leader, follower = net.peers[1], net.peers[2]
    assert log_of(leader) == [(i, t) for i, t in enumerate(FIGURE_7_LEADER + [8], 1)]
    assert log_of(follower) == log_of(leader)
    assert follower.node.commit_index == leader.node.commit_index == 11
    assert follower.node.status().leader == 1
    # Fast backtracking: at most one rejection per divergent term of the follower.
    assert rejections <= len(set(follower_terms[3:]))


@pytest.mark.parametrize(
    "leader_terms,follower_terms,max_rejections",
    [
        # The follower's 1,000 divergent entries lie in two terms older than the
        # leader's: skipped in one round trip.
        ([1] * 5 + [4] * 1000, [1] * 5 + [2] * 500 + [3] * 500, 2),
        # The follower's divergent entries are from terms newer than the leader's.
        ([1] * 5 + [2] * 5, [1] * 5 + [3] * 500 + [4] * 500, 2),
        # The follower lags 1,000 entries behind.
        ([1] * 5 + [2] * 1000, [1] * 5, 1),
        # Interleaved terms on both sides.
        ([1] * 5 + [2] * 300 + [5] * 300 + [6] * 400, [1] * 5 + [2] * 200 + [3] * 500 + [4] * 300, 3),
    ],
)
def test_fast_backtracking_needs_round_trips_per_term_not_per_entry(leader_terms, follower_terms, max_rejections):
    election_term = max(leader_terms + follower_terms) + 2
    net, rejections = _sync_leader_and_follower(leader_terms, follower_terms, election_term)
    assert log_of(net.peers[2]) == log_of(net.peers[1])
    assert [t for _, t in log_of(net.peers[1])] == leader_terms + [election_term]
    assert 1 <= rejections <= max_rejections


# -------------------------------------------------------------------------------------
# §5.4 Safety
# -------------------------------------------------------------------------------------


@pytest.mark.parametrize("pre_vote", [False, True])
def test_vote_requests_carry_the_last_log_index_and_term(pre_vote):
    for appended_term, appended in [(1, [1]), (2, [1, 2]), (3, [1, 2, 2, 3])]:
        peer = make_peer(1, (1, 2, 3), pre_vote=pre_vote)
        peer.node.step(
            AppendEntries(
                term=appended_term, sender=2, to=1, prev_index=0, prev_term=0, entries=tuple(entries_of(appended)), commit=0
            )
        )
        peer.handle_ready()
        tick_until(peer, lambda: peer.node.role is not Role.FOLLOWER, 2 * ET)
        requests = of_type(peer.handle_ready(), VoteRequest)
        assert sorted(m.to for m in requests) == [2, 3]
        for m in requests:
            assert (m.last_log_index, m.last_log_term) == (len(appended), appended[-1])
            assert m.term == appended_term + 1 and m.pre_vote is pre_vote


@pytest.mark.parametrize(
    "voter_terms,candidate_last_term,candidate_last_index,granted",
    [
        # Same last term: the longer-or-equal log wins.
        ([1], 1, 1, True),
        ([1], 1, 2, True),
        ([1, 1], 1, 1, False),
        ([], 0, 0, True),
        # Candidate's last term is higher: granted whatever the lengths.
        ([1], 2, 1, True),
        ([1], 2, 2, True),
        ([1, 1], 2, 1, True),
        ([1, 1, 1, 1], 2, 2, True),
        # Voter's last term is higher: refused whatever the lengths.
        ([2], 1, 1, False),
        ([2], 1, 2, False),
        ([1, 2], 1, 5, False),
        ([1], 0, 0, False),
    ],
)
@pytest.mark.parametrize("pre_vote", [False, True])
def test_votes_are_granted_only_to_up_to_date_logs(voter_terms, candidate_last_term, candidate_last_index, granted, pre_vote):
    # §5.4.1 election restriction.
    peer = make_peer(1, (1, 2, 3), terms=voter_terms, hard_state=HardState(term=2))
    peer.node.step(
        VoteRequest(
            term=3,
            sender=2,
            to=1,
            last_log_index=candidate_last_index,
            last_log_term=candidate_last_term,
            pre_vote=pre_vote,
        )
    )
    (resp,) = peer.handle_ready()
    assert type(resp) is VoteResponse and resp.pre_vote is pre_vote and resp.to == 2
    assert resp.granted is granted
    if pre_vote:
        assert peer.node.status().vote == 0 and peer.node.term == 2
    else:
        assert peer.node.term == 3
        assert peer.storage.hard_state.vote == (2 if granted else 0)


def test_leader_never_commits_an_old_term_entry_by_counting_replicas():
    # §5.4.2, figure 8: node 1 led term 2 and wrote index 2; it is now leader again in
    # term 4 after node 5 led term 3. Index 2 (term 2) reaching a majority must not
    # commit it: node 5 could still be elected and overwrite it. Only when an entry
    # of term 4 is on a majority are both committed.
    peer = make_peer(1, (1, 2, 3, 4, 5), terms=[1, 2], hard_state=HardState(term=3, commit=1))
    elect(peer)
    assert peer.node.term == 4 and peer.node.status().last_index == 3  # no-op at 3
    peer.handle_ready()
    for v in (2, 3):
        ack(peer, v, 2)  # index 2 is now on nodes 1, 2 and 3: a majority
    peer.handle_ready()
    assert peer.node.commit_index == 1
    assert [(e.index, e.term) for e in peer.applied] == [(1, 1)]
    ack(peer, 2, 3)
    assert peer.node.commit_index == 1  # the term-4 entry is on 2 of 5 nodes only
    ack(peer, 3, 3)
    assert peer.node.commit_index == 3
    peer.handle_ready()
    assert [(e.index, e.term) for e in peer.applied] == [(1, 1), (2, 2), (3, 4)]


def test_figure_8_old_term_entry_is_overwritten_when_it_was_never_committed():
    # The other half of figure 8: because index 2 (term 2) was not committed, node 5
    # (last entry term 3) can still win and replace it everywhere.
    leader_terms, stale_terms = [1, 3], [1, 2]
    peers = {1: make_peer(1, range(1, 6), terms=stale_terms, hard_state=HardState(term=4))}
    peers[2] = make_peer(2, range(1, 6), terms=stale_terms, hard_state=HardState(term=4))
    peers[3] = make_peer(3, range(1, 6), terms=stale_terms, hard_state=HardState(term=4))
    peers[4] = make_peer(4, range(1, 6), terms=[1], hard_state=HardState(term=4))
    peers[5] = make_peer(5, range(1, 6), terms=leader_terms, hard_state=HardState(term=4))
    net = Network(peers)
    net.campaign(5)
    assert net.leader() == 5 and peers[5].node.term == 5
    for p in peers.values():
        assert log_of(p) == [(1, 1), (2, 3), (3, 5)]


# -------------------------------------------------------------------------------------
# Proposals, reads, check-quorum and pre-vote (beyond §5, as in etcd/raft-rs)
# -------------------------------------------------------------------------------------


def test_proposal_on_a_follower_is_dropped_with_a_leader_hint():
    net = Network.of(3, election_ticks=ET)
    net.campaign(1)
    last = net.peers[2].node.status().last_index
    with pytest.raises(ProposalDropped) as info:
        net.peers[2].node.propose(b"x")
    assert info.value.reason is DropReason.NOT_LEADER
    assert info.value.leader_hint == 1
    assert net.peers[2].node.status().last_index == last


@pytest.mark.parametrize("role", [Role.FOLLOWER, Role.PRE_CANDIDATE, Role.CANDIDATE])
def test_proposal_without_leadership_is_dropped_without_a_hint(role):
    peer = make_peer()
    if role is not Role.FOLLOWER:
        _put_in_role(peer, role)
    with pytest.raises(ProposalDropped) as info:
        peer.node.propose(b"x")
    assert info.value.reason is DropReason.NOT_LEADER
    assert info.value.leader_hint == 0
    assert peer.node.status().last_index == 0


def test_proposals_beyond_the_uncommitted_limit_are_dropped():
    peer = leader_with_acked_noop(3, max_uncommitted_bytes=200)
    data = b"x" * 84  # 100 bytes with the entry overhead
    assert peer.node.propose(data) == 2
    assert peer.node.propose(data) == 3
    with pytest.raises(ProposalDropped) as info:
        peer.node.propose(data)
    assert info.value.reason is DropReason.TOO_MUCH_UNCOMMITTED
    assert info.value.leader_hint == 1
    assert peer.node.status().last_index == 3
    peer.handle_ready()
    ack(peer, 2, 3)  # commits 2 and 3, freeing the budget
    peer.handle_ready()
    assert peer.node.commit_index == 3
    assert peer.node.propose(data) == 4


def test_a_single_large_proposal_is_accepted_when_nothing_is_uncommitted():
    # Otherwise an entry larger than the limit could never be proposed at all.
    peer = leader_with_acked_noop(3, max_uncommitted_bytes=50)
    assert peer.node.propose(b"y" * 500) == 2
    with pytest.raises(ProposalDropped):
        peer.node.propose(b"z")


def test_leader_read_index_answers_only_after_a_quorum_of_heartbeat_acks():
    peer = leader_with_acked_noop(3)
    peer.node.read_index(b"ctx-1")
    beats = of_type(peer.handle_ready(), Heartbeat)
    assert sorted(m.to for m in beats) == [2, 3] and all(m.context == b"ctx-1" for m in beats)
    assert peer.read_states == []
    # Acks without the context, or from the wrong term, confirm nothing.
    peer.node.step(HeartbeatResponse(term=peer.node.term, sender=2, to=1))
    peer.node.step(HeartbeatResponse(term=peer.node.term - 1, sender=2, to=1, context=b"ctx-1"))
    peer.handle_ready()
    assert peer.read_states == []
    peer.node.step(HeartbeatResponse(term=peer.node.term, sender=3, to=1, context=b"ctx-1"))
    peer.handle_ready()
    assert peer.read_states == [ReadState(index=1, context=b"ctx-1")]


def test_new_leader_defers_read_index_until_its_noop_commits():
    peer = make_peer(1, (1, 2, 3))
    elect(peer)
    peer.node.read_index(b"early")
    peer.handle_ready()
    peer.node.step(HeartbeatResponse(term=peer.node.term, sender=2, to=1, context=b"early"))
    peer.handle_ready()
    assert peer.read_states == []
    ack(peer, 2, 1)
    out = peer.handle_ready()
    beats = [m for m in of_type(out, Heartbeat) if m.context == b"early"]
    assert sorted(m.to for m in beats) == [2, 3]
    assert peer.read_states == []
    peer.node.step(HeartbeatResponse(term=peer.node.term, sender=2, to=1, context=b"early"))
    peer.handle_ready()
    assert peer.read_states == [ReadState(index=1, context=b"early")]


def test_follower_read_index_is_forwarded_and_answered():
    net = Network.of(3, election_ticks=ET)
    net.campaign(1)
    net.propose(1, b"v")
    commit = net.peers[1].node.commit_index
    net.peers[2].node.read_index(b"follower-read")
    forwarded = of_type(net.peers[2].handle_ready(), ReadIndexRequest)
    assert [(m.to, m.context) for m in forwarded] == [(1, b"follower-read")]
    net.queue.extend(forwarded)
    net.deliver()
    assert net.peers[2].read_states == [ReadState(index=commit, context=b"follower-read")]


def test_read_index_without_a_leader_is_dropped():
    peer = make_peer()
    with pytest.raises(ProposalDropped) as info:
        peer.node.read_index(b"r")
    assert info.value.reason is DropReason.NO_LEADER
    assert peer.handle_ready() == []


def test_check_quorum_leader_partitioned_from_the_majority_steps_down():
    net = Network.of(3, election_ticks=ET)
    net.campaign(1)
    net.tick(5 * ET)
    assert net.leader() == 1  # a healthy leader keeps its role
    net.isolate(1)
    ticks = 0
    while net.peers[1].node.role is Role.LEADER:
        net.tick(1, only=[1])
        ticks += 1
        assert ticks <= 2 * ET, "leader did not step down"
    # The first check after the cut may still count acks received just before it,
    # so the bound is two check periods; never less than one.
    assert ET <= ticks <= 2 * ET
    assert net.peers[1].node.status().leader == 0


def test_follower_with_a_live_leader_ignores_higher_term_vote_requests():
    net = Network.of(3, election_ticks=ET)
    net.campaign(1)
    net.tick(1)
    follower = net.peers[3]
    term = follower.node.term
    for pre_vote in (False, True):
        follower.node.step(VoteRequest(term=term + 1, sender=2, to=3, last_log_index=99, last_log_term=99, pre_vote=pre_vote))
        assert follower.handle_ready() == []
        st = follower.node.status()
        assert (st.term, st.leader, st.role) == (term, 1, Role.FOLLOWER)
    # Once it has not heard from the leader for an election timeout, it votes.
    net.isolate(3)
    net.tick(ET, only=[3])
    follower.handle_ready()
    follower.node.step(VoteRequest(term=term + 1, sender=2, to=3, last_log_index=99, last_log_term=99))
    (resp,) = of_type(follower.handle_ready(), VoteResponse)
    assert resp.granted and follower.node.term == term + 1


def test_disruptive_rejoining_node_with_pre_vote_does_not_bump_the_term():
    net = Network.of(3, election_ticks=ET)
    net.campaign(1)
    net.propose(1, b"before")
    term = net.peers[1].node.term
    net.isolate(3)
    net.tick(6 * ET)  # node 3 times out repeatedly, alone
    assert net.peers[3].node.term == term
    net.heal()
    net.tick(3)
    net.propose(1, b"after")
    assert net.leader() == 1
    for p in net.peers.values():
        assert p.node.term == term
        assert p.app_data() == [b"before", b"after"]


# -------------------------------------------------------------------------------------
# Determinism
# -------------------------------------------------------------------------------------


def _recorded_run(seed: int) -> list[bytes]:
    """Drive a 3-node cluster through elections, proposals and a partition, and
    record every Ready of every node (repr plus codec-encoded messages)."""
    peers = {
        i: Peer(Config(id=i, voters=(1, 2, 3), election_ticks=ET, seed=seed * 10 + i)) for i in (1, 2, 3)
    }
    trace: list[bytes] = []

    for p in peers.values():
        original = p.node.ready

        def recording_ready(original=original, nid=p.id):
            rd = original()
            trace.append(f"{nid}:{rd!r}".encode())
            trace.extend(codec.encode_message(m) for m in rd.messages)
            return rd

        p.node.ready = recording_ready
    net = Network(peers)
    net.tick(3 * ET)
    leader = net.leader()
    for i in range(5):
        net.propose(leader, b"value-%d" % i)
    net.isolate(leader)
    net.tick(3 * ET)
    net.heal()
    net.tick(2 * ET)
    new_leader = net.leader()
    net.propose(new_leader, b"last")
    net.tick(2)
    return trace


def test_same_seed_and_inputs_give_identical_ready_sequences():
    first, second = _recorded_run(3), _recorded_run(3)
    assert len(first) > 100
    assert first == second
    assert _recorded_run(4) != first


# -------------------------------------------------------------------------------------
# Extra edge cases
# -------------------------------------------------------------------------------------


def test_vote_is_persisted_in_the_same_ready_that_sends_it():
    # Rule 6 / Ready contract: a vote must be durable before the response leaves.
    peer = make_peer(1, (1, 2, 3), pre_vote=False)
    peer.node.step(VoteRequest(term=3, sender=2, to=1, last_log_index=0, last_log_term=0))
    rd = peer.node.ready()
    assert rd.messages == [VoteResponse(term=3, sender=1, to=2, granted=True)]
    assert rd.hard_state == HardState(term=3, vote=2, commit=0)
    assert rd.must_sync
    peer.node.advance(rd)


def test_appended_entries_are_persisted_in_the_same_ready_that_acknowledges_them():
    peer = make_peer(1, (1, 2, 3), hard_state=HardState(term=1))
    new = tuple(entries_of([1, 1]))
    peer.node.step(AppendEntries(term=1, sender=2, to=1, prev_index=0, prev_term=0, entries=new, commit=0))
    rd = peer.node.ready()
    assert rd.entries == list(new)
    assert rd.messages == [AppendResponse(term=1, sender=1, to=2, success=True, index=2)]
    assert rd.must_sync
    peer.node.advance(rd)


def test_leader_in_lease_ignores_a_higher_term_vote_request():
    peer = leader_with_acked_noop(3)
    term = peer.node.term
    peer.node.step(VoteRequest(term=term + 1, sender=3, to=1, last_log_index=50, last_log_term=term))
    assert peer.handle_ready() == []
    st = peer.node.status()
    assert (st.role, st.term) == (Role.LEADER, term)


def test_single_node_read_index_is_answered_at_once():
    peer = make_peer(1, (1,))
    peer.node.campaign()
    assert peer.node.role is Role.LEADER
    peer.handle_ready()
    peer.node.read_index(b"solo")
    peer.handle_ready()
    assert peer.read_states == [ReadState(index=1, context=b"solo")]


def test_zero_uncommitted_limit_means_unlimited():
    peer = leader_with_acked_noop(3, max_uncommitted_bytes=0)
    for i in range(50):
        peer.node.propose(b"x" * 1000)
    assert peer.node.status().last_index == 51


@pytest.mark.parametrize("pre_vote", [False, True])
def test_candidate_that_loses_returns_to_follower_and_retries_later(pre_vote):
    peer = make_peer(1, (1, 2, 3), pre_vote=pre_vote)
    peer.node.campaign()
    reject(peer, 2, pre_vote=pre_vote)
    reject(peer, 3, pre_vote=pre_vote)
    st = peer.node.status()
    assert st.role is Role.FOLLOWER and st.term == (0 if pre_vote else 1)
    peer.handle_ready()
    tick_until(peer, lambda: peer.node.role is not Role.FOLLOWER, 2 * ET)
