"""How often named scenarios catch the planted bugs (tests/planted_bugs.py,
tests/coord_planted_bugs.py).

Each planted bug breaks one rule; a scenario "catches" it in a seed when the run
fails. Prints one table row per (bug, scenario): seeds run, seeds caught, and the
invariants that fired. Runs in one process, seed after seed.

Reproduce: .venv/bin/python benchmarks/catch_rates.py [--seeds 1..25] [BUG[@SCENARIO] ...]
(no BUG: the whole catalogue, each bug with the scenario listed for it below; "none"
runs the correct code).
"""

from __future__ import annotations

import argparse
import collections
import logging
import pathlib
import sys
import time
from typing import Any, Callable

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "tests"))

import coord_planted_bugs as cpb  # noqa: E402
import planted_bugs as pb  # noqa: E402

from simulations.coord_scenarios import build_for  # noqa: E402
from simulations.runner import run_simulation  # noqa: E402
from simulations.world import SimConfig  # noqa: E402

# bug -> the named scenario that catches it most often
CATALOGUE = {
    "DoubleVoteNode": "kv",
    "SmallQuorumNode": "kv",
    "ForgetfulDisk": "kv",
    "StaleReadWorld": "kv",
    "EarlyAckWorld": "kv",
    "ConfigAmnesiaNode": "reconfigure",
    "OldTermCommitNode": "leader-churn",
    "RoundlessReadNode": "deposed-leader",
    "EndlessReadyNode": "kv",
    "LeaseIgnoringSession": "worker-pause",
    "NoEpochBumpState": "worker-crash",
    "UnfencedState": "worker-pause",
    "UnconfirmedAckDriver": "deposed-coordinator",
    "PartialGraceLeaseTable": "lease-handover",
    "NoGraceLeaseTable": "lease-handover",
}


def plant(bug: str, scenario: str) -> tuple[dict[str, Any], Callable | None]:
    """SimConfig fields and a world builder that plant `bug` in `scenario`."""
    import coordinator.leader
    from coordinator.lease import LeaseTable

    coordinator.leader.LeaseTable = LeaseTable  # undo an earlier lease-grace variant
    if bug == "none":
        return {}, None
    if bug == "ForgetfulDisk":
        return {"disk_factory": pb.ForgetfulDisk}, None
    if bug in ("StaleReadWorld", "EarlyAckWorld"):
        return {}, getattr(pb, bug)
    if hasattr(pb, bug):
        return {"node_factory": getattr(pb, bug)}, None
    if bug == "UnconfirmedAckDriver":
        return {}, build_for(scenario, driver_class=cpb.UnconfirmedAckDriver)
    if bug == "LeaseIgnoringSession":
        return {}, build_for(scenario, session_class=cpb.LeaseIgnoringSession)
    if bug in ("NoEpochBumpState", "UnfencedState"):
        return {}, build_for(scenario, state_class=getattr(cpb, bug))
    if bug in ("PartialGraceLeaseTable", "NoGraceLeaseTable"):
        coordinator.leader.LeaseTable = getattr(cpb, bug)
        return {}, None
    raise SystemExit(f"unknown planted bug {bug!r}; known: none, {', '.join(CATALOGUE)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="1..25", metavar="A..B")
    parser.add_argument("bugs", nargs="*", metavar="BUG[@SCENARIO]")
    args = parser.parse_args()
    logging.getLogger("raft").setLevel(logging.CRITICAL)
    low, high = (int(x) for x in args.seeds.split(".."))
    pairs = [(b.partition("@")[0], b.partition("@")[2] or CATALOGUE.get(b.partition("@")[0], "kv"))
             for b in args.bugs] or list(CATALOGUE.items())
    print("| planted bug | scenario | seeds | caught | invariants | wall s |")
    print("|---|---|---|---:|---|---:|")
    for bug, scenario in pairs:
        config, build = plant(bug, scenario)
        caught: collections.Counter[str] = collections.Counter()
        started = time.perf_counter()
        for seed in range(low, high + 1):
            result, _ = run_simulation(SimConfig(seed=seed, **config), scenario, build=build)
            if not result.ok:
                caught[result.violations[0].invariant] += 1
        fired = ", ".join(f"{name} {count}" for name, count in caught.most_common())
        print(f"| {bug} | {scenario} | {low}..{high} | {sum(caught.values())}/{high - low + 1} | {fired} | "
              f"{time.perf_counter() - started:.0f} |", flush=True)


if __name__ == "__main__":
    main()
