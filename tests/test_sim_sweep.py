"""The CI seed sweep: 200 seeds x 60 simulated seconds, 5 nodes, every fault kind,
plus 50 seeds with the Raft library's default options.

A light client workload keeps the sweep inside the CI budget (about 100 s on one
core); heavier workloads are exercised by `raftcoord simulate` and bench_sim.py.
A failure message carries the seed, the invariant, the last events and the command
line that reproduces it.
"""

from __future__ import annotations

import pytest

from simulations.faults import ALL_KINDS, FaultConfig
from simulations.runner import run_simulation
from simulations.world import SimConfig, WorkloadConfig

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("quiet_raft")]

SEEDS = 200
CHUNKS = 4
SWEEP = dict(nodes=5, duration=60.0, faults=FaultConfig(kinds=frozenset(ALL_KINDS)),
             workload=WorkloadConfig(rate=5.0, clients=3))


def _sweep(seeds: range, **options) -> None:
    failures = []
    for seed in seeds:
        result, _ = run_simulation(SimConfig(seed=seed, **SWEEP, **options))
        if not result.ok:
            failures.append(result.explain())
    assert not failures, "\n\n".join(failures)


@pytest.mark.parametrize("chunk", range(CHUNKS))
def test_seed_sweep(chunk):
    per_chunk = SEEDS // CHUNKS
    _sweep(range(chunk * per_chunk, (chunk + 1) * per_chunk))


@pytest.mark.parametrize("chunk", range(2))
def test_seed_sweep_with_the_library_defaults(chunk):
    """The simulator runs the message-saving Raft options by default; these seeds
    run what `raft.Config` defaults to (commit broadcast, one round per read)."""
    _sweep(range(1000 + chunk * 25, 1000 + (chunk + 1) * 25), eager_commit=True, batch_reads=False)
