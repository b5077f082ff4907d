"""What an operator sees of a `CoordinatorServer`: its HTTP routes, its readiness,
the event-loop lag probe and the info-level log lines of cluster events.

The server calls in here from a few hooks; nothing here decides anything the
cluster does.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Optional

import trio

from raft.runtime import Leadership
from raft.types import NONE, ConfChange, ConfState, Entry

from . import commands as c
from .http_status import json_body
from .metrics import CONTENT_TYPE, NodeMetrics

if TYPE_CHECKING:
    from .server import CoordinatorServer

log = logging.getLogger("coordinator.events")

LAG_PROBE_SECONDS = 0.25
"""How often the event-loop lag probe wakes up."""

CAUGHT_UP_ENTRIES = 64
"""A node whose applied index is within this many entries of its commit index is
caught up (applying always trails committing by a moment; readiness must not flap
with every write)."""


def readiness(server: "CoordinatorServer") -> tuple[bool, str]:
    """Whether the node can serve: a member of the configuration, a leader known,
    and caught up (`CAUGHT_UP_ENTRIES`). (False, why) otherwise."""
    runtime = server.runtime
    if runtime is None or server._stopping:
        return False, "not running"
    status = runtime.status()
    if server.config.node_id not in status.conf_state.members():
        return False, "not a member of the cluster (yet)"
    if status.leader == NONE:
        return False, "no known leader"
    if status.commit - runtime.applied_index > CAUGHT_UP_ENTRIES:
        return False, f"applying: {runtime.applied_index} of {status.commit}"
    return True, f"ready: leader {status.leader}, applied {runtime.applied_index}"


def routes(server: "CoordinatorServer"):
    """The HTTP handler of `coordinator.http_status` for `server`."""

    async def handle(path: str) -> tuple[int, str, bytes]:
        if path == "/metrics":
            return 200, CONTENT_TYPE, server.metrics.exposition()
        if path == "/healthz":
            return 200, "text/plain", b"ok\n"
        if path == "/readyz":
            ready, why = readiness(server)
            return (200 if ready else 503), "text/plain", (why + "\n").encode()
        if path == "/status":
            if server.runtime is None:
                return 503, "application/json", json_body({"error": "not running"})
            return 200, "application/json", json_body(server.status())
        return 404, "text/plain", b"not found: try /metrics /healthz /readyz /status\n"

    return handle


async def watch_loop_lag(metrics: NodeMetrics) -> None:
    """Sample how late a periodic sleep wakes up (the event loop was busy)."""
    while True:
        due = trio.current_time() + LAG_PROBE_SECONDS
        await trio.sleep_until(due)
        metrics.lag(max(0.0, trio.current_time() - due))


def role_changed(server: "CoordinatorServer", before: Optional[Leadership],
                 now: Leadership) -> None:
    """Count and log a role or leader change seen by `_watch_role`."""
    leader_changed = before is None or before.leader != now.leader
    role_changed = before is None or before.role is not now.role
    server.metrics.role_changed(before, now)
    if leader_changed:
        if now.leader == NONE:
            log.info("node %d: no leader in term %d", server.config.node_id, now.term,
                     extra={"event": "leader_lost", "term": now.term})
        else:
            log.info("node %d: leader is now %d in term %d (this node is %s)",
                     server.config.node_id, now.leader, now.term, now.role.value,
                     extra={"event": "leader_changed", "leader": now.leader,
                            "term": now.term, "role": now.role.value})
    elif role_changed:
        log.info("node %d: now %s in term %d", server.config.node_id, now.role.value,
                 now.term, extra={"event": "role_changed", "role": now.role.value,
                                  "term": now.term})


def conf_changed(entry: Entry, change: ConfChange, conf: ConfState) -> None:
    """Log an applied membership change with the resulting configuration."""
    log.info("membership change at index %d: %s node %d; voters %s, learners %s",
             entry.index, change.type.name.lower(), change.node_id,
             sorted(conf.voters), sorted(conf.learners),
             extra={"event": "membership_changed", "change": change.type.name.lower(),
                    "member": change.node_id, "index": entry.index})


def applied(command: Any, result: Any) -> None:
    """Log the cluster events in an applied command (leases, moves) with reasons."""
    if isinstance(command, c.ClientRequest):
        command = command.command
    if isinstance(command, c.Batch) and isinstance(result, c.BatchResult):
        for inner, outcome in zip(command.commands, result.results):
            applied(inner, outcome)
        return
    if isinstance(result, c.Error):
        return
    if isinstance(command, c.ExpireWorker) and isinstance(result, c.WorkerRemoved):
        log.info("worker %s lease expired: %d slots freed, %d held for its restart, "
                 "%d partitions quarantined", command.worker_id, len(result.freed),
                 len(result.held), len(result.quarantined),
                 extra={"event": "lease_expired", "worker": command.worker_id,
                        "reason": "lease expired"})
    elif isinstance(result, c.Assigned):
        log.info("partition %s slot %d assigned to %s (epoch %d)", result.partition_id,
                 result.slot, result.worker_id, result.epoch,
                 extra={"event": "move", "reason": "assigned",
                        "partition": result.partition_id, "worker": result.worker_id})
    elif isinstance(result, c.RevokeStarted):
        target = getattr(command, "target", None)
        log.info("partition %s slot %d revoked from %s (rebalance%s)", result.partition_id,
                 result.slot, result.worker_id, f" towards {target}" if target else "",
                 extra={"event": "move", "reason": "rebalance",
                        "partition": result.partition_id, "worker": result.worker_id})
    elif isinstance(result, c.SlotReleased):
        reason = "forced revoke: no release in time" if result.forced else "released"
        log.info("partition %s slot %d freed by %s (%s)", result.partition_id, result.slot,
                 result.worker_id, reason,
                 extra={"event": "move", "reason": "forced_revoke" if result.forced
                        else "released", "partition": result.partition_id,
                        "worker": result.worker_id})
