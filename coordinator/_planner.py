"""One pass of the placement planner (see `coordinator.placement` for the theory).

The public names defined here (`PlacementPolicy`, `Move`, `quotas`, `UNLIMITED`) are
re-exported by `coordinator.placement`; import them from there.
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import math
from collections import Counter
from typing import Callable, Iterable, Iterator, Mapping, NamedTuple, Optional

import attrs

from .commands import WorkerState
from .records import MovePhase, SlotKey
from .state import CoordinatorState


@attrs.frozen(kw_only=True)
class PlacementPolicy:
    """Leader-side knobs of the planner.

    Attributes:
        max_moves_in_flight: graceful handoffs in flight cluster-wide, at most.
        max_moves_per_worker: handoffs in flight per worker (as source or target).
        weight_tolerance: with unequal weights, how far above its fair share of weight
            a worker may be (a fraction of the share).
        spread_zones: place replicas of a partition in different zones when possible.
    """

    max_moves_in_flight: int = attrs.field(default=256)
    max_moves_per_worker: int = attrs.field(default=16)
    weight_tolerance: float = attrs.field(default=0.05)
    spread_zones: bool = attrs.field(default=True)

    @max_moves_in_flight.validator
    @max_moves_per_worker.validator
    def _check_cap(self, attribute: attrs.Attribute, value: int) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{attribute.name} must be an int >= 0, got {value!r}")


UNLIMITED = PlacementPolicy(max_moves_in_flight=1 << 60, max_moves_per_worker=1 << 60)
"""A policy without move caps (benchmarks, checkers of the final layout)."""


class Move(NamedTuple):
    """Give ``(partition_id, slot)`` to ``target`` (an immutable value).

    Attributes:
        source: the current owner for a graceful handoff (revoke first), or None
            when the slot is free (assign at once).
    """

    partition_id: str
    slot: int
    source: Optional[str]
    target: str

    @property
    def is_handoff(self) -> bool:
        return self.source is not None


def quotas(counts: Mapping[str, int], capacities: Mapping[str, int], total: int,
           tie_break: Optional[Callable[[str], int]] = None,
           fixed: Optional[Mapping[str, int]] = None) -> dict[str, int]:
    """Integer quotas summing to ``total``, proportional to capacity, within one.

    The workers that receive the rounding surplus are those holding the most already
    (then those with more ``fixed`` slots, which have fewer they could give, then the
    larger fractional share, then the smaller id), which is what makes the quotas
    reachable with the fewest moves.

    Slots a worker cannot give away (``fixed``: those of quarantined partitions) are
    load it keeps whatever its quota says. A worker whose fixed load exceeds its
    fair share gets exactly that load as its quota (see `_pinned_loads`) and the
    other workers share the rest as above; every other worker's fixed load is at
    most the floor of its share, so any quota it gets is reachable. With no fixed
    loads the quotas are exactly those computed without ``fixed``.

    Args:
        counts: slots each eligible worker holds now.
        capacities: eligible workers and their capacities.
        total: slots to place on them.
        tie_break: when the surplus runs out inside a group of workers with equal
            counts, fixed loads and fractional shares, it goes to those with the smallest
            ``tie_break(worker)`` (then the smaller id). Called only for that group.
        fixed: slots each worker holds and cannot give away (at most its count;
            missing means none).
    """
    pinned = _pinned_loads(capacities, total, fixed) if fixed else {}
    if pinned:
        capacities = {w: cap for w, cap in capacities.items() if w not in pinned}
        total -= sum(pinned.values())
    cap_sum = sum(capacities.values())
    if cap_sum == 0:
        return dict(pinned)
    result = {w: total * cap // cap_sum for w, cap in capacities.items()}
    surplus = total - sum(result.values())
    if surplus:
        held_fast = fixed or {}

        def rank(w: str) -> tuple[int, int, int]:
            return -counts.get(w, 0), -held_fast.get(w, 0), -(total * capacities[w] % cap_sum)

        order = sorted(capacities, key=lambda w: (rank(w), w))
        if tie_break is not None and surplus < len(order) \
                and rank(order[surplus - 1]) == rank(order[surplus]):
            tied = rank(order[surplus])
            start = surplus - 1
            while start > 0 and rank(order[start - 1]) == tied:
                start -= 1
            end = surplus + 1
            while end < len(order) and rank(order[end]) == tied:
                end += 1
            order[start:end] = sorted(order[start:end], key=lambda w: (tie_break(w), w))
        for worker in order[:surplus]:
            result[worker] += 1
    result.update(pinned)
    return result


def _pinned_loads(capacities: Mapping[str, int], total: int,
                 fixed: Mapping[str, int]) -> dict[str, int]:
    """The workers whose fixed load exceeds their fair share, with that load.

    A worker is pinned when its fixed load is above its capacity's share of what
    the workers not pinned yet must hold (``total`` minus the pinned loads).
    Pinning one lowers the others' shares, so this repeats until nobody else
    qualifies (at most once per worker; the answer does not depend on order).
    Without fixed loads nobody is pinned.
    """
    pinned: dict[str, int] = {}
    while True:
        rest = total - sum(pinned.values())
        cap_rest = sum(cap for w, cap in capacities.items() if w not in pinned)
        # fixed / rest > cap / cap_rest, in integers.
        new = [w for w, cap in capacities.items() if w not in pinned
               and fixed.get(w, 0) * cap_rest > rest * cap]
        if not new:
            return pinned
        for worker in new:
            pinned[worker] = fixed[worker]


class Planner:
    """One planning pass over a state; `run` returns the moves."""

    def __init__(self, state: CoordinatorState, policy: PlacementPolicy, now: float) -> None:
        self.state = state
        self.policy = policy
        self.now = now
        self.partitions = state.partitions
        self.pending = state.pending_moves
        workers = state.workers
        self.eligible = sorted(w for w, r in workers.items() if r.state is WorkerState.ACTIVE)
        self.zone = {w: workers[w].zone for w in self.eligible}
        self.load = {w: workers[w].load for w in self.eligible}
        self.capacity = {w: workers[w].capacity for w in self.eligible}
        self.inflight: dict[str, int] = {}
        self.pending_total = len(self.pending)
        self.members: dict[str, list[str]] = {}
        self.removed: set[str] = set()
        # Workers whose quarantined slots alone exceed their fair share (`quotas`).
        self.pinned: Mapping[str, int] = {}
        # Quarantined slots each worker holds (`_immovable`), once quotas are set.
        self.fixed: Mapping[str, int] = {}
        self.orphans: list[SlotKey] = []
        self.evicted: list[tuple[SlotKey, str]] = []
        self.moves: list[Move] = []
        # For the zone spread repair: partitions `place` gave a replica in a zone
        # another of their replicas uses, slots handed off, and the sources of those
        # handoffs by partition, in this pass.
        self.crowded: set[str] = set()
        self.handed_off: set[SlotKey] = set()
        self.leaving: dict[str, set[str]] = {}
        self.arrivals: Optional[dict[str, list[int]]] = None
        self.equal_capacities: Optional[bool] = None
        # Answers of the zone spread repair that it asks again and again, stamped
        # with versions (see "zone spread repair"); None until that pass starts.
        self.worker_version: Optional[dict[Optional[str], int]] = None
        self.zone_version: dict[Optional[str], int] = {}
        self.partner_slots_cache: dict[tuple, tuple[int, list]] = {}
        self.zone_partners_cache: dict[tuple, tuple[int, bool]] = {}
        self.zone_room_cache: dict[tuple, tuple[int, bool, bool]] = {}
        # Work counter for tests and benchmarks: slots examined as swap partners.
        self.partner_checks = 0

    def members_of(self, pid: str) -> list[str]:
        """Current owners of the partition plus eligible targets of its handoffs."""
        members = self.members.get(pid)
        if members is None:
            record = self.partitions[pid]
            members = [owner for owner in record.owners if owner is not None]
            if self.pending:
                for slot in range(record.replication_factor):
                    move = self.pending.get((pid, slot))
                    if move is not None and move.target in self.load \
                            and move.target not in members:
                        members.append(move.target)
            self.members[pid] = members
        return members

    # -- collecting

    def collect(self) -> None:
        state, now, load, partitions = self.state, self.now, self.load, self.partitions
        inflight = self.inflight
        reserved = set()
        for key, move in self.pending.items():
            inflight[move.source] = inflight.get(move.source, 0) + 1
            if move.target is not None:
                inflight[move.target] = inflight.get(move.target, 0) + 1
            if move.target in load:
                # Count the slot where it is going, so it is not planned twice.
                weight = partitions[key[0]].weight
                load[move.target] += weight
                if move.phase is MovePhase.REVOKING and move.source in load:
                    load[move.source] -= weight
                reserved.add(key)
        holds = state.holds
        free = state.free_slots
        ordered: list[tuple] = []
        if 4 * len(free) > len(partitions) and not reserved and not holds:
            # Mostly free (initial assignment): walking the partitions is cheaper than
            # looking each free slot up, and yields nearly sorted input for the sort.
            for record in partitions.values():
                if record.quarantined or (record.not_before is not None
                                          and now < record.not_before):
                    continue
                base, pid = record.ordinal << 5, record.partition_id
                weight, rf = record.weight, record.replication_factor
                ordered.extend((base | slot, pid, slot, weight, rf)
                               for slot, owner in enumerate(record.owners) if owner is None)
        else:
            for key in free:
                record = partitions[key[0]]
                if key in reserved or record.quarantined or (
                        record.not_before is not None and now < record.not_before):
                    continue
                if holds:
                    hold = holds.get(key)
                    if hold is not None and hold.until > now:
                        continue
                ordered.append((record.ordinal << 5 | key[1], key[0], key[1],
                                record.weight, record.replication_factor))
        ordered.sort()
        self.orphans = self._placeable([item[1:] for item in ordered], reserved)
        for worker_id in sorted(state.workers):
            record = state.workers[worker_id]
            if record.state is not WorkerState.DRAINING:
                continue
            for key in sorted(record.owned):
                if key not in self.pending and not partitions[key[0]].quarantined:
                    self.evicted.append((key, worker_id))
        weights = state.partition_weights
        self.unit = len(weights) <= 1
        self.unit_weight = weights[0] if weights else 1
        self.heaviest = weights[-1] if weights else 0

    def _placeable(self, orphans: list, reserved: set[SlotKey]) -> list:
        """Drop free slots that could only be placed next to a sibling replica (more
        replicas than eligible workers): they must not count towards the quotas."""
        eligible = len(self.eligible)
        if all(item[3] <= eligible for item in orphans):
            return orphans
        allowance: dict[str, int] = {}
        kept = []
        for item in orphans:
            pid, _, _, rf = item
            if rf > eligible:
                if pid not in allowance:
                    record = self.partitions[pid]
                    present = sum(o is not None for o in record.owners) + sum(
                        (pid, slot) in reserved for slot in range(rf))
                    allowance[pid] = eligible - present
                if allowance[pid] <= 0:
                    continue
                allowance[pid] -= 1
            kept.append(item)
        return kept

    # -- limits and keys

    def compute_limits(self) -> None:
        partitions = self.partitions
        placed = sum(self.load.values())
        if self.unit:
            unit = self.unit_weight
            total = placed + unit * (len(self.orphans) + len(self.evicted))
            self.total = total
            cap_sum = sum(self.capacity.values())
            self.fair = {w: total * self.capacity[w] / cap_sum for w in self.eligible}
            # Placing free slots: the least loaded first, up to the most any balanced
            # layout allows (one slot above the fair share, rounded down).
            self.base = self.fair
            self.limit = {w: math.ceil(self.fair[w] / unit - 1e-9) * unit
                          for w in self.eligible}
        else:
            total = placed + sum(item[2] for item in self.orphans) \
                + sum(partitions[k[0]].weight for k, _ in self.evicted)
            cap_sum = sum(self.capacity.values())
            tolerance = self.policy.weight_tolerance
            self.limit = {}
            self.share = {}
            for w in self.eligible:
                share = total * self.capacity[w] / cap_sum
                self.share[w] = max(share, 1e-9)
                self.limit[w] = share + max(tolerance * share, self.heaviest)
        self.cur = {w: self.key(w) for w in self.eligible}

    def requota(self) -> None:
        """Switch to exact quotas for the handoff pass (equal weights).

        The quotas are computed from the loads *after* free slots were placed, with
        the rounding surplus going to the workers that hold the most: a balanced
        layout then needs no handoff at all, and an unbalanced one only the excess.
        """
        if not self.unit:
            return
        unit = self.unit_weight
        counts = {w: self.load[w] // unit for w in self.eligible}
        total = self.total // unit
        # Equally loaded workers: the surplus goes to those that could give a slot
        # away only by crowding a partition into a receiving zone, so the others
        # give (see `_giving_rank`).
        tie_break = None
        if self.policy.spread_zones and len(self.zones) > 1:
            cap_sum = sum(self.capacity.values())
            receiving = {self.zone[w] for w in self.eligible
                         if counts[w] < total * self.capacity[w] // cap_sum}
            if receiving:
                tie_break = self._giving_rank(receiving)
        fixed = self.fixed = self._immovable()
        limit = quotas(counts, self.capacity, total, tie_break, fixed)
        self.limit = {w: limit[w] * unit for w in self.eligible}
        if fixed:
            # The repair's balance tests (`_may_give`, `_below_ceiling`) must agree
            # with these quotas: a pinned worker's share is its fixed load, the
            # others share the rest.
            pinned = self.pinned = _pinned_loads(self.capacity, total, fixed)
            if pinned:
                rest = total - sum(pinned.values())
                cap_rest = sum(c for w, c in self.capacity.items() if w not in pinned)
                self.fair = {w: (pinned[w] if w in pinned
                                 else rest * self.capacity[w] / cap_rest) * unit
                             for w in self.eligible}
        self.base = self.limit
        self.cur = {w: self.key(w) for w in self.eligible}
        self.build_heaps()

    def _immovable(self) -> dict[str, int]:
        """Slots each eligible worker holds and no handoff may take (equal weights):
        those of quarantined partitions. A slot in a handoff to an eligible worker
        is left out: `collect` already counts it there."""
        fixed: dict[str, int] = {}
        load, pending = self.load, self.pending
        for pid in self.state.quarantined_partitions:
            for slot, owner in enumerate(self.partitions[pid].owners):
                if owner not in load:
                    continue
                move = pending.get((pid, slot))
                if move is None or move.target not in load:
                    fixed[owner] = fixed.get(owner, 0) + 1
        return fixed

    def _giving_rank(self, receiving: set[str]) -> Callable[[str], int]:
        """How willing a worker is to give a slot to a worker in one of the
        ``receiving`` zones without a repair following; `quotas` breaks ties between
        equally loaded workers with it (the least willing keep the rounding surplus).

        0: each slot it holds would land next to a sibling replica in every
        receiving zone; 1: it can give one without losing spread (it is in a
        receiving zone itself, or holds a slot whose partition lacks one); 2: it
        holds a replica that shares its zone with a sibling and whose partition
        lacks a receiving zone (giving that one improves the spread). The answer
        does not depend on set order.
        """
        zone, members_of = self.zone, self.members_of
        givers_that_spread: set[str] = set()
        for pid in self.crowded.union(self.state.zone_shared):
            members = members_of(pid)
            used = [zone.get(m) for m in members]
            if receiving.issubset(used):
                continue
            for member, member_zone in zip(members, used):
                if member_zone is not None and used.count(member_zone) > 1:
                    givers_that_spread.add(member)
        owned = self.state.workers

        def rank(worker: str) -> int:
            if worker in givers_that_spread:
                return 2
            if zone[worker] in receiving:
                return 1
            for pid, _ in owned[worker].owned:
                if not receiving.issubset(map(zone.get, members_of(pid))):
                    return 1
            return 0

        return rank

    def key(self, worker: str) -> float:
        """Smaller is emptier. Equal weights: load minus fair share while placing
        free slots, load minus quota during handoffs (room is then exactly
        ``key <= -weight``). Unequal weights: load divided by fair share."""
        if self.unit:
            return self.load[worker] - self.base[worker]
        return self.load[worker] / self.share[worker]

    def has_room(self, worker: str, weight: int) -> bool:
        return self.load[worker] + weight <= self.limit[worker]

    # -- heaps with lazy invalidation
    #
    # Invariant: every worker not in `removed` has at least one entry in each of
    # `all_heap` and its zone's heap whose key is <= its current key. A placement
    # raises the target's key without touching the heaps (its entry becomes low and
    # is refreshed when it reaches the top); lowering a key pushes a fresh entry.

    def build_heaps(self) -> None:
        self.zones = sorted(set(self.zone.values()))
        self.zone_heap: dict[str, list] = {z: [] for z in self.zones}
        self.all_heap: list = []
        for w in self.eligible:
            entry = (self.cur[w], w)
            self.zone_heap[self.zone[w]].append(entry)
            self.all_heap.append(entry)
        for heap in self.zone_heap.values():
            heapq.heapify(heap)
        heapq.heapify(self.all_heap)

    def _top(self, heap: list, excluded: Iterable[str]) -> Optional[str]:
        """The emptiest worker of ``heap`` that is not in ``excluded``."""
        cur, removed = self.cur, self.removed
        parked = []
        found = None
        while heap:
            key, worker = heap[0]
            if worker in removed:
                heapq.heappop(heap)
                continue
            current = cur[worker]
            if current != key:
                if current > key:
                    heapq.heapreplace(heap, (current, worker))
                else:
                    heapq.heappop(heap)  # a fresher, lower entry exists
                continue
            if worker in excluded:
                parked.append(heapq.heappop(heap))
                continue
            found = worker
            break
        for entry in parked:
            heapq.heappush(heap, entry)
        return found

    def _top_outside(self, used: set[str], members: list[str]) -> Optional[str]:
        """The emptiest worker overall if it is among the first few outside ``used``
        zones and ``members``; None means "ask the zone heaps"."""
        heap, zone = self.all_heap, self.zone
        parked = []
        found = None
        for _ in range(4 + 2 * len(members)):
            worker = self._top(heap, ())
            if worker is None:
                break
            if zone[worker] in used or worker in members:
                parked.append(heapq.heappop(heap))
                continue
            found = worker
            break
        for entry in parked:
            heapq.heappush(heap, entry)
        return found

    def pick(self, pid: str, weight: int, source: Optional[str], require_room: bool,
             strict: bool = False) -> Optional[str]:
        """Choose the target of one slot.

        Order: a worker with room in a zone no other replica uses; unless ``strict``,
        a worker with room in a used zone; finally (without ``require_room``) the least
        loaded worker anywhere. Never a worker holding another replica.
        """
        members = self.members_of(pid)
        if source is not None:
            members = [m for m in members if m != source]
        if not members:
            best = self._top(self.all_heap, ())
            if best is None or (require_room and not self.has_room(best, weight)):
                return None
            return best
        # The source is leaving, so its zone counts as used only through other members.
        zone_of = self.zone.get
        used = set(map(zone_of, members))
        used.discard(None)
        if self.policy.spread_zones:
            # Usually the emptiest worker overall is in an unused zone: try it first.
            best = self._top_outside(used, members)
            if best is not None and self.has_room(best, weight):
                return best
        if self.policy.spread_zones:
            unused = [z for z in self.zones if z not in used]
            best = self._best_with_room(unused, members, weight)
            if best is not None:
                return best
            if strict:
                return None
            best = self._best_with_room([z for z in self.zones if z in used], members, weight)
        else:
            best = self._best_with_room(self.zones, members, weight)
        if best is not None or require_room:
            return best
        return self._least_loaded(members, used)

    def _best_with_room(self, zones: list[str], members: list[str],
                        weight: int) -> Optional[str]:
        best = None
        for zone in zones:
            worker = self._top(self.zone_heap[zone], members)
            if worker is None:
                continue
            candidate = (self.cur[worker], worker)
            if self.has_room(worker, weight) and (best is None or candidate < best):
                best = candidate
        return None if best is None else best[1]

    def _least_loaded(self, members: list[str], used: set[str]) -> Optional[str]:
        """Where a slot goes when nobody suitable has room: the worker least loaded
        relative to its fair share (then an unused zone, then the id). Rare (the
        replica constraint blocked the quotas), so a scan is fine."""
        best = None
        spread = self.policy.spread_zones
        for worker in self.eligible:
            if worker in members or worker in self.removed:
                continue
            fill = self.load[worker] - self.fair[worker] if self.unit \
                else self.load[worker] / self.share[worker]
            rank = (fill, spread and self.zone[worker] in used, worker)
            if best is None or rank < best:
                best = rank
        return None if best is None else best[2]

    def place(self, pid: str, slot: int, weight: int, source: Optional[str],
              target: str) -> None:
        load = self.load
        load[target] += weight
        self.cur[target] = (load[target] - self.base[target]) if self.unit \
            else load[target] / self.share[target]
        members = self.members_of(pid)
        if source is not None:
            self._take_from(source, pid, weight)
            self.inflight[source] = self.inflight.get(source, 0) + 1
            self.inflight[target] = self.inflight.get(target, 0) + 1
            self.pending_total += 1
            self.handed_off.add((pid, slot))
            self.leaving.setdefault(pid, set()).add(source)
        if members:
            zone = self.zone
            target_zone = zone[target]
            for member in members:
                if zone.get(member) == target_zone:
                    self.crowded.add(pid)
                    break
        members.append(target)
        self.moves.append(Move(pid, slot, source, target))
        if self.arrivals is not None:
            # A repair planned this move after the index was built: later repairs
            # must still see it as a swap partner (it is in `handed_off`, so the
            # target's owned slots no longer offer it).
            self.arrivals.setdefault(target, []).append(len(self.moves) - 1)
        if self.worker_version is not None:
            self._touch(pid, source)

    def _take_from(self, worker: str, pid: str, weight: int) -> None:
        members = self.members_of(pid)
        if worker in members:
            members.remove(worker)
        if worker in self.load:
            self.load[worker] -= weight
            entry = self.cur[worker] = self.key(worker)
            heapq.heappush(self.all_heap, (entry, worker))
            heapq.heappush(self.zone_heap[self.zone[worker]], (entry, worker))

    def _retarget(self, index: int, strict: bool) -> bool:
        """Send a free slot planned in this pass elsewhere (no handoff needed)."""
        pid, slot, _, worker = self.moves[index]
        weight = self.partitions[pid].weight
        target = self.pick(pid, weight, worker, require_room=True, strict=strict)
        if target is None:
            return False
        self._take_from(worker, pid, weight)
        self.place(pid, slot, weight, None, target)
        self.moves[index] = self.moves.pop()
        return True

    # -- passes

    def place_orphans(self) -> None:
        if not self.unit:
            # Heaviest first (longest-processing-time rule) balances weights best.
            simple = sorted((i for i in self.orphans if i[3] == 1), key=lambda i: -i[2])
            constrained = sorted((i for i in self.orphans if i[3] > 1), key=lambda i: -i[2])
            self._place_simple(simple)
        else:
            bulk, constrained = self._split_fresh(self.orphans)
            if bulk:
                constrained = self._fill(bulk) + constrained
        for pid, slot, weight, _ in constrained:
            target = self.pick(pid, weight, None, require_room=False)
            if target is not None:
                self.place(pid, slot, weight, None, target)

    def _split_fresh(self, orphans: list) -> tuple[list, list]:
        """Single-replica slots and partitions with every slot free (bulk-placed),
        versus slots that have placed siblings (placed one by one)."""
        bulk, constrained = [], []
        index = 0
        while index < len(orphans):
            pid, _, _, rf = orphans[index]
            if rf == 1:
                bulk.append(orphans[index])
                index += 1
                continue
            end = index + 1
            while end < len(orphans) and orphans[end][0] == pid:
                end += 1
            # Every slot free means no owner and no handoff target (reserved slots
            # are never listed as free): no constraint from siblings.
            (bulk if end - index == rf else constrained).extend(orphans[index:end])
            index = end
        return bulk, constrained

    def _fill(self, items: list) -> list:
        """Place free slots of equal weight in bulk by water-filling.

        Level by level, every worker whose key is at or below the level receives one
        slot, the workers of a level taken zone by zone in turn (the first worker of
        each zone, then the second of each zone, ...). The replicas of a partition
        take consecutive places of that sequence, so they land on distinct workers in
        distinct zones; a partition for which that fails is returned, to be placed
        one slot at a time.
        """
        unit, cur, zone = self.unit_weight, self.cur, self.zone
        rank: dict[str, tuple] = {}
        seen: dict[str, int] = {}
        for worker in self.eligible:  # sorted by id
            seen[zone[worker]] = seen.get(zone[worker], 0) + 1
            rank[worker] = (seen[zone[worker]], zone[worker], worker)
        order = sorted(self.eligible, key=lambda w: (cur[w], w))
        targets: list[str] = []
        active: list[tuple] = []
        index, needed = 0, len(items)
        level = cur[order[0]]
        while len(targets) < needed:
            while index < len(order) and cur[order[index]] <= level:
                bisect.insort(active, rank[order[index]])
                index += 1
            targets.extend(r[2] for r in active[:needed - len(targets)])
            level += unit
        zones_alive = len(self.zones)
        spread = self.policy.spread_zones
        zone_of = zone.__getitem__
        members = self.members
        rejected: list[int] = []
        position = 0
        while position < needed:
            rf = items[position][3]
            if rf > 1:
                chosen = targets[position:position + rf]
                if len(set(chosen)) == rf and (not spread or len(set(map(zone_of, chosen)))
                                               == min(rf, zones_alive)):
                    members[items[position][0]] = chosen
                else:
                    rejected.append(position)
            position += rf
        deferred: list = []
        for position in reversed(rejected):
            rf = items[position][3]
            deferred[:0] = items[position:position + rf]
            del items[position:position + rf]
            del targets[position:position + rf]
        placed = targets[:len(items)]
        self.moves.extend(Move(pid, slot, None, target)
                          for (pid, slot, _, _), target in zip(items, placed))
        for target, count in Counter(placed).items():
            self.load[target] += count * unit
            cur[target] = self.key(target)
        self.build_heaps()
        return deferred

    def _place_simple(self, simple: list) -> None:
        moves = self.moves
        heap, cur, load = self.all_heap, self.cur, self.load
        heappop, heapreplace = heapq.heappop, heapq.heapreplace
        for pid, slot, weight, _ in simple:
            # The inlined hot path of `_top` (nobody is in `removed` yet).
            while heap:
                key, target = heap[0]
                current = cur[target]
                if current == key:
                    break
                if current > key:
                    heapreplace(heap, (current, target))
                else:
                    heappop(heap)
            else:
                return
            load[target] += weight
            cur[target] = self.key(target)
            moves.append(Move(pid, slot, None, target))

    def _budget(self, worker: str) -> bool:
        return self.inflight.get(worker, 0) < self.policy.max_moves_per_worker

    def _handoff(self, key: SlotKey, source: str, require_room: bool,
                 strict: bool = False) -> Optional[bool]:
        """Plan one graceful handoff: True if planned, False if not, None once the
        cluster-wide cap is reached."""
        if self.pending_total >= self.policy.max_moves_in_flight:
            return None
        if not self._budget(source):
            return False
        weight = self.partitions[key[0]].weight
        target = self.pick(key[0], weight, source, require_room, strict)
        if target is None:
            return False
        self.place(key[0], key[1], weight, source, target)
        if not self._budget(target):
            # No further handoffs to it this round (free slots were placed already).
            self.removed.add(target)
        return True

    def move_evicted(self) -> None:
        for key, source in self.evicted:
            if self._handoff(key, source, require_room=False) is None:
                return

    def shed_excess(self) -> None:
        load, limit = self.load, self.limit
        over = [w for w in self.eligible if load[w] > limit[w]]
        # The most loaded workers give first.
        over.sort(key=lambda w: (-(load[w] - limit[w]), w))
        pending, partitions = self.pending, self.partitions
        workers = self.state.workers
        fresh: dict[str, list[int]] = {}
        if over:
            for index, move in enumerate(self.moves):
                if move.source is None and move.target in limit:
                    fresh.setdefault(move.target, []).append(index)
        for worker in over:
            # First redirect free slots planned onto it in this pass (no handoff).
            for strict in (True, False):
                for index in reversed(fresh.get(worker, [])):
                    if load[worker] <= limit[worker]:
                        break
                    if self.moves[index].target == worker:
                        self._retarget(index, strict)
            zone = self.zone[worker]
            candidates = []
            for key in workers[worker].owned:
                if key in pending:
                    continue
                record = partitions[key[0]]
                if record.quarantined:
                    continue
                members = self.members_of(key[0])
                # Replicas that share a zone go first: moving one can give its
                # partition a zone. Then slots without placed siblings: moving one
                # changes no spread. Replicas alone in their zone go last: moving one
                # gives that zone up, and if it takes a place in a zone its siblings
                # lack, a crowded replica can no longer go there and a repair costs
                # more handoffs later. Within a rank the heaviest, then by id.
                if len(members) < 2:
                    rank = 1
                elif sum(self.zone.get(m) == zone for m in members) > 1:
                    rank = 0
                else:
                    rank = 2
                candidates.append((rank, -record.weight, key, record.weight))
            candidates.sort()
            if not self.unit:
                candidates = self._fewest_for_excess(worker, candidates)
            # First only moves that keep replicas in distinct zones; then, if the
            # worker is still above its quota, any move (balance wins).
            for strict in (True, False):
                left = []
                for candidate in candidates:
                    if load[worker] <= limit[worker]:
                        break
                    moved = self._handoff(candidate[2], worker, require_room=True,
                                          strict=strict)
                    if moved is None:
                        return
                    if not moved:
                        left.append(candidate)
                candidates = left
            if worker in self.pinned or self.fixed.get(worker):
                # Its movable slots may all be siblings of replicas on every worker
                # below quota: pass one through a worker at its quota instead.
                for candidate in candidates:
                    if load[worker] <= limit[worker]:
                        break
                    if self._handoff_past_quota(candidate[2], worker) is None:
                        return

    def _handoff_past_quota(self, key: SlotKey, source: str) -> Optional[bool]:
        """Hand a movable slot of a worker holding quarantined slots (pinned or
        not) to a worker at its quota, as `_handoff` does: True if planned, False
        if not, None at the cluster-wide cap.

        Such a worker may hold only a few movable slots, and each may be a sibling
        of a replica on every worker below quota (seed 187 of the mixed scenario:
        the only one was a sibling of the only worker below quota; seed 6 of the
        small mixed run with worker timers on their own clocks: the same for a
        worker whose quarantined slots equalled its share, so it was not pinned). Without this,
        the pinned worker keeps it forever; with it, the target is one above its
        quota in the next plan and passes one of its own slots on, which it usually
        can (a pinned worker holds nothing movable once done, and never receives:
        it is not a target here and is above its share everywhere else). The target
        is the emptiest worker relative to its quota that is not pinned, holds no
        replica of the partition and has handoffs to spare (then an unused zone,
        then the id)."""
        if self.pending_total >= self.policy.max_moves_in_flight:
            return None
        if not self._budget(source):
            return False
        weight = self.partitions[key[0]].weight
        members = self.members_of(key[0])
        used = {self.zone.get(m) for m in members if m != source}
        best = None
        for worker in self.eligible:
            if worker in self.pinned or worker in members or worker in self.removed \
                    or worker in self.leaving.get(key[0], ()):
                continue
            rank = (self.load[worker] - self.limit[worker],
                    self.policy.spread_zones and self.zone[worker] in used, worker)
            if best is None or rank < best:
                best = rank
        if best is None:
            return False
        target = best[2]
        self.place(key[0], key[1], weight, source, target)
        if not self._budget(target):
            self.removed.add(target)
        return True

    def _fewest_for_excess(self, worker: str, candidates: list) -> list:
        """Reorder candidates so that few moves bring ``worker`` under its limit:
        repeatedly the lightest one that covers the remaining excess, else the
        heaviest."""
        remaining = list(candidates)
        chosen = []
        excess = self.load[worker] - self.limit[worker]
        while excess > 0 and remaining:
            covering = [c for c in remaining if c[3] >= excess]
            pick = min(covering, key=lambda c: (c[0], c[3], c[2])) if covering \
                else remaining[0]
            remaining.remove(pick)
            chosen.append(pick)
            excess -= pick[3]
        return chosen

    # -- zone spread repair
    #
    # The repair asks the same questions for every clash: may a worker of a missing
    # zone take a replica without breaking balance, and which of its slots could go
    # back in a swap. Where balance forbids spreading (unequal zone sizes), nearly
    # every answer is "no" and the same, and a plan that changes nothing would scan
    # every slot of every worker in a missing zone once per clash. So the answers
    # are cached and stamped with versions: a worker's version counts the changes of
    # its slots and of the members of any partition it holds a replica of, a zone's
    # version the changes of its workers. `place` and `_reaim` bump them (through
    # `_touch`) for every worker that held or holds a replica of the partition they
    # move, which covers everything an answer is computed from (loads, arrivals,
    # handed-off slots, members and leaving workers); `removed`, the caps and the
    # source-specific filters are checked at each use. A cached answer is thus the
    # answer a fresh scan would give, and the plan does not change.

    def _touch(self, pid: str, left: Optional[str]) -> None:
        """Bump the versions of every member of ``pid`` and of ``left`` (the worker
        that just stopped being one), and of their zones."""
        version, zone_version, zone = self.worker_version, self.zone_version, self.zone
        assert version is not None
        for worker in itertools.chain(self.members_of(pid), (left,)):
            if worker is None:
                continue
            version[worker] = version.get(worker, 0) + 1
            worker_zone = zone.get(worker)
            zone_version[worker_zone] = zone_version.get(worker_zone, 0) + 1

    def spread_zones(self) -> None:
        """Repair avoidable zone clashes (see `coordinator.placement`, rule 5).

        Candidates are the partitions the state lists as `zone_shared` (owners that
        share a zone) and those `place` crowded into a zone in this pass (bulk
        placement always spreads). A clash is *avoidable* when every
        replica of the partition is placed on an ACTIVE worker, none is in a handoff
        started earlier, and the replicas cover fewer distinct zones than
        ``min(replication_factor, zones with an ACTIVE worker)``. A repair raises the
        partition's count of distinct zones and lowers no other's, so repeated plans
        reach a fixed point.
        """
        if not self.policy.spread_zones or len(self.zones) < 2:
            return
        partitions = self.partitions
        candidates = self.crowded.union(self.state.zone_shared)
        if not candidates:
            return
        planned: dict[str, dict[str, int]] = {}  # pid -> target -> index in moves
        for index, move in enumerate(self.moves):
            if move.partition_id in candidates:
                planned.setdefault(move.partition_id, {})[move.target] = index
        self.planned = planned
        self.worker_version = {}
        self.workers_in_zone: dict[str, list[str]] = {z: [] for z in self.zones}
        for worker in self.eligible:  # sorted by id
            self.workers_in_zone[self.zone[worker]].append(worker)
        pending, load, zone = self.pending, self.load, self.zone
        # A repair can create the swap partner an earlier clash lacked (the slot it
        # brings to a worker of that clash's missing zone), so clashes left standing
        # are tried again after every sweep that repaired something: the pass ends
        # only when a sweep repairs nothing, and the next plan finds nothing either.
        # A clash that failed after the latest repair is not tried again (nothing it
        # depends on changed since), a retry whose zones did not change costs O(R Z)
        # (the per-zone answers are cached), and every repair raises the sum of
        # distinct zones, so the sweeps end.
        todo = sorted(candidates, key=lambda p: partitions[p].ordinal)
        repairs = 0
        failed_at: dict[str, int] = {}  # clash -> repairs planned when it last failed
        while True:
            before = repairs
            standing = []
            for pid in todo:
                if failed_at.get(pid) == repairs:
                    standing.append(pid)
                    continue
                record = partitions[pid]
                rf = record.replication_factor
                if record.quarantined or (pending and any(
                        (pid, slot) in pending for slot in range(rf))):
                    continue
                members = self.members_of(pid)
                if len(members) != rf or any(m not in load for m in members):
                    continue
                allowed = min(rf, len(self.zones))
                while len({zone[m] for m in members}) < allowed:
                    if self.pending_total >= self.policy.max_moves_in_flight:
                        return
                    if not self._repair(pid, record, members):
                        failed_at[pid] = repairs
                        standing.append(pid)
                        break
                    repairs += 1
            if repairs == before:
                return
            todo = standing

    def _repair(self, pid: str, record, members: list[str]) -> bool:
        """Give ``pid`` one more zone: move a replica that shares its zone to a worker
        in a missing zone when `_keeps_balance` allows it, else swap it with a replica of another partition of the same weight
        on a worker in a missing zone. Returns whether a repair was planned."""
        zone, load, limit = self.zone, self.load, self.limit
        weight = record.weight
        seen: dict[str, int] = {}
        for member in members:
            seen[zone[member]] = seen.get(zone[member], 0) + 1
        sharing = sorted((m for m in members if seen[zone[m]] > 1),
                         key=lambda m: (-(load[m] - limit[m]), m))
        missing = [z for z in self.zones if z not in seen]
        # A worker handing a replica of the partition off in this pass still holds
        # it: the state would refuse a second one until the handoff completes.
        leaving = self.leaving.get(pid, ())
        # A zone is skipped only when none of its workers could pass the test (the
        # per-zone answers are cached, see `_zone_may_take` and `_zone_has_partners`),
        # so the first repair found is the one the full scan would find.
        for source in sharing:
            for z in missing:
                if not self._zone_may_take(z, source, weight):
                    continue
                for target in self.workers_in_zone[z]:
                    if target not in self.removed and target not in leaving \
                            and self._keeps_balance(source, target, weight) \
                            and self._redirect(pid, record, source, target, None):
                        return True
        for source in sharing:
            for z in missing:
                if not self._zone_has_partners(z, zone[source], weight):
                    continue
                for target in self.workers_in_zone[z]:
                    if target in self.removed or target in leaving:
                        continue
                    for partner in self._swap_partners(source, target, weight):
                        if self._redirect(pid, record, source, target, partner):
                            return True
        return False

    def _keeps_balance(self, source: str, target: str, weight: int) -> bool:
        """Whether moving one slot from ``source`` to ``target`` keeps the layout
        balanced and a fixed point of the next plan. Unequal weights: the target
        has room. Equal weights: the source is above its quota and the target below
        its own; or, with equal capacities (where every layout with each worker at
        the floor or ceiling of its fair share is a fixed point of `quotas`), the
        source stays at or above the floor and the target at or below the
        ceiling."""
        if not self.unit:
            return self.has_room(target, weight)
        above_quota, above_floor = self._may_give(source)
        return (above_quota and self.has_room(target, weight)) \
            or (above_floor and self._below_ceiling(target))

    def _may_give(self, source: str) -> tuple[bool, bool]:
        """The source's half of `_keeps_balance` (equal weights): whether it is above
        its quota, and whether (equal capacities only) it stays at or above the floor
        of its fair share after giving one slot."""
        load = self.load
        above_quota = load[source] > self.limit[source]
        if self.equal_capacities is None:
            self.equal_capacities = len(set(self.capacity.values())) == 1
        if not self.equal_capacities:
            return above_quota, False
        unit = self.unit_weight
        return above_quota, \
            load[source] - unit >= math.floor(self.fair[source] / unit + 1e-9) * unit

    def _below_ceiling(self, target: str) -> bool:
        """Whether ``target`` stays at or below the ceiling of its fair share after
        taking one slot (equal weights)."""
        unit = self.unit_weight
        return self.load[target] + unit <= math.ceil(self.fair[target] / unit - 1e-9) * unit

    def _zone_may_take(self, zone: str, source: str, weight: int) -> bool:
        """False when no worker of ``zone`` passes `_keeps_balance` for ``source``
        (True does not promise one does). The target's half of the test, per zone,
        is cached until a worker of the zone changes."""
        version = self.zone_version.get(zone, 0)
        cached = self.zone_room_cache.get((zone, weight))
        if cached is None or cached[0] != version:
            workers = self.workers_in_zone[zone]
            room = any(self.has_room(w, weight) for w in workers)
            below = self.unit and any(self._below_ceiling(w) for w in workers)
            cached = self.zone_room_cache[(zone, weight)] = (version, room, below)
        _, room, below = cached
        if not self.unit:
            return room
        above_quota, above_floor = self._may_give(source)
        return (above_quota and room) or (above_floor and below)

    def _zone_has_partners(self, zone: str, source_zone: str, weight: int) -> bool:
        """False when no worker of ``zone`` holds a slot that `_partner_slots` offers
        to a source in ``source_zone``; cached until a worker of the zone changes."""
        version = self.zone_version.get(zone, 0)
        key = (zone, source_zone, weight)
        cached = self.zone_partners_cache.get(key)
        if cached is None or cached[0] != version:
            found = any(self._partner_slots(target, source_zone, weight)
                        for target in self.workers_in_zone[zone])
            cached = self.zone_partners_cache[key] = (version, found)
        return cached[1]

    def _swap_partners(self, source: str, target: str,
                       weight: int) -> Iterator[tuple[str, int, Optional[int]]]:
        """Slots on ``target`` that may go to ``source`` in exchange, as (partition,
        slot, index of the move planned onto ``target`` in this pass or None), the
        cheapest first: free slots planned onto it, handoffs planned onto it, then
        slots it owns that are not moving. Each has the same weight, ``source`` is not
        a replica of its partition yet, and its count of distinct zones is not
        lowered."""
        members_of, leaving = self.members_of, self.leaving
        for other, slot, index, mover in self._partner_slots(target, self.zone[source],
                                                             weight):
            if index is not None and mover == source:
                continue  # the move brings it from the source
            if source in members_of(other) or source in leaving.get(other, ()):
                continue
            yield other, slot, index

    def _partner_slots(self, target: str, source_zone: str, weight: int) -> list:
        """The part of `_swap_partners` that does not depend on the source itself,
        only on its zone: ``target``'s slots of ``weight`` whose partition would keep
        its count of distinct zones if the slot went to ``source_zone``, in the
        order described there, as (partition, slot, move index or None, source of
        that move). Cached until ``target``'s version changes."""
        assert self.worker_version is not None
        version = self.worker_version.get(target, 0)
        key = (target, source_zone, weight)
        cached = self.partner_slots_cache.get(key)
        if cached is not None and cached[0] == version:
            return cached[1]
        zone, partitions, pending, moves = self.zone, self.partitions, self.pending, self.moves
        target_zone = zone[target]
        # A set: a move re-aimed away from ``target`` and back is listed twice.
        arriving = sorted({i for i in self._arrivals().get(target, ())
                           if moves[i].target == target},
                          key=lambda i: (moves[i].source is not None, i))
        options: Iterable[tuple[str, int, Optional[int], Optional[str]]] = itertools.chain(
            ((moves[i].partition_id, moves[i].slot, i, moves[i].source) for i in arriving),
            ((key[0], key[1], None, None) for key in sorted(self.state.workers[target].owned)
             if key not in pending and key not in self.handed_off))
        found = []
        for option in options:
            self.partner_checks += 1
            record = partitions[option[0]]
            if record.weight != weight or record.quarantined:
                continue
            rest = [zone.get(m) for m in self.members_of(option[0]) if m != target]
            if source_zone in rest and target_zone not in rest:
                continue  # it would lose a zone
            found.append(option)
        self.partner_slots_cache[key] = (version, found)
        return found

    def _arrivals(self) -> dict[str, list[int]]:
        """Indexes of the moves planned in this pass, by target (built on first use,
        kept up to date by `place` and `_reaim`)."""
        if self.arrivals is None:
            self.arrivals = {}
            for index, move in enumerate(self.moves):
                self.arrivals.setdefault(move.target, []).append(index)
        return self.arrivals

    def _redirect(self, pid: str, record, source: str, target: str,
                  partner: Optional[tuple[str, int, Optional[int]]]) -> bool:
        """Send ``source``'s replica of ``pid`` to ``target`` (re-aiming the move that
        brings it to ``source`` in this pass, else with a handoff) and, with a
        ``partner`` slot of ``target``, send that one to ``source`` the same way.
        False, changing nothing, when the caps do not allow it."""
        mine = self.planned.setdefault(pid, {})
        legs = [(mine.get(source), source, target)]
        if partner is not None:
            legs.append((partner[2], target, source))
        new_handoffs = 0
        spend = {source: 0, target: 0}
        for index, old, new in legs:
            if index is not None and self.moves[index].source == new:
                return False  # it would hand the slot back to where it is
            if index is None:
                new_handoffs += 1
                spend[old] += 1
                spend[new] += 1
            elif self.moves[index].source is not None:
                spend[old] -= 1
                spend[new] += 1
        if self.pending_total + new_handoffs > self.policy.max_moves_in_flight:
            return False
        cap = self.policy.max_moves_per_worker
        if any(n > 0 and self.inflight.get(w, 0) + n > cap for w, n in spend.items()):
            return False
        weight = record.weight
        if legs[0][0] is None:
            self.place(pid, record.owners.index(source), weight, source, target)
            mine[target] = len(self.moves) - 1
        else:
            mine[target] = mine.pop(source)
            self._reaim(mine[target], source, target, weight)
        if partner is not None:
            other, slot, index = partner
            theirs = self.planned.setdefault(other, {})
            if index is None:
                self.place(other, slot, weight, target, source)
                theirs[source] = len(self.moves) - 1
            else:
                theirs.pop(target, None)
                theirs[source] = index
                self._reaim(index, target, source, weight)
        for worker in (source, target):
            if not self._budget(worker):
                self.removed.add(worker)
        return True

    def _reaim(self, index: int, old: str, new: str, weight: int) -> None:
        """Point the move planned at ``index`` (onto ``old``) at ``new`` instead."""
        move = self.moves[index]
        self._take_from(old, move.partition_id, weight)
        if move.source is not None:
            self.inflight[old] -= 1
            self.inflight[new] = self.inflight.get(new, 0) + 1
        self.load[new] += weight
        self.cur[new] = self.key(new)
        self.members_of(move.partition_id).append(new)
        self.moves[index] = move._replace(target=new)
        if self.arrivals is not None:
            self.arrivals.setdefault(new, []).append(index)
        if self.worker_version is not None:
            self._touch(move.partition_id, old)

    def run(self) -> list[Move]:
        if not self.eligible:
            return []
        # Nobody is in `removed` before the handoff passes, which the hot path of
        # `place_orphans` relies on.
        self.collect()
        self.compute_limits()
        self.build_heaps()
        self.place_orphans()
        self.move_evicted()
        self.requota()
        self.shed_excess()
        self.spread_zones()
        return self.moves
