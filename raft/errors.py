"""Exceptions of the raft library.

Two families, kept apart on purpose (as h11 does):

* *local* errors (`RaftError` subclasses such as `ProposalDropped`, `ConfigError`) are
  raised to the caller of an API it used wrongly or at the wrong moment;
* *outcomes* of a request an embedder catches: `ProposalDropped` (refused, nothing
  happened), `ProposalLost` (certainly never took effect), `ProposalOutcomeUnknown`
  (may or may not have), `RuntimeStopped` (the runtime ended first). The last three
  are raised by `raft.runtime.RaftRuntime`; they live here, with the first, so that
  an embedder imports every outcome from one place (`raft`);
* *remote* errors (`CodecError`) describe garbage that arrived from a peer or from
  disk. A driver catches them, drops the input, and keeps serving.
"""

from __future__ import annotations

import enum

from .types import NONE, NodeId


class RaftError(Exception):
    """Base class of every exception raised by the raft library."""


class ConfigError(RaftError, ValueError):
    """A `Config` value is invalid."""


class DropReason(enum.Enum):
    """Why a proposal (or read, or change) was refused."""

    NOT_LEADER = "not leader"
    """This node is not the leader; retry on `leader_hint` if it is known."""
    TRANSFER_IN_PROGRESS = "leadership transfer in progress"
    """The leader is handing leadership over and accepts no new proposals."""
    TOO_MUCH_UNCOMMITTED = "too much uncommitted data"
    """Uncommitted entries exceed `Config.max_uncommitted_bytes`; back off."""
    CHANGE_PENDING = "membership change pending"
    """An earlier membership change is not yet committed."""
    LEADER_NOT_READY = "leader has not committed an entry of its term yet"
    """A new leader must commit an entry of its term before it accepts a change."""
    INVALID_CHANGE = "invalid membership change"
    """The change makes no sense for the current configuration."""
    NOT_CAUGHT_UP = "learner not caught up"
    """A learner can only be promoted once it has the committed log."""
    NO_LEADER = "no leader known"
    """A follower cannot forward a read because it knows no leader."""
    INVALID_TARGET = "invalid leadership transfer target"
    """Leadership can only be transferred to another voter."""
    NOT_APPLIED = "index not applied"
    """A snapshot can only be taken at an applied, uncompacted index."""
    CONF_UNKNOWN = "configuration unknown"
    """A node that joined an existing cluster does not know the voters in force
    before the first membership change in its log, and cannot snapshot there."""


class ProposalDropped(RaftError):
    """A proposal, read or change was not accepted. Nothing was appended.

    Attributes:
        reason: why.
        leader_hint: the leader this node knows of (0 when none), to retry there.
    """

    def __init__(self, reason: DropReason, leader_hint: NodeId = NONE, detail: str = ""):
        self.reason = reason
        self.leader_hint = leader_hint
        self.detail = detail
        text = reason.value
        if detail:
            text += f": {detail}"
        if leader_hint:
            text += f" (leader hint: {leader_hint})"
        super().__init__(text)


class ProposalLost(RaftError):
    """Another entry was committed at the proposal's index: it never took effect."""


class ProposalOutcomeUnknown(RaftError):
    """A snapshot covered the proposal's index before this node saw the entry there:
    it may or may not have taken effect."""


class RuntimeStopped(RaftError):
    """The runtime stopped before the outcome was known."""


class StorageError(RaftError):
    """Base class of storage failures."""


class CompactedError(StorageError):
    """The requested index lies before the first index: it was compacted away."""


class UnavailableError(StorageError):
    """The requested index lies beyond the last index."""


class SnapshotOutOfDateError(StorageError):
    """A snapshot older than the current one was offered."""


class DirectoryLockedError(StorageError):
    """Another `DiskStorage` (in this or another process) holds the data directory.

    Two nodes writing one log would corrupt it; the second one is refused at open.

    Attributes:
        path: the data directory.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        super().__init__(f"data directory {path!r} is in use by another process "
                         "(or another DiskStorage in this one)")


class CorruptionError(StorageError):
    """Stored data is corrupt in a way that cannot be repaired automatically.

    Attributes:
        path: the file in which the corruption was found.
        offset: the byte offset of the bad record.
    """

    def __init__(self, message: str, path: str = "", offset: int = -1):
        self.path = path
        self.offset = offset
        super().__init__(message)


class CodecError(RaftError, ValueError):
    """Bytes could not be decoded into a valid message, entry or record.

    This is the only exception `raft.codec` decoding functions raise.
    """
