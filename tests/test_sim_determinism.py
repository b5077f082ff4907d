"""A seed replays a run exactly; different seeds give different runs."""

from __future__ import annotations

from simulations.rng import RngFactory, derive_seed
from simulations.runner import check_determinism, run_simulation
from simulations.world import SimConfig, WorkloadConfig

SHORT = dict(duration=8.0, converge_within=20.0, workload=WorkloadConfig(rate=20))


def test_rng_streams_are_independent_and_reproducible():
    a, b = RngFactory(5), RngFactory(5)
    assert [a.stream("x").random() for _ in range(3)] == [b.stream("x").random() for _ in range(3)]
    assert RngFactory(5).stream("x").random() != RngFactory(5).stream("y").random()
    assert derive_seed(1, "p") != derive_seed(2, "p")


def test_same_seed_same_trace_hash():
    first, _ = run_simulation(SimConfig(seed=11, **SHORT))
    second, _ = run_simulation(SimConfig(seed=11, **SHORT))
    assert first.ok and second.ok
    assert first.trace_hash == second.trace_hash
    assert first.events == second.events
    assert first.client_ops == second.client_ops


def test_different_seeds_differ():
    hashes = {run_simulation(SimConfig(seed=s, **SHORT), check_linearizability=False)[0].trace_hash
              for s in range(3)}
    assert len(hashes) == 3


def test_check_determinism_helper_and_model_disk():
    same, first, second = check_determinism(SimConfig(seed=4, disk="model", **SHORT))
    assert same
    assert first.trace_hash == second.trace_hash


def test_codec_does_not_change_the_run():
    # Messages as bytes or as objects: the same events in the same order.
    with_codec, _ = run_simulation(SimConfig(seed=2, **SHORT))
    without, _ = run_simulation(SimConfig(seed=2, codec=False, **SHORT))
    assert with_codec.events == without.events
    assert with_codec.client_ops == without.client_ops


def test_trace_hash_is_stable_across_processes_and_hash_seeds():
    import json
    import os
    import subprocess
    import sys

    hashes = set()
    for hash_seed in ("1", "2"):
        env = dict(os.environ, PYTHONHASHSEED=hash_seed)
        out = subprocess.run(
            [sys.executable, "-c", "from cli.main import main; main()", "simulate", "--seed", "9", "--duration", "5",
             "--rate", "20", "--swarm", "--json"],
            capture_output=True, text=True, env=env, check=True).stdout
        hashes.add(json.loads(out.strip().splitlines()[-1])["trace_hash"])
    assert len(hashes) == 1


def test_small_clusters_survive_every_fault_kind():
    from simulations.faults import FaultConfig

    for nodes in (1, 2, 3):
        result, _ = run_simulation(SimConfig(seed=nodes, nodes=nodes, duration=10.0,
                                             faults=FaultConfig(partition_rate=1.0, crash_rate=0.3),
                                             workload=WorkloadConfig(rate=10)))
        assert result.ok, result.explain()


def test_an_exception_in_the_code_under_test_is_reported_with_its_seed():
    from raft.node import RawNode

    class Exploding(RawNode):
        def tick(self):
            if self.role.value == "leader":
                raise RuntimeError("boom")
            super().tick()

    result, _ = run_simulation(SimConfig(seed=1, node_factory=Exploding, **SHORT))
    assert not result.ok
    assert result.violations[0].invariant == "unexpected exception"
    assert "RuntimeError: boom" in result.explain()
    assert "reproduce: raftcoord simulate --seed 1" in result.explain()
