"""coordinator: a replicated partition-assignment state machine built on `raft`.

The pure parts (no I/O, no clock reads, no unseeded randomness):

* `CoordinatorState` — the replicated state machine (`apply`, `snapshot`, `restore`);
* the commands and results in `coordinator.commands`, and their CBOR codec
  (`encode_command`, `decode_command`, ...);
* `plan` — the placement planner, with `PlacementPolicy` and `moves_lower_bound`;
* `LeaseTable` / `WorkerLease` — lease arithmetic on the leader and the worker;
* `CoordinatorLeader` — what the leader proposes next.
"""

from .codec import (
    FORMAT_VERSION,
    CommandDecodeError,
    decode_command,
    decode_result,
    encode_command,
    encode_result,
)
from .commands import ErrorCode, WorkerState, batched
from .config import CoordinatorConfig
from .leader import CoordinatorLeader
from .lease import HeartbeatAck, LeaseTable, LeaseTiming, WorkerLease
from .placement import (
    UNLIMITED,
    Move,
    PlacementPolicy,
    max_imbalance,
    moves_lower_bound,
    plan,
    quotas,
)
from .records import MovePhase, OwnedSlot
from .state import CoordinatorState, CoordinatorStatus, SnapshotError

__all__ = [
    "FORMAT_VERSION", "CommandDecodeError", "decode_command", "decode_result",
    "encode_command", "encode_result", "ErrorCode", "WorkerState", "batched",
    "CoordinatorConfig",
    "CoordinatorLeader", "HeartbeatAck", "LeaseTable", "LeaseTiming", "WorkerLease",
    "UNLIMITED", "Move", "PlacementPolicy", "max_imbalance", "moves_lower_bound", "plan",
    "quotas", "MovePhase", "OwnedSlot", "CoordinatorState", "CoordinatorStatus", "SnapshotError",
]
