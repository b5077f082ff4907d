"""Value types shared by the Raft core, storage, codec and drivers.

Everything here is a small frozen attrs class or an enum. Entries and messages are
created on the hot path, so constructors do only cheap checks; the codec
(`raft.codec`) is the filter that validates bytes coming from the outside world.
"""

from __future__ import annotations

import enum
from typing import Any, TypeVar, Union

import attrs

_C = TypeVar("_C", bound=type)

NodeId = int
"""Nodes are identified by positive integers (0 means "none")."""

NONE: NodeId = 0
"""The id that means "no node" (no leader known, no vote cast)."""


def _fast_init(cls: _C) -> _C:
    """Give a frozen slotted attrs class an `__init__` that fills its slots directly.

    attrs' frozen `__init__` stores every field through ``object.__setattr__``,
    which looks the name up on the type each time; calling each slot's own
    descriptor skips that lookup and makes construction ~20% faster. Messages and
    entries are built on every hop of the hot path (by the core and by the codec).
    The signature (names, order, defaults) is attrs' own, and so are equality,
    hashing, repr and immutability; only classes whose fields have plain defaults
    (no factory, converter, validator or post-init hook) qualify.
    """
    fields = attrs.fields(cls)
    if hasattr(cls, "__attrs_post_init__") or any(
        isinstance(f.default, attrs.Factory) or f.converter or f.validator or f.kw_only or not f.init
        for f in fields
    ):
        raise TypeError(f"{cls.__name__}: _fast_init needs fields with plain defaults")
    namespace: dict[str, Any] = {}
    params, body = [], []
    for f in fields:
        namespace[f"_set_{f.name}"] = cls.__dict__[f.name].__set__
        if f.default is attrs.NOTHING:
            params.append(f.name)
        else:
            namespace[f"_default_{f.name}"] = f.default
            params.append(f"{f.name}=_default_{f.name}")
        body.append(f"    _set_{f.name}(self, {f.name})\n")
    source = f"def __init__(self, {', '.join(params)}):\n" + "".join(body)
    exec(compile(source, f"<fast __init__ of {cls.__qualname__}>", "exec"), namespace)
    init = namespace["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__annotations__ = dict(cls.__init__.__annotations__)
    cls.__init__ = init
    return cls


class Role(enum.Enum):
    """The role a node currently plays."""

    FOLLOWER = "follower"
    PRE_CANDIDATE = "pre-candidate"
    CANDIDATE = "candidate"
    LEADER = "leader"


class EntryType(enum.IntEnum):
    """What an entry's data means."""

    NORMAL = 0
    """Application data (an empty NORMAL entry is the leader's no-op)."""
    CONF_CHANGE = 1
    """A membership change; `data` is a `ConfChange` encoded by `raft.codec`."""


@_fast_init
@attrs.frozen(slots=True)
class Entry:
    """One log entry.

    Attributes:
        term: the leader term in which the entry was created.
        index: its position in the log (the first entry has index 1).
        type: NORMAL or CONF_CHANGE.
        data: opaque application bytes (or an encoded `ConfChange`).
    """

    term: int
    index: int
    type: EntryType = EntryType.NORMAL
    data: bytes = b""

    def size(self) -> int:
        """Approximate byte size, used for message and uncommitted-data limits."""
        return len(self.data) + 16


@_fast_init
@attrs.frozen(slots=True)
class HardState:
    """What must survive a restart: current term, vote in it, commit index."""

    term: int = 0
    vote: NodeId = NONE
    commit: int = 0

    def is_empty(self) -> bool:
        return self.term == 0 and self.vote == NONE and self.commit == 0


@_fast_init
@attrs.frozen(slots=True)
class SoftState:
    """Volatile state reported in `Ready` when it changes: who leads and our role."""

    leader: NodeId
    role: Role


@attrs.frozen(slots=True)
class ConfState:
    """A cluster configuration: the voting members and the non-voting learners."""

    voters: frozenset[NodeId] = attrs.field(factory=frozenset, converter=frozenset)
    learners: frozenset[NodeId] = attrs.field(factory=frozenset, converter=frozenset)

    def __attrs_post_init__(self) -> None:
        if self.voters & self.learners:
            raise ValueError("a node cannot be both voter and learner")
        if any((not isinstance(n, int)) or n <= 0 for n in self.voters | self.learners):
            raise ValueError("node ids must be positive integers")

    def members(self) -> frozenset[NodeId]:
        return self.voters | self.learners

    def quorum(self) -> int:
        """Votes needed for a majority of the voters."""
        return len(self.voters) // 2 + 1


class ConfChangeType(enum.IntEnum):
    """The one-server membership changes the core supports."""

    ADD_VOTER = 0
    """Add a new voter, or promote an existing learner to voter."""
    ADD_LEARNER = 1
    """Add a new non-voting learner."""
    REMOVE_NODE = 2
    """Remove a voter or learner."""


@attrs.frozen(slots=True)
class ConfChange:
    """A membership change proposed through `RawNode.propose_conf_change`.

    Attributes:
        type: what to do.
        node_id: the node it applies to.
        context: opaque application bytes carried along (e.g. the node's address).
    """

    type: ConfChangeType
    node_id: NodeId
    context: bytes = b""

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.node_id, int) or self.node_id <= 0:
            raise ValueError("node_id must be a positive integer")


@attrs.frozen(slots=True)
class SnapshotMetadata:
    """Where a snapshot sits in the log and the configuration in force there."""

    index: int = 0
    term: int = 0
    conf_state: ConfState = attrs.field(factory=ConfState)


@attrs.frozen(slots=True)
class Snapshot:
    """A point-in-time image of the application state machine.

    Attributes:
        metadata: index, term and configuration covered by the snapshot.
        data: opaque application bytes.
    """

    metadata: SnapshotMetadata = attrs.field(factory=SnapshotMetadata)
    data: bytes = b""

    @property
    def index(self) -> int:
        return self.metadata.index

    @property
    def term(self) -> int:
        return self.metadata.term

    def is_empty(self) -> bool:
        return self.metadata.index == 0


@_fast_init
@attrs.frozen(slots=True)
class ReadState:
    """A completed read-index request.

    Once the local applied index reaches `index`, a read tagged with `context` may be
    served from the local state machine and is linearizable.
    """

    index: int
    context: bytes


# ---------------------------------------------------------------------------------
# Messages. One frozen class per kind. Every message carries `term`, `sender`, `to`.
# ---------------------------------------------------------------------------------


@_fast_init
@attrs.frozen(slots=True)
class VoteRequest:
    """A (pre-)candidate asks for a vote.

    Attributes:
        last_log_index / last_log_term: the candidate's last entry, for the
            up-to-date check.
        pre_vote: a pre-vote: `term` is the term the candidate *would* campaign in;
            nobody changes term because of it.
        transfer: the candidate campaigns because of a leadership transfer, so voters
            must not ignore it because they recently heard from the leader.
    """

    term: int
    sender: NodeId
    to: NodeId
    last_log_index: int
    last_log_term: int
    pre_vote: bool = False
    transfer: bool = False


@_fast_init
@attrs.frozen(slots=True)
class VoteResponse:
    """The answer to a `VoteRequest`."""

    term: int
    sender: NodeId
    to: NodeId
    granted: bool
    pre_vote: bool = False


@_fast_init
@attrs.frozen(slots=True)
class AppendEntries:
    """Leader → follower: entries following (prev_index, prev_term), and the commit."""

    term: int
    sender: NodeId
    to: NodeId
    prev_index: int
    prev_term: int
    entries: tuple[Entry, ...]
    commit: int


@_fast_init
@attrs.frozen(slots=True)
class AppendResponse:
    """Follower → leader: the result of an `AppendEntries`.

    Attributes:
        success: the entries were appended (`index` is then the follower's last index
            matching the leader's log).
        index: on success the highest matching index; on rejection the rejected
            `prev_index`.
        hint_index / hint_term: on rejection, the follower's best guess of where the
            logs may agree: its largest index <= `index` whose term <= the rejected
            `prev_term` (fast backtracking skips a whole term per round trip).
    """

    term: int
    sender: NodeId
    to: NodeId
    success: bool
    index: int
    hint_index: int = 0
    hint_term: int = 0


@_fast_init
@attrs.frozen(slots=True)
class Heartbeat:
    """Leader → follower: liveness, the commit index, and an optional read context."""

    term: int
    sender: NodeId
    to: NodeId
    commit: int
    context: bytes = b""


@_fast_init
@attrs.frozen(slots=True)
class HeartbeatResponse:
    """Follower → leader: acknowledges a heartbeat, echoing its read context."""

    term: int
    sender: NodeId
    to: NodeId
    context: bytes = b""


@_fast_init
@attrs.frozen(slots=True)
class InstallSnapshot:
    """Leader → follower: one chunk of a snapshot.

    Attributes:
        metadata: the snapshot's index, term and configuration.
        offset: where `data` starts within the whole snapshot payload.
        data: this chunk's bytes.
        done: this chunk is the last one.
    """

    term: int
    sender: NodeId
    to: NodeId
    metadata: SnapshotMetadata
    offset: int
    data: bytes
    done: bool


@_fast_init
@attrs.frozen(slots=True)
class SnapshotResponse:
    """Follower → leader: the snapshot bytes received so far.

    Attributes:
        snapshot_index: the snapshot the follower is assembling.
        next_offset: how many bytes of it the follower holds; the leader resumes
            from there (this is how a lost chunk is recovered).
    """

    term: int
    sender: NodeId
    to: NodeId
    snapshot_index: int
    next_offset: int


@_fast_init
@attrs.frozen(slots=True)
class TimeoutNow:
    """Leader → transfer target: campaign now, skipping pre-vote."""

    term: int
    sender: NodeId
    to: NodeId


@_fast_init
@attrs.frozen(slots=True)
class ReadIndexRequest:
    """Follower → leader: a forwarded `read_index` request."""

    term: int
    sender: NodeId
    to: NodeId
    context: bytes


@_fast_init
@attrs.frozen(slots=True)
class ReadIndexResponse:
    """Leader → follower: the commit index a forwarded read must wait for."""

    term: int
    sender: NodeId
    to: NodeId
    index: int
    context: bytes


Message = Union[
    VoteRequest,
    VoteResponse,
    AppendEntries,
    AppendResponse,
    Heartbeat,
    HeartbeatResponse,
    InstallSnapshot,
    SnapshotResponse,
    TimeoutNow,
    ReadIndexRequest,
    ReadIndexResponse,
]

MESSAGE_TYPES: tuple[type, ...] = (
    VoteRequest,
    VoteResponse,
    AppendEntries,
    AppendResponse,
    Heartbeat,
    HeartbeatResponse,
    InstallSnapshot,
    SnapshotResponse,
    TimeoutNow,
    ReadIndexRequest,
    ReadIndexResponse,
)
