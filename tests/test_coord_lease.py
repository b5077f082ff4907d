"""Lease arithmetic at its boundaries, and the drift safety argument checked."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from coordinator.lease import HeartbeatAck, LeaseTable, LeaseTiming, WorkerLease

TIMING = LeaseTiming(lease_duration=10.0, max_drift=0.05, safety_margin=0.5)


def test_timing_derivations():
    assert TIMING.worker_lease == pytest.approx(10.0 * 0.95 - 0.5)
    assert TIMING.leader_lease == pytest.approx(10.5)


@pytest.mark.parametrize("kwargs", [
    dict(max_drift=1.0),
    dict(max_drift=-0.1),
    dict(lease_duration=1.0, safety_margin=1.0),
    dict(lease_duration=float("nan")),
    dict(safety_margin=True),
])
def test_invalid_timing(kwargs):
    with pytest.raises(ValueError):
        LeaseTiming(**kwargs)


def test_leader_expires_exactly_at_deadline():
    table = LeaseTable(TIMING, term_start=100.0, known_workers=["a"])
    assert table.deadline("a") == 110.5  # full lease from the term start
    assert table.expired(110.499) == []
    assert table.expired(110.5) == ["a"]
    table.heartbeat("a", received_at=105.0)
    assert table.deadline("a") == 115.5
    assert table.expired(115.5) == ["a"]


def test_new_leader_grace_covers_everyone():
    table = LeaseTable(TIMING, term_start=50.0, known_workers=["b", "a"])
    # An old heartbeat cannot shorten the grace.
    table.heartbeat("a", received_at=0.0)
    assert table.deadline("a") == table.grace_until == 60.5
    table.track("c", now=55.0)  # a worker that registered during this term
    assert table.deadline("c") == 65.5
    table.track("c", now=64.0)  # already tracked: unchanged
    assert table.deadline("c") == 65.5
    assert table.expired(60.5) == ["a", "b"]
    table.forget("a")
    assert table.tracked() == ["b", "c"]
    assert table.deadline("a") is None


def test_heartbeats_never_shorten_a_lease():
    table = LeaseTable(TIMING, term_start=0.0)
    table.heartbeat("a", received_at=20.0)
    table.heartbeat("a", received_at=15.0)  # reordered delivery
    assert table.deadline("a") == 30.5


def test_worker_lease_counts_from_send_time_and_stops_exactly_at_end():
    lease = WorkerLease(TIMING)
    assert not lease.may_act(0.0)
    seq = lease.heartbeat_sent(100.0)
    assert not lease.may_act(100.0)  # not acknowledged yet
    assert lease.ack_received(HeartbeatAck(seq=seq, covered=[("p", 3)]))
    end = 100.0 + TIMING.worker_lease
    assert lease.valid_until == end
    assert lease.may_act(end - 1e-9) and not lease.may_act(end)
    assert lease.may_act_for("p", 3, end - 1e-9)
    assert not lease.may_act_for("p", 3, end)
    assert not lease.may_act_for("p", 2, 101.0)  # wrong epoch
    assert not lease.may_act_for("q", 3, 101.0)  # not covered


def test_duplicate_and_stale_acks_are_ignored():
    lease = WorkerLease(TIMING)
    first = lease.heartbeat_sent(0.0)
    second = lease.heartbeat_sent(1.0)
    assert lease.ack_received(HeartbeatAck(seq=second, covered=[("p", 1)]))
    assert not lease.ack_received(HeartbeatAck(seq=first))  # older: useless
    assert not lease.ack_received(HeartbeatAck(seq=second))  # duplicate
    assert not lease.ack_received(HeartbeatAck(seq=99))  # never sent
    assert lease.valid_until == 1.0 + TIMING.worker_lease


def test_partition_drops_out_of_coverage_when_not_acknowledged():
    lease = WorkerLease(TIMING)
    lease.ack_received(HeartbeatAck(seq=lease.heartbeat_sent(0.0), covered=[("p", 1), ("q", 1)]))
    lease.ack_received(HeartbeatAck(seq=lease.heartbeat_sent(5.0), covered=[("q", 1)]))
    # p (being revoked) keeps only its older lease; q and the session go on.
    assert not lease.may_act_for("p", 1, TIMING.worker_lease)
    assert lease.may_act_for("q", 1, TIMING.worker_lease)
    assert lease.may_act(5.0 + TIMING.worker_lease - 0.01)
    # A new epoch replaces the old coverage.
    lease.ack_received(HeartbeatAck(seq=lease.heartbeat_sent(6.0), covered=[("p", 4)]))
    assert lease.may_act_for("p", 4, 7.0) and not lease.may_act_for("p", 1, 7.0)
    lease.lost()
    assert not lease.may_act(7.0) and not lease.may_act_for("p", 4, 7.0)


def real_time(local_elapsed: float, rate: float) -> float:
    """Real seconds for a clock running at ``rate`` to advance ``local_elapsed``."""
    return local_elapsed / rate


@given(
    timing=st.builds(LeaseTiming, lease_duration=st.floats(0.5, 60.0),
                     max_drift=st.floats(0.0, 0.3), safety_margin=st.floats(0.0, 0.2)),
    worker_rate_fraction=st.floats(-1.0, 1.0),
    leader_rate_fraction=st.floats(-1.0, 1.0),
    send_real=st.floats(0.0, 1000.0),
    network_delay=st.floats(0.0, 30.0),
    worker_offset=st.floats(-1e6, 1e6),
    leader_offset=st.floats(-1e6, 1e6),
)
def test_worker_stops_before_leader_may_expire(timing, worker_rate_fraction,
                                               leader_rate_fraction, send_real,
                                               network_delay, worker_offset, leader_offset):
    # Any clock rates within the drift bound, any offsets, any delivery delay.
    worker_rate = 1 + worker_rate_fraction * timing.max_drift
    leader_rate = 1 + leader_rate_fraction * timing.max_drift
    worker_clock = lambda real: worker_offset + real * worker_rate  # noqa: E731
    leader_clock = lambda real: leader_offset + real * leader_rate  # noqa: E731

    lease = WorkerLease(timing)
    seq = lease.heartbeat_sent(worker_clock(send_real))
    receive_real = send_real + network_delay
    table = LeaseTable(timing, term_start=leader_clock(0.0))
    table.heartbeat("w", leader_clock(receive_real))
    lease.ack_received(HeartbeatAck(seq=seq))

    # Real instant at which the worker stops, and at which the leader may expire it.
    stop_real = send_real + real_time(lease.valid_until - worker_clock(send_real), worker_rate)
    expire_real = receive_real + real_time(table.deadline("w") - leader_clock(receive_real),
                                           leader_rate)
    assert stop_real <= expire_real + 1e-6 * max(1.0, expire_real)
    assert not lease.may_act(worker_clock(stop_real) + 1e-6)


def test_released_partition_ignores_acks_in_flight():
    lease = WorkerLease(TIMING)
    before = lease.heartbeat_sent(0.0)
    after = lease.heartbeat_sent(0.5)
    lease.ack_received(HeartbeatAck(seq=before, covered=[("p", 2)]))
    lease.release("p", 2)
    assert not lease.may_act_for("p", 2, 1.0)
    lease.ack_received(HeartbeatAck(seq=after, covered=[("p", 2)]))  # computed earlier
    assert lease.active_partitions(1.0) == []
    lease.ack_received(HeartbeatAck(seq=lease.heartbeat_sent(2.0), covered=[("p", 5)]))
    assert lease.active_partitions(3.0) == [("p", 5)]


@pytest.mark.parametrize("kwargs", [
    dict(seq=-1), dict(seq=True), dict(seq=1, covered=[("p", "1")]), dict(seq=1, covered=["p"]),
])
def test_invalid_acks_cannot_be_built(kwargs):
    with pytest.raises(ValueError):
        HeartbeatAck(**kwargs)
