"""Placement planner benchmark: 100,000 partitions over 1,000 workers in 10 zones.

Scenarios, each planned on the state left by the previous one:

1. initial assignment of every partition;
2. one worker dies;
3. one worker joins;
4. one whole zone fails;
5. nothing changes (the plan must be empty).

For each: planning time (best and median of ``--repeat`` runs; planning does not
change the state), moves planned, the lower bound on moves (`moves_lower_bound`), and
the imbalance after the moves are applied (max |load - fair share|, in partitions).
Moves are planned without caps, so one plan reaches the final layout.

Reproduce:
    .venv/bin/python benchmarks/bench_placement.py
    .venv/bin/python benchmarks/bench_placement.py --replication-factor 3 --partitions 33334
    .venv/bin/python benchmarks/bench_placement.py --workers 100 --partitions 3334 \
        --replication-factor 3 --zone-weights 60,30,10

``--zone-weights`` gives the zones unequal sizes (percent of the workers, one number
per zone, replacing ``--zones``); with replication factor 3 over zones of 60/30/10 %,
spread and balance are incompatible and many clashes must stay (rule 5 of
`coordinator.placement`). Workers are dealt to zones round-robin by weight, so every
zone keeps its share after the death, the join and the zone failure.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time

from coordinator import commands as c
from coordinator.commands import WorkerState
from coordinator.placement import UNLIMITED, max_imbalance, moves_lower_bound, plan
from coordinator.state import CoordinatorState


def owners(state: CoordinatorState) -> dict:
    out = {}
    for pid, record in state.partitions.items():
        if record.quarantined:
            continue
        for slot, owner in enumerate(record.owners):
            out[(pid, slot)] = owner
    return out


def capacities(state: CoordinatorState) -> dict:
    return {w: r.capacity for w, r in state.workers.items() if r.state is WorkerState.ACTIVE}


def apply_moves(state: CoordinatorState, moves, now: float) -> None:
    for move in moves:
        epoch = state.partitions[move.partition_id].epoch
        if move.source is not None:
            state.apply(c.Revoke(partition_id=move.partition_id, slot=move.slot,
                                 worker_id=move.source, epoch=epoch, target=move.target,
                                 now=now))
            state.apply(c.Released(partition_id=move.partition_id, slot=move.slot,
                                   worker_id=move.source, epoch=epoch, now=now))
        result = state.apply(c.Assign(partition_id=move.partition_id, slot=move.slot,
                                      worker_id=move.target, epoch=epoch + 1, now=now))
        if isinstance(result, c.Error):
            raise SystemExit(f"planned move refused by the state machine: {move} {result}")


def zone_violations(state: CoordinatorState) -> int:
    live_zones = {r.zone for r in state.workers.values() if r.state is WorkerState.ACTIVE}
    bad = 0
    for record in state.partitions.values():
        zones = [state.workers[o].zone for o in record.owners if o is not None]
        if len(set(zones)) < min(len(zones), len(live_zones)):
            bad += 1
    return bad


def zone_assignment(workers: int, zones: int, weights: str | None) -> list[str]:
    """The zone of each worker: round-robin over ``zones`` zones, or, with
    ``weights`` ("60,30,10"), each worker to the zone furthest below its share so far
    (largest remainder), so the sizes are proportional to the weights and every
    zone is represented among the low worker ids as well as the high ones."""
    if not weights:
        return [f"zone-{i % zones}" for i in range(workers)]
    shares = [float(w) for w in weights.split(",")]
    if not shares or any(w <= 0 for w in shares):
        raise SystemExit(f"--zone-weights must be positive numbers, got {weights!r}")
    total = sum(shares)
    dealt = [0] * len(shares)
    out = []
    for i in range(workers):
        z = max(range(len(shares)), key=lambda k: ((i + 1) * shares[k] / total - dealt[k], -k))
        dealt[z] += 1
        out.append(f"zone-{z}")
    return out


def scenario(name: str, state: CoordinatorState, now: float, repeat: int) -> dict:
    bound = moves_lower_bound(owners(state), capacities(state))
    timings = []
    moves = []
    for _ in range(repeat):
        start = time.perf_counter()
        moves = plan(state, UNLIMITED, now)
        timings.append(time.perf_counter() - start)
    start = time.perf_counter()
    apply_moves(state, moves, now)
    applied = time.perf_counter() - start
    again = plan(state, UNLIMITED, now)
    return {
        "scenario": name,
        "best_s": min(timings),
        "median_s": statistics.median(timings),
        "moves": len(moves),
        "handoffs": sum(m.source is not None for m in moves),
        "lower_bound": bound,
        "imbalance": max_imbalance(state),
        "zone_violations": zone_violations(state),
        "apply_s": applied,
        "replan_moves": len(again),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--partitions", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=1_000)
    parser.add_argument("--zones", type=int, default=10)
    parser.add_argument("--replication-factor", type=int, default=1)
    parser.add_argument("--zone-weights", type=str, default=None,
                        help="unequal zone sizes, e.g. 60,30,10 (replaces --zones)")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    zone_of = zone_assignment(args.workers, args.zones, args.zone_weights)
    zones = len(set(zone_of))

    state = CoordinatorState()
    for i in range(args.workers):
        state.apply(c.RegisterWorker(worker_id=f"w{i:05d}", address=f"10.0.{i // 250}.{i % 250}",
                                     zone=zone_of[i], now=0.0))
    state.apply(c.CreatePartitionGroup(name="topic", count=args.partitions,
                                       replication_factor=args.replication_factor, now=0.0))

    results = [scenario("initial assignment", state, 1.0, args.repeat)]

    state.apply(c.ExpireWorker(worker_id="w00042", now=2.0))
    results.append(scenario("one worker dies", state, 2.0, args.repeat))

    state.apply(c.RegisterWorker(worker_id="w-new", address="10.9.9.9",
                                 zone=f"zone-{3 % zones}", now=3.0))
    results.append(scenario("one worker joins", state, 3.0, args.repeat))

    failed_zone = f"zone-{7 % zones}"
    for worker_id in sorted(state.workers):
        record = state.workers[worker_id]
        if record.zone == failed_zone and record.state is WorkerState.ACTIVE:
            state.apply(c.ExpireWorker(worker_id=worker_id, now=4.0))
    results.append(scenario(f"zone fails ({failed_zone})", state, 4.0, args.repeat))
    results.append(scenario("nothing changed", state, 5.0, args.repeat))

    slots = args.partitions * args.replication_factor
    print(f"placement benchmark: {args.partitions:,} partitions x RF {args.replication_factor}"
          f" = {slots:,} slots, {args.workers:,} workers, {zones} zones"
          + (f" (weights {args.zone_weights})" if args.zone_weights else ""))
    print(f"python {platform.python_version()} on {platform.machine()}, "
          f"repeat={args.repeat}")
    header = (f"{'scenario':<24} {'plan best':>10} {'median':>8} {'moves':>7} "
              f"{'bound':>7} {'handoffs':>8} {'imbal.':>7} {'zone viol.':>10} "
              f"{'apply':>7} {'replan':>6}")
    print(header)
    print("-" * len(header))
    for r in results:
        print(f"{r['scenario']:<24} {r['best_s']:>9.3f}s {r['median_s']:>7.3f}s "
              f"{r['moves']:>7} {r['lower_bound']:>7} {r['handoffs']:>8} "
              f"{r['imbalance']:>7.2f} {r['zone_violations']:>10} {r['apply_s']:>6.2f}s "
              f"{r['replan_moves']:>6}")
    print("\nreproduce: .venv/bin/python benchmarks/bench_placement.py "
          + " ".join(sys.argv[1:] if argv is None else argv))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
