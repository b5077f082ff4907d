"""Simulator throughput and linearizability-checker speed.

Measures, on one core:

1. simulated seconds per wall second of the goal's run: 5 nodes, every fault kind,
   50 client ops/s, in four fidelities: the real DiskStorage on the in-memory file
   system with messages encoded by raft.codec (the `raftcoord simulate` default),
   then without the codec, then with the model disk too; and the full-fidelity run
   with the Raft library's default options (commit broadcast, a heartbeat round per
   read) instead of the simulator's message-saving ones;
2. the CI-sweep configuration (tests/test_sim_sweep.py);
3. with --scaling D1,D2,..., the model-disk run at each fault-phase duration (does the
   speed hold for long runs, whose logs, histories and checker state grow?);
4. the linearizability checker on a 10,000-operation history.

Wall-clock figures depend on what else the machine runs; the CPU-time column is
the process's own time and moves less under load.

Reproduce: .venv/bin/python benchmarks/bench_sim.py [--duration 120] [--seeds 3] [--scaling 60,240,960]
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
    sim = wall = cpu = 0.0
    events = ops = 0
    for seed in seeds:
        started, started_cpu = time.perf_counter(), time.process_time()
        result, _ = run_simulation(SimConfig(seed=seed, **config))
        wall += time.perf_counter() - started
        cpu += time.process_time() - started_cpu
        sim += result.simulated_seconds
        events += result.events
        ops += sum(result.client_ops.values())
        if not result.ok:
            print(result.explain())
    fault_phase = config["duration"] * len(seeds)
    print(f"{label:<58} {sim / wall:7.1f} sim s/wall s  {sim / cpu:7.1f} sim s/CPU s  "
          f"{events / sim:5.0f} events/sim s  {events / cpu:8.0f} events/CPU s  "
          f"{ops / fault_phase:5.1f} ops/sim s")
    return sim / wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=120.0, help="fault phase per run (simulated s)")
    parser.add_argument("--seeds", type=int, default=3, help="runs per configuration")
    parser.add_argument("--scaling", default="", metavar="D1,D2,...",
                        help="also measure the model-disk run at these fault-phase durations (simulated s)")
    args = parser.parse_args()
    logging.getLogger("raft").setLevel(logging.CRITICAL)
    print(f"Python {platform.python_version()} on {platform.machine()}, one core")
    scaling = f" --scaling {args.scaling}" if args.scaling else ""
    print(f"reproduce: .venv/bin/python benchmarks/bench_sim.py --duration {args.duration:g} "
          f"--seeds {args.seeds}{scaling}\n")
    seeds = range(1, args.seeds + 1)
    goal_run = dict(nodes=5, duration=args.duration,
                    faults=FaultConfig(kinds=frozenset(ALL_KINDS)), workload=WorkloadConfig(rate=50.0))
    full = measure("5 nodes, all faults, 50 ops/s (file disk, codec)", seeds, **goal_run)
    measure("  same, messages as objects (--no-codec)", seeds, codec=False, **goal_run)
    fast = measure("  same, model disk, no codec", seeds, codec=False, disk="model", **goal_run)
    measure("  file disk, codec, library defaults (--eager-commit --unbatched-reads)", seeds,
            eager_commit=True, batch_reads=False, **goal_run)
    measure("CI sweep config: 5 ops/s, 3 clients, 60 s", range(1, 6), nodes=5, duration=60.0,
            faults=FaultConfig(kinds=frozenset(ALL_KINDS)), workload=WorkloadConfig(rate=5.0, clients=3))
    for duration in (float(d) for d in args.scaling.split(",") if d.strip()):
        measure(f"  model disk, no codec, {duration:g} s fault phase", seeds, codec=False, disk="model",
                **dict(goal_run, duration=duration))
    best = max(full, fast)
    print(f"\ngoal {GOAL:.0f} sim s / wall s for 5 nodes, all faults, 50 ops/s: "
          f"{'met' if best >= GOAL else 'NOT met'} (full fidelity {full:.1f}, model disk without codec "
          f"{fast:.1f})\n")

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
