"""The simulated world: virtual clock, event queue, nodes, network, disks, clients.

Theory of operation
-------------------
Everything that happens is an *event* in one priority queue ordered by (virtual
time, sequence number); the sequence number makes ties deterministic. Handling an
event may push new ones. Nodes are real `RawNode`s driven exactly as a production
driver would: after every input the world drains `Ready` batches — install the
snapshot, persist hard state and entries on the node's simulated disk, *then* send
the messages, apply committed entries to the node's key-value store, answer reads,
`advance`. Messages cross the network as bytes (`raft.codec`).

Rules:

1. All randomness comes from `RngFactory` streams derived from the seed; the clock
   is virtual. The same `SimConfig` gives the same run, event for event; the trace
   hash (sha256 over every event) proves it.
2. The safety checker sees every step: it is called from the driver loop, so a
   violation stops the run at the step that caused it.
3. A crashed node loses its process (RawNode, state machine, pending requests) and
   whatever its disk had not fsynced; it restarts from its disk alone.
4. A paused node keeps its state but handles nothing; messages and requests for it
   wait and are handled, in order, when it resumes with its stale view of the world.
5. Membership faults change the configuration the way an operator would: the world
   keeps a wanted voter set and, on the leader's ticks, proposes one-server changes
   until the leader's configuration matches it. A removed node keeps running.
6. A run that stops making progress fails instead of hanging its sweep (the
   watchdog, see `SimConfig.max_events`): past its event budget, or after
   `FROZEN_LIMIT` events and Ready batches without virtual time moving (a driver
   loop that never runs out of work, an event that reschedules itself at the same
   instant), it fails as "livelock"; the runner's wall-clock budget, asked every
   `WATCH_EVERY` events or Ready batches through `World.watchdog`, makes it fail
   as "stuck". The world itself never reads a clock, and the checks only look, so
   a run that passes them has the same trace as without them.
"""

from __future__ import annotations

import hashlib
import heapq
import struct
import traceback
from collections import deque
from typing import Any, Callable

import attrs

from raft.codec import decode_message, encode_message
from raft.config import Config
from raft.errors import CodecError, CompactedError, ProposalDropped, UnavailableError
from raft.node import RawNode
from raft.types import ConfChange, ConfChangeType, EntryType, Role

from .disk import DISK_KINDS
from .faults import Fault, FaultConfig, generate_plan
from .history import History, OpKind, Operation, Outcome
from .kv import KeyValueStore, encode_command
from .network import Latency, Network
from .rng import RngFactory
from .safety import SafetyChecker, SafetyViolation

# Event kinds.
TICK, DELIVER, REQUEST, REPLY, TIMEOUT, FAULT, UNDO, HEAL, CHECK = range(9)
_EVENT_NAMES = ("tick", "deliver", "request", "reply", "timeout", "fault", "undo", "heal", "check")
_INVOKE = 9  # trace tag of a client invocation (not an event of its own)
_PACK = struct.Struct("<dBII").pack

# The watchdog (rule 6): how often it looks, and how much work may pass without
# virtual time moving. A sound run handles a few hundred events at one instant at
# most (a burst of deliveries with equal latency); a stuck driver loop reaches the
# limit in well under a second of wall time.
WATCH_EVERY = 4096
FROZEN_LIMIT = 50_000


class WatchdogExpired(Exception):
    """A run went past a budget of the watchdog (rule 6); becomes its violation.

    Attributes:
        invariant: "livelock" (the event budget, or no progress of virtual time)
            or "stuck" (the wall-clock budget).
        detail: what ran out, and the cluster's state at that moment.
    """

    def __init__(self, invariant: str, detail: str) -> None:
        super().__init__(f"{invariant}: {detail}")
        self.invariant = invariant
        self.detail = detail


def _event_view(item: tuple) -> tuple[float, int, Any, Any]:
    """(time, kind, a, b) of a queue item (time, seq, kind, a, b) or of a view."""
    return item if len(item) == 4 else (item[0], item[2], item[3], item[4])


class RecentEvents(deque):
    """The last events handled, as (time, kind, a, b).

    The event loop stores the queue items themselves, (time, seq, kind, a, b),
    instead of building a tuple per event; iterating gives the 4-tuples."""

    def __iter__(self):  # type: ignore[override]
        return map(_event_view, deque.__iter__(self))


@attrs.frozen
class WorkloadConfig:
    """The clients.

    Attributes:
        rate: operations per simulated second over all clients (0 = no clients).
        clients: concurrent clients; each has at most one operation in flight.
        keys: distinct keys.
        timeout: a client gives up after this long (the outcome is then unknown).
        read_fraction / cas_fraction: the mix; the rest are puts.
    """

    rate: float = 50.0
    clients: int = 10
    keys: int = 5
    timeout: float = 2.0
    read_fraction: float = 0.4
    cas_fraction: float = 0.2


NodeFactory = Callable[[Config, Any], RawNode]


@attrs.frozen
class SimConfig:
    """Everything that defines a run. With the same value, a run is the same.

    Attributes:
        seed: derives every random choice.
        nodes: cluster size (voters 1..nodes).
        duration: the fault phase in simulated seconds.
        converge_within: the healed phase must converge within this many seconds.
        tick_seconds: nominal virtual time per tick; each node drifts by up to
            `drift` (a fraction) from it.
        faults / workload: see `FaultConfig`, `WorkloadConfig`.
        plan: an explicit fault plan (None = generate one from the seed).
        disk: "file" (real DiskStorage on a MemoryFileSystem) or "model".
        compact_every: take a snapshot and compact once this many entries are
            applied beyond the first index (0 = never).
        node_factory: builds a RawNode (tests plant broken variants here).
        disk_factory: builds a node's disk (tests plant broken disks here).
        eager_commit / batch_reads: the nodes' `raft.Config` options. The simulator
            defaults to the message-saving settings (fewer events per simulated
            second); sweeps run the production defaults too.
        max_entries_per_message / max_inflight: the nodes' flow control
            (`raft.Config`); small values make a leader catch a follower up over
            many round trips (the "leader-churn" scenario).
        clock_edges: every node's clock runs at an edge of the drift bound, as
            fast or as slow as `drift` allows (else anywhere within it).
        codec: send messages as bytes through raft.codec.
        max_events_per_second: the default event budget, per simulated second of
            the run (fault phase plus healed phase): 25,000, several times what a
            sound run under every fault kind needs.
        max_events: the event budget of the whole run (0 = `max_events_per_second`
            times the run's simulated length). A run that handles more events (or
            Ready batches) fails as "livelock" (see rule 6).
        client_op_limit: the clients issue only the first this many operations
            the workload draws, then go idle (None = no limit). Shrinking a
            failing run lowers it.
        skipped_client_ops: numbers (in the order the workload draws them, from
            0) of operations the clients leave out; shrinking fills it.
    """

    seed: int = 0
    nodes: int = 5
    duration: float = 60.0
    converge_within: float = 30.0
    tick_seconds: float = 0.1
    drift: float = 0.05
    election_ticks: int = 10
    heartbeat_ticks: int = 2
    faults: FaultConfig = attrs.field(factory=FaultConfig)
    workload: WorkloadConfig = attrs.field(factory=WorkloadConfig)
    plan: tuple[Fault, ...] | None = None
    disk: str = "file"
    compact_every: int = 500
    latency: Latency = attrs.field(factory=Latency)
    node_factory: NodeFactory | None = attrs.field(default=None, eq=False)
    disk_factory: Callable[[int], Any] | None = attrs.field(default=None, eq=False)
    eager_commit: bool = False
    batch_reads: bool = True
    max_entries_per_message: int = 4096
    max_inflight: int = 256
    clock_edges: bool = False
    codec: bool = True
    max_events_per_second: float = 25_000.0
    max_events: int = 0
    client_op_limit: int | None = None
    skipped_client_ops: frozenset[int] = attrs.field(default=frozenset(), converter=frozenset)

    def event_budget(self, until: float = 0.0) -> int:
        """The number of events (and of Ready batches) a run to `until` may handle."""
        if self.max_events:
            return self.max_events
        return int(self.max_events_per_second * max(self.duration + self.converge_within, until, 1.0))


class SimNode:
    """One simulated server: a process (RawNode + state machine) over a disk."""

    def __init__(self, node_id: int, disk: Any, tick_interval: float) -> None:
        self.id = node_id
        self.disk = disk
        self.tick_interval = tick_interval
        self.raw: RawNode | None = None
        self.kv = KeyValueStore()
        self.up = False
        self.paused = False
        self.incarnation = 0
        self.role = Role.FOLLOWER
        self.leader = 0
        self.held: list[tuple[int, Any, Any]] = []  # events waiting while paused
        self.pending_writes: dict[int, Operation] = {}  # log index -> client op
        self.pending_reads: dict[bytes, Operation] = {}  # read context -> client op
        self.waiting_reads: list[tuple[int, Operation]] = []  # (read index, op)


class Client:
    def __init__(self, client_id: int) -> None:
        self.id = client_id
        self.target = 0
        self.current: Operation | None = None
        self.due = 0.0  # when the next operation is due (open-loop arrivals)
        self.timer_armed = False  # a TIMEOUT event for this client is queued
        self.last_seen: dict[str, str | None] = {}


@attrs.frozen
class Violation:
    """Why a run failed: a safety invariant, linearizability or liveness."""

    invariant: str
    detail: str
    time: float

    def to_json(self) -> dict[str, Any]:
        return {"invariant": self.invariant, "detail": self.detail, "time": round(self.time, 6)}


class World:
    """One simulated cluster run. Build it, then `run()` (or drive it step by step).

    Scenarios other than the key-value store subclass it: `state_machine` is the
    replicated application (apply / snapshot / restore / applied, as
    `KeyValueStore`), and `_next_op` / `_on_request` are the clients' side.
    """

    state_machine = KeyValueStore

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.rngs = RngFactory(config.seed)
        self.now = 0.0
        self._queue: list[tuple[float, int, int, Any, Any]] = []
        self._seq = 0
        self._hash = hashlib.sha256()
        self._trace_buffer: list[bytes] = []  # hashed in batches: one update per ~1000 parts
        self.events = 0
        self.recent: deque[tuple[float, int, Any, Any]] = RecentEvents(maxlen=40)
        self.network = Network(self.rngs.stream("network"), config.latency)
        self.voters = tuple(range(1, config.nodes + 1))
        # Membership faults move this; the leader is steered towards it (see _reconcile).
        self.wanted_voters = frozenset(self.voters)
        self._reconfiguring = False  # set by the first membership fault, never cleared
        self.checker = SafetyChecker(self.voters)
        self.history = History()
        self.violation: Violation | None = None
        self.heal_time: float | None = None
        self.converged_at: float | None = None
        self.timeline = Timeline(self.voters)
        self._rng_disk = self.rngs.stream("disk")
        self._rng_client = self.rngs.stream("client")
        self._rng_faults = self.rngs.stream("faults")
        self.workload_on = config.workload.rate > 0
        drift_rng = self.rngs.stream("drift")
        make_disk = config.disk_factory or DISK_KINDS[config.disk]
        self.nodes: dict[int, SimNode] = {}
        for node_id in self.voters:
            offset = drift_rng.uniform(-config.drift, config.drift)
            if config.clock_edges:
                offset = config.drift if offset > 0 else -config.drift
            interval = config.tick_seconds * (1.0 + offset)
            self.nodes[node_id] = SimNode(node_id, make_disk(node_id), interval)
        self.fault_config = config.faults.for_seed(self.rngs.stream("swarm"))
        # The plan is drawn even when one is given, so that the fault stream goes
        # on as in the seed's own run: a generated plan written out (a plan file,
        # a shrunk schedule) replays that run event for event.
        generated = generate_plan(self.fault_config, config.nodes, config.duration, self._rng_faults)
        self.plan = list(config.plan) if config.plan is not None else generated
        self.clients = [Client(i) for i in range(1, config.workload.clients + 1)]
        # Corner patterns waiting for the next leader: (action, argument); see
        # `_on_new_leader`.
        self._leader_triggers: list[tuple[str, Any]] = []
        # A shrunk schedule leaves client operations out (see SimConfig).
        self._ops_trimmed = config.client_op_limit is not None or bool(config.skipped_client_ops)
        self._ops_drawn = 0
        self._codec = config.codec
        self._compact_every = config.compact_every
        self._disks = {node_id: node.disk for node_id, node in self.nodes.items()}
        self._handlers = self._dispatch_table()
        # The watchdog (rule 6). `watchdog` is the runner's wall-clock check: called
        # every WATCH_EVERY events or Ready batches, it returns why the run must
        # stop, or None.
        self.watchdog: Callable[[], str | None] | None = None
        self.ready_batches = 0
        self._event_budget = config.event_budget()
        self._watch_events_at = self._watch_readies_at = min(WATCH_EVERY, self._event_budget + 1)
        self._watch_time = -1.0  # virtual time at the last look ...
        self._watch_work = 0  # ... and the events plus Ready batches handled then

    # == event queue ===============================================================

    def push(self, delay: float, kind: int, a: Any = None, b: Any = None) -> None:
        self._seq += 1
        heapq.heappush(self._queue, (self.now + delay, self._seq, kind, a, b))

    def _push_at(self, time: float, kind: int, a: Any = None, b: Any = None) -> None:
        self._seq += 1
        heapq.heappush(self._queue, (time, self._seq, kind, a, b))

    def _trace(self, kind: int, a: int, b: int, payload: bytes = b"") -> None:
        buffer = self._trace_buffer
        buffer.append(_PACK(self.now, kind, a, b))
        if payload:
            buffer.append(payload)
        if len(buffer) > 1000:
            self._flush_trace()

    # The busiest handlers append `_PACK(now, kind, a, b)` to `_trace_buffer`
    # themselves ("_trace_fast"), without the size check: the event loop (and
    # `step`) flushes after each batch. The hash is the same whenever the buffer
    # is flushed.

    def _flush_trace(self) -> None:
        buffer = self._trace_buffer
        self._hash.update(b"".join(buffer))
        buffer.clear()

    @property
    def trace_hash(self) -> str:
        self._flush_trace()
        return self._hash.hexdigest()

    # == setup =====================================================================

    def start(self, schedule_heal: bool = True) -> None:
        """Boot every node, schedule the plan, the clients and (unless driven by
        hand) the heal at the end of the fault phase."""
        for node in self.nodes.values():
            self._boot(node, recovering=False)
        for fault in self.plan:
            self._seq += 1
            heapq.heappush(self._queue, (fault.time, self._seq, FAULT, fault, None))
        if schedule_heal:
            self.push(self.config.duration, HEAL)
        for client in self.clients:
            self._schedule_client(client)

    def _boot(self, node: SimNode, recovering: bool) -> None:
        config = self.config
        if recovering:
            disk = node.disk
            before, lost = disk.before_crash, disk.unsynced_at_crash
            storage = disk.recover()
            self.checker.on_recover(node.id, before, lost, storage)
        else:
            storage = node.disk.storage
            self.checker.on_start(node.id, storage)
        raft_config = Config(
            id=node.id, voters=self.voters, election_ticks=config.election_ticks,
            heartbeat_ticks=config.heartbeat_ticks, eager_commit=config.eager_commit,
            batch_reads=config.batch_reads, max_entries_per_message=config.max_entries_per_message,
            max_inflight=config.max_inflight, seed=self.rngs.integer(f"node-{node.id}-incarnation-{node.incarnation}"))
        snapshot = storage.snapshot()
        node.kv = self.state_machine.restore(snapshot.data, snapshot.index)
        factory = config.node_factory or RawNode
        node.raw = factory(raft_config, storage)
        node.up = True
        node.paused = False
        node.role = Role.FOLLOWER
        node.leader = 0
        self.timeline.role(self.now, node.id, "follower", node.raw.term)  # the term it restarted with
        self.push(node.tick_interval, TICK, node.id, node.incarnation)

    # == running ===================================================================

    def run(self) -> "World":
        """Run to completion: fault phase, healed phase, convergence or a violation."""
        self.start()
        self.run_until(self.config.duration + self.config.converge_within)
        if self.violation is None and self.converged_at is None:
            self._fail("liveness", self._liveness_detail(), self.now)
        return self

    def run_until(self, deadline: float) -> None:
        """Handle events up to virtual time `deadline` (or until a violation).

        Raises nothing: a broken invariant is recorded in `violation`.
        """
        self._event_budget = self.config.event_budget(deadline)
        self._watch_events_at = min(self._watch_events_at, self._event_budget + 1)
        queue = self._queue
        try:
            if type(self).step is World.step:
                while self._run_events(deadline):
                    if self.events >= self._watch_events_at:
                        self._watch()
            else:
                while queue and self.violation is None and queue[0][0] <= deadline:
                    self.step()
                    if self.events >= self._watch_events_at:
                        self._watch()
        except SafetyViolation as exc:
            self._fail(exc.invariant, exc.detail, self.now)
        except WatchdogExpired as exc:
            self._fail(exc.invariant, exc.detail, self.now)
        except Exception as exc:  # noqa: BLE001 - any crash of the code under test is a finding
            self._fail("unexpected exception",
                       f"{type(exc).__name__}: {exc}\n" + traceback.format_exc(limit=12), self.now)
        if self.violation is None and self.now < deadline and self.converged_at is None:
            self.now = deadline

    def _run_events(self, deadline: float) -> bool:
        """`step` inlined, for up to 256 events; True when more may follow.

        Only used while `step` is not overridden. The loop runs in batches
        because CPython 3.11 specialises a function's bytecode only once it has
        been called a few times: one call running the whole simulation would
        stay unspecialised (about 1k instructions per event more)."""
        queue = self._queue
        pop = heapq.heappop
        handlers = self._handlers
        remember = self.recent.append
        events = self.events  # counted locally; no handler reads it
        try:
            for _ in range(256):
                if not queue or self.violation is not None or queue[0][0] > deadline:
                    return False
                item = pop(queue)
                self.now = item[0]
                events += 1
                remember(item)
                handlers[item[2]](item[3], item[4])
        finally:
            self.events = events
        if len(self._trace_buffer) > 1000:  # see _trace_fast
            self._flush_trace()
        return True

    def _watch(self) -> None:
        """The watchdog's look (rule 6), every WATCH_EVERY events or Ready batches.

        Raises:
            WatchdogExpired: a budget is spent.
        """
        budget = self._event_budget
        # Look again after WATCH_EVERY more, or just past the budget if sooner.
        self._watch_events_at = min(self.events + WATCH_EVERY, budget + 1)
        self._watch_readies_at = min(self.ready_batches + WATCH_EVERY, budget + 1)
        work = self.events + self.ready_batches
        if self.events > budget or self.ready_batches > budget:
            raise WatchdogExpired("livelock", (
                f"event budget spent: {self.events} events and {self.ready_batches} Ready batches "
                f"by t={self.now:.3f}s, budget {budget} (a message storm or a loop that never "
                f"settles; --max-events raises it); " + self.describe_cluster()))
        if self.now != self._watch_time:
            self._watch_time, self._watch_work = self.now, work
        elif work - self._watch_work > FROZEN_LIMIT:
            raise WatchdogExpired("livelock", (
                f"virtual time stopped at t={self.now:.4f}s: {work - self._watch_work} events and "
                f"Ready batches handled without it moving (a driver loop that never runs out of "
                f"work, or an event that reschedules itself at the same instant); "
                + self.describe_cluster()))
        if self.watchdog is not None:
            problem = self.watchdog()
            if problem:
                raise WatchdogExpired("stuck", f"{problem} at t={self.now:.4f}s after {self.events} "
                                      f"events and {self.ready_batches} Ready batches; "
                                      + self.describe_cluster())

    def heal_and_converge(self) -> bool:
        """Manual driving (tests): heal now and run the healed phase to its bound.
        Returns whether the cluster converged; a failure is recorded as liveness."""
        if self.heal_time is None:
            self._heal()
        self.run_until(self.now + self.config.converge_within)
        if self.violation is None and self.converged_at is None:
            self._fail("liveness", self._liveness_detail(), self.now)
        return self.converged_at is not None

    def in_flight(self) -> list[tuple[float, int, int, Any, Any]]:
        """Messages on the wire, in delivery order."""
        return sorted(e for e in self._queue if e[2] == DELIVER)

    def drop_in_flight(self, which: int) -> None:
        """Lose the `which`-th message on the wire (modulo their number)."""
        messages = [i for i, e in enumerate(self._queue) if e[2] == DELIVER]
        if messages:
            position = messages[which % len(messages)]
            self._trace(DELIVER, 0, 0, b"drop")
            self._queue[position] = self._queue[-1]
            self._queue.pop()
            heapq.heapify(self._queue)

    def step(self) -> None:
        """Handle the next event."""
        item = heapq.heappop(self._queue)
        self.now = item[0]
        self.events += 1
        self.recent.append(item)
        self._handlers[item[2]](item[3], item[4])
        if len(self._trace_buffer) > 1000:  # see _trace_fast
            self._flush_trace()

    def _dispatch_table(self) -> tuple[Callable[[Any, Any], None], ...]:
        # Indexed by event kind; bound once, so subclass overrides are honoured.
        return (
            self._on_tick,
            self._on_deliver,
            self._on_request,
            self._on_reply,
            lambda client, _: self._on_timeout(client),
            lambda fault, _: self._on_fault(fault),
            self._on_undo,
            lambda _a, _b: self._heal(),
            lambda _a, _b: self._check_converged(),
        )

    def _fail(self, invariant: str, detail: str, time: float) -> None:
        if self.violation is None:
            self.violation = Violation(invariant, detail, time)

    # == node driving ==============================================================

    def _on_tick(self, node_id: int, incarnation: int) -> None:
        node = self.nodes[node_id]
        if not node.up or node.incarnation != incarnation:
            return
        self._seq += 1
        heapq.heappush(self._queue, (self.now + node.tick_interval, self._seq, TICK, node_id, incarnation))
        if node.paused:
            return
        self._trace_buffer.append(_PACK(self.now, TICK, node_id, 0))  # _trace_fast
        raw = node.raw
        raw.tick()
        while raw.has_ready():  # _drive
            self._handle_ready(node, raw, raw.ready())
        if self._reconfiguring and node.role is Role.LEADER:
            self._reconcile(node)

    def _on_deliver(self, dst: int, packet: tuple[int, bytes | Any]) -> None:
        node = self.nodes[dst]
        if not node.up:
            return
        src, data = packet
        if (src, dst) in self.network.blocked:
            return  # cut while in flight
        if node.paused:
            node.held.append((DELIVER, dst, packet))
            return
        if self._codec:
            buffer = self._trace_buffer  # _trace_fast, with the bytes as payload
            buffer.append(_PACK(self.now, DELIVER, src, dst))
            buffer.append(data)
            try:
                msg = decode_message(data)
            except CodecError:
                return
        else:
            self._trace_buffer.append(_PACK(self.now, DELIVER, src, dst))  # _trace_fast
            msg = data
        raw = node.raw
        raw.step(msg)
        while raw.has_ready():  # _drive, inlined on the busiest path
            self._handle_ready(node, raw, raw.ready())

    def _drive(self, node: SimNode) -> None:
        """Drain the node's Ready batches, following the ordering contract."""
        raw = node.raw
        while raw.has_ready():
            self._handle_ready(node, raw, raw.ready())

    def _send_all(self, node_id: int, messages: list[Any]) -> None:
        delays_of = self.network.delays
        codec = self._codec
        queue = self._queue
        now = self.now
        for msg in messages:
            dst = msg.to
            delays = delays_of(node_id, dst)
            if not delays:
                continue  # lost
            packet = (node_id, encode_message(msg) if codec else msg)
            for delay in delays:
                self._seq += 1
                heapq.heappush(queue, (now + delay, self._seq, DELIVER, dst, packet))

    def _handle_ready(self, node: SimNode, raw: RawNode, rd: Any) -> None:
        self.ready_batches += 1
        if self.ready_batches >= self._watch_readies_at:
            self._watch()  # a driver loop may spin inside one event
        checker = self.checker
        disk = node.disk
        node_id = node.id
        # 1. Snapshot.
        snapshot = rd.snapshot
        if snapshot is not None:
            disk.apply_snapshot(snapshot)
            node.kv = self.state_machine.restore(snapshot.data, snapshot.index)
            checker.on_snapshot_installed(node_id, snapshot)
        # 2. Hard state and entries, durably (fsync when the Ready says so). A
        # leader's messages go first when the Ready allows it, as RaftRuntime
        # sends them while its write runs.
        send_first = rd.may_send_before_persist
        if send_first and rd.messages:
            self._send_all(node_id, rd.messages)
        entries = rd.entries
        hard_state = rd.hard_state
        if entries:
            storage = disk.storage
            try:  # the term the entries follow, as stored before this write
                prev_term = storage.term(entries[0].index - 1)
            except (CompactedError, UnavailableError):
                prev_term = None
            disk.save(hard_state, entries, rd.must_sync)
            checker.on_append(node_id, entries, prev_term)
            if hard_state is not None:
                checker.on_hard_state(node_id, hard_state, disk.storage.last_index())
        elif hard_state is not None:
            disk.save(hard_state, entries, rd.must_sync)
            checker.on_hard_state(node_id, hard_state, disk.storage.last_index())
        if rd.soft_state is not None:
            self._on_soft_state(node, raw, rd.soft_state)
        # 3. Only now send (unless sent first).
        if rd.messages and not send_first:
            self._send_all(node_id, rd.messages)
        # 4. Apply.
        committed = rd.committed_entries
        if committed:
            disks = self._disks
            kv = node.kv
            for entry in committed:
                checker.on_apply(node_id, entry, disks)
                request_id = -1
                if entry.type is EntryType.CONF_CHANGE:
                    raw.apply_conf_change(entry)
                    kv.applied = entry.index
                elif entry.data:
                    request_id, result = kv.apply(entry.index, entry.data)
                else:
                    kv.applied = entry.index  # a leader's no-op
                if node.pending_writes:
                    op = node.pending_writes.pop(entry.index, None)
                    if op is not None:
                        # Another entry took the slot: the proposal is certainly lost
                        # (an entry never moves to another index).
                        if op.op_id == request_id:
                            self._reply(node, op, Outcome.OK, result)
                        else:
                            self._reply(node, op, Outcome.FAIL, None)
        # 5. Reads.
        for read in rd.read_states:
            op = node.pending_reads.pop(read.context, None)
            if op is not None:
                node.waiting_reads.append((read.index, op))
        if node.waiting_reads:
            applied = node.kv.applied
            still = []
            for index, op in node.waiting_reads:
                if index <= applied:
                    self._reply(node, op, Outcome.OK, node.kv.get(op.key))
                else:
                    still.append((index, op))
            node.waiting_reads = still
        raw.advance(rd)
        # Only applying moves the compaction point; the first test of
        # _maybe_compact is made here, as it nearly always fails.
        if committed and self._compact_every and (
                node.kv.applied - disk.storage.first_index() >= self._compact_every):
            self._maybe_compact(node, raw)
        if committed and self.heal_time is not None and self.converged_at is None:
            # A cluster kept busy by a steady trickle of writes may be fully
            # replicated only between two periodic checks (and periodic writers can
            # phase-lock with them): look whenever entries are applied, too.
            self._try_converge()

    def _on_soft_state(self, node: SimNode, raw: RawNode, soft: Any) -> None:
        node.leader = soft.leader
        if soft.role is not node.role:
            node.role = soft.role
            term = raw.term
            self.timeline.role(self.now, node.id, soft.role.value, term)
            self._trace(FAULT, node.id, term, soft.role.value.encode())
            if soft.role is Role.LEADER:
                self.checker.on_leader(node.id, term, node.disk.storage)
                self.timeline.leader(self.now, node.id, term)
                if self._leader_triggers:
                    self._on_new_leader(node)

    def _maybe_compact(self, node: SimNode, raw: RawNode) -> None:
        every = self.config.compact_every
        if not every:
            return
        applied = node.kv.applied
        storage = node.disk.storage
        if applied - storage.first_index() >= every and applied <= storage.last_index():
            try:
                snapshot = raw.create_snapshot(applied, node.kv.snapshot())
            except ProposalDropped:
                return  # e.g. the configuration at `applied` is unknown to this node
            node.disk.compact(snapshot)

    # == clients ===================================================================

    def _schedule_client(self, client: Client) -> None:
        """Arrange the client's next operation.

        Arrivals are open-loop: each client's operations are due at Poisson times
        (rate / clients per second), so slow answers do not lower the offered load.
        A client still has one operation in flight at a time; one that fell behind
        issues the next at once, catching up at most one timeout of backlog.
        """
        if not self.workload_on:
            return  # driven by hand (tests) or the healed phase
        workload = self.config.workload
        while True:
            think = self._rng_client.expovariate(workload.rate / workload.clients)
            client.due = max(client.due + think, self.now - workload.timeout)
            if not self._ops_trimmed:
                break
            number = self._ops_drawn
            self._ops_drawn += 1
            limit = self.config.client_op_limit
            if limit is not None and number >= limit:
                return  # this client is done
            if number not in self.config.skipped_client_ops:
                break
            # Left out: the client thinks on to its next operation.
        self._next_op(client, max(client.due, self.now))

    def _next_op(self, client: Client, at: float) -> None:
        rng = self._rng_client
        workload = self.config.workload
        key = f"k{rng.randrange(workload.keys)}"
        roll = rng.random()
        if client.current is not None:
            return  # one operation in flight at a time (see `submit`)
        if roll < workload.read_fraction:
            self._invoke(client, OpKind.GET, key, None, 0, at)
        elif roll < workload.read_fraction + workload.cas_fraction:
            self._invoke(client, OpKind.CAS, key, client.last_seen.get(key), 0, at)
        else:
            self._invoke(client, OpKind.PUT, key, None, 0, at)

    def submit(self, client_id: int, kind: OpKind, key: str, expected: str | None = None,
               target: int = 0, at: float | None = None) -> Operation | None:
        """Client `client_id` invokes an operation now, or at the later virtual
        time `at` (a no-op while it has one in flight). Written values are unique:
        "c<client>-<op id>".

        A later invocation is recorded at once with its future time: the client is
        idle until then, and the request's arrival is its only event.
        """
        client = self.clients[client_id - 1]
        if client.current is not None:
            return None
        return self._invoke(client, kind, key, expected if kind is OpKind.CAS else None, target,
                            self.now if at is None else at)

    def _invoke(self, client: Client, kind: OpKind, key: str, expected: str | None,
                target: int, at: float) -> Operation:
        """`submit` for an idle client, with every argument given."""
        history = self.history
        value = None if kind is OpKind.GET else f"c{client.id}-{len(history)}"
        op = history.invoke(client.id, kind, key, at, value, expected)
        client.current = op
        rng = self._rng_client
        if target:
            client.target = target
        elif not client.target:
            client.target = rng.choice(self.voters)
        # The payload is repr((kind, key, at)), written out.
        self._trace(_INVOKE, client.id, client.target, f"({kind.value!r}, {key!r}, {at!r})".encode())
        self._seq += 1
        heapq.heappush(self._queue, (at + 0.0005 + rng.expovariate(1000.0), self._seq, REQUEST,
                                     client.target, (client, op)))
        if not client.timer_armed:
            # One timer per client, re-armed for the operation in flight when it
            # fires, instead of one event per operation.
            client.timer_armed = True
            self._push_at(at + self.config.workload.timeout, TIMEOUT, client)
        return op

    def _on_request(self, node_id: int, request: tuple[Client, Operation]) -> None:
        client, op = request
        node = self.nodes[node_id]
        if not node.up:
            # Connection refused: the request certainly did not run.
            self.push(0.001, REPLY, request, (Outcome.FAIL, None, 0))
            return
        if node.paused:
            node.held.append((REQUEST, node_id, request))
            return
        raw = node.raw
        try:
            if op.kind is OpKind.GET:
                context = str(op.op_id).encode()
                raw.read_index(context)
                node.pending_reads[context] = op
            else:
                command = encode_command(op.op_id, op.kind.value, op.key, op.value, op.expected)
                index = raw.propose(command)
                node.pending_writes[index] = op
        except ProposalDropped as exc:
            self.push(0.001, REPLY, request, (Outcome.FAIL, None, exc.leader_hint))
            return
        self._drive(node)

    def _reply(self, node: SimNode, op: Operation, outcome: Outcome, result: Any) -> None:
        # The answer reaches the client in the instant the node sends it: one event
        # less per operation, and a tighter interval for the linearizability check.
        self._on_reply((self.clients[op.client - 1], op), (outcome, result, node.leader))

    def _on_reply(self, request: tuple[Client, Operation], answer: tuple[Outcome, Any, int]) -> None:
        client, op = request
        outcome, result, hint = answer
        if op.outcome is not None:
            return  # the client already gave up
        self.history.complete(op, outcome, self.now, result)
        self.timeline.op(op)
        self._trace(REPLY, client.id, op.op_id, f"{outcome.value}{result!r}".encode())
        if outcome is Outcome.OK:
            if op.kind is OpKind.GET:
                client.last_seen[op.key] = result
            elif op.kind is OpKind.PUT or result:
                client.last_seen[op.key] = op.value
        elif outcome is Outcome.FAIL:
            client.target = hint if hint and hint != client.target else self._rng_client.choice(self.voters)
        client.current = None
        self._schedule_client(client)

    def _on_timeout(self, client: Client) -> None:
        client.timer_armed = False
        op = client.current
        if op is None:
            return
        deadline = op.invoke_time + self.config.workload.timeout
        if deadline > self.now:  # the timer was armed for an earlier operation
            client.timer_armed = True
            self._push_at(deadline, TIMEOUT, client)
            return
        self.history.complete(op, Outcome.UNKNOWN, self.now)
        self.timeline.op(op)
        self._trace(TIMEOUT, client.id, op.op_id)
        client.target = self._rng_client.choice(self.voters)
        client.current = None
        self._schedule_client(client)

    # == faults ====================================================================

    def _on_fault(self, fault: Fault) -> None:
        if self.heal_time is not None:
            return
        self._trace(FAULT, fault.node, 0, fault.describe().encode())
        self.apply_fault(fault)

    def apply_fault(self, fault: Fault) -> None:
        """Start `fault` now; its undo is scheduled after its duration."""
        kind = fault.kind
        rng = self._rng_faults
        network = self.network
        if kind == "transfer":
            self._transfer(fault.node)
            return
        if kind == "churn":
            self._start_churn(fault.duration)
            return
        if kind == "deposed_read":
            self._depose_leader(fault.duration)
            return
        node_id = fault.node
        if not node_id:
            leaders = [n.id for n in self.nodes.values() if n.up and n.role is Role.LEADER]
            node_id = leaders[-1] if leaders else rng.choice(self.voters)
        if kind == "loss":
            network.faults.loss = fault.rate
        elif kind == "duplicate":
            network.faults.duplicate = fault.rate
        elif kind == "reorder":
            network.faults.reorder = fault.rate
        elif kind in ("partition", "one_way", "bridge"):
            others = [n for n in self.voters if kind != "bridge" or n != node_id]
            if len(others) < 2:
                return  # nothing to cut
            rng.shuffle(others)
            cut = rng.randint(1, len(others) - 1)
            side_a, side_b = others[:cut], others[cut:]
            if kind == "bridge":
                network.bridge(side_a, side_b, node_id)
            else:
                network.split(side_a, side_b, one_way=(kind == "one_way"))
            self.timeline.partition_start(self.now, network.partition)
            self.push(fault.duration, UNDO, "heal-network", network.partition)
        elif kind == "isolate":
            network.isolate(node_id, self.voters)
            self.timeline.partition_start(self.now, network.partition)
            self.push(fault.duration, UNDO, "heal-network", network.partition)
        elif kind == "crash":
            self.crash(node_id)
            self.push(fault.duration, UNDO, "restart", node_id)
        elif kind == "pause":
            self.pause(node_id)
            self.push(fault.duration, UNDO, "resume", node_id)
        elif kind == "membership":
            self.remove_member(node_id, fault.duration)

    # == corner patterns (see simulations.faults) ====================================

    def _serving_leader(self) -> SimNode | None:
        leaders = [n for n in self.nodes.values() if n.up and not n.paused and n.role is Role.LEADER]
        return leaders[-1] if leaders else None

    def _cut_alone(self, node_id: int) -> None:
        self.network.split([node_id], [n for n in self.voters if n != node_id])
        self.timeline.partition_start(self.now, self.network.partition)

    def _start_churn(self, duration: float) -> None:
        """Figure 8 on purpose: cut the leader off alone (clients keep writing to it,
        so its log grows entries nobody else has), and arm the next steps for the
        next leaders (`_on_new_leader`); everything is undone after `duration`."""
        leader = self._serving_leader()
        if leader is None or len(self.voters) < 3 or self._leader_triggers:
            return
        self._trace(FAULT, leader.id, 5, b"churn")
        self._cut_alone(leader.id)
        self._leader_triggers.append(("cut", leader.id))
        self.push(duration, UNDO, "churn-end", None)

    def _depose_leader(self, duration: float) -> None:
        """Cut the leader off alone and make the others elect a new one at once: their
        clocks jump by an election timeout (one by two, so that it campaigns first),
        while the old leader still believes it leads until check-quorum."""
        leader = self._serving_leader()
        if leader is None or len(self.voters) < 3:
            return
        self._trace(FAULT, leader.id, 6, b"depose")
        self._cut_alone(leader.id)
        self.push(duration, UNDO, "heal-network", self.network.partition)
        others = [self.nodes[n] for n in self.voters if n != leader.id]
        others = [n for n in others if n.up and not n.paused]
        if not others:
            return
        first = self._rng_faults.choice(others)
        for node in [first] + [n for n in others if n is not first]:
            self._jump_clock(node, self.config.election_ticks * (2 if node is first else 1))

    def _on_new_leader(self, node: SimNode) -> None:
        """Run the corner patterns armed for the next leader.

        "cut" (churn, step 2): a node other than the cut leader won: cut it off
        alone at once, before its first entry leaves it, and arm "crash".
        "crash" (churn, step 3): the next leader goes down a few round trips into
        catching the others up (see `_on_undo`, "churn-crash")."""
        action, arg = self._leader_triggers[0]
        if action == "cut" and node.id != arg:
            self._leader_triggers[0] = ("crash", node.id)
            self._cut_alone(node.id)
            # The first leader, back in touch with the others, campaigns as soon as
            # it has heard of the new term (its clock jumps an election timeout).
            self.push(0.02, UNDO, "churn-campaign", (arg, 20))
        elif action == "crash" and node.id != arg:
            self._leader_triggers.pop(0)
            delay = self._rng_faults.uniform(0.002, 0.03)
            self.push(delay, UNDO, "churn-crash", (node.id, node.incarnation, arg))

    def _jump_clock(self, node: SimNode, ticks: int) -> None:
        """`node`'s clock jumps forward by `ticks` ticks at once."""
        raw = node.raw
        for _ in range(ticks):
            raw.tick()
        self._drive(node)

    def _churn_campaign(self, node_id: int, tries: int) -> None:
        node = self.nodes[node_id]
        if not self._leader_triggers or not node.up or node.paused:
            return
        if node.role is Role.LEADER:  # not told of the new term yet: look again soon
            if tries > 0:
                self.push(0.05, UNDO, "churn-campaign", (node_id, tries - 1))
            return
        self._jump_clock(node, 2 * self.config.election_ticks)

    def _churn_crash(self, node_id: int, incarnation: int, cut: int) -> None:
        node = self.nodes[node_id]
        if not node.up or node.incarnation != incarnation:
            return
        # The host goes down with what it had not sent yet: its messages still
        # on the way are lost too.
        queue = self._queue
        kept = [e for e in queue if not (e[2] == DELIVER and e[4][0] == node_id)]
        if len(kept) != len(queue):
            queue[:] = kept
            heapq.heapify(queue)
        self.crash(node_id)
        self.push(self._rng_faults.uniform(1.0, 3.0), UNDO, "restart", node_id)
        if self.network.partition:  # the leader cut off in step 2 may come back
            self.heal_network()

    # == membership ================================================================

    def remove_member(self, node_id: int, duration: float) -> None:
        """Take `node_id` out of the wanted configuration for `duration` seconds.

        One node at a time at most, so the wanted configuration keeps a majority of
        the original voters and the healed phase only has one change to undo."""
        if len(self.wanted_voters) < len(self.voters) or len(self.voters) < 2:
            return
        self._trace(FAULT, node_id, 3, b"remove member")
        self.timeline.member_out(self.now, node_id)
        self.wanted_voters = self.wanted_voters - {node_id}
        self._reconfiguring = True
        self.push(duration, UNDO, "rejoin", node_id)
        self._reconcile_leaders()

    def add_member(self, node_id: int) -> None:
        """Want `node_id` back in the configuration (nothing if it is wanted)."""
        if node_id in self.wanted_voters:
            return
        self._trace(UNDO, node_id, 3, b"add member")
        self.timeline.member_in(self.now, node_id)
        self.wanted_voters = self.wanted_voters | {node_id}
        self._reconcile_leaders()

    def _reconcile_leaders(self) -> None:
        for node in list(self.nodes.values()):
            if node.up and not node.paused and node.role is Role.LEADER:
                self._reconcile(node)

    def _reconcile(self, node: SimNode) -> None:
        """Propose the next one-server change from the leader's configuration towards
        `wanted_voters`, as an operator's tool would; retried on the leader's ticks
        while the core refuses (a change pending, a new leader not ready, ...)."""
        raw = node.raw
        conf = raw.conf_state
        wanted = self.wanted_voters
        if conf.voters == wanted:
            return
        missing = sorted(wanted - conf.voters)
        change = (ConfChange(ConfChangeType.ADD_VOTER, missing[0]) if missing
                  else ConfChange(ConfChangeType.REMOVE_NODE, min(conf.voters - wanted)))
        try:
            raw.propose_conf_change(change)
        except ProposalDropped:
            return
        self._trace(FAULT, change.node_id, 4, change.type.name.encode())
        self._drive(node)

    def _transfer(self, target: int) -> None:
        """Ask the current leader (if any) to hand leadership to `target` (0 = any)."""
        leaders = [n for n in self.nodes.values() if n.up and not n.paused and n.role is Role.LEADER]
        if not leaders:
            return
        leader = leaders[-1]
        others = [v for v in self.voters if v != leader.id]
        if not others:
            return
        if not target or target == leader.id:
            target = self._rng_faults.choice(others)
        try:
            leader.raw.transfer_leadership(target)
        except ProposalDropped:
            return
        self._drive(leader)

    def _on_undo(self, action: str, arg: Any) -> None:
        if action == "heal-network":
            if self.network.partition == arg:
                self.heal_network()
        elif action == "restart":
            self.restart(arg)
        elif action == "resume":
            self.resume(arg)
        elif action == "rejoin":
            self.add_member(arg)
        elif action == "churn-crash":
            self._churn_crash(*arg)
        elif action == "churn-campaign":
            self._churn_campaign(*arg)
        elif action == "churn-end":
            if self._leader_triggers:
                self._leader_triggers.clear()
                self.heal_network()

    def heal_network(self) -> None:
        if self.network.partition:
            self._trace(UNDO, 0, 0, b"heal")
            self.network.heal()
            self.timeline.partition_end(self.now)

    def crash(self, node_id: int) -> None:
        node = self.nodes[node_id]
        if not node.up:
            return
        self._trace(FAULT, node_id, 1, b"crash")
        node.up = False
        node.paused = False
        node.incarnation += 1
        node.raw = None
        node.held.clear()
        node.pending_writes.clear()
        node.pending_reads.clear()
        node.waiting_reads.clear()
        node.role = Role.FOLLOWER
        node.disk.crash(self._rng_disk)
        self.timeline.node_down(self.now, node_id, "crash")

    def restart(self, node_id: int) -> None:
        node = self.nodes[node_id]
        if node.up:
            return
        self._trace(UNDO, node_id, 1, b"restart")
        self.timeline.node_up(self.now, node_id)
        self._boot(node, recovering=True)

    def pause(self, node_id: int) -> None:
        node = self.nodes[node_id]
        if not node.up or node.paused:
            return
        self._trace(FAULT, node_id, 2, b"pause")
        node.paused = True
        self.timeline.node_down(self.now, node_id, "pause")

    def resume(self, node_id: int) -> None:
        node = self.nodes[node_id]
        if not node.up or not node.paused:
            return
        self._trace(UNDO, node_id, 2, b"resume")
        node.paused = False
        self.timeline.node_up(self.now, node_id)
        held, node.held = node.held, []
        for kind, a, b in held:
            if kind == DELIVER:
                self._on_deliver(a, b)
            else:
                self._on_request(a, b)
            if not node.up:
                break

    # == healed phase ==============================================================

    def _heal(self) -> None:
        """End of the fault phase: undo every fault, stop new client operations."""
        self.heal_time = self.now
        self._trace(HEAL, 0, 0)
        self._leader_triggers.clear()
        self.workload_on = False
        self.timeline.heal(self.now)
        self.network.faults.loss = self.network.faults.duplicate = self.network.faults.reorder = 0.0
        self.heal_network()
        for node_id in self.voters:
            self.restart(node_id)
            self.resume(node_id)
        for node_id in self.voters:
            self.add_member(node_id)
        self.push(0.25, CHECK)

    def converged(self) -> bool:
        """One leader known to all, every entry committed and applied everywhere,
        no client operation left open."""
        leaders = [n for n in self.nodes.values() if n.up and n.role is Role.LEADER]
        if len(leaders) != 1:
            return False
        leader = leaders[0].raw
        last = leader.log.last_index()
        if leader.commit_index != last:
            return False
        if self._reconfiguring and leader.conf_state.voters != self.wanted_voters:
            return False
        for node in self.nodes.values():
            if not node.up or node.paused or node.raw.leader != leader.id or node.raw.term != leader.term:
                return False
            if node.raw.log.last_index() != last or node.kv.applied != last:
                return False
        return not any(client.current is not None for client in self.clients)

    def _check_converged(self) -> None:
        """The healed phase's periodic check (a CHECK event)."""
        if not self._try_converge():
            self.push(0.25, CHECK)

    def _try_converge(self) -> bool:
        """End the run if the cluster has converged now; the replicas must then agree."""
        if self.converged():
            self.converged_at = self.now
            self._trace(CHECK, 0, 0)
            states = {n.id: n.kv.data for n in self.nodes.values()}
            first = states[self.voters[0]]
            for node_id, data in states.items():
                if data != first:
                    self._fail("replicas agree",
                               f"after convergence node {node_id} holds {data!r}, node "
                               f"{self.voters[0]} holds {first!r}", self.now)
            self._queue.clear()
            return True
        return False

    def _liveness_detail(self) -> str:
        return (f"no convergence within {self.config.converge_within}s of healing: "
                + self.describe_cluster())

    def describe_cluster(self) -> str:
        """Every node's role, term and log position, and the open client operations."""
        parts = []
        for node in self.nodes.values():
            if not node.up:
                parts.append(f"node {node.id} down")
                continue
            raw = node.raw
            parts.append(f"node {node.id} {node.role.value} term {raw.term} leader {raw.leader} "
                         f"commit {raw.commit_index} last {raw.log.last_index()} applied {node.kv.applied}")
        open_ops = sum(1 for c in self.clients if c.current is not None)
        return "; ".join(parts) + f"; {open_ops} client ops open"

    # == reporting =================================================================

    def describe_recent(self, count: int = 25) -> list[str]:
        """The last events before now, for a violation report."""
        lines = []
        for time, kind, a, b in map(_event_view, list(self.recent)[-count:]):
            name = _EVENT_NAMES[kind]
            if kind == DELIVER:
                src, data = b
                try:
                    msg = decode_message(data) if isinstance(data, bytes) else data
                    what = repr(msg)
                except CodecError:
                    what = f"{len(data)} undecodable bytes"
                if len(what) > 200:
                    what = what[:200] + "…"
                text = f"deliver {src}->{a}: {what}"
            elif kind == TICK:
                text = f"tick node {a}"
            elif kind == FAULT:
                text = f"fault {a.describe()}"
            elif kind == UNDO:
                text = f"undo {a} {b}"
            elif kind == REQUEST:
                text = f"request to node {a}: {b[1].describe_call()}"
            elif kind == REPLY:
                result = f" = {b[1]!r}" if b[1] is not None else ""
                text = f"reply {b[0].value}{result} (leader hint {b[2]}): {a[1].describe_call()}"
            elif kind == TIMEOUT:
                text = f"client {a.id} timer"
            else:
                text = name
            lines.append(f"{time:10.4f}  {text}")
        return lines


class Timeline:
    """What the HTML report draws: roles, crashes, pauses, partitions, leaders, ops."""

    def __init__(self, nodes: tuple[int, ...]) -> None:
        self.nodes = nodes
        self.roles: dict[int, list[tuple[float, str, int]]] = {n: [] for n in nodes}
        self.down: dict[int, list[list[Any]]] = {n: [] for n in nodes}  # [start, end, why]
        self.partitions: list[list[Any]] = []  # [start, end, description]
        self.leaders: list[tuple[float, int, int]] = []  # (time, node, term)
        # Spans during which a node was wanted out of the configuration: [start, end].
        self.removed: dict[int, list[list[Any]]] = {n: [] for n in nodes}
        self.ops: list[Operation] = []
        self.heal_time: float | None = None

    def role(self, time: float, node: int, role: str, term: int) -> None:
        self.roles[node].append((time, role, term))

    def leader(self, time: float, node: int, term: int) -> None:
        self.leaders.append((time, node, term))

    def node_down(self, time: float, node: int, why: str) -> None:
        self.down[node].append([time, None, why])

    def node_up(self, time: float, node: int) -> None:
        spans = self.down[node]
        if spans and spans[-1][1] is None:
            spans[-1][1] = time

    def partition_start(self, time: float, description: str) -> None:
        self.partition_end(time)
        self.partitions.append([time, None, description])

    def partition_end(self, time: float) -> None:
        if self.partitions and self.partitions[-1][1] is None:
            self.partitions[-1][1] = time

    def op(self, op: Operation) -> None:
        self.ops.append(op)

    def member_out(self, time: float, node: int) -> None:
        self.removed[node].append([time, None])

    def member_in(self, time: float, node: int) -> None:
        spans = self.removed[node]
        if spans and spans[-1][1] is None:
            spans[-1][1] = time

    def heal(self, time: float) -> None:
        self.heal_time = time
