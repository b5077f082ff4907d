"""WorkerSession driven directly: whom it heartbeats, what it may act for, and the
events an application sees."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from coordinator.lease import HeartbeatAck, LeaseTiming
from coordinator.protocol import Ack, Checkpoint, Leave, Nack, Redirect, Release
from coordinator.records import OwnedSlot
from coordinator.worker import (
    LeaseRenewed,
    PartitionAcquired,
    PartitionLost,
    PartitionReleased,
    PartitionRevoked,
    WorkerSession,
)

TIMING = LeaseTiming(lease_duration=10.0, max_drift=0.05, safety_margin=0.5)
LEASE = TIMING.worker_lease


def session(**options) -> WorkerSession:
    return WorkerSession("w1", "z1", TIMING, ["a:1", "b:2", "c:3"], random.Random(1), **options)


def ack(seq, *slots, draining=False) -> Ack:
    """An acknowledgement covering every slot that is not revoking."""
    covered = [(s.partition_id, s.epoch) for s in slots if not s.revoking]
    return Ack(HeartbeatAck(seq=seq, covered=covered), tuple(slots), draining)


def slot(pid, epoch=1, revoking=False, index=0) -> OwnedSlot:
    return OwnedSlot(pid, index, epoch, revoking)


def test_heartbeats_go_to_one_node_until_two_go_unanswered():
    s = session()
    first, beat = s.heartbeat(0.0)
    assert first in s.nodes and beat.worker_id == "w1" and beat.seq == 1
    assert s.heartbeat(1.0)[0] == first
    targets = {s.heartbeat(2.0 + i)[0] for i in range(30)}
    assert len(targets) > 1  # after two unanswered heartbeats it tries another node


def test_a_redirect_points_at_the_leader_or_at_random():
    s = session(redirect_target=lambda r: r.address)
    s.on_redirect(Redirect(2, "b:2"))
    assert s.heartbeat(0.0)[0] == "b:2"
    s.on_redirect(Redirect(0, ""))
    assert s.target in s.nodes


def test_the_lease_counts_from_the_send_time_of_the_acknowledged_heartbeat():
    s = session()
    _, beat = s.heartbeat(100.0)
    s.on_ack(ack(beat.seq, slot("g/0")))
    assert s.acting(100.5) == [("g/0", 0, 1)]
    assert s.may_act_for("g/0", 1, 100.0 + LEASE - 0.001)
    assert not s.may_act_for("g/0", 1, 100.0 + LEASE)
    assert not s.may_act_for("g/0", 2, 100.5)  # another epoch is not covered
    assert s.checkpoint("g/0", 1, b"x", 100.5) == Checkpoint("w1", "g/0", 1, b"x")
    assert s.checkpoint("g/0", 1, b"x", 100.0 + LEASE) is None


def test_an_old_acknowledgement_is_ignored():
    s = session()
    _, first = s.heartbeat(0.0)
    _, second = s.heartbeat(1.0)
    s.on_ack(ack(second.seq, slot("g/0")))
    s.on_ack(ack(first.seq, slot("g/0"), slot("g/1")))
    assert [p for p, _, _ in s.acting(1.5)] == ["g/0"]


def test_a_nack_forgets_every_lease():
    s = session()
    _, beat = s.heartbeat(0.0)
    s.on_ack(ack(beat.seq, slot("g/0")))
    _, later = s.heartbeat(1.0)
    s.on_nack(Nack(later.seq))
    assert s.acting(1.5) == [] and s.view == {}


def test_events_follow_the_lease():
    s = session()
    _, beat = s.heartbeat(0.0)
    s.on_ack(ack(beat.seq, slot("g/0")))
    assert s.poll(0.1) == [PartitionAcquired("g/0", 0, 1, LEASE)]
    assert s.next_deadline() == LEASE
    _, beat = s.heartbeat(2.0)
    s.on_ack(ack(beat.seq, slot("g/0")))
    assert s.poll(2.1) == [LeaseRenewed("g/0", 0, 1, 2.0 + LEASE)]
    assert s.poll(2.2) == []
    assert s.poll(2.0 + LEASE) == [PartitionLost("g/0", 0, 1)]  # ran out: stop at once
    assert s.next_deadline() is None


def test_a_nack_loses_everything_at_the_next_poll():
    s = session()
    _, beat = s.heartbeat(0.0)
    s.on_ack(ack(beat.seq, slot("g/0"), slot("g/1")))
    s.poll(0.1)
    _, beat = s.heartbeat(1.0)
    s.on_nack(Nack(beat.seq))
    assert s.poll(1.1) == [PartitionLost("g/0", 0, 1), PartitionLost("g/1", 0, 1)]


def test_the_application_lets_go_of_a_revoked_partition():
    s = session(auto_release=False)
    _, beat = s.heartbeat(0.0)
    s.on_ack(ack(beat.seq, slot("g/0")))
    s.poll(0.1)
    _, beat = s.heartbeat(1.0)
    s.on_ack(ack(beat.seq, slot("g/0", revoking=True)))  # left out of the coverage
    assert s.poll(1.1) == [PartitionRevoked("g/0", 0, 1, LEASE)]
    assert s.releases(1.2) == []  # the application still works on it
    assert s.acting(1.2) == [("g/0", 0, 1)]
    assert s.release("g/0", 1.5) == Release("w1", "g/0", 0, 1)
    assert s.acting(1.5) == []
    assert s.poll(1.6) == [PartitionReleased("g/0", 0, 1)]
    assert s.releases(2.0) == [Release("w1", "g/0", 0, 1)]  # re-sent until the view drops it
    _, beat = s.heartbeat(2.0)
    s.on_ack(ack(beat.seq, slot("g/0", revoking=True)))
    assert s.acting(2.1) == []  # a late acknowledgement does not bring it back
    _, beat = s.heartbeat(3.0)
    s.on_ack(ack(beat.seq))
    assert s.releases(3.1) == []


def test_a_revoked_partition_whose_lease_ran_out_is_released_anyway():
    s = session(auto_release=False)
    _, beat = s.heartbeat(0.0)
    s.on_ack(ack(beat.seq, slot("g/0")))
    _, beat = s.heartbeat(1.0)
    s.on_ack(ack(beat.seq, slot("g/0", revoking=True)))
    assert s.releases(LEASE - 1) == []
    assert s.releases(LEASE) == [Release("w1", "g/0", 0, 1)]


def test_auto_release_gives_up_revoked_slots_at_once():
    s = session()
    _, beat = s.heartbeat(0.0)
    s.on_ack(ack(beat.seq, slot("g/0"), slot("g/1")))
    _, beat = s.heartbeat(1.0)
    s.on_ack(ack(beat.seq, slot("g/0", revoking=True), slot("g/1")))
    assert s.releases(1.1) == [Release("w1", "g/0", 0, 1)]
    assert [p for p, _, _ in s.acting(1.1)] == ["g/1"]


def test_round_robin_over_the_partitions_it_may_act_for():
    s = session()
    _, beat = s.heartbeat(0.0)
    s.on_ack(ack(beat.seq, slot("g/0"), slot("g/1", index=1)))
    assert [s.next_partition(0.1) for _ in range(3)] == [
        ("g/0", 0, 1), ("g/1", 1, 1), ("g/0", 0, 1)]
    assert s.next_partition(LEASE) is None


def test_a_drained_worker_leaves_once_it_holds_nothing():
    s = session()
    _, beat = s.heartbeat(0.0)
    s.on_ack(ack(beat.seq, slot("g/0"), draining=True))
    assert s.leave(0.1) is None
    _, beat = s.heartbeat(1.0)
    s.on_ack(ack(beat.seq, draining=True))
    assert s.leave(1.1) is None  # the first acknowledgement's lease still covers g/0
    assert s.leave(LEASE) == Leave("w1")
    assert s.left and s.acting(LEASE) == []


def test_a_renewal_seen_after_the_lease_ran_out_is_a_loss_then_a_new_lease():
    s = session()
    _, beat = s.heartbeat(0.0)
    s.on_ack(ack(beat.seq, slot("g/0")))
    s.poll(0.1)
    # Paused past the deadline: the next heartbeat's acknowledgement renews the same
    # epoch, but the application must hear that its lease lapsed in between.
    _, beat = s.heartbeat(LEASE + 1.0)
    s.on_ack(ack(beat.seq, slot("g/0")))
    assert s.poll(LEASE + 1.1) == [PartitionLost("g/0", 0, 1),
                                   PartitionAcquired("g/0", 0, 1, 2 * LEASE + 1.0)]


PIDS = ("g/0", "g/1", "g/2")
STEPS = st.lists(st.one_of(
    st.tuples(st.just("wait"), st.floats(0.0, 4.0)),
    st.tuples(st.just("heartbeat"), st.none()),
    st.tuples(st.just("ack"), st.tuples(st.integers(0, 5), st.lists(
        st.tuples(st.sampled_from(PIDS), st.integers(1, 3), st.booleans()), max_size=3))),
    st.tuples(st.just("nack"), st.integers(0, 5)),
    st.tuples(st.just("release"), st.sampled_from(PIDS)),
), max_size=40)


@settings(max_examples=300, deadline=None)
@given(STEPS)
def test_what_the_application_is_told_matches_what_the_worker_may_act_for(steps):
    s = session(auto_release=False)
    now = 0.0
    sent: list[tuple[int, float]] = []  # (seq, send time)
    grants: list[tuple[str, int, float]] = []  # (partition, epoch, valid until)
    told: dict[str, int] = {}
    for kind, arg in steps:
        if kind == "wait":
            now += arg
        elif kind == "heartbeat":
            _, beat = s.heartbeat(now)
            sent.append((beat.seq, now))
        elif kind == "ack" and sent:
            seq, send_time = sent[min(arg[0], len(sent) - 1)]
            slots = {pid: slot(pid, epoch, revoking) for pid, epoch, revoking in arg[1]}
            s.on_ack(ack(seq, *slots.values()))
            grants.extend((sl.partition_id, sl.epoch, send_time + LEASE)
                          for sl in slots.values() if not sl.revoking)
        elif kind == "nack" and sent:
            s.on_nack(Nack(sent[min(arg, len(sent) - 1)][0]))
        elif kind == "release":
            s.release(arg, now)
        for event in s.poll(now):
            if isinstance(event, PartitionAcquired):
                assert event.partition_id not in told and event.deadline > now
                told[event.partition_id] = event.epoch
            elif isinstance(event, (LeaseRenewed, PartitionRevoked)):
                assert told.get(event.partition_id) == event.epoch
            else:
                assert told.pop(event.partition_id) == event.epoch
        acting = s.acting(now)
        assert {pid: epoch for pid, _, epoch in acting} == told
        for pid, _, epoch in acting:
            # Every lease it acts on comes from an acknowledged heartbeat's send time.
            assert any((p, e) == (pid, epoch) and now < until for p, e, until in grants)
