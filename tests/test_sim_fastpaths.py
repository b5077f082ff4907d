"""The simulator's fast paths do exactly what the general code they bypass does."""

from __future__ import annotations

import random
from math import log

from hypothesis import given
from hypothesis import strategies as st

from raft.types import Entry, HardState
from simulations.disk import ModelDisk, _replay
from simulations.network import LinkFaults, Network
from simulations.world import RecentEvents, SimConfig, World, WorkloadConfig


def _terms(storage) -> list[int]:
    first, last = storage.first_index(), storage.last_index()
    return [e.term for e in storage.entries(first, last + 1)] if last >= first else []


# A write: (term of the new entries or 0 for none, how many entries back from the
# end they start (an overwrite), how many, whether the hard state changes, sync).
writes = st.lists(st.tuples(st.integers(0, 3), st.integers(0, 2), st.integers(0, 3),
                            st.booleans(), st.booleans()), max_size=25)


@given(writes, st.integers(0, 2**32))
def test_direct_sync_matches_replaying_every_write(script, seed) -> None:
    """ModelDisk writes a synced save with nothing pending straight into the
    shadow; replaying every write in order (the general path) gives the same
    durable state, and so does a crash."""
    disk = ModelDisk()
    replayed = ModelDisk()  # every write recorded, then replayed at sync
    term = 1
    for new_term, back, count, hs_changes, sync in script:
        term = max(term, new_term)
        last = disk.storage.last_index()
        start = max(1, last + 1 - back)
        entries = [Entry(term=term, index=i, data=b"x") for i in range(start, start + count)]
        hs = HardState(term=term, vote=1, commit=0) if hs_changes else None
        disk.save(hs, entries, sync)
        if hs is None and not entries:
            continue
        replayed.storage.save(hs, entries, sync)
        replayed.pending.append(("save", hs, list(entries)))
        if sync:
            for write in replayed.pending:
                _replay(replayed.durable, write)
            replayed.pending.clear()
        assert disk.durable.initial_state() == replayed.durable.initial_state()
        assert _terms(disk.durable) == _terms(replayed.durable)
        assert disk.pending == replayed.pending
    disk.crash(random.Random(seed))
    replayed_rng = random.Random(seed)
    kept = replayed_rng.randint(0, len(replayed.pending)) if replayed.pending else 0
    for write in replayed.pending[:kept]:
        _replay(replayed.durable, write)
    assert disk.recover().initial_state() == replayed.durable.initial_state()
    assert _terms(disk.storage) == _terms(replayed.durable)


def _reference_delays(rng: random.Random, faults: LinkFaults, network: Network) -> list[float]:
    """Network.delays as first written: loss, duplicate, then `_delay` per copy."""
    def delay() -> float:
        latency = network.latency
        d = latency.base - log(1.0 - rng.random()) * latency.mean_extra
        if latency.slow and rng.random() < latency.slow:
            d -= log(1.0 - rng.random()) * latency.slow_extra
        if faults.reorder and rng.random() < faults.reorder:
            d += latency.reorder_extra * rng.random()
        return d
    if faults.loss and rng.random() < faults.loss:
        return []
    if faults.duplicate and rng.random() < faults.duplicate:
        return [delay(), delay()]
    return [delay()]


@given(st.integers(0, 2**32), st.floats(0, 0.5), st.floats(0, 0.5), st.floats(0, 0.5))
def test_network_delays_draw_as_the_general_path(seed, loss, duplicate, reorder) -> None:
    network = Network(random.Random(seed))
    network.faults = LinkFaults(loss=loss, duplicate=duplicate, reorder=reorder)
    reference = random.Random(seed)
    for _ in range(200):
        assert list(network.delays(1, 2)) == _reference_delays(reference, network.faults, network)


def test_recent_events_iterate_as_four_tuples() -> None:
    recent = RecentEvents(maxlen=3)
    recent.append((1.0, 7, 1, "a", "b"))  # a queue item
    recent.append((2.0, 2, "c", "d"))  # a view
    assert list(recent) == [(1.0, 1, "a", "b"), (2.0, 2, "c", "d")]


def test_batched_event_loop_matches_step_by_step() -> None:
    """run_until's inlined loop handles events as `step` does, one by one."""
    config = SimConfig(seed=3, nodes=3, duration=3.0, converge_within=5.0,
                       workload=WorkloadConfig(rate=20.0), codec=False, disk="model")
    fast = World(config)
    fast.run()

    class Stepping(World):
        def step(self) -> None:  # overridden: run_until calls it per event
            super().step()

    slow = Stepping(config)
    slow.run()
    assert fast.events == slow.events
    assert fast.trace_hash == slow.trace_hash
    assert fast.describe_recent() == slow.describe_recent()
