"""The records held by `CoordinatorState`.

They are mutable on purpose (the state machine updates them in place as commands are
applied) but only `coordinator.state` may mutate them. Everybody else — the planner,
the leader helper, status and the simulator's checkers — reads them through the
state's read-only mappings.
"""

from __future__ import annotations

import enum
from typing import Optional

import attrs

from .commands import WorkerState

SlotKey = tuple[str, int]
"""(partition id, replica slot)."""


class MovePhase(enum.Enum):
    """Progress of a graceful handoff."""

    REVOKING = "revoking"
    """`Revoke` committed; the old owner still holds the slot until it releases."""
    RELEASED = "released"
    """The old owner let go (or was forced); the slot waits for its new owner."""


@attrs.define(eq=False)
class WorkerRecord:
    """A registered worker.

    Attributes:
        owned: slots it owns now (unordered; sort before relying on order).
        held: slots held for it while it is DEAD, within the restart delay window.
        load: total weight of ``owned``.
        process: the id of the worker process that registered last ("" when the
            agent does not send one); a new id after a death means it crashed.
        suspects: partitions that may have killed it: those it took last, soon
            before its death. Charged if it comes back as a new process (a crash),
            dropped if the same process comes back (its lease was lost to a pause
            or the network).
    """

    worker_id: str
    address: str
    zone: str
    capacity: int
    labels: tuple[tuple[str, str], ...]
    state: WorkerState
    registered_at: float
    expired_at: Optional[float] = None
    process: str = ""
    suspects: tuple[str, ...] = ()
    # Derived from the partitions (not stored in snapshots): after the stored fields.
    owned: set[SlotKey] = attrs.field(factory=set)
    held: set[SlotKey] = attrs.field(factory=set)
    load: int = 0

    @property
    def is_live(self) -> bool:
        return self.state is not WorkerState.DEAD


@attrs.define(eq=False)
class PartitionRecord:
    """One partition of a group.

    Attributes:
        owners: owner per replica slot (None = free); slot 0 is the primary.
        assigned_at: when each slot got its current owner (None = free).
        epoch: fencing token; grows by one on every `Assign`.
        deaths: recent crashes charged to it for quarantine: (time of the owner's
            death, owner id), in time order.
        not_before: no `Assign` before this time (set when a deleted group's name is
            re-used, so that owners of the old incarnation have stopped).
    """

    partition_id: str
    group: str
    index: int
    weight: int
    replication_factor: int
    epoch: int
    owners: list[Optional[str]]
    assigned_at: list[Optional[float]]
    quarantined: bool = False
    deaths: list[tuple[float, str]] = attrs.field(factory=list)
    not_before: Optional[float] = None
    ordinal: int = 0
    """Creation order across all groups; planners list slots by it (an int sorts fast)."""
    sort_key: tuple[str, int] = attrs.field(init=False)
    """(group, index): the order in which snapshots list partitions."""

    def __attrs_post_init__(self) -> None:
        self.sort_key = (self.group, self.index)


@attrs.define(eq=False)
class GroupRecord:
    """A named group of partitions (e.g. a topic)."""

    name: str
    count: int
    weight: int
    replication_factor: int
    created_at: float
    first_ordinal: int = 0

    def partition_ids(self) -> list[str]:
        return [partition_id(self.name, index) for index in range(self.count)]


@attrs.define(eq=False)
class PendingMove:
    """A graceful handoff in flight; it counts against the move caps.

    Attributes:
        source: the owner being revoked.
        target: planner's choice of the next owner (a hint; may be None or stale).
        epoch: the partition epoch when the revoke was committed.
        deadline: from this time the revoke may be forced.
    """

    partition_id: str
    slot: int
    source: str
    target: Optional[str]
    epoch: int
    phase: MovePhase
    deadline: float


@attrs.define(eq=False)
class Hold:
    """A free slot reserved for a dead worker until ``until``.

    Attributes:
        taken_at: when the worker had taken the slot; handed back, the slot keeps
            it (a restart gives nothing new to suspect, rule 6 of
            `coordinator.state`). None when unknown (older snapshots).
    """

    worker_id: str
    until: float
    taken_at: Optional[float] = None


@attrs.define(eq=False)
class KvRecord:
    """A metadata KV entry; ``version`` is the store revision of its last write."""

    value: bytes
    version: int


@attrs.define(eq=False)
class Counters:
    """Monotonic counters, exported as metrics and shown in status."""

    assignments: int = 0
    releases: int = 0
    forced_revokes: int = 0
    expirations: int = 0
    quarantines: int = 0

    def as_tuple(self) -> tuple[int, ...]:
        return (self.assignments, self.releases, self.forced_revokes, self.expirations,
                self.quarantines)


@attrs.frozen
class OwnedSlot:
    """What a worker holds, as it should see it (`CoordinatorState.worker_view`).

    Attributes:
        epoch: the fencing token to pass with every write for the partition.
        revoking: a `Revoke` is pending: stop acting for it, then send `Released`.
    """

    partition_id: str
    slot: int
    epoch: int
    revoking: bool


def partition_id(group: str, index: int) -> str:
    """The id of partition ``index`` of ``group``."""
    return f"{group}/{index}"
