"""The coordinator on the simulated cluster: `CoordinatorState` replicated by Raft,
driven by `CoordinatorLeader`, with simulated worker processes and KV clients.

Theory of operation
-------------------
`CoordWorld` is a `World` whose replicated state machine is `CoordinatorState`
(log entries are a request id followed by `coordinator.codec` bytes). On top of the
Raft driving of `World` it adds:

1. **Node drivers.** Every node process runs a `coordinator.node.NodeDriver`, the
   same class the server runs: it gets the node's role changes, applied commands,
   ticks and worker messages with the node's own (drifting) clock, and the world
   carries out what it returns — proposals through the node's `RawNode`, ReadIndex
   rounds (a heartbeat is acknowledged only once one begun after its arrival
   confirmed leadership) and answers over the simulated network. The simulated
   workers do not wait for answers to their writes (releases, checkpoints, leaves),
   so only answers to heartbeats are delivered. The driver dies with the process.
2. **Workers** (`coord_workers.SimWorker`) run `coordinator.worker.WorkerSession` and
   talk to nodes over the simulated network
   (its loss, latency and cuts apply; worker cuts are extra blocked links). A
   partition of the nodes cuts workers too: each is on one side of it (or, less
   often, reaches both), so a worker may be left with only a minority or a deposed
   leader to heartbeat to. Worker
   releases, checkpoint writes and leaves become `Released`, `FencedPut` and
   `DeregisterWorker` proposals.
3. **Clients** run the usual put / get (ReadIndex) / cas workload against the
   metadata KV (`KvPut`, `KvCas` by version; writes go through the node driver).
   Written values are unique, so a version identifies a value and the history is
   checked as a value register.
4. **Operator actions** (create groups, drain) are proposed through whichever node
   leads and retried until applied.
5. **Checks** (`coord_checkers`): ownership (and the end of failovers) after
   *every* event; every committed command once (epochs, fencing, no false
   quarantine); failover deadlines (`failover_deadline`), the poison partition's
   quarantine bound and minimal moves on a periodic check; balance and zone spread
   at convergence. Convergence additionally needs the coordinator to
   be quiescent: every live worker ACTIVE, every slot owned (or quarantined), nothing
   left to plan, and each worker believing exactly what the state says it owns.

Each node and each worker has its own clock (rate within ``SimConfig.drift`` of
true time, arbitrary offset); `LeaseTiming.max_drift` is that bound.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from typing import Any, Callable, Optional

import attrs

from coordinator import commands as c
from coordinator.commands import WorkerState
from coordinator.config import CoordinatorConfig
from coordinator.lease import LeaseTiming
from coordinator.node import NodeDriver, Propose, Send, StartRead, apply_entry
from coordinator.placement import PlacementPolicy, max_imbalance, plan
from coordinator.protocol import Heartbeat, Redirect
from coordinator.state import CoordinatorState
from coordinator.worker import WorkerSession
from raft.errors import ProposalDropped
from raft.types import Role

from .coord_checkers import (
    CommandChecker,
    MovesTracker,
    OwnershipChecker,
    failover_bound,
    poison_quarantine_bound,
    layout_problems,
    zone_spread_problem,
)
from .coord_workers import SimWorker
from .coord_timeline import CoordTimeline
from .faults import PARTITION_KINDS, Fault
from .history import OpKind, Outcome
from .world import REPLY, UNDO, SimConfig, SimNode, World

# Event kinds of this world (the base world uses 0..9).
W_TIMER, TO_NODE, TO_WORKER, W_WRITE, ACTION, COORD_CHECK, W_UNDO = range(20, 27)
_NAMES = {W_TIMER: "worker timer", TO_NODE: "worker->node", TO_WORKER: "node->worker",
          W_WRITE: "worker write", ACTION: "scenario", COORD_CHECK: "coord check",
          W_UNDO: "worker undo"}
WORKER_BASE = 1000  # worker network addresses start here (node ids are small)
POISON_CRASH_AFTER = 0.5  # an owner of the poison partition crashes this long after taking it
POISON_RESTART_AFTER = 3.0  # ... and restarts this long after crashing


class CoordStateMachine:
    """`CoordinatorState` with the interface `World` drives (as `KeyValueStore`)."""

    def __init__(self, state: CoordinatorState, applied: int) -> None:
        self.state = state
        self.applied = applied
        self.events: list[tuple[int, Any, Any, int]] = []  # (index, command, result, id)

    def apply(self, index: int, data: bytes) -> tuple[int, Any]:
        request_id, command, result = apply_entry(self.state, data)
        self.applied = index
        self.events.append((index, command, result, request_id))
        return request_id, result

    def get(self, key: str) -> Optional[str]:
        record = self.state.kv_get(key)
        return None if record is None else record.value.decode()

    def version(self, key: str) -> int:
        record = self.state.kv_get(key)
        return 0 if record is None else record.version

    def snapshot(self) -> bytes:
        return self.state.snapshot()

    @property
    def data(self) -> bytes:
        """What replicas must agree on after convergence."""
        return self.state.snapshot()


class _StateMachineFactory:
    def __init__(self, state_class: type, config: CoordinatorConfig) -> None:
        self.state_class = state_class
        self.config = config

    def restore(self, data: bytes, index: int) -> CoordStateMachine:
        state = self.state_class.restore(data) if data else self.state_class(self.config)
        return CoordStateMachine(state, index)


@attrs.frozen
class Action:
    """A scripted scenario step at ``time``: ``kind`` with ``args`` (see
    `CoordWorld.perform`); ``measure`` marks a join or death whose moves are counted."""

    time: float
    kind: str
    args: tuple = ()
    measure: bool = False


@attrs.frozen(kw_only=True)
class CoordSpec:
    """What a coordinator scenario runs.

    Attributes:
        workers: worker processes started at the beginning (w0, w1, ...).
        zones: workers are spread round robin over zones z0, z1, ...
        groups: partition groups created at the start: (name, count, replication).
        lease / safety_margin / heartbeat_interval: lease timing (drift bound is the
            run's `SimConfig.drift`).
        restart_delay / quarantine_threshold / quarantine_suspect_window: replicated
            coordinator settings; the suspect window is twice the lease, the ratio
            of the production defaults (10 s lease, 20 s window).
        node_faults: keep the run's generated coordinator fault plan (else none).
        script: builds the scenario's actions for a world.
        session_class / driver_class / state_class: the worker session, node driver
            and state machine classes (tests plant broken variants here).
        poison: a partition whose owner crashes shortly after taking it.
        strict_zone_spread: a replica zone clash at quiescence is a violation (else
            only counted in the summary: the planner lets balance win over spread).
        strict_quarantine: quarantining a partition other than ``poison`` is a
            violation ("false quarantine"); tests that force quarantines with a
            threshold of 1 switch it off.
    """

    workers: int = 6
    zones: int = 3
    groups: tuple = (("orders", 24, 1),)
    lease: float = 2.0
    safety_margin: float = 0.1
    heartbeat_interval: float = 0.4
    restart_delay: float = 0.0
    quarantine_threshold: int = 3
    quarantine_suspect_window: float = 4.0
    node_faults: bool = False
    script: Callable[["CoordWorld"], list] = attrs.field(default=lambda world: [], eq=False)
    session_class: type = attrs.field(default=WorkerSession, eq=False)
    driver_class: type = attrs.field(default=NodeDriver, eq=False)
    state_class: type = attrs.field(default=CoordinatorState, eq=False)
    poison: Optional[str] = None
    strict_zone_spread: bool = True
    strict_quarantine: bool = True


@attrs.define
class _DriverRead:
    """A ReadIndex round a node driver started (kept in `SimNode.pending_reads`)."""

    token: bytes
    key: str = ""
    op_id: int = -1


class CoordWorld(World):
    """The coordinator scenario world (see the module docstring)."""

    def __init__(self, config: SimConfig, spec: CoordSpec = CoordSpec()) -> None:
        super().__init__(config)
        self.spec = spec
        if not spec.node_faults:
            self.plan = []
        self.timing = LeaseTiming(lease_duration=spec.lease, max_drift=config.drift,
                                  safety_margin=spec.safety_margin)
        self.coord_config = CoordinatorConfig(
            revoke_timeout=self.timing.leader_lease + 0.1, restart_delay=spec.restart_delay,
            quarantine_threshold=spec.quarantine_threshold,
            quarantine_suspect_window=spec.quarantine_suspect_window)
        self.policy = PlacementPolicy()
        self.state_machine = _StateMachineFactory(spec.state_class, self.coord_config)
        rng = self.rngs.stream("coord-clocks")
        drift = config.drift
        self.node_clocks = {n: (rng.uniform(0, 1000), 1 + rng.uniform(-drift, drift))
                            for n in self.voters}
        self._rng_workers = self.rngs.stream("workers")
        self._rng_sides = self.rngs.stream("worker-sides")
        self._clock_rng = rng
        # Workers cut from every node by the scenario, and the side of the current
        # node partition each worker is on (None: it reaches both sides).
        self._isolated: set[int] = set()
        self._stuck: set[int] = set()  # workers cut off with a stale leader (`stale_leader`)
        self.coord_timeline = CoordTimeline()  # for the HTML report only
        self._worker_side: dict[int, Optional[int]] = {}
        self.workers: dict[str, SimWorker] = {}
        self._by_number: dict[int, SimWorker] = {}
        self.drivers: dict[int, NodeDriver] = {}  # per node process
        self.ownership = OwnershipChecker()
        self.commands = CommandChecker(spec.poison, spec.strict_quarantine)
        self.moves = MovesTracker()
        self.bound, _ = failover_bound(self.timing, spec.restart_delay, spec.heartbeat_interval)
        self.poison_bound = poison_quarantine_bound(
            self.bound, spec.quarantine_threshold, self.timing, spec.heartbeat_interval,
            POISON_CRASH_AFTER, POISON_RESTART_AFTER)
        # request id -> (command not yet applied, when last proposed)
        self._operator: dict[int, tuple[c.Command, float]] = {}
        self._next_operator_id = -1000
        self._client_versions: dict[int, dict[str, int]] = {}
        self._op_versions: dict[int, int] = {}
        self._last_disturbance = -math.inf  # coordinator-side faults and leader changes
        # Failover deadlines (`failover_deadline`): the ready leader last seen by the
        # periodic check, since when the coordinator has been settled (a ready
        # leader, no node partition), and each worker's heartbeat rounds that got
        # no acknowledgement (lost messages, a leader it could not reach).
        self._ready_driver: Optional[_LeaderDriver] = None
        self._settled_since = 0.0
        self._last_heartbeat_seq: dict[int, int] = {}
        self._failed_rounds: dict[int, list[float]] = {}
        self._restarted: dict[tuple[str, int], float] = {}
        self._final_checked = False
        self.zone_spread_clash: Optional[str] = None
        # The poison partition: when it was first given out and when quarantined.
        self._poison_first: Optional[float] = None
        self.poison_quarantined_at: Optional[float] = None
        self.poison_owners = 0
        for index in range(spec.workers):
            self.add_worker(f"w{index}", f"z{index % spec.zones}")
        self.actions = sorted(spec.script(self), key=lambda a: a.time)

    # == clocks, workers ============================================================

    def node_clock(self, node_id: int) -> float:
        offset, rate = self.node_clocks[node_id]
        return offset + rate * self.now

    def add_worker(self, worker_id: str, zone: str) -> SimWorker:
        drift = self.config.drift
        number = WORKER_BASE + len(self.workers)
        worker = SimWorker(
            worker_id, number, zone, self.timing, rate=1 + self._clock_rng.uniform(-drift, drift),
            offset=self._clock_rng.uniform(0, 1000),
            heartbeat_interval=self.spec.heartbeat_interval, nodes=self.voters,
            rng=self._rng_workers, session_class=self.spec.session_class)
        self.workers[worker_id] = worker
        self._by_number[number] = worker
        return worker

    # == setup ======================================================================

    def start(self, schedule_heal: bool = True) -> None:
        super().start(schedule_heal)
        for name, count, rf in self.spec.groups:
            self._push_action(Action(0.0, "create_group", (name, count, rf)))
        for worker in self.workers.values():
            self._push_action(Action(0.2 + self._rng_workers.uniform(0, 0.5), "start_worker",
                                     (worker.id,)))
        for action in self.actions:
            self._push_action(action)
        self.push(0.25, COORD_CHECK)

    def _push_action(self, action: Action) -> None:
        self._seq += 1
        heapq.heappush(self._queue, (action.time, self._seq, ACTION, action, None))

    # == event loop =================================================================

    def step(self) -> None:
        queue = self._queue
        if queue[0][2] >= W_TIMER:
            time, _, kind, a, b = heapq.heappop(queue)
            self.now = time
            self.events += 1
            self.recent.append((time, kind, a, b))
            if kind == W_TIMER:
                self._on_worker_timer(a, b)
            elif kind == TO_NODE:
                self._on_to_node(a, b)
            elif kind == TO_WORKER:
                self._on_to_worker(a, b)
            elif kind == W_WRITE:
                self._on_worker_write(a, b)
            elif kind == ACTION:
                self._on_action(a)
            elif kind == COORD_CHECK:
                self._on_coord_check()
            elif kind == W_UNDO:
                self._on_worker_undo(a, b)
        else:
            super().step()
        problem = self.ownership.check(self.now, self.workers.values(), self._serving,
                                       self._failover_due, self._failover_exempt)
        if problem:
            self._fail("at most one owner", problem, self.now)

    # == Raft driving hooks ===========================================================

    def _driver(self, node: SimNode) -> NodeDriver:
        """The node driver of the node's current process."""
        driver = self.drivers.get(node.id)
        if driver is None:
            driver = self.drivers[node.id] = self.spec.driver_class(
                node.id, lambda: node.kv.state, self.timing, self.policy)
        return driver

    def _handle_ready(self, node: SimNode, raw: Any, rd: Any) -> None:
        before = node.kv
        super()._handle_ready(node, raw, rd)
        for machine in (before, node.kv) if before is not node.kv else (node.kv,):
            if machine.events:
                events, machine.events = machine.events, []
                self._on_applied(node, events)
        driver = self.drivers.get(node.id)
        if driver is not None:
            driver.on_caught_up(node.kv.applied)

    def _on_applied(self, node: SimNode, events: list) -> None:
        driver = self.drivers.get(node.id)
        for index, command, result, request_id in events:
            first = index > self.commands.checked_index
            problem = self.commands.on_apply(index, command, result)
            if problem:
                self._fail(*problem, self.now)
            if self.poison_quarantined_at is None and self.spec.poison in self.commands.quarantined:
                self.poison_quarantined_at = self.now
            if first:
                self._note_assignments(command, result)
            if driver is not None:
                driver.on_applied(index, request_id, command, result)
            if request_id <= -1000:
                self._operator.pop(request_id, None)
            if self.spec.poison and first:
                pairs = zip(command.commands, result.results) if isinstance(command, c.Batch) \
                    else ((command, result),)
                for inner, outcome in pairs:
                    if isinstance(outcome, c.Assigned) and outcome.partition_id == self.spec.poison:
                        self._poisoned(outcome.worker_id)

    def _note_assignments(self, command: c.Command, result: c.Result) -> None:
        """Note slots given to a worker process that is not serving: the coordinator
        cannot know yet, so their failover starts over (`failover_deadline`)."""
        pairs = zip(command.commands, result.results) if isinstance(command, c.Batch) \
            else ((command, result),)
        for _, outcome in pairs:
            if isinstance(outcome, c.Assigned):
                refs = [(outcome.worker_id, (outcome.partition_id, outcome.slot))]
            elif isinstance(outcome, c.WorkerRegistered):
                refs = [(outcome.worker_id, (r.partition_id, r.slot)) for r in outcome.restored]
            else:
                continue
            for worker_id, key in refs:
                worker = self.workers.get(worker_id)
                if worker is not None and not self._serving(worker):
                    self._restarted[key] = self.now

    def _on_soft_state(self, node: SimNode, raw: Any, soft: Any) -> None:
        was = node.role
        super()._on_soft_state(node, raw, soft)
        if node.role is not was:
            self._disturbed()
        self._driver(node).on_role_change(self.node_clock(node.id), node.role, raw.term,
                                          node.leader, raw.log.last_index())

    def _on_tick(self, node_id: int, incarnation: int) -> None:
        super()._on_tick(node_id, incarnation)
        node = self.nodes[node_id]
        driver = self.drivers.get(node_id)
        if driver is None or not driver.ready or not node.up or node.paused \
                or node.incarnation != incarnation or node.role is not Role.LEADER:
            return
        self._carry_out(node, driver, driver.on_tick(self.node_clock(node_id)), False)
        for request_id, (command, proposed_at) in sorted(self._operator.items(), reverse=True):
            if self.now >= proposed_at + 0.5 and node.up and node.role is Role.LEADER:
                self._operator[request_id] = (command, self.now)
                self._carry_out(node, driver, driver.on_client_command(
                    self.node_clock(node_id), command, None, request_id), False)

    def _carry_out(self, node: SimNode, driver: NodeDriver, outputs: list,
                   deliver: bool) -> None:
        """Carry out a node driver's outputs in order; answers to workers only when
        ``deliver`` (the simulated workers wait only for answers to heartbeats)."""
        for output in outputs:
            if isinstance(output, Propose):
                try:
                    node.raw.propose(output.data)
                except ProposalDropped as exc:
                    driver.on_dropped(output, exc.leader_hint)  # nobody waits: no answer
                    continue
                self._drive(node)
            elif isinstance(output, StartRead):
                try:
                    node.raw.read_index(output.token)
                except ProposalDropped:
                    driver.on_read_failed(output.token)
                    continue
                node.pending_reads[output.token] = _DriverRead(output.token)
                self._drive(node)
            elif deliver and isinstance(output, Send):
                self._send_to_worker(node.id, output.to, output.message)

    def crash(self, node_id: int) -> None:
        self.drivers.pop(node_id, None)
        self._disturbed()
        super().crash(node_id)

    def pause(self, node_id: int) -> None:
        self._disturbed()
        super().pause(node_id)

    def restart(self, node_id: int) -> None:
        if not self.nodes[node_id].up:
            self._disturbed()
        super().restart(node_id)

    def apply_fault(self, fault: Fault) -> None:
        self._disturbed()
        super().apply_fault(fault)
        if fault.kind in PARTITION_KINDS:
            # A node partition cuts workers too: each is on one side (cut from the
            # other) or, less often, reaches both, like a worker near a bridge.
            self._worker_side = {
                w.number: self._rng_sides.choices((0, 1, None), (2, 2, 1))[0]
                for w in sorted(self.workers.values(), key=lambda w: w.number)}
            self._rewire_workers()

    def heal_network(self) -> None:
        self._disturbed()
        super().heal_network()
        self._worker_side = {}
        self._stuck.clear()
        self._rewire_workers()

    def _rewire_workers(self) -> None:
        """Recompute the worker <-> node cuts (a node partition replaces the whole
        blocked set): isolated workers reach no node, the others only their side."""
        blocked = self.network.blocked
        sides = self.network.sides
        for worker in self.workers.values():
            number = worker.number
            side = self._worker_side.get(number)
            if number in self._isolated:
                cut = self.voters
            elif sides and side is not None:
                cut = sides[1 - side]
            else:
                cut = ()
            for node_id in self.voters:
                if node_id in cut:
                    blocked.add((number, node_id))
                    blocked.add((node_id, number))
                else:
                    blocked.discard((number, node_id))
                    blocked.discard((node_id, number))

    def _disturbed(self) -> None:
        self._last_disturbance = self.now
        self.moves.interrupt()

    # == clients on the metadata KV ===================================================

    def _on_request(self, node_id: int, request: tuple) -> None:
        client, op = request
        node = self.nodes[node_id]
        if op.kind is OpKind.GET or not node.up or node.paused:
            super()._on_request(node_id, request)
            return
        key = op.key
        if op.kind is OpKind.PUT:
            command: c.Command = c.KvPut(key=key, value=op.value.encode())
        else:
            expected = self._client_versions.get(client.id, {}).get(key, 0)
            command = c.KvCas(key=key, expected_version=expected, value=op.value.encode())
        driver = self._driver(node)
        for output in driver.on_client_command(self.node_clock(node_id), command, request,
                                               op.op_id):
            if isinstance(output, Send):  # not the leader
                hint = output.message.leader if isinstance(output.message, Redirect) else 0
                self.push(0.001, REPLY, request, (Outcome.FAIL, None, hint))
                return
            try:
                index = node.raw.propose(output.data)
            except ProposalDropped as exc:
                driver.on_dropped(output, exc.leader_hint)  # answered below, as the client sees it
                self.push(0.001, REPLY, request, (Outcome.FAIL, None, exc.leader_hint))
                return
            # The answer comes from the entry applied at this index (see World).
            node.pending_writes[index] = op
            self._drive(node)

    def _reply(self, node: SimNode, op: Any, outcome: Outcome, result: Any) -> None:
        if isinstance(op, _DriverRead):
            driver = self.drivers.get(node.id)
            if driver is not None:
                self._carry_out(node, driver, driver.on_read_confirmed(op.token), True)
            return
        if outcome is Outcome.OK:
            if op.kind is OpKind.GET:
                self._op_versions[op.op_id] = node.kv.version(op.key)
            elif isinstance(result, c.KvValue):
                self._op_versions[op.op_id] = result.version
                result = None if op.kind is OpKind.PUT else True
            elif isinstance(result, c.Error) and result.code is c.ErrorCode.VERSION_MISMATCH:
                result = False
            else:
                outcome, result = Outcome.FAIL, None
        super()._reply(node, op, outcome, result)

    def _on_reply(self, request: tuple, answer: tuple) -> None:
        client, op = request
        was_open = op.outcome is None
        super()._on_reply(request, answer)
        if was_open and op.outcome is Outcome.OK:
            version = self._op_versions.pop(op.op_id, None)
            if version is not None and (op.kind is not OpKind.CAS or op.result):
                self._client_versions.setdefault(client.id, {})[op.key] = version

    # == worker <-> node ==============================================================

    def _send_to_node(self, worker: SimWorker, node_id: int, message: Any) -> None:
        if isinstance(message, Heartbeat):
            previous = self._last_heartbeat_seq.get(worker.number)
            if previous is not None and worker.session.last_acked < previous:
                self._failed_rounds.setdefault(worker.number, []).append(self.now)
            self._last_heartbeat_seq[worker.number] = message.seq
        delays = self.network.delays(worker.number, node_id)
        if delays:
            self.push(delays[0], TO_NODE, node_id, (worker.number, message))

    def _send_to_worker(self, node_id: int, number: int, message: Any) -> None:
        delays = self.network.delays(node_id, number)
        if delays:
            self.push(delays[0], TO_WORKER, number, (node_id, message))

    def _on_to_node(self, node_id: int, packet: tuple) -> None:
        number, message = packet
        node = self.nodes[node_id]
        if not node.up or node.paused or not self.network.connected(number, node_id):
            return
        self._trace(TO_NODE, number, node_id, repr(message).encode())
        driver = self._driver(node)
        outputs = driver.on_worker_message(self.node_clock(node_id), message, number,
                                           peer=f"sim:{number}")
        self._carry_out(node, driver, outputs, isinstance(message, Heartbeat))

    def _on_to_worker(self, number: int, packet: tuple) -> None:
        node_id, message = packet
        worker = self._by_number[number]
        if not worker.up or not self.network.connected(node_id, number):
            return
        if worker.paused:
            worker.held.append(("in", message))
            return
        self._trace(TO_WORKER, node_id, number, repr(message).encode())
        self._worker_input(worker, message)

    def _worker_input(self, worker: SimWorker, message: Any) -> None:
        worker.receive(message)

    # == worker process =================================================================

    def _start_worker(self, worker: SimWorker) -> None:
        if worker.up or worker.left:
            return
        worker.start()
        self._trace(W_TIMER, worker.number, 1, b"start")
        self._observe()
        self.push(self._rng_workers.uniform(0, worker.period), W_TIMER,
                  worker.number, worker.incarnation)

    def crash_worker(self, worker: SimWorker) -> None:
        if not worker.up:
            return
        self._trace(W_TIMER, worker.number, 2, b"crash")
        self._stopped_serving(worker, "crash")
        worker.crash()
        self._observe()

    def _stopped_serving(self, worker: SimWorker, cause: str) -> None:
        """``worker`` stops serving the slots it acts for now: time their failover."""
        if not self._serving(worker):
            return  # already stopped: the failover in flight goes on
        state = self.reference_state()
        if state is not None:
            # Slots given to it that it did not serve yet: their failover starts over.
            for key in self.ownership.waiting:
                if state.partitions.get(key[0]) is not None \
                        and state.partitions[key[0]].owners[key[1]] == worker.id:
                    self._restarted[key] = self.now
        slots = [(pid, slot) for pid, slot, _ in worker.acting(self.now)]
        self.ownership.stopped(worker.id, slots, self.now, cause,
                               None if self.heal_time is None else "healed")

    def _serving(self, worker: SimWorker) -> bool:
        """Up, running and not cut off from the coordinator by the scenario."""
        return worker.up and not worker.paused and worker.number not in self._isolated \
            and worker.number not in self._stuck

    def _on_worker_timer(self, number: int, incarnation: int) -> None:
        worker = self._by_number[number]
        if not worker.up or worker.incarnation != incarnation or worker.left:
            return
        self.push(worker.period, W_TIMER, number, incarnation)
        if worker.paused:
            return
        now = self.now
        self._trace(W_TIMER, number, 0)
        target, heartbeat = worker.heartbeat(now)
        self._send_to_node(worker, target, heartbeat)
        for release in worker.releases(now):
            self._send_to_node(worker, worker.target, release)
        write = worker.prepare_write(now)
        if write is not None:
            self.push(0.005, W_WRITE, number, (incarnation, write))
            if worker.pause_at_next_write is not None:
                duration, worker.pause_at_next_write = worker.pause_at_next_write, None
                self.pause_worker(worker, duration)
        leave = worker.leave(now)
        if leave is not None:
            self._send_to_node(worker, worker.target, leave)
            self._trace(W_TIMER, number, 3, b"leave")

    def _on_worker_write(self, number: int, payload: tuple) -> None:
        incarnation, write = payload
        worker = self._by_number[number]
        if not worker.up or worker.incarnation != incarnation:
            return
        if worker.paused:
            worker.held.append(("out", write))
            return
        self._send_to_node(worker, worker.target or self.voters[0], write)

    def pause_worker(self, worker: SimWorker, duration: float) -> None:
        if not worker.up or worker.paused:
            return
        self._trace(W_TIMER, worker.number, 4, b"pause")
        self._stopped_serving(worker, "pause")
        worker.paused = True
        self.push(duration, W_UNDO, "resume", (worker.number, worker.incarnation))
        self._observe()

    def resume_worker(self, worker: SimWorker) -> None:
        if not worker.up or not worker.paused:
            return
        self._trace(W_TIMER, worker.number, 5, b"resume")
        worker.paused = False
        self._observe()
        held, worker.held = worker.held, []
        for direction, message in held:
            if direction == "in":
                self._worker_input(worker, message)
            else:
                self._send_to_node(worker, worker.target or self.voters[0], message)

    def isolate_worker(self, worker: SimWorker, duration: float) -> None:
        self._stopped_serving(worker, "cut-off")
        self._isolated.add(worker.number)
        self._rewire_workers()
        self._trace(W_TIMER, worker.number, 6, b"isolate")
        self._observe()
        self.push(duration, W_UNDO, "reconnect", (worker.number, 0))

    def _on_worker_undo(self, what: str, arg: tuple) -> None:
        worker = self._by_number[arg[0]]
        if what == "resume" and worker.incarnation == arg[1]:
            self.resume_worker(worker)
        elif what == "restart":
            self._start_worker(worker)
        elif what == "reconnect":
            self._isolated.discard(worker.number)
            self._rewire_workers()
            self._observe()

    def _poisoned(self, worker_id: str) -> None:
        """The poison partition was just given to ``worker_id``: it dies soon."""
        if self._poison_first is None:
            self._poison_first = self.now
        self.poison_owners += 1
        worker = self.workers.get(worker_id)
        if worker is not None and self.heal_time is None:
            self._push_action(Action(self.now + POISON_CRASH_AFTER, "crash_worker",
                                     (worker_id, POISON_RESTART_AFTER)))

    # == scenario actions =============================================================

    def _on_action(self, action: Action) -> None:
        if self.heal_time is not None and action.kind not in ("create_group", "start_worker"):
            return
        self._trace(ACTION, 0, 0, repr(action).encode())
        self.perform(action)

    def perform(self, action: Action) -> None:
        """Run one scripted step.

        Kinds: ``start_worker (id,)``; ``add_worker (id, zone)`` (a join);
        ``crash_worker (id, down_for)`` (None: until the heal); ``pause_worker (id,
        duration, mid_write)``; ``isolate_worker (id, duration)``; ``drain (id,)``;
        ``create_group (name, count, replication)``; ``crash_zone (zone, down_for)``;
        ``node_fault (kind, duration)`` (on the leader); ``stale_leader (pause,
        stuck)`` (see `stale_leader`).
        """
        kind, args = action.kind, action.args
        if kind == "start_worker":
            self._start_worker(self.workers[args[0]])
        elif kind == "add_worker":
            worker = self.workers.get(args[0]) or self.add_worker(args[0], args[1])
            if action.measure:
                self.moves.start("join", worker.id, self.reference_state(), self.quiescent())
            self._start_worker(worker)
        elif kind == "crash_worker":
            worker = self.workers[args[0]]
            if not worker.up:
                return
            if action.measure:
                self.moves.start("death", worker.id, self.reference_state(), self.quiescent())
            self.crash_worker(worker)
            if args[1] is not None:
                self.push(args[1], W_UNDO, "restart", (worker.number, 0))
        elif kind == "crash_zone":
            self.moves.interrupt()
            for worker in self.workers.values():
                if worker.zone == args[0] and worker.up:
                    self.crash_worker(worker)
                    if args[1] is not None:
                        self.push(args[1], W_UNDO, "restart", (worker.number, 0))
        elif kind == "pause_worker":
            worker = self.workers[args[0]]
            self.moves.interrupt()
            if args[2]:
                worker.pause_at_next_write = args[1]
            else:
                self.pause_worker(worker, args[1])
        elif kind == "isolate_worker":
            self.moves.interrupt()
            self.isolate_worker(self.workers[args[0]], args[1])
        elif kind == "drain":
            self.moves.interrupt()
            self.operator(c.DrainWorker(worker_id=args[0], now=0.0))  # stamped when proposed
        elif kind == "create_group":
            self.moves.interrupt()
            self.operator(c.CreatePartitionGroup(name=args[0], count=args[1],
                                                 replication_factor=args[2], now=0.0))
        elif kind == "node_fault":
            self.apply_fault(Fault(self.now, args[0], args[1], 0))
        elif kind == "stale_leader":
            self.stale_leader(*args)

    def stale_leader(self, pause: float, stuck: int) -> None:
        """Cut the leader off together with `stuck` workers (preferably ones that
        heartbeat to it), which then reach no other node, and pause it for `pause`
        seconds: it resumes still believing it leads, about when the new leader may
        expire those workers. The cut heals a while after the resume."""
        leaders = [n.id for n in self.nodes.values() if n.up and n.role is Role.LEADER]
        if not leaders or len(self.voters) < 2:
            return
        leader = leaders[-1]
        self._disturbed()
        self.network.split([leader], [n for n in self.voters if n != leader])
        live = sorted((w for w in self.workers.values() if w.up and not w.left),
                      key=lambda w: (w.target != leader, w.number))
        chosen = {w.number for w in live[:stuck]}
        for worker in live[:stuck]:
            # Cut off from every node that can lead: their slots must fail over.
            self._stopped_serving(worker, "cut-off")
        self._stuck |= chosen
        self._worker_side = {w.number: 0 if w.number in chosen else 1 for w in live}
        self._rewire_workers()
        self.timeline.partition_start(self.now, self.network.partition)
        self.push(pause + 1.5, UNDO, "heal-network", self.network.partition)
        self.pause(leader)
        self.push(pause, UNDO, "resume", leader)

    def operator(self, command: c.Command) -> None:
        """Propose ``command`` through the leader, retrying on every leader tick until
        it is applied; the leader stamps it with its cluster time each time (any
        ``now`` it carries is replaced)."""
        self._next_operator_id -= 1
        self._operator[self._next_operator_id] = (command, -math.inf)

    # == checks ===========================================================================

    def reference_state(self) -> Optional[CoordinatorState]:
        """The state of the ready leader (None when there is none)."""
        for node_id, driver in sorted(self.drivers.items()):
            node = self.nodes[node_id]
            if driver.ready and node.up and not node.paused and node.role is Role.LEADER:
                return node.kv.state
        return None

    def _leader_now(self) -> float:
        """The cluster time of the ready leader, as it would plan now (its state's
        ``log_time`` if it has not decided yet; 0.0 without a ready leader)."""
        for node_id, driver in sorted(self.drivers.items()):
            node = self.nodes[node_id]
            if driver.ready and node.up and not node.paused and node.role is Role.LEADER:
                if not driver.leading.cluster_time_fixed:
                    return node.kv.state.log_time
                return driver.leading.cluster_time(self.node_clock(node_id))
        return 0.0

    def quiescent(self) -> bool:
        """Nothing left to do: every live worker process is ACTIVE in the state and
        believes exactly what it owns, every placeable slot is owned, the planner is
        idle."""
        state = self.reference_state()
        if state is None or state.pending_moves:
            return False
        live = {w.id: w for w in self.workers.values() if w.up and not w.left}
        for worker_id, record in state.workers.items():
            if record.state is not WorkerState.DEAD and worker_id not in live:
                return False
        owned: dict[str, set] = {w: set() for w in live}
        for pid, record in state.partitions.items():
            for slot, owner in enumerate(record.owners):
                if owner is None:
                    if record.quarantined:
                        continue
                    return False
                if owner not in owned:
                    return False
                owned[owner].add((pid, slot, record.epoch))
        for worker_id, worker in live.items():
            record = state.workers.get(worker_id)
            if worker.paused or record is None or record.state is WorkerState.DEAD:
                return False
            if set(worker.acting(self.now)) != owned[worker_id]:
                return False
        return not plan(state, self.policy, self._leader_now())

    def _observe(self) -> None:
        self.coord_timeline.observe(self.now, self.workers, self._isolated, self.reference_state())

    def _on_coord_check(self) -> None:
        self.push(0.25, COORD_CHECK)
        self._observe()
        first = self._poison_first
        if first is not None and self.poison_quarantined_at is None and self.heal_time is None \
                and self.now > first + self.poison_bound:
            self._fail("quarantine bound", f"{self.spec.poison}, first given out at t={first:.3f}, "
                       f"crashed {self.poison_owners} owners and is not quarantined by "
                       f"t={first + self.poison_bound:.3f}", self.now)
            return
        if self._coordinator_settled():
            problem = self.ownership.overdue(self.now, self.failover_deadline,
                                             self._failover_exempt)
            if problem:
                self._fail("failover bound", problem, self.now)
                return
        if self.moves.open is not None and self.quiescent():
            state = self.reference_state()
            problem = self.moves.quiescent(state) or layout_problems(
                state, self.spec.strict_zone_spread)
            if problem:
                self._fail("minimal moves" if "moved" in problem else "balance", problem, self.now)

    def _coordinator_settled(self) -> bool:
        """Whether failovers can proceed now: a ready leader and no partition of the
        nodes (which also cuts workers). Notes since when (`_settled_since`): a new
        ready leader grants every worker a full lease from its start, and workers cut
        by a node partition come back when it heals, so a failover's clock restarts
        then (checked every 0.25 s, which the slack of the bound covers)."""
        driver = None
        for node_id, candidate in sorted(self.drivers.items()):
            node = self.nodes[node_id]
            if candidate.ready and node.up and not node.paused and node.role is Role.LEADER:
                driver = candidate
                break
        settled = driver is not None and not self.network.sides
        if driver is not self._ready_driver or not settled:
            self._ready_driver = driver if settled else None
            self._settled_since = self.now
        return settled

    def failover_deadline(self, key: tuple[str, int], failover: Any) -> float:
        """When ``key`` must have a serving owner again: `failover_bound` counted from
        the owner's stop, or if later from the moment the coordinator settled (a new
        ready leader, the end of a node partition) or the slot's new owner stopped
        serving before it served the slot (or had stopped when it got it), plus one
        heartbeat interval (on a
        slow clock) for every heartbeat round of the slot's owner since the stop that
        got no acknowledgement (lost messages, a node that did not lead)."""
        start = max(failover.since, self._settled_since,
                    self._restarted.get(key, -math.inf))
        owner = self.workers.get(self._owner_in_state(key) or "")
        failed = 0
        if owner is not None:
            failed = sum(1 for t in self._failed_rounds.get(owner.number, ()) if t >= failover.since)
        slow = 1 - self.timing.max_drift
        return start + self.bound + failed * self.spec.heartbeat_interval / slow

    def _failover_due(self, key: tuple[str, int], failover: Any) -> float:
        """`failover_deadline` as of now (for a failover that just ended)."""
        self._coordinator_settled()
        return self.failover_deadline(key, failover)

    def _owner_in_state(self, key: tuple[str, int]) -> Optional[str]:
        state = self.reference_state()
        record = None if state is None else state.partitions.get(key[0])
        return None if record is None else record.owners[key[1]]

    def _failover_exempt(self, key: tuple[str, int], failover: Any) -> Optional[str]:
        """Why the bound no longer applies to an overdue failover, or None."""
        state = self.reference_state()
        if state is None:
            return "no ready leader"
        record = state.partitions.get(key[0])
        if record is None:
            return "partition deleted"
        if record.quarantined:
            return "quarantined"
        owner = self.workers.get(record.owners[key[1]] or "")
        if owner is not None:
            # Owned in the state: overdue unless the new owner itself was hit meanwhile.
            return None if self._reachable(owner) else "new owner down or cut off"
        live = [w for w in self.workers.values() if self._reachable(w) and w.id not in record.owners]
        return None if live else "no live worker to take it"

    def _reachable(self, worker: SimWorker) -> bool:
        return worker.up and not worker.paused and not worker.left and not any(
            (worker.number, n) in self.network.blocked for n in self.voters)

    def _liveness_detail(self) -> str:
        return super()._liveness_detail() + "; coordinator: " + self._not_quiescent_because()

    def _not_quiescent_because(self) -> str:
        state = self.reference_state()
        if state is None:
            return "no ready leader"
        parts = []
        if state.pending_moves:
            parts.append(f"pending moves {sorted(state.pending_moves)[:5]}")
        free = sorted(k for k in state.free_slots if not state.partitions[k[0]].quarantined)
        if free:
            parts.append(f"free slots {free[:5]}")
        for worker_id, record in sorted(state.workers.items()):
            worker = self.workers.get(worker_id)
            alive = worker is not None and worker.up and not worker.left
            parts.append(f"{worker_id} {record.state.value} owns {len(record.owned)} "
                         f"process {'up' if alive else 'down'}"
                         + (f" acting {len(worker.acting(self.now))}" if alive else ""))
        moves = plan(state, self.policy, self._leader_now())
        if moves:
            parts.append(f"planner wants {moves[:3]}")
        return ", ".join(parts)

    def converged(self) -> bool:
        return super().converged() and self.quiescent()

    def _try_converge(self) -> bool:
        if not super()._try_converge():
            return False
        if not self._final_checked:
            self._final_checked = True
            state = self.reference_state()
            problem = layout_problems(state, self.spec.strict_zone_spread)
            if problem:
                self._fail("balance", problem, self.now)
            self.zone_spread_clash = zone_spread_problem(state)
            if self.spec.poison:
                record = state.partitions.get(self.spec.poison)
                if record is not None and not record.quarantined:
                    self._fail("quarantine", f"{self.spec.poison} killed its owners but is not "
                               "quarantined", self.now)
        return True

    def _heal(self) -> None:
        super()._heal()
        self.ownership.stop_checking("healed")
        self.moves.interrupt()
        self._disturbed()
        self._isolated.clear()
        self._rewire_workers()
        for worker in self.workers.values():
            if worker.started and not worker.left:
                self.resume_worker(worker)
                self._start_worker(worker)

    # == reporting ========================================================================

    def summary(self) -> dict[str, Any]:
        """The coordinator figures of a run (added to `--json`)."""
        state = self.reference_state()
        if state is None:
            ahead = max((n for n in self.nodes.values() if n.up), key=lambda n: n.kv.applied,
                        default=None)
            state = ahead.kv.state if ahead is not None else None
        failovers = self.ownership.checked_failovers
        return {
            "partitions": len(state.partitions) if state is not None else 0,
            "workers": len(self.workers),
            "moves": self.moves.moves,
            "moves_lower_bound": self.moves.bound,
            "moves_measured_events": len(self.moves.measured),
            "max_imbalance": round(max_imbalance(state), 6) if state is not None else None,
            "failover_seconds_max": round(max(failovers), 4) if failovers else None,
            "failover_bound_seconds": round(self.bound, 4),
            "failovers": len(self.ownership.failovers),
            "failover_checks": self.ownership.report(),
            "double_ownership": self.ownership.double_ownership,
            "fenced_writes": {"accepted": self.commands.fenced_accepted,
                              "refused": self.commands.fenced_refused},
            "zone_spread_clash": self.zone_spread_clash,
            "quarantined": list(state.status().quarantined) if state is not None else [],
            **self._poison_summary(),
        }

    def _poison_summary(self) -> dict[str, Any]:
        if not self.spec.poison:
            return {}
        first, at = self._poison_first, self.poison_quarantined_at
        return {"poison_owners": self.poison_owners,
                "poison_quarantine_bound_seconds": round(self.poison_bound, 4),
                "poison_quarantined_after_seconds":
                    None if first is None or at is None else round(at - first, 4)}

    def describe_recent(self, count: int = 25) -> list[str]:
        saved = self.recent
        lines = []
        try:
            for entry in list(saved)[-count:]:
                time, kind, a, b = entry
                if kind >= W_TIMER:
                    lines.append(f"{time:10.4f}  {_NAMES[kind]} {a!r} {b!r}"[:240])
                else:
                    self.recent = deque([entry])
                    lines.extend(super().describe_recent(1))
        finally:
            self.recent = saved
        return lines
