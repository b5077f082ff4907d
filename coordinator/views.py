"""Plain-data views of the coordinator state, as the client protocol returns them.

Pure functions of a `CoordinatorState` (and, for status, of the node's raft status):
the server calls them after a ReadIndex round; the CLI prints what they return.
"""

from __future__ import annotations

from typing import Any, Iterable, Optional

from .commands import WorkerState
from .members import members_of
from .state import CoordinatorState


def kv_entry(key: str, value: Optional[bytes], version: int) -> dict[str, Any]:
    return {"key": key, "value": value, "version": version}


def workers_view(state: CoordinatorState) -> list[dict[str, Any]]:
    """Every known worker with its zone, state and the partitions it owns."""
    out = []
    for worker_id in sorted(state.workers):
        record = state.workers[worker_id]
        out.append({"id": worker_id, "address": record.address, "zone": record.zone,
                    "state": record.state.value, "capacity": record.capacity,
                    "partitions": len(record.owned)})
    return out


def groups_view(state: CoordinatorState) -> list[dict[str, Any]]:
    """Every partition group with how many of its slots are owned."""
    out = []
    for name in sorted(state.groups):
        group = state.groups[name]
        owned = slots = 0
        for pid in group.partition_ids():
            record = state.partitions[pid]
            slots += record.replication_factor
            owned += sum(1 for owner in record.owners if owner is not None)
        out.append({"name": name, "count": group.count, "weight": group.weight,
                    "replication_factor": group.replication_factor,
                    "owned_slots": owned, "unowned_slots": slots - owned})
    return out


def group_view(state: CoordinatorState, name: str) -> Optional[dict[str, Any]]:
    """Every partition of one group (None if the group does not exist)."""
    group = state.groups.get(name)
    if group is None:
        return None
    partitions = []
    for pid in group.partition_ids():
        record = state.partitions[pid]
        partitions.append({"id": pid, "epoch": record.epoch, "owners": list(record.owners),
                           "quarantined": record.quarantined})
    return {"name": name, "count": group.count, "weight": group.weight,
            "replication_factor": group.replication_factor, "partitions": partitions}


def status_view(state: CoordinatorState, raft: dict[str, Any],
                recent_moves: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """The answering node's view: raft status plus a summary of the state."""
    summary = state.status()
    members = members_of(state)
    unowned = summary.slots - summary.assigned_slots
    live = [w for w in state.workers.values() if w.state is not WorkerState.DEAD]
    return {
        **raft,
        "addresses": {str(i): {"peer": m.peer_address, "client": m.client_address}
                      for i, m in sorted(members.items())},
        "workers": workers_view(state),
        "live_workers": len(live),
        "groups": len(state.groups),
        "partitions": len(state.partitions),
        "unowned_slots": unowned,
        "pending_moves": summary.pending_moves,
        "quarantined": list(summary.quarantined),
        "counters": dict(summary.counters),
        "recent_moves": list(recent_moves),
    }
