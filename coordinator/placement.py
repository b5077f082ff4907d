"""The placement planner: coordinator state in, a list of moves out.

`plan(state, policy, now)` is a pure function. It reads the state, decides which
replica slots should change owner, and returns `Move`s; the leader turns them into
`Assign` (free slot) or `Revoke` (graceful handoff) commands. Theory of operation:

1. **Who may receive.** Only ACTIVE workers. DRAINING workers keep what they own
   until it is moved off gracefully; DEAD workers own nothing (expiry freed or held
   their slots). A slot held for a dead worker within its restart window, a slot of a
   quarantined partition, and a slot whose handoff is in flight are not planned (a
   handoff counts for its target already).
2. **Free slots first, least loaded first.** Free slots (new partitions, dead
   owners, released handoffs without a usable target) are unavailable until placed,
   so they are placed first and never throttled, each on the least loaded eligible
   worker (relative to its fair share ``N * capacity / total_capacity``), never above
   ``ceil`` of that share while a worker with room exists.
3. **Then exact quotas.** With equal partition weights every eligible worker gets a
   quota, ``floor`` or ``ceil`` of its fair share, computed *after* the free slots
   were placed, the ``ceil``s going to the workers that hold the most (among equal
   holders, to those that could only give a replica into a zone where a sibling
   already is: the others can give without a repair). A worker gives slots away
   only when it is above its quota, and only the excess: slots of DRAINING
   workers and the excess of over-quota workers are handed off to workers below
   quota. On a death only the dead worker's slots move; on a join only the newcomer's
   quota moves, from the most loaded workers; with nothing changed nothing moves.
   Slots of quarantined partitions are load their owner cannot give: a worker whose
   quarantined slots alone exceed its fair share is *pinned*, its quota is exactly
   those slots and the others share the rest; among equal holders the surplus stays
   first with those holding more quarantined slots. A pinned worker's movable slot
   that no worker below quota may take (a sibling replica is there) goes to a worker
   at its quota, which passes one of its own on in the next plan. Without
   quarantined slots above a share, plans are as if there were none.
   With unequal weights each worker's limit is its fair share of weight plus
   ``max(tolerance * share, heaviest partition)``, and free slots go heaviest first.
4. **Constraints.** Two replicas of a partition never share a worker (hard). They go
   to different zones when a worker with room there allows it; handoffs first try
   moves that keep the zones distinct and only then any move (balance wins when the
   two conflict). A worker above its quota gives replicas that share a zone with a
   sibling first, then slots without placed siblings, and replicas alone in their
   zone last (giving one away at best keeps its partition's spread, and it may take
   the place a crowded replica needed). Ties are broken by worker id and inputs are
   sorted, so the plan never depends on dict or set order.
5. **Zone spread repair.** Let Z be the number of zones with an ACTIVE worker. A
   partition has an *avoidable clash* ("the zones allow it to spread") when every
   slot is placed on an ACTIVE worker (its owner, or the target of a move planned in
   this pass), no slot is in a handoff started earlier, and its replicas cover fewer
   distinct zones than ``min(replication_factor, Z)``. Avoidable clashes are repaired
   last, one zone at a time, by the cheapest of: moving a replica that shares its
   zone to a worker in a missing zone when the counts stay balanced and stable
   (unequal weights: the target has room; equal weights: the source is above its
   quota and the target below, or, with equal capacities, the source stays at or
   above the floor of its fair share and the target at or below the ceiling); or
   swapping it with a replica of equal weight of another partition
   on a worker in a missing zone, the other partition keeping at least as many
   distinct zones (counts do not change). Slots planned onto either worker in this
   pass are re-aimed first, which costs no handoff, so a clash the pass itself would
   create is usually avoided for free; otherwise a swap costs two handoffs. Repairs
   obey the caps of rule 6 and only ever raise the sum of distinct zones, so repeated
   plans reach a fixed point; a clash-free layout gets no repair moves at all. A
   clash stays when no swap partner exists (e.g. unequal zone sizes make spread and
   balance incompatible: balance wins).
6. **Throttling.** Graceful handoffs in flight (pending in the state plus those
   planned now) are capped cluster-wide and per worker (as source or target).
7. **Scale.** Fully free partitions are placed in bulk by water-filling; other slots
   find their target through per-zone heaps with lazy invalidation. A plan costs
   O(F + M (log W + Z)) for F free slots, M moves, W workers and Z zones — never a
   scan of every (slot, worker) pair. The repair looks only at partitions the state
   indexes as sharing a zone (`CoordinatorState.zone_shared`) and those this pass
   crowded, and it remembers its answers (whether a zone has a worker that may take
   a replica, which slots of a worker could go back in a swap) until a move
   changes what they depend on. A clash that no worker of a missing zone could
   take part in repairing costs O(R Z) for replication factor R (only the caps
   blocking a possible repair make it walk that zone's workers), and each slot is
   examined as a swap partner at most once per zone between changes: with C
   candidate clashes and S placed slots, the repair of a plan that changes nothing
   costs O(C R Z + S Z), not O(C S).
"""

from __future__ import annotations

from typing import Mapping, Optional

from ._planner import UNLIMITED, Move, PlacementPolicy, Planner, quotas
from .commands import WorkerState
from .records import SlotKey
from .state import CoordinatorState

__all__ = ["UNLIMITED", "Move", "PlacementPolicy", "max_imbalance", "moves_lower_bound",
           "plan", "quotas"]


def moves_lower_bound(owners: Mapping[SlotKey, Optional[str]],
                      capacities: Mapping[str, int]) -> int:
    """The fewest slot moves that reach a balanced layout (equal weights).

    Every slot whose owner is missing or not eligible must move, and every eligible
    worker above its quota (`quotas`) must give away the excess. Replica and zone
    constraints are ignored, so this is a lower bound for any planner.

    Args:
        owners: the placeable slots and their current owners (None = free).
        capacities: the eligible (ACTIVE) workers after the event, with capacities.
    """
    counts: dict[str, int] = {}
    orphans = 0
    for owner in owners.values():
        if owner is None or owner not in capacities:
            orphans += 1
        else:
            counts[owner] = counts.get(owner, 0) + 1
    limit = quotas(counts, capacities, len(owners))
    return orphans + sum(max(0, n - limit.get(w, 0)) for w, n in counts.items())


def max_imbalance(state: CoordinatorState) -> float:
    """How far the most unbalanced ACTIVE worker is from its fair share, in slots
    of the common weight (equal weights) or in weight units (unequal weights)."""
    eligible = {w: r for w, r in state.workers.items() if r.state is WorkerState.ACTIVE}
    if not eligible:
        return 0.0
    total = sum(r.load for r in eligible.values())
    cap_sum = sum(r.capacity for r in eligible.values())
    return max(abs(r.load - total * r.capacity / cap_sum) for r in eligible.values())


def plan(state: CoordinatorState, policy: PlacementPolicy, now: float) -> list[Move]:
    """Plan the next moves.

    Args:
        state: the coordinator state (read only).
        policy: caps and balance tolerance.
        now: cluster time (``CoordinatorLeader.cluster_time``), for holds and
            re-created groups; the same clock the log's commands carry.

    Returns:
        Moves in a deterministic order: free slots first (by partition), then
        handoffs. Applying them (and completing the handoffs) and planning again
        returns no moves unless something changed.
    """
    return Planner(state, policy, now).run()

