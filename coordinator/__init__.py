"""coordinator: a replicated partition-assignment state machine built on `raft`.

The pure parts (no I/O, no clock reads, no unseeded randomness):

* `CoordinatorState` — the replicated state machine (`apply`, `snapshot`, `restore`);
* the commands and results in `coordinator.commands`, and their CBOR codec
  (`encode_command`, `decode_command`, ...);
* `plan` — the placement planner, with `PlacementPolicy` and `moves_lower_bound`;
* `LeaseTable` / `WorkerLease` — lease arithmetic on the leader and the worker;
* `CoordinatorLeader` — what the leader proposes next;
* `NodeDriver` — what a coordinator node proposes, reads and answers
  (`coordinator.node`), and `WorkerSession` — a worker's side of the session
  (`coordinator.worker`), over the wire messages of `coordinator.protocol`.

The trio worker agent `Worker` (`coordinator.agent`), the trio `Client`
(`coordinator.client`) and the node server `CoordinatorServer` (`coordinator.server`)
are imported on first use, so that the pure parts load without trio.
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
from .node import NodeDriver
from .worker import WorkerSession


def __getattr__(name: str):
    if name == "Worker":
        from .agent import Worker
        return Worker
    if name == "Client":
        from .client import Client
        return Client
    if name == "CoordinatorServer":
        from .server import CoordinatorServer
        return CoordinatorServer
    raise AttributeError(f"module 'coordinator' has no attribute {name!r}")


__all__ = [
    "FORMAT_VERSION", "CommandDecodeError", "decode_command", "decode_result",
    "encode_command", "encode_result", "ErrorCode", "WorkerState", "batched",
    "CoordinatorConfig",
    "CoordinatorLeader", "HeartbeatAck", "LeaseTable", "LeaseTiming", "WorkerLease",
    "UNLIMITED", "Move", "PlacementPolicy", "max_imbalance", "moves_lower_bound", "plan",
    "quotas", "MovePhase", "OwnedSlot", "CoordinatorState", "CoordinatorStatus", "SnapshotError",
    "NodeDriver", "WorkerSession", "Worker", "Client", "CoordinatorServer",
]
