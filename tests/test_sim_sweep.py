"""The CI seed sweep: 200 seeds x 60 simulated seconds, 5 nodes, every fault kind.

A light client workload keeps the sweep inside the CI budget (about 100 s on one
core); heavier workloads are exercised by `raftcoord simulate` and bench_sim.py.
A failure message carries the seed, the invariant, the last events and the command
line that reproduces it.
"""

from __future__ import annotations

import logging

import pytest

from simulations.faults import ALL_KINDS, FaultConfig
from simulations.runner import run_simulation
from simulations.world import SimConfig, WorkloadConfig

pytestmark = pytest.mark.slow

SEEDS = 200
CHUNKS = 4
SWEEP = dict(nodes=5, duration=60.0, faults=FaultConfig(kinds=frozenset(ALL_KINDS)),
             workload=WorkloadConfig(rate=5.0, clients=3))


@pytest.mark.parametrize("chunk", range(CHUNKS))
def test_seed_sweep(chunk):
    logging.getLogger("raft").setLevel(logging.CRITICAL)
    per_chunk = SEEDS // CHUNKS
    failures = []
    for seed in range(chunk * per_chunk, (chunk + 1) * per_chunk):
        result, _ = run_simulation(SimConfig(seed=seed, **SWEEP))
        if not result.ok:
            failures.append(result.explain())
    assert not failures, "\n\n".join(failures)
