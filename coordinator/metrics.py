"""Prometheus metrics of one coordinator node.

Every `NodeMetrics` owns its own `prometheus_client.CollectorRegistry` (several
nodes in one process, as in tests, do not clash). Two kinds of figures:

* events the server reports as they happen (requests, proposals, elections,
  storage write latency, event-loop lag, overload refusals): counters and histograms
  updated through the methods below;
* state read at scrape time from the server (role, term, indexes, workers by state,
  unowned slots, transport and runtime counters, replicated move counters): a
  custom collector, so nothing is copied on the hot path.

Names start with ``raftcoord_``; the README's "Observing a node" lists them.
"""

from __future__ import annotations

import collections
from typing import TYPE_CHECKING, Any, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from raft.types import Role

if TYPE_CHECKING:
    from .server import CoordinatorServer

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
                    2.5, float("inf"))
_LAG_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, float("inf"))

# The replicated state machine's monotonic counters, by the reason a slot changed
# hands (`CoordinatorState.status().counters`).
_MOVE_REASONS = {"assignments": "assigned", "releases": "released",
                 "forced_revokes": "forced_revoke"}


class NodeMetrics:
    """The metrics of one `CoordinatorServer` (see the module docstring)."""

    def __init__(self, server: "CoordinatorServer") -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        registry = self.registry
        self.requests = Counter(
            "raftcoord_client_requests", "Client requests answered, by type and result "
            "(ok or the error kind).", ["type", "result"], registry=registry)
        self.proposals = Counter(
            "raftcoord_proposals", "Proposals of the node driver, by outcome "
            "(committed, or dropped_<reason>, lost, unknown).", ["outcome"],
            registry=registry)
        self.overloaded = Counter(
            "raftcoord_overloaded", "Requests or connections refused by a limit, by limit.",
            ["limit"], registry=registry)
        self.elections_started = Counter(
            "raftcoord_elections_started", "Times this node became a candidate.",
            registry=registry)
        self.elections_won = Counter(
            "raftcoord_elections_won", "Times this node became the leader.",
            registry=registry)
        self.leader_changes = Counter(
            "raftcoord_leader_changes", "Times the leader this node knows of changed.",
            registry=registry)
        self.storage_append = Histogram(
            "raftcoord_storage_append_seconds", "Raft log writes that were not fsynced.",
            buckets=_LATENCY_BUCKETS, registry=registry)
        self.storage_fsync = Histogram(
            "raftcoord_storage_fsync_seconds", "Raft log writes including their fsync.",
            buckets=_LATENCY_BUCKETS, registry=registry)
        self.loop_lag = Histogram(
            "raftcoord_event_loop_lag_seconds", "How late a periodic timer fired "
            "(time the event loop was busy elsewhere).", buckets=_LAG_BUCKETS,
            registry=registry)
        self.loop_lag_last = Gauge(
            "raftcoord_event_loop_lag_last_seconds", "The latest event-loop lag sample.",
            registry=registry)
        registry.register(_StateCollector(server))

    # -- events -------------------------------------------------------------------------

    def request(self, request: Any, reply: Any) -> None:
        """A client request was answered with `reply` (an `api` reply)."""
        result = getattr(reply, "kind", None) or "ok"
        self.requests.labels(type(request).__name__, result).inc()

    def proposal(self, outcome: str) -> None:
        self.proposals.labels(outcome).inc()

    def refused(self, limit: str) -> None:
        self.overloaded.labels(limit).inc()

    def role_changed(self, before: Any, now: Any) -> None:
        """Count a `raft.runtime.Leadership` change (``before`` None: the first).

        Changes can coalesce (a single voter goes candidate → leader between two
        looks): a leadership not seen as candidate in its term counts as an election
        started too.
        """
        if now.role is Role.CANDIDATE:
            self.elections_started.inc()
        elif now.role is Role.LEADER:
            if before is None or before.role is not Role.CANDIDATE or before.term != now.term:
                self.elections_started.inc()
            self.elections_won.inc()
        if before is None or before.leader != now.leader:
            self.leader_changes.inc()

    def storage_write(self, seconds: float, fsynced: bool) -> None:
        (self.storage_fsync if fsynced else self.storage_append).observe(seconds)

    def lag(self, seconds: float) -> None:
        self.loop_lag.observe(seconds)
        self.loop_lag_last.set(seconds)

    def exposition(self) -> bytes:
        """The registry in the Prometheus text format."""
        return generate_latest(self.registry)


class _StateCollector(Collector):
    """Figures read from the server at scrape time."""

    def __init__(self, server: "CoordinatorServer") -> None:
        self._server = server

    def collect(self) -> Iterator[Any]:
        server = self._server
        runtime = server.runtime
        if runtime is None:
            return
        status = runtime.status()
        role = GaugeMetricFamily("raftcoord_raft_role", "1 for this node's current role.",
                                 labels=["role"])
        for each in Role:
            role.add_metric([each.value], 1.0 if status.role is each else 0.0)
        yield role
        yield GaugeMetricFamily("raftcoord_raft_term", "Current raft term.", value=status.term)
        yield GaugeMetricFamily("raftcoord_raft_leader", "Leader id this node knows of "
                                "(0: none).", value=status.leader)
        yield GaugeMetricFamily("raftcoord_raft_commit_index", "Highest committed index.",
                                value=status.commit)
        yield GaugeMetricFamily("raftcoord_raft_applied_index", "Highest applied index.",
                                value=runtime.applied_index)
        yield GaugeMetricFamily("raftcoord_raft_voters", "Voters in the configuration.",
                                value=len(status.conf_state.voters))
        stats = runtime.stats
        yield CounterMetricFamily("raftcoord_raft_proposals", "Proposals handed to raft.",
                                  value=stats.proposals)
        yield CounterMetricFamily("raftcoord_raft_snapshots", "Log compactions.",
                                  value=stats.snapshots)
        yield CounterMetricFamily("raftcoord_raft_inbound_dropped", "Inbound raft messages "
                                  "dropped because the inbox was full.",
                                  value=stats.dropped_inbound)
        yield from self._transport(server)
        yield from self._state(server)
        s = server.stats
        yield GaugeMetricFamily("raftcoord_client_connections", "Open client connections.",
                                value=server.open_connections)
        yield CounterMetricFamily("raftcoord_client_connections_accepted",
                                  "Client connections accepted.", value=s.connections)
        yield CounterMetricFamily("raftcoord_client_connections_rejected",
                                  "Client connections closed for bad input.",
                                  value=s.rejected_connections)
        yield GaugeMetricFamily("raftcoord_client_requests_in_flight",
                                "Client requests being served.", value=server.in_flight)

    @staticmethod
    def _transport(server: "CoordinatorServer") -> Iterator[Any]:
        transport = server.transport
        if transport is None:
            return
        families = {
            "sent": CounterMetricFamily("raftcoord_peer_messages_sent",
                                        "Raft messages written to a peer.", labels=["peer"]),
            "received": CounterMetricFamily("raftcoord_peer_messages_received",
                                            "Raft messages received from a peer.",
                                            labels=["peer"]),
            "dropped": CounterMetricFamily("raftcoord_peer_messages_dropped",
                                           "Raft messages for a peer that were dropped.",
                                           labels=["peer"]),
            "snapshots_sent": CounterMetricFamily("raftcoord_peer_snapshot_sends",
                                                  "Snapshot chunks sent to a peer.",
                                                  labels=["peer"]),
        }
        for peer, counts in sorted(transport.peer_stats().items()):
            for field, family in families.items():
                family.add_metric([str(peer)], getattr(counts, field))
        yield from families.values()
        stats = transport.stats
        yield CounterMetricFamily("raftcoord_peer_frames_rejected", "Bad handshakes, "
                                  "frames and messages from the peer port.",
                                  value=stats.rejected)

    @staticmethod
    def _state(server: "CoordinatorServer") -> Iterator[Any]:
        state = server.replica.state
        by_state: collections.Counter = collections.Counter(
            record.state.value for record in state.workers.values())
        workers = GaugeMetricFamily("raftcoord_workers", "Known workers by state.",
                                    labels=["state"])
        for name, count in sorted(by_state.items()):
            workers.add_metric([name], count)
        yield workers
        summary = state.status()
        yield GaugeMetricFamily("raftcoord_partitions", "Partitions in all groups.",
                                value=len(state.partitions))
        yield GaugeMetricFamily("raftcoord_unowned_slots", "Partition slots without an "
                                "owner.", value=summary.slots - summary.assigned_slots)
        yield GaugeMetricFamily("raftcoord_pending_moves", "Slot moves in progress.",
                                value=summary.pending_moves)
        counters = summary.counters
        moves = CounterMetricFamily("raftcoord_slot_changes", "Slots that changed hands "
                                    "(replicated), by reason.", labels=["reason"])
        for field, reason in _MOVE_REASONS.items():
            moves.add_metric([reason], counters.get(field, 0))
        yield moves
        yield CounterMetricFamily("raftcoord_lease_expirations", "Workers declared dead "
                                  "because their lease expired (replicated).",
                                  value=counters.get("expirations", 0))
        yield CounterMetricFamily("raftcoord_quarantines", "Partitions quarantined "
                                  "(replicated).", value=counters.get("quarantines", 0))
