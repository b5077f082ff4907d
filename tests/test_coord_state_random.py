"""Random command sequences: invariants of the state machine, all-or-nothing errors,
snapshot/restore at any point, and replay equality."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from coordinator import commands as c
from coordinator.codec import decode_command, encode_command
from coordinator.commands import WorkerState
from coordinator.config import CoordinatorConfig
from coordinator.state import CoordinatorState

WORKERS = ["w0", "w1", "w2", "w3"]
GROUPS = ["g0", "g1"]
PIDS = [f"{g}/{i}" for g in GROUPS for i in range(3)]
CONFIG = CoordinatorConfig(revoke_timeout=3.0, restart_delay=2.0, quarantine_threshold=2,
                           quarantine_window=10.0)

worker = st.sampled_from(WORKERS)
pid = st.sampled_from(PIDS)
slot = st.integers(0, 2)
epoch = st.integers(0, 6)
now = st.integers(0, 40).map(float)

command = st.one_of(
    st.builds(c.RegisterWorker, worker_id=worker, address=st.just("a"),
              zone=st.sampled_from(["z0", "z1"]), capacity=st.integers(1, 2),
              process=st.sampled_from(["", "p1", "p2", "p3"]), now=now),
    st.builds(c.DeregisterWorker, worker_id=worker, now=now),
    st.builds(c.ExpireWorker, worker_id=worker, now=now, last_heard=st.none() | now),
    st.builds(c.DrainWorker, worker_id=worker, now=now),
    st.builds(c.UndrainWorker, worker_id=worker, now=now),
    st.builds(c.CreatePartitionGroup, name=st.sampled_from(GROUPS), count=st.just(3),
              weight=st.integers(1, 2), replication_factor=st.integers(1, 3), now=now),
    st.builds(c.DeletePartitionGroup, name=st.sampled_from(GROUPS), now=now),
    st.builds(c.Assign, partition_id=pid, slot=slot, worker_id=worker,
              epoch=st.integers(1, 8), now=now),
    st.builds(c.Revoke, partition_id=pid, slot=slot, worker_id=worker, epoch=epoch,
              target=st.none() | worker, now=now),
    st.builds(c.Released, partition_id=pid, slot=slot, worker_id=worker, epoch=epoch,
              now=now),
    st.builds(c.ForceRevoke, partition_id=pid, slot=slot, worker_id=worker, epoch=epoch,
              now=now),
    st.builds(c.ReleaseQuarantine, partition_id=pid, now=now),
    st.builds(c.KvPut, key=st.sampled_from(["a", "ab", "b"]), value=st.binary(max_size=2)),
    st.builds(c.KvCas, key=st.sampled_from(["a", "b"]), expected_version=st.integers(0, 5),
              value=st.binary(max_size=2)),
    st.builds(c.KvDelete, key=st.sampled_from(["a", "b"]),
              expected_version=st.none() | st.integers(0, 5)),
    st.builds(c.FencedPut, key=st.just("f"), value=st.just(b"x"), partition_id=pid,
              epoch=epoch),
)


def check_invariants(state: CoordinatorState) -> None:
    owned: dict[str, set] = {w: set() for w in state.workers}
    load: dict[str, int] = {w: 0 for w in state.workers}
    free = set()
    for pid_, record in state.partitions.items():
        owners = [o for o in record.owners if o is not None]
        assert len(owners) == len(set(owners)), "co-located replicas"
        for slot_, owner in enumerate(record.owners):
            if owner is None:
                free.add((pid_, slot_))
                continue
            assert state.workers[owner].state is not WorkerState.DEAD
            owned[owner].add((pid_, slot_))
            load[owner] += record.weight
    for worker_id, record in state.workers.items():
        assert record.owned == owned[worker_id]
        assert record.load == load[worker_id]
        if record.state is not WorkerState.DEAD:
            assert not record.held
    assert set(state.free_slots) == free
    for key, hold in state.holds.items():
        assert key in free and key in state.workers[hold.worker_id].held
        assert not state.partitions[key[0]].quarantined
    for key, move in state.pending_moves.items():
        owner = state.partitions[key[0]].owners[key[1]]
        assert (owner == move.source) == (move.phase.value == "revoking")
        if move.phase.value == "released":
            # Nothing may be assigned to a quarantined partition: it could never end.
            assert not state.partitions[key[0]].quarantined


def guided(state: CoordinatorState, data, now_value: float):
    """A command that usually fits the current state (otherwise a random one)."""
    kind = data.draw(st.sampled_from(["assign", "revoke", "finish", "random", "random"]))
    if kind == "assign" and state.free_slots:
        pid_, slot_ = data.draw(st.sampled_from(sorted(state.free_slots)))
        active = sorted(w for w, r in state.workers.items() if r.state is WorkerState.ACTIVE)
        if active:
            return c.Assign(partition_id=pid_, slot=slot_, worker_id=data.draw(
                st.sampled_from(active)), epoch=state.partitions[pid_].epoch + 1,
                now=now_value)
    if kind == "revoke":
        owned = sorted((p, i, o) for p, r in state.partitions.items()
                       for i, o in enumerate(r.owners) if o is not None)
        if owned:
            pid_, slot_, owner = data.draw(st.sampled_from(owned))
            return c.Revoke(partition_id=pid_, slot=slot_, worker_id=owner,
                            epoch=state.partitions[pid_].epoch,
                            target=data.draw(st.none() | worker), now=now_value)
    if kind == "finish" and state.pending_moves:
        key, move = data.draw(st.sampled_from(sorted(state.pending_moves.items())))
        kind_cls = data.draw(st.sampled_from([c.Released, c.ForceRevoke]))
        return kind_cls(partition_id=key[0], slot=key[1], worker_id=move.source,
                        epoch=state.partitions[key[0]].epoch, now=now_value)
    return data.draw(command)


@settings(max_examples=100)
@given(st.data())
def test_random_sequences(data):
    state = CoordinatorState(CONFIG)
    log = []
    epochs: dict[str, int] = {}
    length = data.draw(st.integers(1, 80))
    restore_at = data.draw(st.integers(0, length))
    shadow = None
    clock = 0.0
    for index in range(length):
        clock += data.draw(st.sampled_from([0.0, 0.5, 1.0, 4.0]))
        cmd = guided(state, data, clock)
        if index == restore_at:
            shadow = CoordinatorState.restore(state.snapshot())
            assert shadow == state
        before = state.snapshot()
        result = state.apply(cmd)
        log.append(cmd)
        if isinstance(result, c.Error):
            assert state.snapshot() == before, "an error changed the state"
        if shadow is not None:
            assert shadow.apply(cmd) == result
            assert shadow == state
        check_invariants(state)
        for pid_, record in state.partitions.items():
            assert record.epoch >= epochs.get(pid_, 0), "an epoch went backwards"
            epochs[pid_] = record.epoch
    # Replaying the (encoded) log from scratch gives the same state.
    replayed = CoordinatorState(CONFIG)
    for cmd in log:
        replayed.apply(decode_command(encode_command(cmd)))
    assert replayed == state
    assert CoordinatorState.restore(state.snapshot()) == replayed
