"""Invariant checkers of the coordinator simulations.

Each checker returns a violation message (or None); the world turns it into a
`Violation` at the step that caused it.

* `OwnershipChecker` — **at most one owner**: at no simulated instant do two worker
  processes believe they may act for the same replica slot (slot 0 is the primary).
  Beliefs are what the workers themselves act on (`SimWorker.acting`, i.e.
  `WorkerLease.active_partitions` on each worker's own drifting clock), evaluated at
  the true simulated time after every event. It also times **failovers**: from the
  moment an owner stops serving a slot (it crashes, pauses or is cut off from the
  coordinator) until a serving worker (up, not paused, not cut off) acts for it,
  against the bound of `failover_bound`, moved by what the coordinator went
  through meanwhile (see `CoordWorld.failover_deadline`).
* `CommandChecker` — sees every committed command once, in log order, with its
  result, and keeps its own model of epochs and owners (it does not trust the state
  machine): **epochs only grow** (every assignment carries a larger epoch than any
  before it for that partition), **fencing** (an accepted `FencedPut` carries the
  partition's current epoch and, with one replica, comes from its current owner) and
  **no false quarantine** (no partition is quarantined but the one the scenario
  poisoned: a quarantined partition stays unowned until an operator acts).
* `layout_problems` — **balance and zone spread** after quiescence: max − min slots
  per ACTIVE worker ≤ 1 (equal weights and capacities) except for workers stuck above
  their share on quarantined slots (see `balance_problem`), replicas in distinct zones
  whenever enough zones have ACTIVE workers.
* `MovesTracker` — **minimal moves**: a join or a death that happens while the
  cluster is quiescent must, by the next quiescence, have moved exactly
  `moves_lower_bound` slots.
"""

from __future__ import annotations

from typing import Any, Optional

import attrs

from coordinator import commands as c
from coordinator.commands import WorkerState
from coordinator.placement import moves_lower_bound
from coordinator.state import CoordinatorState


@attrs.define
class Failover:
    """A slot whose owner stopped serving it (crashed, paused, cut off), waiting
    for a serving owner.

    Attributes:
        worker: the owner that stopped.
        since: when it stopped (true time).
        cause: "crash", "pause" or "cut-off".
        unchecked: why the failover bound does not apply to it (None: checked).
    """

    worker: str
    since: float
    cause: str
    unchecked: Optional[str] = None


class OwnershipChecker:
    """At most one believing owner per slot, and failover times."""

    def __init__(self) -> None:
        self.double_ownership = 0
        self.waiting: dict[tuple[str, int], Failover] = {}
        self.failovers: list[float] = []  # every completed failover, seconds
        self.checked_failovers: list[float] = []  # those the bound applied to
        self.checked_by_cause: dict[str, int] = {}
        self.unchecked: dict[str, int] = {}  # completed without the bound: reason -> count
        self.margins: list[float] = []  # deadline - end of each checked failover

    def check(self, now: float, workers, serving=None, deadline=None,
              exempt=None) -> Optional[str]:
        """At most one owner believes it may act for each slot. A failover in
        ``waiting`` ends when a worker for which ``serving(worker)`` holds (default:
        any) acts for the slot; a checked one that ends after ``deadline`` (see
        `overdue`) is a violation too."""
        seen: dict[tuple[str, int], tuple[str, int]] = {}
        waiting = self.waiting
        for worker in workers:
            if not worker.up:
                continue
            for pid, slot, epoch in worker.acting(now):
                key = (pid, slot)
                other = seen.get(key)
                if other is not None:
                    self.double_ownership += 1
                    return (f"workers {other[0]} (epoch {other[1]}) and {worker.id} (epoch {epoch}) "
                            f"both believe they may act for slot {slot} of {pid} at t={now:.4f}")
                seen[key] = (worker.id, epoch)
                if waiting and key in waiting and (serving is None or serving(worker)):
                    failover = waiting.pop(key)
                    if failover.unchecked is None and deadline is not None:
                        due = deadline(key, failover)
                        if now > due:
                            failover.unchecked = exempt(key, failover) if exempt else None
                            if failover.unchecked is None:
                                return self._late(key, failover, due)
                        else:
                            self.margins.append(due - now)
                    self._complete(failover, now)
        return None

    @staticmethod
    def _late(key: tuple[str, int], failover: Failover, due: float) -> str:
        return (f"slot {key[1]} of {key[0]} (owned by {failover.worker}, which stopped "
                f"by {failover.cause} at t={failover.since:.3f}) had no serving owner "
                f"by t={due:.3f}")

    def _complete(self, failover: Failover, now: float) -> None:
        elapsed = now - failover.since
        self.failovers.append(elapsed)
        if failover.unchecked is None:
            self.checked_failovers.append(elapsed)
            self.checked_by_cause[failover.cause] = self.checked_by_cause.get(failover.cause, 0) + 1
        else:
            self.unchecked[failover.unchecked] = self.unchecked.get(failover.unchecked, 0) + 1

    def stopped(self, worker_id: str, slots, now: float, cause: str,
                unchecked: Optional[str] = None) -> None:
        """Start timing the failover of the slots ``worker_id`` served; ``unchecked``
        says why the bound does not apply (None: it does)."""
        for key in slots:
            old = self.waiting.get(key)
            if old is not None:
                self.unchecked["superseded by a later fault"] = \
                    self.unchecked.get("superseded by a later fault", 0) + 1
            self.waiting[key] = Failover(worker_id, now, cause, unchecked)

    def overdue(self, now: float, deadline, exempt) -> Optional[str]:
        """A slot whose failover deadline (``deadline(key, failover)``) passed.
        ``exempt(key, failover)`` names a reason the bound's preconditions broke
        (the slot is then no longer checked), or None."""
        for key, failover in sorted(self.waiting.items()):
            if failover.unchecked is not None:
                continue
            due = deadline(key, failover)
            if now > due:
                reason = exempt(key, failover)
                if reason is not None:
                    failover.unchecked = reason
                    continue
                return self._late(key, failover, due)
        return None

    def stop_checking(self, reason: str) -> None:
        """No failover in flight is checked any more (e.g. the faults healed)."""
        for failover in self.waiting.values():
            if failover.unchecked is None:
                failover.unchecked = reason

    def report(self) -> dict[str, Any]:
        """How many failovers were checked (per cause) and why the rest were not
        (per reason; "not over at the end" counts those still waiting)."""
        unchecked = dict(self.unchecked)
        if self.waiting:
            unchecked["not over at the end"] = len(self.waiting)
        return {"checked": len(self.checked_failovers),
                "checked_by_cause": dict(sorted(self.checked_by_cause.items())),
                "margin_seconds_min": round(min(self.margins), 4) if self.margins else None,
                "unchecked": dict(sorted(unchecked.items()))}


class CommandChecker:
    """Epochs only grow; accepted fenced writes are current; only the poisoned
    partition is quarantined. Fed each committed command once (the first replica to
    apply a log index).

    Args:
        poison: the partition the scenario poisoned (it crashes every owner), if any.
        strict_quarantine: whether quarantining another partition is a violation.
    """

    def __init__(self, poison: Optional[str] = None, strict_quarantine: bool = True) -> None:
        self.poison = poison
        self.strict_quarantine = strict_quarantine
        self.quarantined: list[str] = []  # every quarantine, in log order
        self.checked_index = 0
        self.epoch: dict[str, int] = {}
        self.owners: dict[str, dict[int, str]] = {}
        self.replication: dict[str, int] = {}
        self.fenced_accepted = 0
        self.fenced_refused = 0

    def on_apply(self, index: int, command: Any, result: Any) -> Optional[tuple[str, str]]:
        """Check one committed command; returns (invariant, message) on a violation."""
        if index <= self.checked_index:
            return None
        self.checked_index = index
        problem = self._check(command, result)
        if problem is None:
            return None
        if problem.startswith("quarantined"):
            return "false quarantine", problem
        if "fenced" in problem:
            return "fenced writes", problem
        return "epochs only grow", problem

    def _assigned(self, pid: str, slot: int, worker: str, epoch: int, what: str) -> Optional[str]:
        before = self.epoch.get(pid, -1)
        if epoch <= before:
            return f"{what} gave {pid} epoch {epoch}, not above its earlier epoch {before}"
        self.epoch[pid] = epoch
        self.owners.setdefault(pid, {})[slot] = worker
        return None

    def _freed(self, refs) -> None:
        for ref in refs:
            self.owners.get(ref.partition_id, {}).pop(ref.slot, None)

    def _check(self, command: Any, result: Any) -> Optional[str]:
        if isinstance(command, c.Batch):
            for inner, inner_result in zip(command.commands, result.results):
                problem = self._check(inner, inner_result)
                if problem:
                    return problem
            return None
        if isinstance(result, c.Error):
            if isinstance(command, c.FencedPut):
                self.fenced_refused += 1
            return None
        if isinstance(command, c.Assign):
            return self._assigned(result.partition_id, result.slot, result.worker_id,
                                  result.epoch, f"Assign to {result.worker_id}")
        if isinstance(result, (c.WorkerRegistered, c.WorkerRemoved)):
            for pid in result.quarantined:
                self.quarantined.append(pid)
                if pid != self.poison and self.strict_quarantine:
                    return (f"quarantined {pid}, which the scenario did not poison, on "
                            f"{type(command).__name__} of {command.worker_id}: it stays "
                            "unowned until an operator releases it")
        if isinstance(command, c.RegisterWorker):
            for ref in result.restored:
                problem = self._assigned(ref.partition_id, ref.slot, command.worker_id,
                                         ref.epoch, f"restoring {command.worker_id}")
                if problem:
                    return problem
        elif isinstance(command, (c.ExpireWorker, c.DeregisterWorker)):
            self._freed(result.freed)
            self._freed(result.held)
        elif isinstance(command, (c.Released, c.ForceRevoke)):
            self.owners.get(result.partition_id, {}).pop(result.slot, None)
        elif isinstance(command, c.CreatePartitionGroup):
            for index in range(command.count):
                pid = f"{command.name}/{index}"
                self.owners[pid] = {}
                self.replication[pid] = command.replication_factor
        elif isinstance(command, c.DeletePartitionGroup):
            prefix = command.name + "/"
            for pid in [p for p in self.owners if p.startswith(prefix)]:
                self.owners.pop(pid)
        elif isinstance(command, c.FencedPut):
            self.fenced_accepted += 1
            pid = command.partition_id
            current = self.epoch.get(pid)
            if command.epoch != current:
                return (f"a fenced write to {command.key} with epoch {command.epoch} was "
                        f"accepted; the current epoch of {pid} is {current}")
            writer = command.value.decode(errors="replace").split("|", 1)[0]
            owners = self.owners.get(pid, {})
            if self.replication.get(pid) == 1 and writer not in owners.values():
                return (f"a fenced write to {command.key} from {writer} (epoch {command.epoch}) "
                        f"was accepted; {pid} is owned by {sorted(owners.values()) or 'nobody'}")
        return None


def layout(state: CoordinatorState) -> dict[tuple[str, int], Optional[str]]:
    """Owner of every slot of every non-quarantined partition."""
    out = {}
    for pid, record in state.partitions.items():
        if record.quarantined:
            continue
        for slot, owner in enumerate(record.owners):
            out[(pid, slot)] = owner
    return out


def active_capacities(state: CoordinatorState) -> dict[str, int]:
    return {w: r.capacity for w, r in state.workers.items() if r.state is WorkerState.ACTIVE}


def layout_problems(state: CoordinatorState, zone_spread: bool = True) -> Optional[str]:
    """Balance (equal weights and capacities) and, unless ``zone_spread`` is False,
    replica zone spread (see `zone_spread_problem`)."""
    active = active_capacities(state)
    weights = set(state.partition_weights)
    if active and len(set(active.values())) == 1 and len(weights) <= 1:
        problem = balance_problem(state, active)
        if problem is not None:
            return problem
    return zone_spread_problem(state) if zone_spread else None


def balance_problem(state: CoordinatorState, active: dict[str, int]) -> Optional[str]:
    """Max - min slots per ACTIVE worker <= 1, around the slots nobody may move.

    Every slot a worker owns counts, quarantined ones too (the planner counts them
    in its load), but a quarantined slot cannot be moved until an operator releases
    its partition, so a worker may be stuck above everyone else. Demanding
    max - min <= 1 over all workers would then demand the impossible; dropping the
    stuck worker from the check would let it keep movable slots it should give.
    So: a worker is *pinned* when its quarantined slots alone exceed its fair share
    of the slots the unpinned workers hold (repeated, as pinning one lowers the
    others' share). A pinned worker must hold nothing but its quarantined slots,
    and the other workers must be within one slot of each other. With no worker
    pinned this is exactly max - min <= 1. Computed here from the state alone, not
    with the planner's code, so that a planner bug cannot hide itself.
    """
    counts = {w: len(state.workers[w].owned) for w in active}
    stuck = dict.fromkeys(active, 0)
    for pid, record in state.partitions.items():
        if record.quarantined:
            for owner in record.owners:
                if owner in stuck:
                    stuck[owner] += 1
    pinned: set[str] = set()
    while True:
        others = [w for w in active if w not in pinned]
        rest = sum(counts[w] for w in others)
        new = [w for w in others if stuck[w] * len(others) > rest]
        if not new:
            break
        pinned.update(new)
    shown = dict(sorted(counts.items()))
    for worker in sorted(pinned):
        if counts[worker] > stuck[worker]:
            return (f"unbalanced after quiescence: {worker} holds {counts[worker]} slots, "
                    f"{stuck[worker]} quarantined and above its fair share, yet keeps "
                    f"movable ones; slots per active worker {shown}")
    others = [counts[w] for w in active if w not in pinned]
    if others and max(others) - min(others) > 1:
        note = f" (not counting {sorted(pinned)}, stuck on quarantined slots)" if pinned else ""
        return f"unbalanced after quiescence: slots per active worker {shown}{note}"
    return None


def zone_spread_problem(state: CoordinatorState) -> Optional[str]:
    """Replicas of a partition in distinct zones whenever at least as many zones as
    replicas have ACTIVE workers."""
    active = active_capacities(state)
    zones_live = {state.workers[w].zone for w in active}
    for pid, record in state.partitions.items():
        rf = record.replication_factor
        if rf < 2 or record.quarantined or len(zones_live) < rf:
            continue
        owners = [o for o in record.owners if o is not None]
        zones = [state.workers[o].zone for o in owners]
        if len(set(zones)) != len(zones):
            return f"replicas of {pid} share a zone: {dict(zip(owners, zones))}"
    return None


class MovesTracker:
    """Moves caused by one join or one death, against the lower bound."""

    def __init__(self) -> None:
        self.open: Optional[dict[str, Any]] = None
        self.measured: list[tuple[str, str, int, int]] = []  # (kind, worker, moves, bound)
        self.abandoned = 0

    def start(self, kind: str, worker: str, state: Optional[CoordinatorState],
              quiescent: bool) -> None:
        """``kind`` "join" or "death" of ``worker`` happens now."""
        if self.open is not None:
            self.open = None
            self.abandoned += 1
        if state is None or not quiescent:
            self.abandoned += 1
            return
        before = layout(state)
        capacities = active_capacities(state)
        if kind == "join":
            capacities[worker] = 1
        else:
            capacities.pop(worker, None)
        self.open = {"kind": kind, "worker": worker, "before": before,
                     "bound": moves_lower_bound(before, capacities)}

    def interrupt(self) -> None:
        """Something else happened (a fault): the open measurement is void."""
        if self.open is not None:
            self.open = None
            self.abandoned += 1

    def quiescent(self, state: CoordinatorState) -> Optional[str]:
        """Called at quiescence; closes the open measurement when its event is done."""
        event = self.open
        if event is None:
            return None
        record = state.workers.get(event["worker"])
        if event["kind"] == "join":
            if record is None or record.state is not WorkerState.ACTIVE:
                return None
        elif record is not None and record.state is not WorkerState.DEAD:
            return None
        after = layout(state)
        before = event["before"]
        if set(after) != set(before):
            self.open = None
            self.abandoned += 1
            return None
        moves = sum(1 for key, owner in after.items() if before[key] != owner)
        self.open = None
        self.measured.append((event["kind"], event["worker"], moves, event["bound"]))
        if moves != event["bound"]:
            return (f"the {event['kind']} of {event['worker']} moved {moves} slots; the lower "
                    f"bound is {event['bound']}")
        return None

    @property
    def moves(self) -> int:
        return sum(m[2] for m in self.measured)

    @property
    def bound(self) -> int:
        return sum(m[3] for m in self.measured)


def failover_bound(timing, restart_delay: float, heartbeat_interval: float) -> tuple[float, float]:
    """(bound, slack): a dead worker's slots have a new owner within
    ``leader_lease / (1 - drift)`` (the leader's expiry, on a slow leader clock)
    ``+ restart_delay + 2 heartbeat intervals / (1 - drift)`` (the new owner's next
    acknowledged heartbeat, timed on a slow worker clock) ``+ slack`` (commits,
    ReadIndex rounds, one leader tick)."""
    slack = 1.0
    slow = 1 - timing.max_drift
    bound = timing.leader_lease / slow + restart_delay + 2 * heartbeat_interval / slow + slack
    return bound, slack


def poison_quarantine_bound(failover: float, threshold: int, timing,
                            heartbeat_interval: float, crash_after: float = 0.5,
                            restart_after: float = 3.0) -> float:
    """Seconds from the poison partition's first assignment to its quarantine.

    Each owner crashes ``crash_after`` seconds after taking it and the next owner
    has it within the failover bound of the crash. A crash is charged when its
    worker registers again (``restart_after`` + a heartbeat + a commit). One
    round in addition to ``threshold`` is allowed: a crash charges nothing when
    the leader that expires the worker never heard from it after the assignment
    (rule 6b of `coordinator.state`), or when the partition goes back to a worker
    already charged (two distinct workers are needed, not more).
    """
    slow = 1 - timing.max_drift
    return ((threshold + 1) * (crash_after + failover) + restart_after
            + 2 * heartbeat_interval / slow + 1.0)


__all__ = ["OwnershipChecker", "CommandChecker", "MovesTracker", "layout", "layout_problems",
           "failover_bound"]
