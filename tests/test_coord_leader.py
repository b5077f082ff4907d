"""The leader helper: what it proposes, lease coverage, and a small timed run that
checks no two workers may act for one partition at the same real instant."""

from __future__ import annotations

import random

import attrs

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coordinator import commands as c
from coordinator.commands import WorkerState
from coordinator.config import CoordinatorConfig
from coordinator.leader import CoordinatorLeader
from coordinator.lease import LeaseTiming, WorkerLease
from coordinator.placement import PlacementPolicy
from coordinator.records import MovePhase
from coordinator.state import CoordinatorState

TIMING = LeaseTiming(lease_duration=10.0, max_drift=0.05, safety_margin=0.5)
CONFIG = CoordinatorConfig(revoke_timeout=TIMING.leader_lease)


def make_state(workers=3, partitions=6):
    state = CoordinatorState(CONFIG)
    for i in range(workers):
        state.apply(c.RegisterWorker(worker_id=f"w{i}", address="", zone=f"z{i}", now=0.0))
    state.apply(c.CreatePartitionGroup(name="g", count=partitions, now=0.0))
    return state


def run(leader, state, now):
    """Propose and apply at once; returns the proposed commands."""
    commands = leader.next_commands(now)
    for command in commands:
        leader.on_applied(command, state.apply(command))
    return commands


def test_initial_assignment_then_quiet():
    state = make_state()
    leader = CoordinatorLeader(state, TIMING, term_start=0.0)
    commands = run(leader, state, 0.0)
    assert [type(cmd) for cmd in commands] == [c.Assign] * 6
    assert all(state.owner(f"g/{i}") is not None for i in range(6))
    assert leader.next_commands(0.1) == []


def test_proposals_in_flight_are_not_repeated_until_retry():
    state = make_state()
    leader = CoordinatorLeader(state, TIMING, term_start=0.0, retry_after=2.0)
    first = leader.next_commands(0.0)
    assert len(first) == 6
    assert leader.next_commands(1.0) == []
    assert len(leader.next_commands(2.0)) == 6  # presumed lost: proposed again
    leader.on_dropped(first[0])
    for command in first[1:]:
        leader.on_applied(command, state.apply(command))
    assert len(leader.next_commands(2.5)) == 1


def test_heartbeat_ack_covers_owned_slots():
    state = make_state()
    leader = CoordinatorLeader(state, TIMING, term_start=0.0)
    run(leader, state, 0.0)
    ack = leader.on_heartbeat("w0", seq=7, received_at=1.0)
    assert ack.seq == 7
    assert list(ack.covered) == [(pid, state.partitions[pid].epoch)
                                 for pid, _ in state.owned_slots("w0")]
    assert leader.on_heartbeat("ghost", seq=1, received_at=1.0) is None
    state.apply(c.ExpireWorker(worker_id="w1", now=2.0))
    assert leader.on_heartbeat("w1", seq=1, received_at=2.0) is None


def test_silent_worker_expires_only_after_grace_and_lease():
    state = make_state()
    leader = CoordinatorLeader(state, TIMING, term_start=100.0)
    run(leader, state, 100.0)
    for t in range(101, 130):
        for worker in ("w0", "w1"):
            leader.on_heartbeat(worker, seq=t, received_at=float(t))
        commands = run(leader, state, float(t) + 0.5)
        expired = [cmd for cmd in commands if isinstance(cmd, c.ExpireWorker)]
        if t + 0.5 < 110.5:
            assert expired == []
        elif expired:
            # Stamped with cluster time, which continues from the log (0.0 here).
            assert expired == [c.ExpireWorker(worker_id="w2", now=t + 0.5 - 100.0)]
            assert expired[0].now == leader.cluster_time(t + 0.5)
            break
    else:
        pytest.fail("w2 never expired")
    assert state.workers["w2"].state is WorkerState.DEAD
    # Next round: its slots are re-placed on the survivors.
    commands = run(leader, state, t + 1.0)
    assert commands and all(isinstance(cmd, c.Assign) for cmd in commands)
    assert not state.workers["w2"].owned


def test_graceful_handoff_and_coverage_during_revoke():
    state = make_state(workers=2, partitions=6)
    leader = CoordinatorLeader(state, TIMING, term_start=0.0)
    run(leader, state, 0.0)
    state.apply(c.RegisterWorker(worker_id="w9", address="", zone="z9", now=1.0))
    revokes = leader.next_commands(1.0)
    assert len(revokes) == 2 and all(isinstance(cmd, c.Revoke) for cmd in revokes)
    assert all(cmd.target == "w9" for cmd in revokes)
    # From the proposal on, acknowledgements no longer cover the revoked slots.
    for revoke in revokes:
        ack = leader.on_heartbeat(revoke.worker_id, seq=1, received_at=1.1)
        assert revoke.partition_id not in dict(ack.covered)
    # A dropped revoke is covered again.
    leader.on_dropped(revokes[0])
    ack = leader.on_heartbeat(revokes[0].worker_id, seq=2, received_at=1.2)
    assert revokes[0].partition_id in dict(ack.covered)
    revokes = leader.next_commands(4.0)  # proposed again after retry_after
    for revoke in revokes:
        leader.on_applied(revoke, state.apply(revoke))
    first, second = revokes
    # The first owner releases; the leader then assigns to the target, epoch + 1.
    epoch = state.partitions[first.partition_id].epoch
    state.apply(c.Released(partition_id=first.partition_id, slot=0, worker_id=first.worker_id,
                           epoch=epoch, now=5.0))
    assigns = run(leader, state, 5.0)
    assert assigns == [c.Assign(partition_id=first.partition_id, slot=0, worker_id="w9",
                                epoch=epoch + 1, now=5.0)]
    # The second never releases: forced a full leader lease after the proposal.
    proposed_at = 4.0
    for worker in ("w0", "w1", "w9"):
        leader.on_heartbeat(worker, seq=3, received_at=13.0)
    assert run(leader, state, proposed_at + TIMING.leader_lease - 0.01) == []
    forced = run(leader, state, proposed_at + TIMING.leader_lease)
    assert [type(cmd) for cmd in forced] == [c.ForceRevoke]
    assert state.counters.forced_revokes == 1
    assigns = run(leader, state, proposed_at + TIMING.leader_lease + 0.1)
    assert [(cmd.partition_id, cmd.worker_id) for cmd in assigns] == \
        [(second.partition_id, "w9")]


def test_new_leader_waits_for_its_grace_before_forcing():
    state = make_state(workers=2, partitions=2)
    old = CoordinatorLeader(state, TIMING, term_start=0.0)
    run(old, state, 0.0)
    owner = state.owner("g/0")
    state.apply(c.Revoke(partition_id="g/0", slot=0, worker_id=owner, epoch=1, now=1.0))
    other = next(w for w in state.workers if w != owner)
    state.apply(c.UndrainWorker(worker_id=other, now=20.0))  # the log goes on to 20.0
    # The deadline of the revoke (11.5) has passed in cluster time, which continues
    # from 20.0 on the new leader, but its grace has not.
    new = CoordinatorLeader(state, TIMING, term_start=50.0)
    assert all(not isinstance(cmd, c.ForceRevoke) for cmd in new.next_commands(55.0))
    for worker in ("w0", "w1"):
        new.on_heartbeat(worker, seq=1, received_at=55.0)
    assert any(isinstance(cmd, c.ForceRevoke) for cmd in new.next_commands(60.5))


def test_released_slot_with_dead_target_is_replanned():
    state = make_state(workers=3, partitions=3)
    leader = CoordinatorLeader(state, TIMING, PlacementPolicy(), term_start=0.0)
    run(leader, state, 0.0)
    owner = state.owner("g/0")
    state.apply(c.Revoke(partition_id="g/0", slot=0, worker_id=owner, epoch=1, target="w2",
                         now=1.0))
    state.apply(c.Released(partition_id="g/0", slot=0, worker_id=owner, epoch=1, now=1.0))
    state.apply(c.ExpireWorker(worker_id="w2", now=1.0))
    assert state.pending_moves[("g/0", 0)].phase is MovePhase.RELEASED
    commands = run(leader, state, 2.0)
    assert ("g/0", 0) not in state.pending_moves and state.owner("g/0") is not None
    assert all(isinstance(cmd, c.Assign) for cmd in commands)


def test_handoff_cut_short_by_quarantine_does_not_block_later_moves():
    # Regression (`raftcoord simulate --scenario mixed`, seeds 5, 24, 68, 117): a
    # handoff whose partition was quarantined while it was revoking stayed pending
    # forever once released, as nothing may be assigned to a quarantined partition.
    # With one move allowed in flight it would stop every later handoff too.
    state = CoordinatorState(CoordinatorConfig(revoke_timeout=TIMING.leader_lease,
                                               quarantine_threshold=2))
    for i in range(4):
        state.apply(c.RegisterWorker(worker_id=f"w{i}", address="", zone=f"z{i}",
                                     process="1", now=0.0))
    state.apply(c.CreatePartitionGroup(name="r", count=1, replication_factor=2, now=0.0))
    state.apply(c.CreatePartitionGroup(name="g", count=7, now=0.0))
    leader = CoordinatorLeader(state, TIMING, PlacementPolicy(max_moves_in_flight=1),
                               term_start=0.0)
    run(leader, state, 0.0)

    def crash(now):
        """The owner of r/0 slot 1 crashes, comes back as a new process and leaves."""
        owner = state.owner("r/0", 1)
        state.apply(c.ExpireWorker(worker_id=owner, now=now, last_heard=now))
        result = state.apply(c.RegisterWorker(worker_id=owner, address="", zone="z",
                                              process="2", now=now))
        state.apply(c.DeregisterWorker(worker_id=owner, now=now))
        return result

    crash(1.0)
    run(leader, state, 1.0)  # r/0 slot 1 re-placed
    source = state.owner("r/0", 0)
    target = next(w for w in sorted(state.workers)
                  if state.workers[w].state is WorkerState.ACTIVE
                  and w not in state.partitions["r/0"].owners)
    state.apply(c.Revoke(partition_id="r/0", slot=0, worker_id=source,
                         epoch=state.partitions["r/0"].epoch, target=target, now=2.0))
    assert crash(3.0).quarantined == ("r/0",)
    state.apply(c.Released(partition_id="r/0", slot=0, worker_id=source,
                           epoch=state.partitions["r/0"].epoch, now=4.0))
    assert not state.pending_moves
    run(leader, state, 4.0)  # the dead worker's other slots re-placed
    state.apply(c.RegisterWorker(worker_id="w9", address="", zone="z9", now=5.0))
    commands = run(leader, state, 5.0)
    assert [(type(cmd), cmd.target) for cmd in commands] == [(c.Revoke, "w9")]
    assert all(cmd.partition_id != "r/0" for cmd in commands)


# ------------------------------------------------------------- a small timed run

# No safety margin: the lease inequality is tight, so any mistake in the arithmetic,
# in the coverage of acknowledgements or in the grace of a new leader shows up.
TIGHT = LeaseTiming(lease_duration=4.0, max_drift=0.05, safety_margin=0.0)
TIGHT_CONFIG = CoordinatorConfig(revoke_timeout=TIGHT.leader_lease, quarantine_threshold=100)


class _World:
    """Leader, workers and a slow network under one real (virtual) clock.

    Worker clocks run as slow and leader clocks as fast as the drift bound allows
    (the worst case), with arbitrary offsets.
    """

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        drift = TIGHT.max_drift
        self.state = CoordinatorState(TIGHT_CONFIG)
        self.rate: dict[str, float] = {}
        self.offset: dict[str, float] = {}
        self.leader_node = "leader"
        for node in ["leader", "leader2", "w0", "w1", "w2", "w3", "w4"]:
            worst = 1 + drift if node.startswith("leader") else 1 - drift
            self.rate[node] = worst if self.rng.random() < 0.8 else \
                1 + self.rng.uniform(-drift, drift)
            self.offset[node] = self.rng.uniform(-1000.0, 1000.0)
        self.workers = ["w0", "w1", "w2", "w3"]
        self.leases = {w: WorkerLease(TIGHT) for w in self.rate if w.startswith("w")}
        self.isolated: set[str] = set()  # its messages to the leader are lost
        self.crashed: set[str] = set()
        self.deaf: set[str] = set()  # heartbeats, but never releases anything
        self.next_heartbeat: dict[str, float] = {}
        self.inbox: list[tuple[float, str, object]] = []
        self.commits: list[tuple[float, object]] = []
        self.time = 0.0
        now = self.clock(self.leader_node)
        for worker in self.workers:
            self.state.apply(c.RegisterWorker(worker_id=worker, address="", zone=f"z{worker}",
                                              now=now))
        self.state.apply(c.CreatePartitionGroup(name="g", count=12, now=now))
        self.leader = self._new_leader()

    def _new_leader(self) -> CoordinatorLeader:
        return CoordinatorLeader(self.state, TIGHT, PlacementPolicy(max_moves_per_worker=2),
                                 term_start=self.clock(self.leader_node), retry_after=1.0)

    def fail_over(self) -> None:
        """Another node takes over with the same state and its own clock."""
        self.leader_node = "leader2"
        self.leader = self._new_leader()

    def clock(self, node: str) -> float:
        return self.offset[node] + self.time * self.rate[node]

    def send(self, to: str, message: object) -> None:
        self.inbox.append((self.time + self.rng.uniform(0.0, 0.3), to, message))

    def step(self, dt: float) -> None:
        self.time += dt
        due = [m for m in self.inbox if m[0] <= self.time]
        self.inbox = [m for m in self.inbox if m[0] > self.time]
        for _, to, message in sorted(due, key=lambda m: m[0]):
            if to == "leader":
                worker, seq = message
                if worker in self.isolated:
                    continue  # the partition cuts messages in flight too
                ack = self.leader.on_heartbeat(worker, seq, self.clock(self.leader_node))
                if ack is not None:
                    self.send(worker, ack)
            elif to not in self.crashed:
                self.leases[to].ack_received(message)
        # Commands commit after a short delay.
        ready = [m for m in self.commits if m[0] <= self.time]
        self.commits = [m for m in self.commits if m[0] > self.time]
        for _, command in ready:
            self.leader.on_applied(command, self.state.apply(command))
        for command in self.leader.next_commands(self.clock(self.leader_node)):
            self.commits.append((self.time + self.rng.uniform(0.0, 0.2), command))
        for worker in self.workers:
            if worker in self.crashed:
                continue
            lease = self.leases[worker]
            if self.time >= self.next_heartbeat.get(worker, 0.0):
                self.next_heartbeat[worker] = self.time + self.rng.uniform(0.2, 0.8)
                self.send("leader", (worker, lease.heartbeat_sent(self.clock(worker))))
            if worker not in self.isolated and worker not in self.deaf:
                self._obey_revokes(worker, lease)

    def _obey_revokes(self, worker: str, lease: WorkerLease) -> None:
        for key, move in sorted(self.state.pending_moves.items()):
            if move.source == worker and move.phase is MovePhase.REVOKING:
                lease.release(key[0], move.epoch)
                self.commits.append((self.time + 0.1, c.Released(
                    partition_id=key[0], slot=key[1], worker_id=worker, epoch=move.epoch,
                    now=self.clock(self.leader_node))))

    def check_single_owner(self) -> None:
        holders: dict[str, list[str]] = {}
        for worker, lease in self.leases.items():
            if worker in self.crashed:
                continue  # a crashed process acts no more
            for partition, _ in lease.active_partitions(self.clock(worker)):
                holders.setdefault(partition, []).append(worker)
        for partition, workers in holders.items():
            assert len(workers) == 1, (self.time, partition, workers)


def run_world(seed: int) -> _World:
    world = _World(seed)
    jitter = world.rng.uniform
    events = [
        (10.0 + jitter(0, 3), lambda: world.isolated.add("w1")),  # runs on, hears nothing
        (20.0 + jitter(0, 3), lambda: world.crashed.add("w2")),
        (30.0 + jitter(0, 3), lambda: world.workers.append("w4") or world.state.apply(
            c.RegisterWorker(worker_id="w4", address="", zone="zw4",
                             now=world.clock(world.leader_node)))),
        # Drain w0, which heartbeats but never releases: its revokes are forced.
        (40.0, lambda: world.deaf.add("w0") or world.commits.append((world.time, c.DrainWorker(
            worker_id="w0", now=world.clock(world.leader_node))))),
        (50.0 + jitter(0, 3), world.fail_over),
        (52.0 + jitter(0, 3), lambda: world.crashed.add("w3")),
    ]
    events.sort(key=lambda event: event[0])
    while world.time < 90.0:
        world.step(0.05)
        while events and events[0][0] <= world.time:
            events.pop(0)[1]()
        world.check_single_owner()
    return world


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 2**32))
def test_no_two_workers_act_for_one_partition(seed):
    world = run_world(seed)
    # Healed phase: every partition is owned by the one live, active worker.
    for record in world.state.partitions.values():
        assert record.owners == ["w4"], (seed, record)
    assert world.state.workers["w0"].state is WorkerState.DRAINING
    assert world.state.counters.forced_revokes > 0


def test_force_waits_a_lease_after_the_last_covering_ack():
    # A leader whose state did not show the revoke yet acknowledged the slot; the
    # revoke's own deadline (cluster time) must not let it force earlier.
    state = make_state(workers=2, partitions=2)
    run(CoordinatorLeader(state, TIMING, term_start=0.0), state, 0.0)
    owner = state.owner("g/0")
    leader = CoordinatorLeader(state, TIMING, term_start=50.0)
    assert leader.cluster_time(50.0) == 0.0  # cluster time = local clock - 50
    leader.on_heartbeat(owner, seq=1, received_at=61.0)  # covers g/0
    # Proposed at 51.0 (cluster 1.0), deadline 61.5 (cluster 11.5), applied late.
    state.apply(c.Revoke(partition_id="g/0", slot=0, worker_id=owner, epoch=1, now=1.0))
    for t in (62.0, 70.0):
        for worker in ("w0", "w1"):
            leader.on_heartbeat(worker, seq=2, received_at=t)
    assert not any(isinstance(cmd, c.ForceRevoke) for cmd in leader.next_commands(71.4))
    assert any(isinstance(cmd, c.ForceRevoke) for cmd in leader.next_commands(71.5))


def test_recreated_partition_waits_for_old_coverage_to_run_out():
    state = make_state(workers=2, partitions=1)
    leader = CoordinatorLeader(state, TIMING, term_start=0.0)
    run(leader, state, 0.0)
    owner = state.owner("g/0")
    leader.on_heartbeat(owner, seq=1, received_at=20.0)  # covers g/0
    # Deleted and re-created through another node whose clock is 15 s behind.
    state.apply(c.DeletePartitionGroup(name="g", now=5.5))
    state.apply(c.CreatePartitionGroup(name="g", count=1, now=5.5))
    for t in (21.0, 30.0):
        for worker in ("w0", "w1", "w2"):
            leader.on_heartbeat(worker, seq=2, received_at=t)
    # The state would allow an Assign from 5.5 + revoke_timeout = 16.0; the leader
    # waits until the coverage it granted at 20.0 has run out (20.0 + 10.5).
    assert run(leader, state, 30.4) == []
    assert [type(cmd) for cmd in run(leader, state, 30.5)] == [c.Assign]


def test_worker_back_from_the_dead_gets_a_fresh_lease():
    state = make_state(workers=2, partitions=2)
    leader = CoordinatorLeader(state, TIMING, term_start=0.0)
    run(leader, state, 0.0)
    leader.on_heartbeat("w0", seq=1, received_at=20.0)
    commands = run(leader, state, 20.0)  # w1 never heartbeated: expired
    assert c.ExpireWorker(worker_id="w1", now=20.0) in commands
    # It registers again before the leader looks at its table once more.
    state.apply(c.RegisterWorker(worker_id="w1", address="", zone="z1", now=20.5))
    leader.on_heartbeat("w0", seq=2, received_at=21.0)
    assert not any(isinstance(cmd, c.ExpireWorker) for cmd in run(leader, state, 21.0))
    assert leader.leases.deadline("w1") == 21.0 + TIMING.leader_lease


# The sim's lease timing (CoordSpec defaults, 5 % drift) and the mixed scenario's
# restart delay.
SIM_TIMING = LeaseTiming(lease_duration=2.0, max_drift=0.05, safety_margin=0.1)
SIM_CONFIG = CoordinatorConfig(revoke_timeout=SIM_TIMING.leader_lease + 0.1, restart_delay=1.0)


def test_heartbeat_confirmed_after_the_expiry_was_proposed_is_not_acknowledged():
    # Regression (`raftcoord simulate --scenario mixed --seed 127`, and the same
    # sequence in leader-crash 13/33/34/38/41/51/54, network-partition 23, mixed
    # 152): the heartbeat arrived just before the leader decided to expire its
    # worker, its ReadIndex round confirmed leadership just after, and the
    # acknowledgement then covered the slot that went to another worker a second
    # later while the first still believed it owned it.
    state = CoordinatorState(SIM_CONFIG)
    for worker in ("w0", "w4"):
        state.apply(c.RegisterWorker(worker_id=worker, address="", zone="z0", now=110.0))
    state.apply(c.CreatePartitionGroup(name="events", count=4, now=119.5))
    # An earlier leader (node 3, clock ~119.5) gave events/3 to w4.
    state.apply(c.Assign(partition_id="events/3", slot=0, worker_id="w4", epoch=2, now=119.51))
    for index in range(3):
        state.apply(c.Assign(partition_id=f"events/{index}", slot=0, worker_id="w0",
                             epoch=1, now=119.51))
    # Node 2, whose clock is ~635 s ahead, becomes leader; w4 is cut off from it.
    leader = CoordinatorLeader(state, SIM_TIMING, term_start=754.5050)
    assert leader.leases.grace_until == pytest.approx(756.6050)
    for seq, received_at in enumerate((755.4243, 755.8134, 756.2007, 756.5908), start=29):
        assert leader.on_heartbeat("w0", seq, received_at) is not None
    # w4 sends heartbeat 32 at 14.3858 on its own clock; it reaches the leader at
    # 756.6224, which starts a ReadIndex round. The leader ticks meanwhile:
    w4_lease = WorkerLease(SIM_TIMING)
    for _ in range(31):
        w4_lease.heartbeat_sent(0.0)
    assert w4_lease.heartbeat_sent(14.3858) == 32
    proposed = leader.next_commands(756.6235)
    # Cluster time continues from the newest timestamp in the log.
    assert proposed == [c.ExpireWorker(worker_id="w4", now=119.51)]
    # The round confirms leadership before the expiry is applied: no acknowledgement
    # (the worker is told to register again), and its deadline is not extended.
    assert leader.on_heartbeat("w4", 32, received_at=756.6224) is None
    assert leader.leases.deadline("w4") == pytest.approx(756.6050)
    leader.on_applied(proposed[0], state.apply(proposed[0]))
    assert state.workers["w4"].state is WorkerState.DEAD
    assert leader.on_heartbeat("w4", 33, received_at=756.9) is None
    # The hold for w4 runs out after restart_delay (cluster time); events/3 goes to w0.
    leader.on_heartbeat("w0", 33, received_at=757.4)
    assert run(leader, state, 757.6) == []
    commands = run(leader, state, 757.6278)
    assert c.Assign(partition_id="events/3", slot=0, worker_id="w0", epoch=3,
                    now=leader.cluster_time(757.6278)) in commands
    assert leader.cluster_time(757.6278) == pytest.approx(119.51 + 1.0043)
    # w0 acts from its next acknowledgement; w4 (its clock 15.3 at that moment, its
    # last covering acknowledgement from an earlier term long run out) does not.
    assert not w4_lease.may_act_for("events/3", 2, 15.3)


def test_expiry_in_flight_blocks_acknowledgements_until_applied_or_dropped():
    state = make_state(workers=2, partitions=2)
    leader = CoordinatorLeader(state, TIMING, term_start=0.0, retry_after=2.0)
    run(leader, state, 0.0)
    leader.on_heartbeat("w0", seq=1, received_at=9.0)
    first = leader.next_commands(TIMING.leader_lease)
    assert first == [c.ExpireWorker(worker_id="w1", now=TIMING.leader_lease)]
    assert leader.on_heartbeat("w1", seq=1, received_at=10.0) is None
    second = leader.next_commands(TIMING.leader_lease + 2.0)  # presumed lost: again
    assert second == [c.ExpireWorker(worker_id="w1", now=TIMING.leader_lease + 2.0)]
    leader.on_dropped(second[0])  # the retry was refused; the first is still in flight
    assert leader.on_heartbeat("w1", seq=2, received_at=12.6) is None
    leader.on_dropped(first[0])  # neither was appended after all
    ack = leader.on_heartbeat("w1", seq=3, received_at=12.7)
    assert ack is not None and ack.covered
    assert leader.leases.deadline("w1") == pytest.approx(12.7 + TIMING.leader_lease)


# ------------------------------------------------------------------- cluster time
# Two leaders whose clocks are 1000 s apart (the simulator draws node clock offsets
# in [0, 1000) s). Their commands carry cluster time, so a window one of them opens
# is measured by the next one from where the log left off.

HOLD_CONFIG = CoordinatorConfig(revoke_timeout=TIMING.leader_lease, restart_delay=5.0)


def expire_w2_under_first_leader(state):
    """Leader A (clock ~1500) expires silent w2 at 1510.5: its slots are held."""
    first = CoordinatorLeader(state, TIMING, term_start=1500.0)
    run(first, state, 1500.0)
    assert first.cluster_time(1500.0) == 0.0  # continues from the log (make_state: 0.0)
    for worker in ("w0", "w1"):
        first.on_heartbeat(worker, seq=1, received_at=1505.0)
    expired = run(first, state, 1510.5)
    assert expired == [c.ExpireWorker(worker_id="w2", now=10.5)]
    held = sorted(state.holds)
    assert held and all(state.holds[key].until == 15.5 for key in held)
    return held


@pytest.mark.parametrize("behind", [1000.0, -1000.0])
def test_hold_of_one_leader_lapses_after_restart_delay_on_the_next(behind):
    # Regression (`raftcoord simulate --scenario mixed --seed 126 --nodes 3 ...`):
    # node 3 (clock ~694) held w0's slots until 694.99 on its clock; node 1 (clock
    # ~576) then led to the end of the run and six slots stayed unowned. With the
    # other sign, the hold would have lapsed at once.
    state = CoordinatorState(HOLD_CONFIG)
    for i in range(3):
        state.apply(c.RegisterWorker(worker_id=f"w{i}", address="", zone=f"z{i}", now=0.0))
    state.apply(c.CreatePartitionGroup(name="g", count=6, now=0.0))
    held = expire_w2_under_first_leader(state)
    # Leader B's clock is `behind` seconds behind A's; it decides first at `start`.
    start = 1512.0 - behind
    second = CoordinatorLeader(state, TIMING, term_start=start - 1.0)
    assert run(second, state, start) == []
    assert second.cluster_time(start) == state.log_time == 10.5  # no jump either way
    # The hold has 5.0 - (10.5 - 10.5) = 5.0 s of cluster time left: B waits them out
    # on its own clock, however far it is from A's.
    assert run(second, state, start + 4.99) == []
    assigned = run(second, state, start + 5.0)
    assert sorted((cmd.partition_id, cmd.slot) for cmd in assigned) == held
    assert all(cmd.now == 15.5 for cmd in assigned)
    assert not state.holds and not state.free_slots


def test_cluster_time_is_monotonic_across_leaders():
    state = make_state(workers=2, partitions=2)
    stamps = []
    # Leaders one after another, with clocks far apart in both directions; each
    # decides a little after it became leader, and the gap between terms is lost.
    for clock_start in (1500.0, 500.0, 1400.0, 20.0):
        leader = CoordinatorLeader(state, TIMING, term_start=clock_start)
        assert leader.cluster_time(clock_start + 0.5) == state.log_time
        for step in (1.0, 2.0, 3.0):
            command = leader.stamp(c.DrainWorker(worker_id="w0", now=0.0), clock_start + step)
            stamps.append(command.now)
            state.apply(command)
            state.apply(leader.stamp(c.UndrainWorker(worker_id="w0", now=0.0),
                                     clock_start + step))
        assert state.log_time == stamps[-1]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
    # Cluster time advanced by each leader's own elapsed time only: 2.5 s per term.
    assert stamps[-1] == pytest.approx(4 * 2.5)


def test_stamp_sets_cluster_time_on_commands_that_carry_time():
    state = make_state(workers=2, partitions=2)
    state.apply(c.DrainWorker(worker_id="w1", now=42.0))
    leader = CoordinatorLeader(state, TIMING, term_start=900.0)
    register = c.RegisterWorker(worker_id="w5", address="", zone="z5", now=900.0)
    assert leader.stamp(register, 901.0) == attrs.evolve(register, now=42.0)
    assert leader.stamp(register, 903.0).now == 44.0
    put = c.KvPut(key="k", value=b"v")
    assert leader.stamp(put, 903.0) is put
    batch = leader.stamp(c.Batch(commands=[register, put]), 904.0)
    assert batch == c.Batch(commands=[attrs.evolve(register, now=45.0), put])


def test_revoke_deadline_of_one_leader_is_kept_by_the_next():
    state = make_state(workers=2, partitions=2)
    first = CoordinatorLeader(state, TIMING, term_start=1500.0)
    run(first, state, 1500.0)
    owner = state.owner("g/0")
    revoke = first.stamp(c.Revoke(partition_id="g/0", slot=0, worker_id=owner, epoch=1,
                                  now=0.0), 1501.0)
    state.apply(revoke)
    assert state.pending_moves[("g/0", 0)].deadline == 1.0 + TIMING.leader_lease
    # B, 1000 s behind, decides first at its 502.0 (cluster 1.0): the deadline is
    # 10.5 s of its own clock away (also the end of its grace, and a leader lease
    # after the proposal).
    second = CoordinatorLeader(state, TIMING, term_start=502.0)
    assert run(second, state, 502.0) == []
    for worker in ("w0", "w1"):
        second.on_heartbeat(worker, seq=1, received_at=510.0)
    assert not any(isinstance(cmd, c.ForceRevoke) for cmd in run(second, state, 512.4))
    forced = run(second, state, 512.5)
    assert [type(cmd) for cmd in forced] == [c.ForceRevoke]
    assert forced[0].now == pytest.approx(11.5)
