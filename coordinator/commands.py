"""Commands of the coordinator state machine, and the results of applying them.

Every change to the replicated coordinator state is one of the frozen attrs classes
below, proposed by the leader (or forwarded from a client), committed through Raft and
applied by `CoordinatorState.apply` on every replica. Rules:

* A command is validated *field by field* in its constructor, so a command that
  could not make sense in any state (an empty id, a negative slot, a NaN timestamp)
  cannot exist. Whether it makes sense in the *current* state is checked by the state
  machine, which answers with an `Error` result instead of mutating anything.
* Commands that depend on time carry ``now``: the proposing leader's *cluster time*
  in seconds (`CoordinatorLeader.cluster_time`; rule 5 of `coordinator.state`), not
  a node's clock. Replicas never read a clock of their own.
* All fields are keyword-only, so adding an optional field later keeps old call sites
  and old encoded commands valid. The wire format is versioned by `coordinator.codec`.
"""

from __future__ import annotations

import enum
import math
from typing import Any, Optional, Union

import attrs

MAX_ID_LENGTH = 256
MAX_KEY_LENGTH = 1024
MAX_VALUE_BYTES = 1 << 20
MAX_GROUP_SIZE = 1_000_000
MAX_REPLICATION_FACTOR = 16


class WorkerState(enum.Enum):
    """Lifecycle of a registered worker."""

    ACTIVE = "active"
    """Alive and eligible to receive partitions."""
    DRAINING = "draining"
    """Alive; its partitions move off gracefully and it receives nothing new."""
    DEAD = "dead"
    """Its lease expired. Its partitions were taken away (or held for a restart)."""


class ErrorCode(enum.Enum):
    """Why the state machine refused a command. Nothing was changed."""

    UNKNOWN_WORKER = "unknown_worker"
    UNKNOWN_GROUP = "unknown_group"
    UNKNOWN_PARTITION = "unknown_partition"
    ALREADY_EXISTS = "already_exists"
    INVALID_STATE = "invalid_state"
    """The target is in a state where the command does not apply (e.g. a dead worker)."""
    STALE_EPOCH = "stale_epoch"
    WRONG_OWNER = "wrong_owner"
    SLOT_OCCUPIED = "slot_occupied"
    CO_LOCATED = "co_located"
    """The worker already holds another replica of the partition."""
    HELD = "held"
    """The slot is held for a dead worker within its restart delay window."""
    QUARANTINED = "quarantined"
    NOT_QUARANTINED = "not_quarantined"
    NO_PENDING_REVOKE = "no_pending_revoke"
    REVOKE_PENDING = "revoke_pending"
    TOO_EARLY = "too_early"
    VERSION_MISMATCH = "version_mismatch"
    FENCED = "fenced"
    """A fenced write carried an epoch that is not the partition's current one."""
    STALE_REQUEST = "stale_request"
    """A client request below the client's acknowledged floor: its answer was already
    delivered (or its session was evicted), so it is not applied again."""


# --------------------------------------------------------------------------- checks


def _identifier(instance: object, attribute: attrs.Attribute, value: object) -> None:
    if not isinstance(value, str) or not value or len(value) > MAX_ID_LENGTH:
        raise ValueError(f"{attribute.name} must be a non-empty str of at most "
                         f"{MAX_ID_LENGTH} characters, got {value!r}")


def _group_name(instance: object, attribute: attrs.Attribute, value: object) -> None:
    _identifier(instance, attribute, value)
    if "/" in value:  # type: ignore[operator]
        raise ValueError(f"{attribute.name} must not contain '/', got {value!r}")


def _optional_short_text(instance: object, attribute: attrs.Attribute, value: object) -> None:
    if not isinstance(value, str) or len(value) > MAX_ID_LENGTH:
        raise ValueError(f"{attribute.name} must be a str of at most {MAX_ID_LENGTH} "
                         f"characters, got {value!r}")


def _optional_identifier(instance: object, attribute: attrs.Attribute, value: object) -> None:
    if value is not None:
        _identifier(instance, attribute, value)


def _text(instance: object, attribute: attrs.Attribute, value: object) -> None:
    if not isinstance(value, str) or len(value) > MAX_KEY_LENGTH:
        raise ValueError(f"{attribute.name} must be a str of at most {MAX_KEY_LENGTH} "
                         f"characters, got {value!r}")


def _key(instance: object, attribute: attrs.Attribute, value: object) -> None:
    _text(instance, attribute, value)
    if not value:
        raise ValueError(f"{attribute.name} must not be empty")


def _value(instance: object, attribute: attrs.Attribute, value: object) -> None:
    if not isinstance(value, bytes) or len(value) > MAX_VALUE_BYTES:
        raise ValueError(f"{attribute.name} must be bytes of at most {MAX_VALUE_BYTES}")


def _int_at_least(minimum: int, maximum: Optional[int] = None):
    def check(instance: object, attribute: attrs.Attribute, value: object) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum or (
            maximum is not None and value > maximum
        ):
            bounds = f">= {minimum}" + ("" if maximum is None else f" and <= {maximum}")
            raise ValueError(f"{attribute.name} must be an int {bounds}, got {value!r}")

    return check


def _optional_version(instance: object, attribute: attrs.Attribute, value: object) -> None:
    if value is not None:
        _int_at_least(0)(instance, attribute, value)


def _to_seconds(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"a timestamp must be a number, got {value!r}")
    result = float(value)
    if not math.isfinite(result):
        raise ValueError(f"a timestamp must be finite, got {value!r}")
    return result


def _to_labels(value: Any) -> tuple[tuple[str, str], ...]:
    """Accept a mapping or pairs; store sorted pairs so equal label sets compare equal."""
    items = value.items() if isinstance(value, dict) else value
    if isinstance(items, (str, bytes)):
        raise TypeError("labels must be a mapping or a sequence of pairs")
    pairs = []
    for item in items:
        if not isinstance(item, (tuple, list)) or len(item) != 2:
            raise TypeError(f"a label must be a (key, value) pair, got {item!r}")
        key, val = item
        if not isinstance(key, str) or not isinstance(val, str):
            raise TypeError(f"label keys and values must be str, got {item!r}")
        pairs.append((key, val))
    pairs.sort()
    if len({k for k, _ in pairs}) != len(pairs):
        raise ValueError("duplicate label key")
    return tuple(pairs)


def _optional_seconds(value: Any) -> Optional[float]:
    return None if value is None else _to_seconds(value)


def _now() -> Any:
    return attrs.field(converter=_to_seconds)


# ------------------------------------------------------------------------- commands


@attrs.frozen(kw_only=True)
class RegisterWorker:
    """A worker announces itself, or comes back after a restart.

    A new id creates an ACTIVE worker. A live worker's address, zone, capacity and
    labels are updated. A DEAD worker becomes ACTIVE again and, if it returns within
    the restart delay window, gets back the slots held for it (each with epoch + 1).

    Attributes:
        worker_id: stable identity of the worker.
        address: where clients reach it (opaque to the coordinator).
        zone: failure domain; replicas of a partition are spread across zones.
        capacity: relative size; fair shares are proportional to it.
        labels: free-form key/value pairs (stored sorted).
        process: an id the worker process draws when it starts (unique per
            process, e.g. a random UUID), sent with every heartbeat; "" when the
            agent does not send one. A new id after a death tells a crash from a
            lease lost to a pause or the network (quarantine, rule 6 of
            `coordinator.state`).
        now: cluster time of the proposing leader.
    """

    worker_id: str = attrs.field(validator=_identifier)
    address: str = attrs.field(validator=_text)
    zone: str = attrs.field(default="default", validator=_identifier)
    capacity: int = attrs.field(default=1, validator=_int_at_least(1, 1_000_000))
    labels: tuple[tuple[str, str], ...] = attrs.field(default=(), converter=_to_labels)
    process: str = attrs.field(default="", validator=_optional_short_text)
    now: float = _now()


@attrs.frozen(kw_only=True)
class DeregisterWorker:
    """A worker leaves on purpose. Its slots become free at once (it promises it has
    stopped acting for them), nothing is held for it and it is forgotten."""

    worker_id: str = attrs.field(validator=_identifier)
    now: float = _now()


@attrs.frozen(kw_only=True)
class ExpireWorker:
    """The leader decided the worker's lease expired (see `coordinator.lease`).

    The worker becomes DEAD; its slots are freed, or held for it during the restart
    delay window if it was ACTIVE. The partitions it took last before it was last
    heard from, if soon before, become suspects: charged towards quarantine if it
    comes back as a new process (rule 6 of `coordinator.state`).

    Attributes:
        last_heard: cluster time at which the deciding leader last received a
            heartbeat from the worker; None if it never did (it became leader
            after the worker went silent). A partition given to the worker after
            that was never seen by it, so cannot have crashed it.
    """

    worker_id: str = attrs.field(validator=_identifier)
    now: float = _now()
    last_heard: Optional[float] = attrs.field(default=None, converter=_optional_seconds)


@attrs.frozen(kw_only=True)
class DrainWorker:
    """Mark a live worker DRAINING: it gets nothing new and its partitions move off."""

    worker_id: str = attrs.field(validator=_identifier)
    now: float = _now()


@attrs.frozen(kw_only=True)
class UndrainWorker:
    """Make a DRAINING worker ACTIVE again."""

    worker_id: str = attrs.field(validator=_identifier)
    now: float = _now()


@attrs.frozen(kw_only=True)
class CreatePartitionGroup:
    """Create ``count`` partitions named ``"{name}/0"`` ... ``"{name}/{count-1}"``.

    Attributes:
        name: group name (no ``/``).
        count: number of partitions.
        weight: load of each partition, in the units of worker capacity.
        replication_factor: owners per partition (slot 0 is the primary).
        now: cluster time of the proposing leader.
    """

    name: str = attrs.field(validator=_group_name)
    count: int = attrs.field(validator=_int_at_least(1, MAX_GROUP_SIZE))
    weight: int = attrs.field(default=1, validator=_int_at_least(1, 1_000_000))
    replication_factor: int = attrs.field(
        default=1, validator=_int_at_least(1, MAX_REPLICATION_FACTOR)
    )
    now: float = _now()


@attrs.frozen(kw_only=True)
class DeletePartitionGroup:
    """Delete a group and all its partitions, assignments and pending moves."""

    name: str = attrs.field(validator=_group_name)
    now: float = _now()


@attrs.frozen(kw_only=True)
class Assign:
    """Give a free slot of a partition to an ACTIVE worker.

    Attributes:
        partition_id: the partition.
        slot: replica slot (0 = primary, < replication factor).
        worker_id: the new owner.
        epoch: the partition's new epoch; must be greater than its current epoch
            (the leader proposes current + 1).
        now: cluster time of the proposing leader.
    """

    partition_id: str = attrs.field(validator=_identifier)
    slot: int = attrs.field(validator=_int_at_least(0, MAX_REPLICATION_FACTOR - 1))
    worker_id: str = attrs.field(validator=_identifier)
    epoch: int = attrs.field(validator=_int_at_least(1))
    now: float = _now()


@attrs.frozen(kw_only=True)
class Revoke:
    """Start a graceful handoff: ask the owner of a slot to release it.

    Attributes:
        partition_id: the partition.
        slot: replica slot.
        worker_id: its current owner.
        epoch: the partition's current epoch.
        target: where the planner wants the slot to go next (a hint; may be None).
        now: cluster time of the proposing leader; the revoke may be forced from ``now + revoke_timeout``.
    """

    partition_id: str = attrs.field(validator=_identifier)
    slot: int = attrs.field(validator=_int_at_least(0, MAX_REPLICATION_FACTOR - 1))
    worker_id: str = attrs.field(validator=_identifier)
    epoch: int = attrs.field(validator=_int_at_least(0))
    target: Optional[str] = attrs.field(default=None, validator=_optional_identifier)
    now: float = _now()


@attrs.frozen(kw_only=True)
class Released:
    """The owner confirms it stopped acting for a revoked slot."""

    partition_id: str = attrs.field(validator=_identifier)
    slot: int = attrs.field(validator=_int_at_least(0, MAX_REPLICATION_FACTOR - 1))
    worker_id: str = attrs.field(validator=_identifier)
    epoch: int = attrs.field(validator=_int_at_least(0))
    now: float = _now()


@attrs.frozen(kw_only=True)
class ForceRevoke:
    """The leader takes a revoked slot away because no release came in time."""

    partition_id: str = attrs.field(validator=_identifier)
    slot: int = attrs.field(validator=_int_at_least(0, MAX_REPLICATION_FACTOR - 1))
    worker_id: str = attrs.field(validator=_identifier)
    epoch: int = attrs.field(validator=_int_at_least(0))
    now: float = _now()


@attrs.frozen(kw_only=True)
class ReleaseQuarantine:
    """An operator puts a quarantined partition back into service."""

    partition_id: str = attrs.field(validator=_identifier)
    now: float = _now()


@attrs.frozen(kw_only=True)
class KvPut:
    """Set ``key`` to ``value`` unconditionally."""

    key: str = attrs.field(validator=_key)
    value: bytes = attrs.field(validator=_value)


@attrs.frozen(kw_only=True)
class KvCas:
    """Set ``key`` only if its version is ``expected_version`` (0 = must not exist)."""

    key: str = attrs.field(validator=_key)
    expected_version: int = attrs.field(validator=_int_at_least(0))
    value: bytes = attrs.field(validator=_value)


@attrs.frozen(kw_only=True)
class KvDelete:
    """Delete ``key``; when ``expected_version`` is given, only at that version."""

    key: str = attrs.field(validator=_key)
    expected_version: Optional[int] = attrs.field(default=None, validator=_optional_version)


@attrs.frozen(kw_only=True)
class KvGet:
    """Read ``key`` through the log (a linearizable read without ReadIndex)."""

    key: str = attrs.field(validator=_key)


@attrs.frozen(kw_only=True)
class KvList:
    """List keys starting with ``prefix`` in key order; ``limit`` 0 means all."""

    prefix: str = attrs.field(validator=_text)
    limit: int = attrs.field(default=0, validator=_int_at_least(0))


@attrs.frozen(kw_only=True)
class FencedPut:
    """Set ``key`` on behalf of a partition owner; refused unless ``epoch`` is the
    partition's current epoch and the partition is owned (the fencing token check)."""

    key: str = attrs.field(validator=_key)
    value: bytes = attrs.field(validator=_value)
    partition_id: str = attrs.field(validator=_identifier)
    epoch: int = attrs.field(validator=_int_at_least(0))


def _simple_command(instance: object, attribute: attrs.Attribute, value: object) -> None:
    if not isinstance(value, SIMPLE_COMMAND_TYPES):
        raise TypeError(f"{attribute.name} must be a plain command, got {type(value).__name__}")


@attrs.frozen(kw_only=True)
class ClientRequest:
    """A client's write, applied at most once however often it is retried.

    A client numbers its writes 1, 2, 3, ... and resends the same number on a
    retry; the state machine keeps the result of each recent number per client and
    answers a repeat with it instead of applying the command again (Raft
    dissertation, section 6.3).

    Attributes:
        client_id: the client's identity (random, chosen once per client object).
        seq: this write's number (>= 1), unique within the client.
        acked_below: every number below it has been answered to the client, so their
            results may be forgotten.
        command: the write itself.
    """

    client_id: str = attrs.field(validator=_identifier)
    seq: int = attrs.field(validator=_int_at_least(1))
    acked_below: int = attrs.field(default=0, validator=_int_at_least(0))
    command: Any = attrs.field(validator=_simple_command)


def _to_commands(value: Any) -> tuple:
    if isinstance(value, (str, bytes)):
        raise TypeError("commands must be a sequence")
    items = tuple(value)
    for item in items:
        if not isinstance(item, SIMPLE_COMMAND_TYPES):
            raise TypeError(f"a batch holds plain commands, got {type(item).__name__}")
    return items


@attrs.frozen(kw_only=True)
class Batch:
    """Several commands in one log entry, applied in order.

    Each inner command is applied all-or-nothing on its own (exactly as if it had its
    own entry); the batch result lists their results in order. Batches do not nest.
    """

    commands: tuple = attrs.field(converter=_to_commands)


def batched(commands: list, size: int = 512) -> list:
    """Group commands into `Batch` commands of at most ``size`` (for proposing many
    small commands, e.g. an initial assignment, as few log entries)."""
    if size < 1:
        raise ValueError("size must be >= 1")
    return [Batch(commands=commands[i:i + size]) for i in range(0, len(commands), size)]


SIMPLE_COMMAND_TYPES = (
    RegisterWorker, DeregisterWorker, ExpireWorker, DrainWorker, UndrainWorker,
    CreatePartitionGroup, DeletePartitionGroup, Assign, Revoke, Released, ForceRevoke,
    ReleaseQuarantine, KvPut, KvCas, KvDelete, KvGet, KvList, FencedPut,
)
COMMAND_TYPES = SIMPLE_COMMAND_TYPES + (Batch, ClientRequest)

Command = Union[
    RegisterWorker, DeregisterWorker, ExpireWorker, DrainWorker, UndrainWorker,
    CreatePartitionGroup, DeletePartitionGroup, Assign, Revoke, Released, ForceRevoke,
    ReleaseQuarantine, KvPut, KvCas, KvDelete, KvGet, KvList, FencedPut, Batch,
    ClientRequest,
]


# -------------------------------------------------------------------------- results


@attrs.frozen(kw_only=True)
class SlotRef:
    """One replica slot of a partition, with the epoch it had in the result."""

    partition_id: str
    slot: int
    epoch: int


@attrs.frozen(kw_only=True)
class Error:
    """The command was refused; the state is unchanged."""

    code: ErrorCode = attrs.field(converter=ErrorCode)
    message: str = ""


@attrs.frozen(kw_only=True)
class WorkerRegistered:
    """Result of `RegisterWorker`.

    Attributes:
        restored: slots handed back after a restart.
        quarantined: partitions that this worker's crash (now known: it came back as
            a new process) put into quarantine.
    """

    worker_id: str
    created: bool
    restored: tuple = attrs.field(default=(), converter=tuple)
    quarantined: tuple = attrs.field(default=(), converter=tuple)


@attrs.frozen(kw_only=True)
class WorkerRemoved:
    """Result of `ExpireWorker` and `DeregisterWorker`.

    Attributes:
        freed: slots that became free at once.
        held: slots held for the worker's possible restart.
        quarantined: partitions that this death put into quarantine (always empty
            since crashes are charged when the worker comes back; kept so that
            older results still decode).
    """

    worker_id: str
    freed: tuple = attrs.field(default=(), converter=tuple)
    held: tuple = attrs.field(default=(), converter=tuple)
    quarantined: tuple = attrs.field(default=(), converter=tuple)


@attrs.frozen(kw_only=True)
class WorkerStateChanged:
    """Result of `DrainWorker` / `UndrainWorker`."""

    worker_id: str
    state: WorkerState = attrs.field(converter=WorkerState)


@attrs.frozen(kw_only=True)
class GroupChanged:
    """Result of creating or deleting a partition group."""

    name: str
    count: int
    created: bool


@attrs.frozen(kw_only=True)
class Assigned:
    """Result of `Assign`: the owner and the new epoch (the fencing token)."""

    partition_id: str
    slot: int
    worker_id: str
    epoch: int


@attrs.frozen(kw_only=True)
class RevokeStarted:
    """Result of `Revoke`; the revoke may be forced from ``deadline``."""

    partition_id: str
    slot: int
    worker_id: str
    epoch: int
    deadline: float


@attrs.frozen(kw_only=True)
class SlotReleased:
    """Result of `Released` and `ForceRevoke`; the slot is now free."""

    partition_id: str
    slot: int
    worker_id: str
    epoch: int
    forced: bool


@attrs.frozen(kw_only=True)
class QuarantineReleased:
    """Result of `ReleaseQuarantine`."""

    partition_id: str


@attrs.frozen(kw_only=True)
class KvValue:
    """A key's value and version after the command (None / 0 when absent)."""

    key: str
    value: Optional[bytes]
    version: int


@attrs.frozen(kw_only=True)
class KvEntries:
    """Result of `KvList`."""

    entries: tuple = attrs.field(default=(), converter=tuple)


@attrs.frozen(kw_only=True)
class BatchResult:
    """Result of `Batch`: one result per inner command."""

    results: tuple = attrs.field(default=(), converter=tuple)


RESULT_TYPES = (
    SlotRef, Error, WorkerRegistered, WorkerRemoved, WorkerStateChanged, GroupChanged,
    Assigned, RevokeStarted, SlotReleased, QuarantineReleased, KvValue, KvEntries,
    BatchResult,
)

Result = Union[
    Error, WorkerRegistered, WorkerRemoved, WorkerStateChanged, GroupChanged, Assigned,
    RevokeStarted, SlotReleased, QuarantineReleased, KvValue, KvEntries, BatchResult,
]
