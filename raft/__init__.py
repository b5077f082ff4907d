"""raft: an embeddable, deterministic Raft consensus library.

The core (`RawNode`) is sans-IO: feed it ticks, messages and proposals; take `Ready`
batches out; persist, send and apply them; then `advance`. See the README section
"Embedding the raft library" for a complete driver loop. Optional batteries, not
imported here so that the core needs no event loop: `raft.runtime.RaftRuntime`
(a trio driver loop) and `raft.transport.TcpTransport` (messages over TCP).
"""

from .config import Config
from .errors import (
    CodecError,
    CompactedError,
    ConfigError,
    CorruptionError,
    DirectoryLockedError,
    DropReason,
    ProposalDropped,
    ProposalLost,
    ProposalOutcomeUnknown,
    RaftError,
    RuntimeStopped,
    SnapshotOutOfDateError,
    StorageError,
    UnavailableError,
)
from .storage import MemoryStorage, Storage, WritableStorage
from .types import (
    NONE,
    AppendEntries,
    AppendResponse,
    ConfChange,
    ConfChangeType,
    ConfState,
    Entry,
    EntryType,
    HardState,
    Heartbeat,
    HeartbeatResponse,
    InstallSnapshot,
    Message,
    NodeId,
    ReadIndexRequest,
    ReadIndexResponse,
    ReadState,
    Role,
    Snapshot,
    SnapshotMetadata,
    SnapshotResponse,
    SoftState,
    TimeoutNow,
    VoteRequest,
    VoteResponse,
)
from .node import RawNode  # noqa: E402  (after the types it is built from)
from .ready import ProgressStatus, Ready, Status  # noqa: E402
from .disk_storage import DiskStorage  # noqa: E402
