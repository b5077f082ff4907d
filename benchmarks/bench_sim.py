"""Simulator throughput and linearizability-checker speed.

Measures, on one core:

1. simulated seconds per wall second of the standard run: 5 nodes, every fault kind,
   50 client ops/s, real DiskStorage on the in-memory file system, messages encoded
   with raft.codec (plus the same without the codec and with the model disk, to show
   where the time goes);
2. the light CI-sweep configuration (tests/test_sim_sweep.py);
3. the linearizability checker on a 10,000-operation history.

Reproduce: .venv/bin/python benchmarks/bench_sim.py [--duration 120] [--seeds 3]
"""

from __future__ import annotations

import argparse
import logging
import platform
import time

from simulations.faults import ALL_KINDS, FaultConfig
from simulations.history import random_linearizable_history
from simulations.linearizability import check_history
from simulations.runner import run_simulation
from simulations.world import SimConfig, WorkloadConfig

GOAL = 300.0


def measure(label: str, seeds: range, **config) -> float:
    sim = wall = 0.0
    events = 0
    for seed in seeds:
        started = time.perf_counter()
        result, _ = run_simulation(SimConfig(seed=seed, **config))
        wall += time.perf_counter() - started
        sim += result.simulated_seconds
        events += result.events
        if not result.ok:
            print(result.explain())
    speed = sim / wall
    print(f"{label:<48} {speed:8.1f} sim s / wall s   {events / wall:9.0f} events/s   "
          f"{events / sim:6.0f} events per sim s   ({sim:.0f} sim s in {wall:.1f} s)")
    return speed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=120.0, help="fault phase per run (simulated s)")
    parser.add_argument("--seeds", type=int, default=3, help="runs per configuration")
    args = parser.parse_args()
    logging.getLogger("raft").setLevel(logging.CRITICAL)
    print(f"Python {platform.python_version()} on {platform.machine()}, one core")
    print(f"reproduce: .venv/bin/python benchmarks/bench_sim.py --duration {args.duration:g} "
          f"--seeds {args.seeds}\n")
    seeds = range(1, args.seeds + 1)
    standard = dict(nodes=5, duration=args.duration,
                    faults=FaultConfig(kinds=frozenset(ALL_KINDS)), workload=WorkloadConfig(rate=50.0))
    speed = measure("5 nodes, all faults, 50 ops/s (file disk, codec)", seeds, **standard)
    measure("  same, messages as objects (--no-codec)", seeds, codec=False, **standard)
    measure("  same, model disk, no codec", seeds, codec=False, disk="model", **standard)
    measure("CI sweep config: 5 ops/s, 3 clients, 60 s", range(1, 6), nodes=5, duration=60.0,
            faults=FaultConfig(kinds=frozenset(ALL_KINDS)), workload=WorkloadConfig(rate=5.0, clients=3))
    print(f"\ngoal {GOAL:.0f} sim s / wall s for the standard run: "
          f"{'met' if speed >= GOAL else 'NOT met'} ({speed:.1f})\n")

    for unknown_rate in (0.0, 0.02):
        history = random_linearizable_history(7, 10_000, keys=8, clients=10, unknown_rate=unknown_rate)
        started = time.perf_counter()
        verdict = check_history(history)
        elapsed = time.perf_counter() - started
        print(f"linearizability, 10,000 ops, 8 keys, 10 clients, {unknown_rate:.0%} unknown: "
              f"{elapsed:.3f} s (linearizable={verdict.linearizable})")
    history = random_linearizable_history(7, 10_000, keys=8, clients=10, unknown_rate=0.0)
    victim = next(op for op in reversed(history.ops) if op.kind.value == "get" and op.result)
    victim.result = "never-written"
    started = time.perf_counter()
    verdict = check_history(history)
    print(f"linearizability, same history with one corrupted read: {time.perf_counter() - started:.3f} s "
          f"(linearizable={verdict.linearizable})")


if __name__ == "__main__":
    main()
