"""Unit tests of the coordinator state machine: every command and its error paths."""

from __future__ import annotations

import cbor2
import pytest

from coordinator import commands as c
from coordinator.commands import ErrorCode, WorkerState
from coordinator.config import CoordinatorConfig
from coordinator.records import MovePhase
from coordinator.state import CoordinatorState, SnapshotError


def register(state, worker, zone="z1", now=0.0, **kw):
    return state.apply(c.RegisterWorker(worker_id=worker, address=f"{worker}:1", zone=zone,
                                        now=now, **kw))


def assign(state, pid, worker, slot=0, now=0.0, epoch=None):
    if epoch is None:
        epoch = state.partitions[pid].epoch + 1
    return state.apply(c.Assign(partition_id=pid, slot=slot, worker_id=worker, epoch=epoch,
                                now=now))


def error_code(result):
    assert isinstance(result, c.Error), result
    return result.code


@pytest.fixture
def state():
    s = CoordinatorState(CoordinatorConfig(revoke_timeout=10.0, restart_delay=5.0,
                                           quarantine_threshold=2, quarantine_window=30.0))
    register(s, "w1", "z1")
    register(s, "w2", "z2")
    s.apply(c.CreatePartitionGroup(name="t", count=4, replication_factor=2, now=0.0))
    return s


def unchanged(state, command):
    """Apply a command that must fail, and check nothing changed."""
    before = state.snapshot()
    result = state.apply(command)
    assert isinstance(result, c.Error), result
    assert state.snapshot() == before
    return result.code


# ------------------------------------------------------------------------ workers


def test_register_creates_active_worker_and_updates_live_one(state):
    assert state.workers["w1"].state is WorkerState.ACTIVE
    result = register(state, "w1", zone="z9", capacity=3, labels={"rack": "r1"})
    assert result == c.WorkerRegistered(worker_id="w1", created=False)
    record = state.workers["w1"]
    assert (record.zone, record.capacity, record.labels) == ("z9", 3, (("rack", "r1"),))


def test_deregister_frees_slots_and_forgets_worker(state):
    assign(state, "t/0", "w1")
    result = state.apply(c.DeregisterWorker(worker_id="w1", now=1.0))
    assert result.freed == (c.SlotRef(partition_id="t/0", slot=0, epoch=1),)
    assert "w1" not in state.workers
    assert state.owner("t/0") is None
    assert ("t/0", 0) in state.free_slots
    assert unchanged(state, c.DeregisterWorker(worker_id="w1", now=1.0)) \
        is ErrorCode.UNKNOWN_WORKER


def test_expire_holds_slots_and_restart_within_window_gets_them_back(state):
    assign(state, "t/0", "w1", now=0.0)
    assign(state, "t/1", "w1", now=0.0)
    result = state.apply(c.ExpireWorker(worker_id="w1", now=100.0))
    assert [ref.partition_id for ref in result.held] == ["t/0", "t/1"]
    assert state.workers["w1"].state is WorkerState.DEAD
    assert state.owner("t/0") is None and len(state.holds) == 2
    # Nobody else may take a held slot during the window...
    assert unchanged(state, c.Assign(partition_id="t/0", slot=0, worker_id="w2", epoch=2,
                                     now=101.0)) is ErrorCode.HELD
    # ...and the worker coming back gets its slots again, each with a new epoch.
    result = register(state, "w1", now=103.0)
    assert [(r.partition_id, r.epoch) for r in result.restored] == [("t/0", 2), ("t/1", 2)]
    assert state.owner("t/0") == "w1" and not state.holds
    assert state.workers["w1"].state is WorkerState.ACTIVE


def test_restart_after_window_gets_nothing_back_and_hold_no_longer_blocks(state):
    assign(state, "t/0", "w1")
    state.apply(c.ExpireWorker(worker_id="w1", now=100.0))
    assert isinstance(assign(state, "t/0", "w2", now=105.0), c.Assigned)  # window over
    state.apply(c.ExpireWorker(worker_id="w2", now=200.0))
    result = register(state, "w2", now=206.0)
    assert result.restored == ()
    assert state.owner("t/0") is None and not state.holds


def test_expire_of_draining_worker_frees_at_once(state):
    assign(state, "t/0", "w1")
    state.apply(c.DrainWorker(worker_id="w1", now=1.0))
    result = state.apply(c.ExpireWorker(worker_id="w1", now=100.0))
    assert result.held == () and len(result.freed) == 1
    assert unchanged(state, c.ExpireWorker(worker_id="w1", now=101.0)) is ErrorCode.INVALID_STATE
    assert unchanged(state, c.ExpireWorker(worker_id="nobody", now=101.0)) \
        is ErrorCode.UNKNOWN_WORKER


def test_drain_and_undrain(state):
    result = state.apply(c.DrainWorker(worker_id="w1", now=1.0))
    assert result == c.WorkerStateChanged(worker_id="w1", state=WorkerState.DRAINING)
    # A draining worker gets nothing new.
    assert unchanged(state, c.Assign(partition_id="t/0", slot=0, worker_id="w1", epoch=1,
                                     now=2.0)) is ErrorCode.INVALID_STATE
    state.apply(c.UndrainWorker(worker_id="w1", now=3.0))
    assert state.workers["w1"].state is WorkerState.ACTIVE
    state.apply(c.ExpireWorker(worker_id="w2", now=4.0))
    assert unchanged(state, c.DrainWorker(worker_id="w2", now=5.0)) is ErrorCode.INVALID_STATE
    assert unchanged(state, c.UndrainWorker(worker_id="w2", now=5.0)) is ErrorCode.INVALID_STATE
    assert unchanged(state, c.DrainWorker(worker_id="x", now=5.0)) is ErrorCode.UNKNOWN_WORKER


# ------------------------------------------------------------------ partition groups


def test_create_and_delete_group(state):
    assert sorted(state.partitions) == ["t/0", "t/1", "t/2", "t/3"]
    assert state.partitions["t/0"].owners == [None, None]
    assert unchanged(state, c.CreatePartitionGroup(name="t", count=1, now=1.0)) \
        is ErrorCode.ALREADY_EXISTS
    assign(state, "t/0", "w1")
    state.apply(c.Revoke(partition_id="t/0", slot=0, worker_id="w1", epoch=1, now=1.0))
    result = state.apply(c.DeletePartitionGroup(name="t", now=2.0))
    assert result == c.GroupChanged(name="t", count=4, created=False)
    assert not state.partitions and not state.pending_moves and not state.free_slots
    assert state.workers["w1"].owned == set() and state.workers["w1"].load == 0
    assert unchanged(state, c.DeletePartitionGroup(name="t", now=3.0)) is ErrorCode.UNKNOWN_GROUP


def test_recreated_group_continues_epochs_and_waits(state):
    assign(state, "t/0", "w1")
    assign(state, "t/0", "w2", slot=1)
    state.apply(c.DeletePartitionGroup(name="t", now=10.0))
    state.apply(c.CreatePartitionGroup(name="t", count=4, now=11.0))
    # A fencing token of the old incarnation can never become current again.
    assert state.partitions["t/0"].epoch == 2
    assert unchanged(state, c.Assign(partition_id="t/0", slot=0, worker_id="w1", epoch=3,
                                     now=15.0)) is ErrorCode.TOO_EARLY
    assert isinstance(assign(state, "t/0", "w1", now=20.0), c.Assigned)


# ---------------------------------------------------------------------- assignments


def test_assign_sets_owner_and_bumps_epoch(state):
    assert assign(state, "t/0", "w1") == c.Assigned(partition_id="t/0", slot=0,
                                                    worker_id="w1", epoch=1)
    assert assign(state, "t/0", "w2", slot=1) == c.Assigned(partition_id="t/0", slot=1,
                                                            worker_id="w2", epoch=2)
    assert state.owned_slots("w1") == [("t/0", 0)]
    assert state.workers["w1"].load == 1


@pytest.mark.parametrize("command, code", [
    (dict(partition_id="nope/0"), ErrorCode.UNKNOWN_PARTITION),
    (dict(slot=2), ErrorCode.UNKNOWN_PARTITION),
    (dict(worker_id="ghost"), ErrorCode.UNKNOWN_WORKER),
    (dict(epoch=1, slot=1, worker_id="w2"), ErrorCode.STALE_EPOCH),
    (dict(slot=1), ErrorCode.CO_LOCATED),
    (dict(worker_id="w2"), ErrorCode.SLOT_OCCUPIED),
])
def test_assign_errors(state, command, code):
    assign(state, "t/0", "w1")
    fields = dict(partition_id="t/0", slot=0, worker_id="w1", epoch=2, now=1.0)
    fields.update(command)
    assert unchanged(state, c.Assign(**fields)) is code


def test_graceful_handoff(state):
    assign(state, "t/0", "w1")
    started = state.apply(c.Revoke(partition_id="t/0", slot=0, worker_id="w1", epoch=1,
                                   target="w2", now=5.0))
    assert started.deadline == 15.0
    move = state.pending_moves[("t/0", 0)]
    assert (move.phase, move.target) == (MovePhase.REVOKING, "w2")
    assert unchanged(state, c.Revoke(partition_id="t/0", slot=0, worker_id="w1", epoch=1,
                                     now=5.0)) is ErrorCode.REVOKE_PENDING
    result = state.apply(c.Released(partition_id="t/0", slot=0, worker_id="w1", epoch=1,
                                    now=6.0))
    assert result.forced is False
    assert state.owner("t/0") is None
    assert state.pending_moves[("t/0", 0)].phase is MovePhase.RELEASED
    assert assign(state, "t/0", "w2", now=7.0).epoch == 2
    assert not state.pending_moves
    assert state.counters.releases == 1


@pytest.mark.parametrize("fields, code", [
    (dict(worker_id="w2"), ErrorCode.WRONG_OWNER),
    (dict(epoch=0), ErrorCode.STALE_EPOCH),
    (dict(partition_id="t/9"), ErrorCode.UNKNOWN_PARTITION),
])
def test_revoke_errors(state, fields, code):
    assign(state, "t/0", "w1")
    base = dict(partition_id="t/0", slot=0, worker_id="w1", epoch=1, now=1.0)
    base.update(fields)
    assert unchanged(state, c.Revoke(**base)) is code


def test_released_and_force_errors(state):
    assign(state, "t/0", "w1")
    base = dict(partition_id="t/0", slot=0, worker_id="w1", epoch=1, now=1.0)
    assert unchanged(state, c.Released(**base)) is ErrorCode.NO_PENDING_REVOKE
    state.apply(c.Revoke(**base))
    assert unchanged(state, c.Released(**{**base, "worker_id": "w2"})) is ErrorCode.WRONG_OWNER
    assert unchanged(state, c.Released(**{**base, "epoch": 0})) is ErrorCode.STALE_EPOCH
    assert unchanged(state, c.ForceRevoke(**{**base, "now": 10.999})) is ErrorCode.TOO_EARLY
    result = state.apply(c.ForceRevoke(**{**base, "now": 11.0}))  # exactly at the deadline
    assert result.forced and state.counters.forced_revokes == 1
    assert unchanged(state, c.ForceRevoke(**{**base, "now": 12.0})) \
        is ErrorCode.NO_PENDING_REVOKE


def test_owner_death_during_handoff_keeps_target(state):
    assign(state, "t/0", "w1")
    state.apply(c.Revoke(partition_id="t/0", slot=0, worker_id="w1", epoch=1, target="w2",
                         now=1.0))
    result = state.apply(c.ExpireWorker(worker_id="w1", now=2.0))
    assert result.held == ()  # moving anyway: nothing is held
    assert state.pending_moves[("t/0", 0)].phase is MovePhase.RELEASED


def expire(state, worker, now, heard=None):
    """The leader expires ``worker`` at ``now``, having last heard from it at
    ``heard`` (default: ``now``, after whatever it took)."""
    return state.apply(c.ExpireWorker(worker_id=worker, now=now,
                                      last_heard=now if heard is None else heard))


def crash(state, worker, died, back=None, zone="z1", process=None):
    """``worker``'s lease is expired at ``died``; it registers again at ``back``
    (default: at once) as a new process (``process``), or, with ``process`` equal to
    its current one, as the same process (its lease was lost, not its process)."""
    expire(state, worker, died)
    if process is None:
        process = state.workers[worker].process + "+"
    return register(state, worker, zone, now=died if back is None else back, process=process)


def test_quarantine_after_crashes_on_distinct_workers_and_release(state):
    for worker, zone in (("w1", "z1"), ("w2", "z2"), ("w3", "z3")):
        register(state, worker, zone, now=0.0, process="1")
    assign(state, "t/0", "w1", now=0.0)
    # Back after its hold (restart delay 5 s) ran out: t/0 is not handed back.
    assert crash(state, "w1", 10.0, back=16.0).quarantined == ()
    assert state.partitions["t/0"].deaths == [(10.0, "w1")]
    assign(state, "t/0", "w2", now=16.0)
    result = crash(state, "w2", 20.0, zone="z2")
    assert result.quarantined == ("t/0",)
    assert state.status().quarantined == ("t/0",)
    assert state.status().counters["quarantines"] == 1
    assert not any(k[0] == "t/0" for k in state.holds)
    assert unchanged(state, c.Assign(partition_id="t/0", slot=0, worker_id="w3", epoch=3,
                                     now=21.0)) is ErrorCode.QUARANTINED
    assert state.apply(c.ReleaseQuarantine(partition_id="t/0", now=22.0)) == \
        c.QuarantineReleased(partition_id="t/0")
    assert state.partitions["t/0"].deaths == []
    assert isinstance(assign(state, "t/0", "w3", now=23.0), c.Assigned)
    assert unchanged(state, c.ReleaseQuarantine(partition_id="t/0", now=24.0)) \
        is ErrorCode.NOT_QUARANTINED
    assert unchanged(state, c.ReleaseQuarantine(partition_id="x/0", now=24.0)) \
        is ErrorCode.UNKNOWN_PARTITION


def test_crash_looping_partition_is_quarantined_across_distinct_workers():
    # Three workers, each crashing right after taking p/0 and restarting (default
    # settings: threshold 3, suspect window 30 s, window 60 s).
    state = CoordinatorState()
    workers = ["a", "b", "c", "d"]
    for worker in workers:
        register(state, worker, now=0.0, process="1")
    state.apply(c.CreatePartitionGroup(name="p", count=1, now=0.0))
    state.apply(c.CreatePartitionGroup(name="g", count=8, now=0.0))
    for i in range(8):
        assign(state, f"g/{i}", workers[i % 4], now=0.0)
    quarantined = []
    for i, worker in enumerate(["a", "b", "c"]):
        t = 40.0 + 10.0 * i
        assign(state, "p/0", worker, now=t)
        quarantined.append(crash(state, worker, t + 3.0, back=t + 6.0).quarantined)
    assert quarantined == [(), (), ("p/0",)]
    # The partitions the dead workers ran for 40 s and more are not suspects.
    assert state.status().quarantined == ("p/0",)
    assert all(not state.partitions[f"g/{i}"].deaths for i in range(8))


def test_partition_bouncing_between_two_crashing_workers_is_quarantined():
    # A crashed worker comes back empty, so the planner may hand the partition
    # straight back to it: two distinct workers are enough.
    state = CoordinatorState()
    for worker in ("a", "b"):
        register(state, worker, now=0.0, process="1")
    state.apply(c.CreatePartitionGroup(name="p", count=1, now=0.0))
    results = []
    for i, worker in enumerate(["a", "b", "a"]):
        t = 10.0 + 5.0 * i
        assign(state, "p/0", worker, now=t)
        results.append(crash(state, worker, t + 2.5, back=t + 4.0).quarantined)
    assert results == [(), (), ("p/0",)]


def test_a_quarantined_partition_explains_the_crashes_it_shared():
    # g/0 travelled with the bad p/0 for two crashes; once p/0 is quarantined those
    # crashes are taken off g/0.
    state = CoordinatorState()
    for worker in ("a", "b", "c", "d"):
        register(state, worker, now=0.0, process="1")
    state.apply(c.CreatePartitionGroup(name="p", count=1, now=0.0))
    state.apply(c.CreatePartitionGroup(name="g", count=1, now=0.0))
    for i, worker in enumerate(["a", "b"]):
        t = 10.0 + 5.0 * i
        assign(state, "p/0", worker, now=t)
        assign(state, "g/0", worker, now=t)
        crash(state, worker, t + 2.5, back=t + 4.0)
    assert len(state.partitions["g/0"].deaths) == 2
    assign(state, "p/0", "c", now=20.0)
    assign(state, "g/0", "d", now=20.0)
    assert crash(state, "c", 22.5, back=24.0).quarantined == ("p/0",)
    assert state.partitions["g/0"].deaths == []
    assert crash(state, "d", 22.5, back=24.0).quarantined == ()  # g/0 alone on d
    assert state.partitions["g/0"].deaths == [(22.5, "d")]


def test_one_worker_crashing_with_many_partitions_quarantines_none_of_the_older():
    # Threshold 1: any charge quarantines. The worker took g/0..g/3 at 0 and g/4 at
    # 5, then crashed: only g/4, the one it took last, is a suspect.
    state = CoordinatorState(CoordinatorConfig(quarantine_threshold=1))
    register(state, "w", now=0.0, process="1")
    state.apply(c.CreatePartitionGroup(name="g", count=5, now=0.0))
    for i in range(4):
        assign(state, f"g/{i}", "w", now=0.0)
    assign(state, "g/4", "w", now=5.0)
    assert crash(state, "w", 7.0, back=9.0).quarantined == ("g/4",)
    assert state.status().quarantined == ("g/4",)


def test_partitions_taken_together_share_a_crash_but_one_crash_quarantines_nothing(state):
    # The fixture's threshold is 2: a crash charges every partition the worker took
    # at its last instant, but once.
    register(state, "w1", now=0.0, process="1")
    for i in range(4):
        assign(state, f"t/{i}", "w1", now=1.0)
    assert crash(state, "w1", 3.0, back=4.0).quarantined == ()
    assert [state.partitions[f"t/{i}"].deaths for i in range(4)] == [[(3.0, "w1")]] * 4
    assert not state.status().quarantined


@pytest.mark.parametrize("fault", ["pause", "cut-off", "node partition"])
def test_leases_lost_while_the_process_lived_quarantine_nothing(fault):
    # The same process comes back after each expiry: a pause, a worker cut off from
    # the coordinator for a while, or the workers on the far side of a partition of
    # the coordinator nodes (all expired in one leader tick). Threshold 1, so any
    # charge at all would quarantine.
    state = CoordinatorState(CoordinatorConfig(quarantine_threshold=1))
    workers = ["a", "b", "c", "d"]
    for worker in workers:
        register(state, worker, now=0.0, process=f"{worker}-1")
    state.apply(c.CreatePartitionGroup(name="g", count=8, now=0.0))
    for i in range(8):
        assign(state, f"g/{i}", workers[i % 4], now=1.0)
    for round_ in range(3):
        t = 2.0 + 10.0 * round_
        victims = workers[:2] if fault == "node partition" else [workers[round_]]
        for worker in victims:
            expire(state, worker, t)
        back = t + (1.0 if fault == "pause" else 6.0)
        for worker in victims:
            result = register(state, worker, now=back, process=f"{worker}-1")
            assert result.quarantined == ()
            assert state.workers[worker].suspects == ()
        for i in range(8):  # everything is placed again, as just taken
            if state.owner(f"g/{i}") is None:
                assign(state, f"g/{i}", workers[(i + round_ + 1) % 4], now=back)
    assert not state.status().quarantined
    assert all(not record.deaths for record in state.partitions.values())


def test_a_worker_that_never_comes_back_or_sends_no_process_id_charges_nothing():
    state = CoordinatorState(CoordinatorConfig(quarantine_threshold=1))
    register(state, "gone", now=0.0, process="1")
    register(state, "old", now=0.0)  # an agent that sends no process id
    state.apply(c.CreatePartitionGroup(name="g", count=2, now=0.0))
    assign(state, "g/0", "gone", now=1.0)
    assign(state, "g/1", "old", now=1.0)
    expire(state, "gone", 3.0)
    assert state.workers["gone"].suspects == ("g/0",)
    assert crash(state, "old", 3.0, process="").quarantined == ()
    assert not state.status().quarantined


def test_a_worker_back_after_the_window_charges_nothing():
    state = CoordinatorState(CoordinatorConfig(quarantine_threshold=1, quarantine_window=60.0))
    register(state, "w", now=0.0, process="1")
    state.apply(c.CreatePartitionGroup(name="g", count=1, now=0.0))
    assign(state, "g/0", "w", now=1.0)
    assert crash(state, "w", 3.0, back=70.0).quarantined == ()
    assert not state.partitions["g/0"].deaths


def test_one_worker_crash_looping_alone_counts_once():
    # Its slots are held and handed back at every restart, so they are always its
    # latest takes; but a single worker cannot tell a bad partition from a bad worker.
    state = CoordinatorState(CoordinatorConfig(restart_delay=5.0))
    register(state, "w", now=0.0, process="0")
    register(state, "v", now=0.0, process="0")
    state.apply(c.CreatePartitionGroup(name="g", count=2, now=0.0))
    assign(state, "g/0", "w", now=0.0)
    for i in range(5):
        result = crash(state, "w", 3.0 + 4.0 * i, back=4.0 + 4.0 * i, process=str(i + 1))
        assert result.restored and result.quarantined == ()
    assert state.partitions["g/0"].deaths[-1][1] == "w"
    assert not state.status().quarantined


def test_slots_handed_back_after_a_restart_keep_their_take_time(state):
    # w1 took t/0 at 0 and t/1 at 10, crashed and came back within its restart
    # delay: both are handed back, but only t/1 is a new take.
    register(state, "w1", now=0.0, process="1")
    assign(state, "t/0", "w1", now=0.0)
    assign(state, "t/1", "w1", now=10.0)
    assert len(crash(state, "w1", 12.0, back=13.0).restored) == 2
    assert state.partitions["t/0"].assigned_at[0] == 0.0
    expire(state, "w1", 14.0)
    assert state.workers["w1"].suspects == ("t/1",)


def test_a_restart_within_the_lease_only_updates_the_process_id(state):
    # The new process registers while the worker is still live: when the old one
    # was last heard from is unknown, so nothing is charged; a later lease lost by
    # the new process is no crash.
    register(state, "w1", now=0.0, process="1")
    assign(state, "t/0", "w1", now=1.0)
    assert register(state, "w1", now=2.0, process="2") == \
        c.WorkerRegistered(worker_id="w1", created=False)
    assert state.workers["w1"].process == "2" and not state.partitions["t/0"].deaths
    assert crash(state, "w1", 5.0, back=6.0, process="2").quarantined == ()
    assert not state.partitions["t/0"].deaths


def test_a_partition_given_after_the_worker_went_silent_is_no_suspect():
    # w crashed at 4 (last heard at 4); the leader gave it g/1 at 5, before its
    # lease ran out. g/1 never reached it; g/0, which it ran, is the suspect.
    state = CoordinatorState(CoordinatorConfig(quarantine_threshold=1))
    register(state, "w", now=0.0, process="1")
    state.apply(c.CreatePartitionGroup(name="g", count=2, now=0.0))
    assign(state, "g/0", "w", now=1.0)
    assign(state, "g/1", "w", now=5.0)
    expire(state, "w", 6.0, heard=4.0)
    assert state.workers["w"].suspects == ("g/0",)
    # An expiry by a leader that never heard from the worker names no suspect.
    register(state, "w", now=7.0, process="1")
    assign(state, "g/0", "w", now=7.0)
    state.apply(c.ExpireWorker(worker_id="w", now=9.0))
    assert state.workers["w"].suspects == ()


def _revoke_then_quarantine(state):
    """The command sequence of `raftcoord simulate --scenario mixed --seed 24` for
    `events/0` (3 nodes, 30 s, all faults), reduced: slot 0 is being handed off when
    the death of slot 1's owner quarantines the partition."""
    for worker, zone in (("w1", "z1"), ("w2", "z2"), ("w3", "z3"), ("w4", "z4")):
        register(state, worker, zone, process="1")
    assign(state, "t/0", "w1", slot=0, now=0.0)
    assign(state, "t/0", "w2", slot=1, now=0.0)
    expire(state, "w2", 10.0)  # first crash; slot 1 held
    assign(state, "t/0", "w3", slot=1, now=16.0)  # after the hold ran out
    register(state, "w2", "z2", now=16.0, process="2")  # back as a new process
    state.apply(c.Revoke(partition_id="t/0", slot=0, worker_id="w1",
                         epoch=state.partitions["t/0"].epoch, target="w4", now=17.0))
    result = crash(state, "w3", 18.0, zone="z3")
    assert result.quarantined == ("t/0",)
    assert state.pending_moves[("t/0", 0)].phase is MovePhase.REVOKING


@pytest.mark.parametrize("finish", ["released", "forced", "source died"])
def test_handoff_finishing_during_quarantine_ends_its_move(state, finish):
    # Regression: the revoke used to finish into a RELEASED move that nothing could
    # complete (no Assign to a quarantined partition), so it stayed pending forever.
    _revoke_then_quarantine(state)
    epoch = state.partitions["t/0"].epoch
    base = dict(partition_id="t/0", slot=0, worker_id="w1", epoch=epoch)
    if finish == "released":
        result = state.apply(c.Released(**base, now=19.0))
        assert isinstance(result, c.SlotReleased), result
    elif finish == "forced":
        result = state.apply(c.ForceRevoke(**base, now=27.0))
        assert isinstance(result, c.SlotReleased) and result.forced, result
    else:
        result = expire(state, "w1", 19.0)
        assert result.freed == (c.SlotRef(partition_id="t/0", slot=0, epoch=epoch),)
    assert state.owner("t/0", 0) is None and state.partitions["t/0"].quarantined
    assert not state.pending_moves and state.status().pending_moves == 0
    assert state == CoordinatorState.restore(state.snapshot())
    # Back in service, the slot is free for anyone, not tied to the old target.
    state.apply(c.ReleaseQuarantine(partition_id="t/0", now=30.0))
    assert isinstance(assign(state, "t/0", "w4", slot=0, now=31.0), c.Assigned)
    assert not state.pending_moves


def test_quarantine_drops_released_handoffs(state):
    _revoke_then_quarantine(state)
    state.apply(c.ReleaseQuarantine(partition_id="t/0", now=19.0))
    state.apply(c.Released(partition_id="t/0", slot=0, worker_id="w1",
                           epoch=state.partitions["t/0"].epoch, now=20.0))
    assert state.pending_moves[("t/0", 0)].phase is MovePhase.RELEASED
    assign(state, "t/0", "w3", slot=1, now=21.0)
    expire(state, "w3", 22.0)
    assign(state, "t/0", "w4", slot=1, now=27.5)  # after w3's hold ran out
    register(state, "w3", "z3", now=27.5, process="3")  # w3 had crashed
    crash(state, "w4", 28.0, zone="z4")  # quarantined again: w3, w4 within the window
    assert state.partitions["t/0"].quarantined
    assert not state.pending_moves


def test_deaths_long_after_taking_a_partition_do_not_quarantine(state):
    for i, worker in enumerate(["w1", "w2", "w1", "w2"]):
        register(state, worker, now=i * 100.0, process=str(i))
        assign(state, "t/0", worker, now=i * 100.0)
        expire(state, worker, i * 100.0 + 50.0)
        assert state.workers[worker].suspects == ()
    assert not state.partitions["t/0"].quarantined


def test_quarantine_evidence_survives_snapshot_and_restore(state):
    register(state, "w1", now=0.0, process="1")
    assign(state, "t/0", "w1", now=1.0)
    crash(state, "w1", 3.0, back=4.0)
    assign(state, "t/1", "w2", now=5.0)
    expire(state, "w2", 6.0)
    restored = CoordinatorState.restore(state.snapshot())
    assert restored == state
    assert restored.partitions["t/0"].deaths == [(3.0, "w1")]
    assert restored.workers["w1"].process == "1+" and restored.workers["w2"].suspects == ("t/1",)
    assert restored.config.quarantine_suspect_window == state.config.quarantine_suspect_window


def test_deleting_a_group_forgets_its_suspects(state):
    assign(state, "t/0", "w1", now=1.0)
    expire(state, "w1", 2.0)
    assert state.workers["w1"].suspects == ("t/0",)
    state.apply(c.DeletePartitionGroup(name="t", now=3.0))
    assert state.workers["w1"].suspects == ()


# --------------------------------------------------------------------- metadata KV


def test_kv_put_get_cas_delete_list():
    s = CoordinatorState()
    assert s.apply(c.KvGet(key="a")) == c.KvValue(key="a", value=None, version=0)
    assert s.apply(c.KvPut(key="a", value=b"1")).version == 1
    assert s.apply(c.KvCas(key="b", expected_version=0, value=b"2")).version == 2
    assert error_code(s.apply(c.KvCas(key="b", expected_version=0, value=b"x"))) \
        is ErrorCode.VERSION_MISMATCH
    assert s.apply(c.KvCas(key="b", expected_version=2, value=b"3")).version == 3
    s.apply(c.KvPut(key="ab", value=b"4"))
    listed = s.apply(c.KvList(prefix="a"))
    assert [(e.key, e.value) for e in listed.entries] == [("a", b"1"), ("ab", b"4")]
    assert len(s.apply(c.KvList(prefix="", limit=2)).entries) == 2
    assert error_code(s.apply(c.KvDelete(key="a", expected_version=7))) \
        is ErrorCode.VERSION_MISMATCH
    assert s.apply(c.KvDelete(key="a", expected_version=1)).value is None
    assert s.apply(c.KvGet(key="a")).version == 0
    assert s.apply(c.KvDelete(key="a")).version == 0  # deleting nothing is fine
    assert [e.key for e in s.apply(c.KvList(prefix="a")).entries] == ["ab"]


def test_fenced_put_requires_current_epoch(state):
    put = dict(key="ckpt/t/0", value=b"x", partition_id="t/0")
    assert error_code(state.apply(c.FencedPut(epoch=0, **put))) is ErrorCode.FENCED  # unowned
    assign(state, "t/0", "w1")
    assert state.apply(c.FencedPut(epoch=1, **put)).version == 1
    state.apply(c.Revoke(partition_id="t/0", slot=0, worker_id="w1", epoch=1, now=1.0))
    state.apply(c.Released(partition_id="t/0", slot=0, worker_id="w1", epoch=1, now=1.0))
    assign(state, "t/0", "w2")
    # The old owner's token is now stale; the new owner's works.
    assert error_code(state.apply(c.FencedPut(epoch=1, **put))) is ErrorCode.FENCED
    assert state.apply(c.FencedPut(epoch=2, **put)).version == 2
    assert error_code(state.apply(c.FencedPut(key="k", value=b"", partition_id="x/1",
                                              epoch=1))) is ErrorCode.UNKNOWN_PARTITION


def test_batch_applies_each_command_on_its_own(state):
    result = state.apply(c.Batch(commands=[
        c.Assign(partition_id="t/0", slot=0, worker_id="w1", epoch=1, now=1.0),
        c.Assign(partition_id="t/0", slot=1, worker_id="w1", epoch=2, now=1.0),  # co-located
        c.Assign(partition_id="t/0", slot=1, worker_id="w2", epoch=2, now=1.0),
    ]))
    assert [type(r) for r in result.results] == [c.Assigned, c.Error, c.Assigned]
    assert state.partitions["t/0"].owners == ["w1", "w2"]


def test_apply_rejects_non_commands():
    with pytest.raises(TypeError):
        CoordinatorState().apply("RegisterWorker")  # type: ignore[arg-type]


# -------------------------------------------------------------- snapshot / restore


def busy_log():
    log = [
        c.RegisterWorker(worker_id="b", address="b:1", zone="z2", capacity=2,
                         labels={"k": "v"}, now=0.0),
        c.RegisterWorker(worker_id="a", address="a:1", zone="z1", now=0.0),
        c.RegisterWorker(worker_id="c", address="c:1", zone="z3", now=0.0),
        c.CreatePartitionGroup(name="zz", count=3, weight=2, replication_factor=2, now=0.0),
        c.CreatePartitionGroup(name="aa", count=2, now=0.0),
        c.Assign(partition_id="zz/0", slot=0, worker_id="a", epoch=1, now=1.0),
        c.Assign(partition_id="zz/0", slot=1, worker_id="b", epoch=2, now=1.0),
        c.Assign(partition_id="aa/1", slot=0, worker_id="c", epoch=1, now=1.0),
        c.Assign(partition_id="zz/2", slot=0, worker_id="c", epoch=1, now=1.0),
        c.Revoke(partition_id="zz/0", slot=0, worker_id="a", epoch=2, target="c", now=2.0),
        c.KvPut(key="x", value=b"1"),
        c.FencedPut(key="y", value=b"2", partition_id="aa/1", epoch=1),
        c.DrainWorker(worker_id="b", now=3.0),
        c.ExpireWorker(worker_id="c", now=4.0),
        c.DeletePartitionGroup(name="aa", now=5.0),
    ]
    return log


def test_snapshot_restore_equals_replay():
    config = CoordinatorConfig(restart_delay=30.0)
    replayed = CoordinatorState(config)
    for command in busy_log():
        replayed.apply(command)
    data = replayed.snapshot()
    restored = CoordinatorState.restore(data)
    assert restored == replayed
    assert restored.snapshot() == data
    assert restored.config == config
    # Derived indexes are rebuilt too: both continue identically.
    for command in [c.RegisterWorker(worker_id="c", address="c:2", now=6.0),
                    c.CreatePartitionGroup(name="aa", count=2, now=6.0),
                    c.Released(partition_id="zz/0", slot=0, worker_id="a", epoch=2, now=7.0)]:
        assert restored.apply(command) == replayed.apply(command)
    assert restored == replayed
    assert restored.free_slots == replayed.free_slots
    assert {w: r.load for w, r in restored.workers.items()} == \
        {w: r.load for w, r in replayed.workers.items()}


def test_restore_rejects_garbage():
    with pytest.raises(SnapshotError):
        CoordinatorState.restore(b"\xff\x00garbage")
    with pytest.raises(SnapshotError, match="invalid snapshot"):
        CoordinatorState.restore(b"\xa1\x66format\x02")  # {"format": 2}, nothing else
    with pytest.raises(SnapshotError, match="unsupported snapshot format 5"):
        CoordinatorState.restore(cbor2.dumps({"format": 5}))


# ------------------------------------------------------------------- cluster time


def test_log_time_is_the_largest_now_applied():
    state = CoordinatorState(CoordinatorConfig(restart_delay=30.0))
    assert state.log_time == 0.0
    times = []
    for command in busy_log():
        state.apply(command)
        times.append(state.log_time)
    assert times == sorted(times) and state.log_time == 5.0
    # An older timestamp (a command stamped earlier) does not take it back ...
    state.apply(c.RegisterWorker(worker_id="d", address="d:1", zone="z1", now=4.5))
    assert state.log_time == 5.0
    # ... a refused command changes nothing, not even the time (rule 2) ...
    assert unchanged(state, c.ExpireWorker(worker_id="nobody", now=99.0)) \
        is ErrorCode.UNKNOWN_WORKER
    assert state.log_time == 5.0
    # ... and a batch advances it by its inner commands.
    state.apply(c.Batch(commands=[c.DrainWorker(worker_id="d", now=6.0), c.KvPut(key="k", value=b"")]))
    assert state.log_time == 6.0


def test_log_time_survives_snapshot_and_restore():
    state = CoordinatorState(CoordinatorConfig(restart_delay=30.0))
    for command in busy_log():
        state.apply(command)
    state.apply(c.KvPut(key="k", value=b"v"))
    restored = CoordinatorState.restore(state.snapshot())
    assert restored.log_time == state.log_time == 5.0
    assert restored == state


def as_format_2(wire, version=2):
    """A format 4 snapshot's wire form as format 2 (or 3) wrote it: no quarantine
    evidence of rule 6 (no suspect window, process ids, suspects or holds' take
    times; deaths as bare times), and before 3 no client sessions."""
    wire = dict(wire, format=version, config=wire["config"][:4])
    if version < 3:
        wire.pop("sessions", None)
        wire.pop("session_clock", None)
    wire["workers"] = [row[:8] for row in wire["workers"]]
    wire["holds"] = [row[:4] for row in wire["holds"]]
    wire["partitions"] = [row[:9] + [[d[0] for d in row[9]]] + row[10:]
                          for row in wire["partitions"]]
    return wire


def without_quarantine_evidence(state):
    """``state`` as restored from a format 1 or 2 snapshot: rule 6's evidence gone."""
    wire = as_format_2(cbor2.loads(state.snapshot()))
    wire["partitions"] = [row[:9] + [[]] + row[10:] for row in wire["partitions"]]
    return CoordinatorState.restore(cbor2.dumps(wire))


def test_format_2_snapshot_is_read_without_the_old_death_charges(state):
    register(state, "w1", now=0.0, process="1")
    assign(state, "t/0", "w1", now=1.0)
    crash(state, "w1", 3.0, back=4.0)
    assert state.partitions["t/0"].deaths
    restored = CoordinatorState.restore(cbor2.dumps(as_format_2(cbor2.loads(state.snapshot()))))
    assert restored.partitions["t/0"].deaths == []
    three = CoordinatorState.restore(cbor2.dumps(as_format_2(cbor2.loads(state.snapshot()), 3)))
    assert three == restored
    assert restored.workers["w1"].process == "" and restored.log_time == state.log_time
    assert restored.config.quarantine_suspect_window == \
        CoordinatorConfig().quarantine_suspect_window
    assert restored == without_quarantine_evidence(state)


def test_format_1_snapshot_takes_its_latest_timestamp_as_log_time():
    state = CoordinatorState(CoordinatorConfig(restart_delay=30.0))
    for command in busy_log():
        state.apply(command)
    wire = as_format_2(cbor2.loads(state.snapshot()))
    del wire["log_time"]
    wire["format"] = 1
    restored = CoordinatorState.restore(cbor2.dumps(wire, canonical=True))
    # The latest timestamp stored: the deletion of "aa" at 5.0 (its retirement).
    assert restored.log_time == 5.0
    assert restored == without_quarantine_evidence(state)
    wire["retired"] = []
    assert CoordinatorState.restore(cbor2.dumps(wire)).log_time == 4.0  # the expiry


def test_status_counts(state):
    assign(state, "t/0", "w1")
    status = state.status()
    assert status.partitions == 4 and status.slots == 8 and status.assigned_slots == 1
    assert status.workers[WorkerState.ACTIVE] == 2


def test_batched_groups_commands():
    commands = [c.KvPut(key=f"k{i}", value=b"") for i in range(5)]
    batches = c.batched(commands, 2)
    assert [len(b.commands) for b in batches] == [2, 2, 1]
    state = CoordinatorState()
    results = [state.apply(b) for b in batches]
    assert sum(len(r.results) for r in results) == 5
    with pytest.raises(ValueError):
        c.batched(commands, 0)


def test_worker_view(state):
    from coordinator.records import OwnedSlot
    assign(state, "t/0", "w1")
    assign(state, "t/1", "w1")
    state.apply(c.Revoke(partition_id="t/1", slot=0, worker_id="w1", epoch=1, now=1.0))
    assert state.worker_view("w1") == [
        OwnedSlot(partition_id="t/0", slot=0, epoch=1, revoking=False),
        OwnedSlot(partition_id="t/1", slot=0, epoch=1, revoking=True),
    ]
    assert state.worker_view("nobody") == []
