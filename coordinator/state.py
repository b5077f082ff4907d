"""The coordinator's replicated state machine.

`CoordinatorState.apply(command)` is called with every committed command, in log
order, on every replica. Rules of operation:

1. **Deterministic.** The result and the new state depend only on the previous state
   and the command. No clock is read (time arrives in ``command.now``), nothing random
   is drawn, and no decision depends on the iteration order of a set or dict: where
   order matters, keys are sorted.
2. **All or nothing.** Each handler first validates the command against the state and
   returns an `Error` result without touching anything; only then does it mutate.
3. **Epochs only grow.** A partition's epoch increases by one on every `Assign` (every
   change of owner) and survives deletion and re-creation of its group, so a fencing
   token from an old owner can never become current again.
4. **Lifecycle of a slot.** free → `Assign` → owned → `Revoke` → revoking →
   `Released`/`ForceRevoke` → free (the pending move remembers the target) → `Assign`
   with the next epoch. A quarantined partition keeps no released handoff (it could
   never be assigned): quarantine drops those in flight, and a revoke that finishes
   during quarantine frees the slot and ends its move. An owner's death
   (`ExpireWorker`) frees its slots at once or, for an ACTIVE worker with
   ``restart_delay`` > 0, holds them for it; a hold blocks `Assign` to anyone else
   until it runs out.
5. **Timestamps are cluster time.** ``command.now`` is a reading of *cluster time*,
   not of any node's clock: clocks of different nodes may have any offset, so
   comparing a timestamp one leader wrote (a hold's end, a revoke deadline, a
   quarantine window, a re-created group's ``not_before``) with another leader's
   clock could keep a hold forever or lapse it at once. The state keeps
   `log_time`, the largest ``now`` of any command it applied (refused commands
   change nothing, rule 2); every timestamp stored in the state is at most
   `log_time`. A leader maps its local clock to cluster time with an offset fixed
   once it has applied every entry before its term (``log_time - local clock``), so
   cluster time continues from the newest timestamp in the log, never goes back,
   and advances at the rate of the current leader's clock; the gap between two
   leaders is not counted. Hence a duration ``d`` measured in cluster time between
   a stamp and a later comparison lasts at least ``d/(1+ρ)`` real seconds, as on a
   single clock drifting by at most ``ρ``: never shorter, and longer by the
   elections in between (see `coordinator.leader`). The state only compares
   timestamps for liveness (hold windows, quarantine windows, the earliest time a
   revoke may be forced); lease *safety* never rests on them: it compares
   intervals on one leader's local clock (see `coordinator.lease`).
6. **Quarantine isolates partitions that crash the workers that take them**, not
   partitions that shared a worker with bad luck. A lease can run out because the
   process crashed, or because it was paused, cut off from the coordinator, or on
   the wrong side of a partition of the coordinator nodes; and one death hits every
   partition of the worker. Charging every death to every partition the worker took
   recently quarantined most partitions after one network blip (they then stay
   unowned until an operator acts). So a death is evidence against a partition only
   when all of these hold:

   a. *It was a crash.* The worker comes back as a new process: its
      `RegisterWorker` carries a ``process`` id other than the one it registered
      with. The same process coming back lost its lease to a pause or the network
      and charges nothing; a worker that never comes back (a machine lost), or an
      agent that sends no process id, charges nothing either: a false quarantine
      leaves a partition without owner, while a missed one only lets a crash loop
      go on. A new process seen while the old one's lease still ran (a restart
      within the lease) only updates the id: nobody knows when the old process
      was last heard from, so what it took last may never have reached it.
   b. *The partition is a suspect.* At the death (`ExpireWorker`), the suspects are
      the slots the worker took last (the latest ``assigned_at``, several if given
      at one instant) *before the leader last heard from it* (``last_heard``), if
      that was at most ``quarantine_suspect_window`` before. A slot given after
      the worker went silent never reached it (its view comes with heartbeat
      acknowledgements); slots it had run longer, in the same process, did not
      kill it; slots handed back from a hold after a restart keep the time they
      were first taken. So a death shared by all of a worker's partitions is
      charged to none but the newest, and an expiry decided by a leader that
      never heard from the worker charges nothing.
   c. *It follows the partition across workers*: a partition is quarantined when
      ``quarantine_threshold`` crashes with distinct timestamps, of at least two
      distinct workers, all within ``quarantine_window`` of each other, were
      charged to it. A worker that crash-loops on its own (getting its held
      slots back each time) quarantines nothing; a whole zone expiring at one
      timestamp is one incident. Two workers suffice: a crashed worker comes
      back empty, so the planner often hands the partition straight back to it.
   d. *A known killer explains its crashes.* When a partition is quarantined, the
      crashes charged to it are taken off the partitions that were suspects
      beside it (the planner often moves a dead worker's partitions together, so
      an innocent one may travel with a bad one for a while), and a crash whose
      suspects include a quarantined partition charges nobody else. Suspects
      that cross the threshold at the same crash cannot be told apart and are
      quarantined together.

   False positives: an innocent partition is quarantined only if, ``threshold``
   times within the window, the worker that took it last crashed soon after
   taking it and came back as a new process, and not always the same worker.
   Independent crashes rarely line up like that; pauses, cut-offs and coordinator
   partitions never count. The cost of the rule: a partition that crashes workers
   only after running for longer than the suspect window, or while other
   partitions are given to the same worker after it, is quarantined later (or
   never), and crashes are charged only once the worker is back. The charge of a
   crash is decided when the worker registers again, from replicated facts only
   (rule 1): the suspects recorded at its expiry (from the ``last_heard`` the
   expiry carries), its ``expired_at`` (the crash's date), the process ids.

6. **Client writes apply once.** A `ClientRequest` carries a client id and sequence
   number; the result of each recent number is kept per client (a bounded table,
   part of the snapshot) and a retry gets that result back instead of applying the
   command a second time.

The state is a plain object: the planner and the leader helper read it through the
read-only mappings below; only `apply` and `restore` change it.
"""

from __future__ import annotations

import bisect
import types
from typing import AbstractSet, Any, Callable, Mapping, Optional

import attrs
import cbor2

from . import commands as c
from ._rows import Rows
from .codec import decode_result, encode_result
from .commands import ErrorCode, WorkerState
from .config import CoordinatorConfig
from .records import (
    Counters,
    GroupRecord,
    Hold,
    KvRecord,
    MovePhase,
    OwnedSlot,
    PartitionRecord,
    PendingMove,
    SlotKey,
    WorkerRecord,
    partition_id,
)

SNAPSHOT_FORMAT = 4
"""Version 2 added ``log_time``, version 3 the client sessions, version 4 the
quarantine evidence of rule 6 (worker process ids and suspects, crash charges with
their worker, holds' take times, the suspect window); older snapshots are still
read (see `restore`)."""
_READABLE_FORMATS = (1, 2, 3, SNAPSHOT_FORMAT)

# Snapshot rows: each record's fields in declaration order (see `coordinator._rows`).
_CONFIG_ROWS = Rows(CoordinatorConfig)
_WORKER_ROWS = Rows(WorkerRecord, last="suspects")
_GROUP_ROWS = Rows(GroupRecord)
_PARTITION_ROWS = Rows(PartitionRecord, last="not_before")
_PENDING_ROWS = Rows(PendingMove)
_HOLD_ROWS = Rows(Hold)
_KV_ROWS = Rows(KvRecord)
_COUNTER_ROWS = Rows(Counters)

MAX_CLIENT_SESSIONS = 4096
"""Clients whose recent write results are kept; the least recently active is
forgotten first (its next retry of a forgotten write is refused as stale)."""
MAX_RESULTS_PER_CLIENT = 1024
"""Unacknowledged write results kept per client; a client with more writes in
flight than this loses the oldest results (their retries are refused as stale)."""


@attrs.define
class _ClientSession:
    """What the state remembers of one client's writes (see `c.ClientRequest`)."""

    floor: int = 0
    """Every write numbered below this was answered or forgotten."""
    results: dict[int, c.Result] = attrs.Factory(dict)
    last_active: int = 0
    """`CoordinatorState._session_clock` at the client's latest write (eviction order)."""


class SnapshotError(ValueError):
    """Bytes that are not a valid coordinator snapshot."""


@attrs.frozen
class CoordinatorStatus:
    """A point-in-time summary of the state, for `status` and metrics.

    Attributes:
        workers: number of workers per state.
        partitions: number of partitions.
        slots: number of replica slots (sum of replication factors).
        assigned_slots: slots that have an owner.
        held_slots: slots held for dead workers.
        pending_moves: graceful handoffs in flight.
        quarantined: ids of quarantined partitions, sorted.
        counters: name → value of the monotonic counters.
    """

    workers: Mapping[WorkerState, int]
    partitions: int
    slots: int
    assigned_slots: int
    held_slots: int
    pending_moves: int
    quarantined: tuple[str, ...]
    counters: Mapping[str, int]


def _error(code: ErrorCode, message: str) -> c.Error:
    return c.Error(code=code, message=message)


class CoordinatorState:
    """Workers, partitions, assignments, pending moves, holds and the metadata KV."""

    def __init__(self, config: Optional[CoordinatorConfig] = None) -> None:
        self._config = config or CoordinatorConfig()
        self._workers: dict[str, WorkerRecord] = {}
        self._groups: dict[str, GroupRecord] = {}
        self._partitions: dict[str, PartitionRecord] = {}
        self._pending: dict[SlotKey, PendingMove] = {}
        # Derived indexes (rebuilt by restore, never snapshotted): slots without an
        # owner, partitions with two owners in one zone, quarantined partitions, and
        # how many partitions have each weight. They let the planner skip a scan of
        # every partition.
        self._free: set[SlotKey] = set()
        self._zone_shared: set[str] = set()
        self._quarantined: set[str] = set()
        self._weights: dict[int, int] = {}
        self._holds: dict[SlotKey, Hold] = {}
        # Epoch floor and deletion time of deleted groups, so a re-created group's
        # epochs continue above the old ones (rule 3).
        self._retired: dict[str, tuple[int, float]] = {}
        self._kv: dict[str, KvRecord] = {}
        self._kv_keys: list[str] = []
        self._kv_revision = 0
        self._next_ordinal = 0
        self._log_time = 0.0
        self._counters = Counters()
        self._sessions: dict[str, _ClientSession] = {}
        self._session_clock = 0
        self._handlers: dict[type, Callable[[Any], c.Result]] = {
            c.RegisterWorker: self._register,
            c.DeregisterWorker: self._deregister,
            c.ExpireWorker: self._expire,
            c.DrainWorker: self._drain,
            c.UndrainWorker: self._undrain,
            c.CreatePartitionGroup: self._create_group,
            c.DeletePartitionGroup: self._delete_group,
            c.Assign: self._assign,
            c.Revoke: self._revoke,
            c.Released: self._released,
            c.ForceRevoke: self._force_revoke,
            c.ReleaseQuarantine: self._release_quarantine,
            c.KvPut: self._kv_put,
            c.KvCas: self._kv_cas,
            c.KvDelete: self._kv_delete,
            c.KvGet: self._kv_get,
            c.KvList: self._kv_list,
            c.FencedPut: self._fenced_put,
            c.Batch: self._batch,
            c.ClientRequest: self._client_request,
        }

    # ------------------------------------------------------------------ read access

    @property
    def config(self) -> CoordinatorConfig:
        return self._config

    @property
    def workers(self) -> Mapping[str, WorkerRecord]:
        """Registered workers by id (read-only; records must not be mutated)."""
        return types.MappingProxyType(self._workers)

    @property
    def groups(self) -> Mapping[str, GroupRecord]:
        return types.MappingProxyType(self._groups)

    @property
    def partitions(self) -> Mapping[str, PartitionRecord]:
        """Partitions by id (read-only; records must not be mutated)."""
        return types.MappingProxyType(self._partitions)

    @property
    def pending_moves(self) -> Mapping[SlotKey, PendingMove]:
        """Graceful handoffs in flight, by slot."""
        return types.MappingProxyType(self._pending)

    @property
    def holds(self) -> Mapping[SlotKey, Hold]:
        """Free slots reserved for dead workers, by slot."""
        return types.MappingProxyType(self._holds)

    @property
    def free_slots(self) -> AbstractSet[SlotKey]:
        """Slots without an owner, including held and quarantined ones (read-only)."""
        return self._free

    @property
    def zone_shared(self) -> AbstractSet[str]:
        """Ids of partitions with two owners in the same zone (by the owners' recorded
        zones, whatever their state), read-only. Whether the clash is avoidable is
        the planner's question."""
        return self._zone_shared

    @property
    def quarantined_partitions(self) -> AbstractSet[str]:
        """Ids of quarantined partitions (read-only): the planner counts their owned
        slots as load it cannot move."""
        return self._quarantined

    @property
    def partition_weights(self) -> list[int]:
        """The distinct weights of existing partitions, ascending."""
        return sorted(self._weights)

    @property
    def log_time(self) -> float:
        """Cluster time: the largest ``now`` of any command applied so far (0.0 before
        the first). It never decreases, and no timestamp stored in the state is later
        (rule 5)."""
        return self._log_time

    @property
    def counters(self) -> Counters:
        return attrs.evolve(self._counters)

    def owner(self, partition: str, slot: int = 0) -> Optional[str]:
        """The owner of a slot, or None (also for unknown partitions)."""
        record = self._partitions.get(partition)
        if record is None or not 0 <= slot < record.replication_factor:
            return None
        return record.owners[slot]

    def owned_slots(self, worker_id: str) -> list[SlotKey]:
        """The slots a worker owns, sorted."""
        record = self._workers.get(worker_id)
        return sorted(record.owned) if record is not None else []

    def worker_view(self, worker_id: str) -> list[OwnedSlot]:
        """The slots a worker owns with their epochs and whether each is being
        revoked, sorted; what a worker agent acts on (empty for unknown workers)."""
        pending = self._pending
        return [OwnedSlot(partition_id=pid, slot=slot, epoch=self._partitions[pid].epoch,
                          revoking=(pid, slot) in pending)
                for pid, slot in self.owned_slots(worker_id)]

    def kv_get(self, key: str) -> Optional[KvRecord]:
        """Local (non-linearizable) read of a KV entry; use `KvGet` through the log or
        a ReadIndex read for a linearizable one."""
        return self._kv.get(key)

    def kv_list(self, prefix: str = "", limit: int = 0) -> list[c.KvValue]:
        """Local (non-linearizable) listing of the keys starting with ``prefix``."""
        return list(self._kv_list(c.KvList(prefix=prefix, limit=limit)).entries)

    def status(self) -> CoordinatorStatus:
        by_state = {s: 0 for s in WorkerState}
        for worker in self._workers.values():
            by_state[worker.state] += 1
        slots = assigned = 0
        quarantined = []
        for record in self._partitions.values():
            slots += record.replication_factor
            assigned += sum(owner is not None for owner in record.owners)
            if record.quarantined:
                quarantined.append(record.partition_id)
        counters = self._counters
        return CoordinatorStatus(
            workers=types.MappingProxyType(by_state),
            partitions=len(self._partitions),
            slots=slots,
            assigned_slots=assigned,
            held_slots=len(self._holds),
            pending_moves=len(self._pending),
            quarantined=tuple(sorted(quarantined)),
            counters=types.MappingProxyType(attrs.asdict(counters)),
        )

    # ------------------------------------------------------------------------ apply

    def apply(self, command: c.Command) -> c.Result:
        """Apply one committed command and return its result.

        Returns:
            The command's result, or an `Error` (and no change at all) when the
            command does not fit the current state.

        Raises:
            TypeError: ``command`` is not a coordinator command (caller misuse; the
                codec never produces one).
        """
        handler = self._handlers.get(type(command))
        if handler is None:
            raise TypeError(f"not a coordinator command: {type(command).__name__}")
        result = handler(command)
        # A batch's commands advanced the time one by one; a refused command changes
        # nothing (rule 2), not even the time.
        now = getattr(command.command if isinstance(command, c.ClientRequest) else command,
                      "now", None)
        if now is not None and now > self._log_time and not isinstance(result, c.Error):
            self._log_time = now
        return result

    # -- workers

    def _register(self, cmd: c.RegisterWorker) -> c.Result:
        worker = self._workers.get(cmd.worker_id)
        if worker is None:
            self._workers[cmd.worker_id] = WorkerRecord(
                worker_id=cmd.worker_id, address=cmd.address, zone=cmd.zone,
                capacity=cmd.capacity, labels=cmd.labels, state=WorkerState.ACTIVE,
                registered_at=cmd.now, process=cmd.process,
            )
            return c.WorkerRegistered(worker_id=cmd.worker_id, created=True)
        moved_zone = worker.zone != cmd.zone
        worker.address, worker.zone = cmd.address, cmd.zone
        worker.capacity, worker.labels = cmd.capacity, cmd.labels
        if moved_zone:
            for pid in sorted({key[0] for key in worker.owned}):
                self._check_zone_spread(self._partitions[pid])
        # Rule 6a: a new process id means the previous process crashed.
        crashed = bool(cmd.process and worker.process and cmd.process != worker.process)
        if cmd.process:
            worker.process = cmd.process
        if worker.state is not WorkerState.DEAD:
            # A restart within the lease charges nothing: nobody knows when the
            # old process was last heard from, so what it took may never have
            # reached it.
            return c.WorkerRegistered(worker_id=cmd.worker_id, created=False)
        suspects, worker.suspects = worker.suspects, ()
        quarantined = []
        if crashed and worker.expired_at is not None:
            quarantined = self._charge_crash(worker, suspects, worker.expired_at, cmd.now)
        worker.state = WorkerState.ACTIVE
        worker.expired_at = None
        worker.registered_at = cmd.now
        restored = []
        for key in sorted(worker.held):
            hold = self._holds.pop(key)
            record = self._partitions[key[0]]
            slot = key[1]
            if (hold.until > cmd.now and record.owners[slot] is None
                    and not record.quarantined and cmd.worker_id not in record.owners):
                self._set_owner(record, slot, worker, cmd.now)
                if hold.taken_at is not None:
                    record.assigned_at[slot] = hold.taken_at  # not a new take (rule 6b)
                restored.append(c.SlotRef(partition_id=key[0], slot=slot, epoch=record.epoch))
        worker.held.clear()
        return c.WorkerRegistered(worker_id=cmd.worker_id, created=False, restored=restored,
                                  quarantined=quarantined)

    def _deregister(self, cmd: c.DeregisterWorker) -> c.Result:
        worker = self._workers.get(cmd.worker_id)
        if worker is None:
            return _error(ErrorCode.UNKNOWN_WORKER, cmd.worker_id)
        freed = [self._free_slot(key, worker) for key in sorted(worker.owned)]
        for key in sorted(worker.held):
            del self._holds[key]
        del self._workers[cmd.worker_id]
        return c.WorkerRemoved(worker_id=cmd.worker_id, freed=freed)

    def _expire(self, cmd: c.ExpireWorker) -> c.Result:
        worker = self._workers.get(cmd.worker_id)
        if worker is None:
            return _error(ErrorCode.UNKNOWN_WORKER, cmd.worker_id)
        if worker.state is WorkerState.DEAD:
            return _error(ErrorCode.INVALID_STATE, f"{cmd.worker_id} is already dead")
        config = self._config
        may_hold = worker.state is WorkerState.ACTIVE and config.restart_delay > 0
        worker.state = WorkerState.DEAD
        worker.expired_at = cmd.now
        self._counters.expirations += 1
        # Rule 6b: charged only if it comes back as a new process (`_register`).
        worker.suspects = tuple(self._suspects(worker, cmd.last_heard))
        freed, held = [], []
        for key in sorted(worker.owned):
            record = self._partitions[key[0]]
            taken_at = record.assigned_at[key[1]]
            ref = self._free_slot(key, worker)
            if may_hold and not record.quarantined and key not in self._pending:
                self._holds[key] = Hold(worker_id=worker.worker_id,
                                        until=cmd.now + config.restart_delay,
                                        taken_at=taken_at)
                worker.held.add(key)
                held.append(ref)
            else:
                freed.append(ref)
        return c.WorkerRemoved(worker_id=cmd.worker_id, freed=freed, held=held)

    def _suspects(self, worker: WorkerRecord, last_heard: Optional[float]) -> list[str]:
        """The partitions a worker last heard from at ``last_heard`` may have been
        killed by (rule 6b): those it took last before then, if within the suspect
        window."""
        if last_heard is None:
            return []
        partitions = self._partitions
        taken = [(partitions[pid].assigned_at[slot], pid) for pid, slot in worker.owned]
        taken = [(t, pid) for t, pid in taken if t is not None and t < last_heard]
        latest = max((t for t, _ in taken), default=None)
        if latest is None or latest < last_heard - self._config.quarantine_suspect_window:
            return []
        return sorted({pid for t, pid in taken if t == latest})

    def _charge_crash(self, worker: WorkerRecord, suspects: Any, died_at: float,
                      now: float) -> list[str]:
        """Charge a crash of ``worker`` at ``died_at`` to its suspects (rules 6c and
        6d); returns the partitions it quarantined."""
        window = self._config.quarantine_window
        threshold = self._config.quarantine_threshold
        records = [self._partitions[pid] for pid in suspects if pid in self._partitions]
        if died_at < now - window or any(record.quarantined for record in records):
            return []  # too old to count, or explained by a quarantined suspect
        incident = (died_at, worker.worker_id)
        quarantined = []
        for record in records:
            deaths = [d for d in record.deaths if d[0] >= now - window]
            bisect.insort(deaths, incident)
            record.deaths = deaths
            if len({t for t, _ in deaths}) >= threshold \
                    and len({w for _, w in deaths}) >= min(2, threshold):
                quarantined.append(record)
        for record in quarantined:
            self._quarantine(record)
        for record in quarantined:
            # Its crashes are explained: its fellow suspects are cleared of them.
            explained = set(record.deaths)
            for other in self._partitions.values():
                if other.deaths and not other.quarantined:
                    other.deaths = [d for d in other.deaths if d not in explained]
        return [record.partition_id for record in quarantined]

    def _drain(self, cmd: c.DrainWorker) -> c.Result:
        return self._set_worker_state(cmd.worker_id, WorkerState.DRAINING)

    def _undrain(self, cmd: c.UndrainWorker) -> c.Result:
        return self._set_worker_state(cmd.worker_id, WorkerState.ACTIVE)

    def _set_worker_state(self, worker_id: str, state: WorkerState) -> c.Result:
        worker = self._workers.get(worker_id)
        if worker is None:
            return _error(ErrorCode.UNKNOWN_WORKER, worker_id)
        if worker.state is WorkerState.DEAD:
            return _error(ErrorCode.INVALID_STATE, f"{worker_id} is dead")
        worker.state = state
        return c.WorkerStateChanged(worker_id=worker_id, state=state)

    # -- partition groups

    def _create_group(self, cmd: c.CreatePartitionGroup) -> c.Result:
        if cmd.name in self._groups:
            return _error(ErrorCode.ALREADY_EXISTS, f"group {cmd.name}")
        floor, not_before = 0, None
        if cmd.name in self._retired:
            floor, deleted_at = self._retired[cmd.name]
            not_before = deleted_at + self._config.revoke_timeout
        group = GroupRecord(name=cmd.name, count=cmd.count, weight=cmd.weight,
                            replication_factor=cmd.replication_factor, created_at=cmd.now,
                            first_ordinal=self._next_ordinal)
        self._next_ordinal += cmd.count
        self._groups[cmd.name] = group
        rf = cmd.replication_factor
        for index, pid in enumerate(group.partition_ids()):
            self._partitions[pid] = PartitionRecord(
                partition_id=pid, group=cmd.name, index=index, weight=cmd.weight,
                replication_factor=rf, epoch=floor, owners=[None] * rf,
                assigned_at=[None] * rf, not_before=not_before,
                ordinal=group.first_ordinal + index,
            )
            self._free.update((pid, slot) for slot in range(rf))
        self._weights[cmd.weight] = self._weights.get(cmd.weight, 0) + cmd.count
        return c.GroupChanged(name=cmd.name, count=cmd.count, created=True)

    def _delete_group(self, cmd: c.DeletePartitionGroup) -> c.Result:
        group = self._groups.get(cmd.name)
        if group is None:
            return _error(ErrorCode.UNKNOWN_GROUP, cmd.name)
        floor = self._retired.get(cmd.name, (0, 0.0))[0]
        for pid in group.partition_ids():
            record = self._partitions.pop(pid)
            floor = max(floor, record.epoch)
            for slot, owner in enumerate(record.owners):
                if owner is not None:
                    worker = self._workers[owner]
                    worker.owned.discard((pid, slot))
                    worker.load -= record.weight
                hold = self._holds.pop((pid, slot), None)
                if hold is not None:
                    self._workers[hold.worker_id].held.discard((pid, slot))
                self._pending.pop((pid, slot), None)
                self._free.discard((pid, slot))
            self._zone_shared.discard(pid)
            self._quarantined.discard(pid)
        self._weights[group.weight] -= group.count
        if not self._weights[group.weight]:
            del self._weights[group.weight]
        del self._groups[cmd.name]
        self._retired[cmd.name] = (floor, cmd.now)
        gone = set(group.partition_ids())
        for worker in self._workers.values():
            if worker.suspects and gone.intersection(worker.suspects):
                worker.suspects = tuple(p for p in worker.suspects if p not in gone)
        return c.GroupChanged(name=cmd.name, count=group.count, created=False)

    # -- assignments

    def _slot(self, pid: str, slot: int) -> tuple[Optional[PartitionRecord], Optional[c.Error]]:
        record = self._partitions.get(pid)
        if record is None:
            return None, _error(ErrorCode.UNKNOWN_PARTITION, pid)
        if slot >= record.replication_factor:
            return None, _error(ErrorCode.UNKNOWN_PARTITION, f"{pid} has no slot {slot}")
        return record, None

    def _assign(self, cmd: c.Assign) -> c.Result:
        record, error = self._slot(cmd.partition_id, cmd.slot)
        if error is not None:
            return error
        assert record is not None
        key = (cmd.partition_id, cmd.slot)
        worker = self._workers.get(cmd.worker_id)
        hold = self._holds.get(key)
        if record.quarantined:
            return _error(ErrorCode.QUARANTINED, cmd.partition_id)
        if record.not_before is not None and cmd.now < record.not_before:
            return _error(ErrorCode.TOO_EARLY, f"{cmd.partition_id} until {record.not_before}")
        if worker is None:
            return _error(ErrorCode.UNKNOWN_WORKER, cmd.worker_id)
        if worker.state is not WorkerState.ACTIVE:
            return _error(ErrorCode.INVALID_STATE, f"{cmd.worker_id} is {worker.state.value}")
        if record.owners[cmd.slot] is not None:
            return _error(ErrorCode.SLOT_OCCUPIED, f"{key} owned by {record.owners[cmd.slot]}")
        if cmd.worker_id in record.owners:
            return _error(ErrorCode.CO_LOCATED, f"{cmd.worker_id} holds {cmd.partition_id}")
        if cmd.epoch <= record.epoch:
            return _error(ErrorCode.STALE_EPOCH, f"{cmd.epoch} <= {record.epoch}")
        if hold is not None and hold.worker_id != cmd.worker_id and cmd.now < hold.until:
            return _error(ErrorCode.HELD, f"{key} held for {hold.worker_id}")
        record.epoch = cmd.epoch - 1  # _set_owner adds one
        self._set_owner(record, cmd.slot, worker, cmd.now)
        return c.Assigned(partition_id=cmd.partition_id, slot=cmd.slot,
                          worker_id=cmd.worker_id, epoch=record.epoch)

    def _revoke(self, cmd: c.Revoke) -> c.Result:
        record, error = self._slot(cmd.partition_id, cmd.slot)
        if error is not None:
            return error
        assert record is not None
        key = (cmd.partition_id, cmd.slot)
        if record.owners[cmd.slot] != cmd.worker_id:
            return _error(ErrorCode.WRONG_OWNER, f"{key} owned by {record.owners[cmd.slot]}")
        if cmd.epoch != record.epoch:
            return _error(ErrorCode.STALE_EPOCH, f"{cmd.epoch} != {record.epoch}")
        if key in self._pending:
            return _error(ErrorCode.REVOKE_PENDING, str(key))
        deadline = cmd.now + self._config.revoke_timeout
        self._pending[key] = PendingMove(
            partition_id=cmd.partition_id, slot=cmd.slot, source=cmd.worker_id,
            target=cmd.target, epoch=record.epoch, phase=MovePhase.REVOKING,
            deadline=deadline,
        )
        return c.RevokeStarted(partition_id=cmd.partition_id, slot=cmd.slot,
                               worker_id=cmd.worker_id, epoch=record.epoch, deadline=deadline)

    def _released(self, cmd: c.Released) -> c.Result:
        return self._finish_revoke(cmd, forced=False)

    def _force_revoke(self, cmd: c.ForceRevoke) -> c.Result:
        return self._finish_revoke(cmd, forced=True)

    def _finish_revoke(self, cmd: c.Released | c.ForceRevoke, forced: bool) -> c.Result:
        record, error = self._slot(cmd.partition_id, cmd.slot)
        if error is not None:
            return error
        assert record is not None
        key = (cmd.partition_id, cmd.slot)
        pending = self._pending.get(key)
        if pending is None or pending.phase is not MovePhase.REVOKING:
            return _error(ErrorCode.NO_PENDING_REVOKE, str(key))
        if pending.source != cmd.worker_id:
            return _error(ErrorCode.WRONG_OWNER, f"{key} is revoked from {pending.source}")
        if cmd.epoch != record.epoch:
            return _error(ErrorCode.STALE_EPOCH, f"{cmd.epoch} != {record.epoch}")
        if forced and cmd.now < pending.deadline:
            return _error(ErrorCode.TOO_EARLY, f"{key} may be forced from {pending.deadline}")
        self._free_slot(key, self._workers[cmd.worker_id])
        if forced:
            self._counters.forced_revokes += 1
        else:
            self._counters.releases += 1
        return c.SlotReleased(partition_id=cmd.partition_id, slot=cmd.slot,
                              worker_id=cmd.worker_id, epoch=record.epoch, forced=forced)

    def _release_quarantine(self, cmd: c.ReleaseQuarantine) -> c.Result:
        record = self._partitions.get(cmd.partition_id)
        if record is None:
            return _error(ErrorCode.UNKNOWN_PARTITION, cmd.partition_id)
        if not record.quarantined:
            return _error(ErrorCode.NOT_QUARANTINED, cmd.partition_id)
        record.quarantined = False
        self._quarantined.discard(record.partition_id)
        record.deaths = []
        return c.QuarantineReleased(partition_id=cmd.partition_id)

    # -- helpers that mutate (only called after validation)

    def _set_owner(self, record: PartitionRecord, slot: int, worker: WorkerRecord,
                   now: float) -> None:
        key = (record.partition_id, slot)
        record.owners[slot] = worker.worker_id
        record.assigned_at[slot] = now
        self._free.discard(key)
        record.epoch += 1
        worker.owned.add(key)
        worker.load += record.weight
        hold = self._holds.pop(key, None)
        if hold is not None:
            self._workers[hold.worker_id].held.discard(key)
        self._pending.pop(key, None)
        self._counters.assignments += 1
        if record.replication_factor > 1:
            if record.partition_id in self._zone_shared:
                self._check_zone_spread(record)
            else:
                # Only the new owner can have made the partition share a zone.
                workers, zone = self._workers, worker.zone
                for owner in record.owners:
                    if owner is not None and owner != worker.worker_id \
                            and workers[owner].zone == zone:
                        self._zone_shared.add(record.partition_id)
                        break

    def _free_slot(self, key: SlotKey, worker: WorkerRecord) -> c.SlotRef:
        """Take a slot away from its owner; a handoff in flight moves on to RELEASED, or
        ends here if the partition is quarantined."""
        record = self._partitions[key[0]]
        record.owners[key[1]] = None
        record.assigned_at[key[1]] = None
        self._free.add(key)
        worker.owned.discard(key)
        worker.load -= record.weight
        if record.partition_id in self._zone_shared:
            self._check_zone_spread(record)
        pending = self._pending.get(key)
        if pending is not None:
            if record.quarantined:
                # Nothing may be assigned to a quarantined partition, so a released
                # handoff could never complete: it would stay in flight forever,
                # holding a place under the planner's move caps.
                del self._pending[key]
            else:
                pending.phase = MovePhase.RELEASED
        return c.SlotRef(partition_id=key[0], slot=key[1], epoch=record.epoch)

    def _check_zone_spread(self, record: PartitionRecord) -> None:
        """Keep `zone_shared` up to date for one partition."""
        workers = self._workers
        zones = [workers[owner].zone for owner in record.owners if owner is not None]
        if len(set(zones)) < len(zones):
            self._zone_shared.add(record.partition_id)
        else:
            self._zone_shared.discard(record.partition_id)

    def _quarantine(self, record: PartitionRecord) -> None:
        record.quarantined = True
        self._quarantined.add(record.partition_id)
        self._counters.quarantines += 1
        for slot in range(record.replication_factor):
            key = (record.partition_id, slot)
            hold = self._holds.pop(key, None)
            if hold is not None:
                self._workers[hold.worker_id].held.discard(key)
            pending = self._pending.get(key)
            if pending is not None and pending.phase is MovePhase.RELEASED:
                del self._pending[key]

    # -- metadata KV

    def _write(self, key: str, value: bytes) -> c.KvValue:
        self._kv_revision += 1
        if key not in self._kv:
            bisect.insort(self._kv_keys, key)
        self._kv[key] = KvRecord(value=value, version=self._kv_revision)
        return c.KvValue(key=key, value=value, version=self._kv_revision)

    def _version(self, key: str) -> int:
        entry = self._kv.get(key)
        return entry.version if entry is not None else 0

    def _kv_put(self, cmd: c.KvPut) -> c.Result:
        return self._write(cmd.key, cmd.value)

    def _kv_cas(self, cmd: c.KvCas) -> c.Result:
        current = self._version(cmd.key)
        if current != cmd.expected_version:
            return _error(ErrorCode.VERSION_MISMATCH, f"{cmd.key} is at version {current}")
        return self._write(cmd.key, cmd.value)

    def _kv_delete(self, cmd: c.KvDelete) -> c.Result:
        current = self._version(cmd.key)
        if cmd.expected_version is not None and current != cmd.expected_version:
            return _error(ErrorCode.VERSION_MISMATCH, f"{cmd.key} is at version {current}")
        if current:
            self._kv_revision += 1
            del self._kv[cmd.key]
            del self._kv_keys[bisect.bisect_left(self._kv_keys, cmd.key)]
        return c.KvValue(key=cmd.key, value=None, version=0)

    def _kv_get(self, cmd: c.KvGet) -> c.Result:
        entry = self._kv.get(cmd.key)
        if entry is None:
            return c.KvValue(key=cmd.key, value=None, version=0)
        return c.KvValue(key=cmd.key, value=entry.value, version=entry.version)

    def _kv_list(self, cmd: c.KvList) -> c.Result:
        entries = []
        start = bisect.bisect_left(self._kv_keys, cmd.prefix)
        for key in self._kv_keys[start:]:
            if not key.startswith(cmd.prefix) or (cmd.limit and len(entries) >= cmd.limit):
                break
            entry = self._kv[key]
            entries.append(c.KvValue(key=key, value=entry.value, version=entry.version))
        return c.KvEntries(entries=entries)

    def _fenced_put(self, cmd: c.FencedPut) -> c.Result:
        record = self._partitions.get(cmd.partition_id)
        if record is None:
            return _error(ErrorCode.UNKNOWN_PARTITION, cmd.partition_id)
        if cmd.epoch != record.epoch:
            return _error(ErrorCode.FENCED, f"epoch {cmd.epoch} is not current ({record.epoch})")
        if all(owner is None for owner in record.owners):
            return _error(ErrorCode.FENCED, f"{cmd.partition_id} has no owner")
        return self._write(cmd.key, cmd.value)

    def _batch(self, cmd: c.Batch) -> c.Result:
        return c.BatchResult(results=[self.apply(inner) for inner in cmd.commands])

    def _client_request(self, cmd: c.ClientRequest) -> c.Result:
        """Apply a client's write once (rule 2 holds: a repeat changes nothing)."""
        self._session_clock += 1
        session = self._sessions.get(cmd.client_id)
        if session is None:
            if len(self._sessions) >= MAX_CLIENT_SESSIONS:
                oldest = min(self._sessions.items(), key=lambda item: item[1].last_active)[0]
                del self._sessions[oldest]
            session = self._sessions[cmd.client_id] = _ClientSession()
        session.last_active = self._session_clock
        if cmd.acked_below > session.floor:
            session.floor = cmd.acked_below
            for seq in [s for s in session.results if s < cmd.acked_below]:
                del session.results[seq]
        if cmd.seq in session.results:
            return session.results[cmd.seq]
        if cmd.seq < session.floor:
            return _error(ErrorCode.STALE_REQUEST,
                          f"request {cmd.seq} of client {cmd.client_id} was already answered")
        result = self.apply(cmd.command)
        session.results[cmd.seq] = result
        if len(session.results) > MAX_RESULTS_PER_CLIENT:
            oldest_seq = min(session.results)
            del session.results[oldest_seq]
            session.floor = max(session.floor, oldest_seq + 1)
        return result

    # ---------------------------------------------------------- snapshot / restore

    def _to_wire(self) -> dict[str, Any]:
        return {
            "format": SNAPSHOT_FORMAT,
            "config": _CONFIG_ROWS.encode(self._config),
            "workers": [_WORKER_ROWS.encode(w)
                        for w in sorted(self._workers.values(), key=lambda w: w.worker_id)],
            "groups": [_GROUP_ROWS.encode(g)
                       for g in sorted(self._groups.values(), key=lambda g: g.name)],
            "partitions": [_PARTITION_ROWS.encode(p)
                           for p in sorted(self._partitions.values(), key=lambda p: p.sort_key)],
            "pending": [_PENDING_ROWS.encode(m) for _, m in sorted(self._pending.items())],
            "holds": [[*k, *_HOLD_ROWS.encode(h)] for k, h in sorted(self._holds.items())],
            "retired": [[name, floor, at] for name, (floor, at) in sorted(self._retired.items())],
            "kv": [[k, *_KV_ROWS.encode(self._kv[k])] for k in self._kv_keys],
            "kv_revision": self._kv_revision,
            "next_ordinal": self._next_ordinal,
            "log_time": self._log_time,
            "counters": _COUNTER_ROWS.encode(self._counters),
            "sessions": [
                [client_id, session.floor, session.last_active,
                 [[seq, encode_result(result)] for seq, result in sorted(session.results.items())]]
                for client_id, session in sorted(self._sessions.items())
            ],
            "session_clock": self._session_clock,
        }

    def snapshot(self) -> bytes:
        """The whole state as canonical CBOR bytes (equal states → equal bytes)."""
        return cbor2.dumps(self._to_wire(), canonical=True)

    @classmethod
    def restore(cls, data: bytes) -> "CoordinatorState":
        """Rebuild a state from `snapshot` bytes.

        A version 1 snapshot has no ``log_time``; it is taken as the latest timestamp
        the snapshot stores (a lower bound of the true one: cluster time then
        continues from there, which only makes windows in flight a little longer).
        Version 1 to 3 snapshots charged every death, whatever its cause, to every
        partition taken recently: those charges are dropped, and their workers have
        no process id or suspects yet (rule 6 then charges nothing until they
        register again).

        Raises:
            SnapshotError: the bytes are not a snapshot of a supported format.
        """
        try:
            wire = cbor2.loads(data)
            if not isinstance(wire, dict) or wire.get("format") not in _READABLE_FORMATS:
                found = wire.get("format") if isinstance(wire, dict) else None
                raise SnapshotError(f"unsupported snapshot format {found!r} (this version "
                                    f"reads formats {', '.join(map(str, _READABLE_FORMATS))})")
            return cls._from_wire(wire)
        except SnapshotError:
            raise
        except Exception as exc:
            raise SnapshotError(f"invalid snapshot: {exc!r}") from exc

    @classmethod
    def _from_wire(cls, wire: dict[str, Any]) -> "CoordinatorState":
        if wire["format"] < 4:
            _upgrade_to_format_4(wire)
        state = cls(_CONFIG_ROWS.decode(wire["config"]))
        for row in wire["workers"]:
            worker = _WORKER_ROWS.decode(row)
            state._workers[worker.worker_id] = worker
        for row in wire["groups"]:
            group = _GROUP_ROWS.decode(row)
            state._groups[group.name] = group
        for row in wire["partitions"]:
            record = _PARTITION_ROWS.decode(row)
            record.deaths = [(t, w) for t, w in record.deaths]
            record.ordinal = state._groups[record.group].first_ordinal + record.index
            pid, weight = record.partition_id, record.weight
            state._partitions[pid] = record
            if record.quarantined:
                state._quarantined.add(pid)
            state._weights[weight] = state._weights.get(weight, 0) + 1
            for slot, owner in enumerate(record.owners):
                if owner is None:
                    state._free.add((pid, slot))
                else:
                    worker = state._workers[owner]
                    worker.owned.add((pid, slot))
                    worker.load += weight
            if record.replication_factor > 1:
                state._check_zone_spread(record)
        for row in wire["pending"]:
            move = _PENDING_ROWS.decode(row)
            state._pending[(move.partition_id, move.slot)] = move
        for pid, slot, *row in wire["holds"]:
            hold = state._holds[(pid, slot)] = _HOLD_ROWS.decode(row)
            state._workers[hold.worker_id].held.add((pid, slot))
        for name, floor, at in wire["retired"]:
            state._retired[name] = (floor, at)
        for key, *row in wire["kv"]:
            state._kv[key] = _KV_ROWS.decode(row)
        state._kv_keys = sorted(state._kv)
        state._kv_revision = wire["kv_revision"]
        state._next_ordinal = wire["next_ordinal"]
        state._counters = _COUNTER_ROWS.decode(wire["counters"])
        if wire["format"] >= 2:
            state._log_time = wire["log_time"]
        else:
            state._log_time = state._latest_stored_time()
        if wire["format"] >= 3:
            for client_id, floor, last_active, results in wire["sessions"]:
                state._sessions[client_id] = _ClientSession(
                    floor=floor, last_active=last_active,
                    results={seq: decode_result(data) for seq, data in results})
            state._session_clock = wire["session_clock"]
        return state

    def _latest_stored_time(self) -> float:
        """The latest timestamp written into the state (for version 1 snapshots)."""
        config = self._config
        times = [0.0]
        for worker in self._workers.values():
            times.append(worker.registered_at)
            if worker.expired_at is not None:
                times.append(worker.expired_at)
        times.extend(group.created_at for group in self._groups.values())
        for record in self._partitions.values():
            times.extend(t for t in record.assigned_at if t is not None)
            times.extend(t for t, _ in record.deaths)
        times.extend(move.deadline - config.revoke_timeout for move in self._pending.values())
        times.extend(hold.until - config.restart_delay for hold in self._holds.values())
        times.extend(at for _, at in self._retired.values())
        return max(times)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CoordinatorState):
            return NotImplemented
        return self._to_wire() == other._to_wire()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (f"<CoordinatorState workers={len(self._workers)} "
                f"partitions={len(self._partitions)} pending={len(self._pending)}>")


def _upgrade_to_format_4(wire: dict[str, Any]) -> None:
    """Give a format 1-3 snapshot the rows of format 4 (in place): the default
    suspect window, no process ids or suspects, no crash charges (the old charges
    blamed every death on every recent partition), holds without take times."""
    wire["config"] = [*wire["config"], CoordinatorConfig().quarantine_suspect_window]
    wire["workers"] = [[*row, "", []] for row in wire["workers"]]
    deaths = attrs.fields(PartitionRecord).deaths
    column = [field.name for field in _PARTITION_ROWS.fields].index(deaths.name)
    for row in wire["partitions"]:
        row[column] = []
    wire["holds"] = [[*row, None] for row in wire["holds"]]
