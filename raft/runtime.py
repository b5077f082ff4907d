"""A trio driver for `RawNode`: the loop an embedder would otherwise write.

`RaftRuntime` owns one node, its storage and the application's state machine. It
ticks the node on a timer, steps inbound messages, and handles every `Ready` in the
order the core requires (install snapshot; persist hard state and entries, fsynced
when `must_sync`; only then send, except that a leader sends while it persists,
when the Ready allows it and `replicate_while_writing` is on; apply; serve reads;
advance). Callers get
coroutines that finish when the outcome is known:

* `propose(data)` returns the state machine's result once the entry is applied
  here. It raises `ProposalDropped` at once when the node cannot take proposals,
  `ProposalLost` when another entry was committed at its index (it certainly never
  took effect), and `ProposalOutcomeUnknown` when a snapshot from the leader skipped
  the index (it may or may not have). Leadership changes do not end the wait: an
  entry of a deposed leader may still be committed by the next one. Bound the wait
  with `trio.move_on_after` / `fail_after` as a client would.
* `read_barrier()` returns once this node has applied everything committed before
  the call (ReadIndex): a read of the local state machine after it is
  linearizable. A request the core forgot because leadership changed, or that the
  network lost, is re-issued (after a leader change, and every election timeout).
  It raises `ProposalDropped` (reason NO_LEADER) at once when no leader is known,
  and when none has been for an election timeout while it waited. Each run draws a
  random nonce for its read contexts, so an answer still in flight for a read of an
  earlier run of this node can never serve a read of this one.
* `change_membership(change)` proposes a one-server change and returns the
  configuration in force once it is applied. The change's `context` bytes (e.g. the
  new member's peer and client addresses) are stored in the log with it; a state
  machine that defines `apply_conf_change(entry, change, conf_state)` is handed
  every committed change, on every replica, in log order with `apply`.

Every outcome an embedder catches (`ProposalDropped`, `ProposalLost`,
`ProposalOutcomeUnknown`, `RuntimeStopped`) is defined in `raft.errors` and exported
by `raft`; this module re-exports the last three.

State: `leadership` (term, leader, role), `leader`, `role`, `commit_index` and
`applied_index` are read-only properties; `leadership_changes()` is an async
iterator that yields the leadership at once and then on every change (a slow
consumer skips to the newest state, never misses it); `wait_until(predicate)`
waits for anything else; `status()` and `stats` are snapshots.

Wiring: `RaftRuntime.over(transport, config, storage, state_machine)` builds a
runtime that sends through `transport` (a `raft.transport.TcpTransport`, or
anything with `send` and `attach`) and attaches itself as the transport's receiver.
The plain constructor takes a `send` callable, for embedders with their own network
that then call `deliver` themselves.

Concurrency: every node call happens under one lock, and the lock is held from
`ready()` to `advance()`, so no caller can slip a call in between (the core's
contract). Proposals wait in a queue and are appended together whenever the lock
is free, so one fsync covers every proposal that arrived during the previous one
(group commit); inbound messages are batched the same way. Disk writes run in a
worker thread (`io_in_thread`) so that an fsync does not stall the event loop; the
node stays locked meanwhile. Inbound messages go through a bounded inbox: when it
is full they are dropped, as a lossy network would (Raft retransmits).

Snapshots: every `snapshot_every` applied entries the runtime asks the state machine
for a snapshot and compacts the log. At start the state machine is restored from the
storage's snapshot, and committed entries after it are applied again.
"""

from __future__ import annotations

import itertools
import logging
import secrets
import time
from typing import Any, AsyncIterator, Callable, Optional, Protocol

import attrs
import trio

from .config import Config
from .errors import (
    DropReason,
    ProposalDropped,
    ProposalLost,
    ProposalOutcomeUnknown,
    RuntimeStopped,
)
from . import codec
from .node import RawNode
from .ready import Ready, Status
from .storage import WritableStorage
from .types import NONE, ConfChange, ConfState, Entry, EntryType, Message, NodeId, Role

__all__ = ["Leadership", "ProposalLost", "ProposalOutcomeUnknown", "RaftRuntime",
           "RuntimeStats", "RuntimeStopped", "StateMachine", "Transport"]

log = logging.getLogger(__name__)


class StateMachine(Protocol):
    """The application's replicated state, as the runtime drives it."""

    def apply(self, entry: Entry) -> Any:
        """Apply a committed NORMAL entry that carries data; the return value is
        handed to whoever proposed it on this node. Must be deterministic; an
        exception stops the runtime (the replicas could no longer agree)."""

    def snapshot(self) -> bytes:
        """The whole state as bytes (for log compaction and lagging followers)."""

    def restore(self, data: bytes) -> None:
        """Replace the whole state with a snapshot's bytes (b"" = the empty state)."""

    # Optional: a state machine that defines
    #
    #     def apply_conf_change(self, entry: Entry, change: ConfChange,
    #                           conf_state: ConfState) -> None
    #
    # is told of every committed membership change, in log order with `apply`, with
    # the change's `context` (e.g. the new member's addresses) and the
    # configuration in force from it on. Keep what it needs in its snapshots:
    # changes a snapshot covers are not replayed.


class Transport(Protocol):
    """What `RaftRuntime.over` needs of a network (`raft.transport.TcpTransport`
    is one)."""

    def send(self, message: Message) -> None:
        """Queue an outbound message; never blocks."""

    def attach(self, deliver: Callable[[Message], None]) -> None:
        """Hand every inbound message for this node to `deliver` from now on."""


@attrs.frozen
class Leadership:
    """Who leads, as one node sees it (`RaftRuntime.leadership`).

    Attributes:
        term: the node's current term.
        leader: the leader it knows of in that term (`raft.NONE` if none).
        role: the node's own role (`Role.LEADER` when it is the leader).
    """

    term: int
    leader: NodeId
    role: Role


@attrs.define
class _Waiter:
    """A caller waiting for the entry it proposed (`term` is set once appended)."""

    term: int = 0
    done: trio.Event = attrs.Factory(trio.Event)
    result: Any = None
    error: Optional[BaseException] = None

    def finish(self, result: Any = None, error: Optional[BaseException] = None) -> None:
        self.result, self.error = result, error
        self.done.set()


@attrs.define
class RuntimeStats:
    """Counters of a runtime's work (a copy; read `RaftRuntime.stats` again for
    fresh figures).

    Attributes:
        proposals: proposals handed to the node (accepted or refused).
        proposal_batches: times queued proposals were appended together.
        synced_writes: storage writes that were fsynced (`must_sync`).
        sync_seconds: wall time spent in those writes.
        messages_in: inbound messages stepped.
        dropped_inbound: inbound messages dropped because the inbox was full.
        snapshots: log compactions.
    """

    proposals: int = 0
    proposal_batches: int = 0
    synced_writes: int = 0
    sync_seconds: float = 0.0
    messages_in: int = 0
    dropped_inbound: int = 0
    snapshots: int = 0


@attrs.define
class _Read:
    """A caller waiting for a ReadIndex answer, then for the applied index."""

    index: int = -1
    answered: trio.Event = attrs.Factory(trio.Event)
    error: Optional[BaseException] = None


class RaftRuntime:
    """Drives one `RawNode` under trio. See the module docstring.

    Args:
        config: the node's settings (`Config.id` is this node).
        storage: durable (or memory) storage; a restart resumes from it.
        state_machine: the application state.
        send: hands an outbound message to the network; must not block (a
            transport's `send`, which queues or drops).
        tick_interval: seconds per Raft tick (election timeout = election_ticks
            ticks).
        snapshot_every: compact the log after this many applied entries (0 = never).
        inbox_limit: inbound messages waiting to be stepped; more are dropped.
        io_in_thread: run storage writes in a worker thread (keep True for disk
            storage; memory storage gains nothing from it). Tests under trio's
            MockClock with autojump should pass False: the mock clock jumps ahead
            while a thread runs, so every fsync would look like an eternity.
        replicate_while_writing: as leader, send appends while the own write
            runs (when the Ready allows it), so the followers' fsyncs overlap the
            leader's instead of following it. Safe either way. Turn it on when each
            node has a disk of its own; it is off by default because on one shared
            disk (several nodes on one machine, as measured in
            benchmarks/RESULTS.md) overlapping fsyncs queue behind each other and
            made every write slower.
    """

    def __init__(self, config: Config, storage: WritableStorage, state_machine: StateMachine,
                 send: Callable[[Message], None], *, tick_interval: float = 0.1,
                 snapshot_every: int = 10_000, inbox_limit: int = 4096,
                 io_in_thread: bool = True, replicate_while_writing: bool = False) -> None:
        if tick_interval <= 0:
            raise ValueError(f"tick_interval must be positive, got {tick_interval}")
        if snapshot_every < 0:
            raise ValueError(f"snapshot_every must be >= 0, got {snapshot_every}")
        self.storage = storage
        self.state_machine = state_machine
        self.tick_interval = tick_interval
        self.snapshot_every = snapshot_every
        self.io_in_thread = io_in_thread
        self.replicate_while_writing = replicate_while_writing
        self._send = send
        # Observability hook: called with (seconds, fsynced) after every storage
        # write; it must not block or raise.
        self.on_save: Optional[Callable[[float, bool], None]] = None
        snapshot = storage.snapshot()
        state_machine.restore(snapshot.data)
        self._applied = snapshot.index
        self.node = RawNode(config, storage, applied=snapshot.index)
        self.id: NodeId = config.id
        self._lock = trio.Lock()
        self._inbox_send, self._inbox = trio.open_memory_channel(inbox_limit)
        self._stats = RuntimeStats()
        self._waiters: dict[int, _Waiter] = {}
        # Proposals not yet handed to the node: appended together by `_proposer`
        # once the lock is free, so that one fsync covers all that arrived
        # during the previous one (group commit).
        self._queued: list[tuple[bytes, _Waiter]] = []
        self._work = trio.Event()
        self._reads: dict[bytes, _Read] = {}
        self._applied_waits: list[tuple[int, trio.Event]] = []
        # Read contexts must differ from those of every earlier run of this node:
        # an answer to a read of a previous incarnation, still in flight when it
        # stopped, must not serve a read of this one. A random nonce per run does
        # that (etcd mixes the member id with the start time the same way).
        self._read_prefix = b"rt-%d-%s-" % (self.id, secrets.token_hex(8).encode())
        self._read_ids = itertools.count(1)
        self._leaderless_ticks = 0
        self._changed = trio.Event()
        # Published after each handled Ready, so a watcher never sees a term or
        # role before it was persisted and announced.
        self._leadership = Leadership(self.node.term, self.node.leader, self.node.role)
        self._leadership_changed = trio.Event()
        self._on_conf_change: Optional[Callable[[Entry, ConfChange, ConfState], Any]] = getattr(
            state_machine, "apply_conf_change", None)
        self._running = False
        self._stopped = False
        self._fatal: Optional[BaseException] = None
        self._scope: Optional[trio.CancelScope] = None

    @classmethod
    def over(cls, transport: Transport, config: Config, storage: WritableStorage,
             state_machine: StateMachine, **options: Any) -> RaftRuntime:
        """A runtime whose messages travel over `transport`: it sends with
        `transport.send`, and the transport delivers inbound messages to it.

        Example::

            transport = TcpTransport(1, ("127.0.0.1", 7001), peers)
            runtime = RaftRuntime.over(transport, Config(id=1, voters=(1, 2, 3)),
                                       DiskStorage("/var/lib/app/raft"), machine)
            await nursery.start(transport.serve)
            await nursery.start(runtime.run)

        Args:
            transport: the network (one runtime per transport).
            config, storage, state_machine, options: as for the constructor.
        """
        runtime = cls(config, storage, state_machine, transport.send, **options)
        transport.attach(runtime.deliver)
        return runtime

    # -- running ---------------------------------------------------------------------

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Tick and step until cancelled. Use `await nursery.start(runtime.run)`."""
        if self._running or self._stopped:
            raise RuntimeError("a RaftRuntime runs once")
        self._running = True
        try:
            async with trio.open_nursery() as nursery:
                self._scope = nursery.cancel_scope
                for task in (self._ticker, self._stepper, self._proposer):
                    nursery.start_soon(self._guarded, task)
                await self._guarded(self._catch_up)
                task_status.started()
        finally:
            self._stopped = True
            self._fail_all(RuntimeStopped(f"node {self.id} stopped"))
        if self._fatal is not None:
            raise self._fatal

    def deliver(self, message: Message) -> None:
        """Queue an inbound message (a transport's callback). Never blocks."""
        try:
            self._inbox_send.send_nowait(message)
        except trio.WouldBlock:
            self._stats.dropped_inbound += 1

    async def _guarded(self, task: Callable[[], Any]) -> None:
        """Run an internal task; a fatal error is recorded by `_drain` and re-raised
        by `run` itself (not wrapped in the nursery's exception group)."""
        try:
            await task()
        except Exception:
            if self._fatal is None:
                raise

    async def _catch_up(self) -> None:
        async with self._lock:
            await self._drain()  # committed entries after the snapshot, if any

    async def _ticker(self) -> None:
        retry_every = self.node.config.election_ticks
        ticks = 0
        while True:
            await trio.sleep(self.tick_interval)
            ticks += 1
            async with self._lock:
                self.node.tick()
                if self.node.leader == NONE:
                    self._leaderless_ticks += 1
                    if self._leaderless_ticks >= retry_every and self._reads:
                        self._fail_unanswered_reads()
                else:
                    self._leaderless_ticks = 0
                if ticks % retry_every == 0 and self._reads:
                    # A forwarded ReadIndex request or its answer may have been
                    # lost on the way; asking again is harmless (the first
                    # answer wins).
                    self._reissue_reads()
                await self._drain()

    async def _stepper(self) -> None:
        async for message in self._inbox:
            async with self._lock:
                self.node.step(message)
                stepped = 1
                # Step whatever else already arrived before handling the Ready:
                # one persist-and-send for the whole burst.
                while True:
                    try:
                        more = self._inbox.receive_nowait()
                    except trio.WouldBlock:
                        break
                    self.node.step(more)
                    stepped += 1
                self._stats.messages_in += stepped
                await self._drain()

    async def _proposer(self) -> None:
        while True:
            await self._work.wait()
            self._work = trio.Event()
            async with self._lock:
                queued, self._queued = self._queued, []
                node = self.node
                self._stats.proposals += len(queued)
                self._stats.proposal_batches += 1
                for data, waiter in queued:
                    try:
                        index = node.propose(data)
                    except ProposalDropped as exc:
                        waiter.finish(error=exc)
                        continue
                    waiter.term = node.term
                    self._waiters[index] = waiter
                await self._drain()

    # -- the Ready contract ------------------------------------------------------------

    async def _drain(self) -> None:
        """Handle Ready batches until there are none. Called with the lock held."""
        if self._fatal is not None:
            raise RuntimeStopped(f"node {self.id} stopped: {self._fatal}") from self._fatal
        node = self.node
        changed = False
        try:
            while node.has_ready():
                rd = node.ready()
                await self._handle(rd)
                node.advance(rd)
                changed = True
                # Announced once persisted, batch by batch: a drain may go on for a
                # while (the new leader's first entry), and watchers should not lag.
                self._announce_leadership()
            if changed:
                await self._maybe_compact()
        except Exception as exc:
            # A write that failed (or a state machine that raised) leaves the node
            # between ready() and advance(): it must not go on. Stop the runtime;
            # `run` re-raises the error for the embedder.
            log.error("node %d stops: %r", self.id, exc)
            self._fatal = exc
            self._stopped = True
            stopped = RuntimeStopped(f"node {self.id} stopped: {exc!r}")
            stopped.__cause__ = exc
            self._fail_all(stopped)
            if self._scope is not None:
                self._scope.cancel()
            raise
        if changed:
            self._changed.set()
            self._changed = trio.Event()

    def _announce_leadership(self) -> None:
        node = self.node
        leadership = Leadership(node.term, node.leader, node.role)
        if leadership != self._leadership:
            self._leadership = leadership
            self._leadership_changed.set()
            self._leadership_changed = trio.Event()

    async def _handle(self, rd: Ready) -> None:
        send_first = rd.may_send_before_persist and self.replicate_while_writing
        if rd.snapshot is not None:
            await self._io(self.storage.apply_snapshot, rd.snapshot)
            self.state_machine.restore(rd.snapshot.data)
            self._skip_to(rd.snapshot.metadata.index)
        if send_first:
            # A leader replicates while its own write runs: the followers' fsyncs
            # overlap ours instead of following it (the core counts our copy only
            # after `advance`).
            for message in rd.messages:
                self._send(message)
        if rd.entries or rd.hard_state is not None:
            started = time.perf_counter()  # measured only, never decides anything
            await self._io(self.storage.save, rd.hard_state, rd.entries, rd.must_sync)
            elapsed = time.perf_counter() - started
            if rd.must_sync:
                self._stats.synced_writes += 1
                self._stats.sync_seconds += elapsed
            if self.on_save is not None:
                self.on_save(elapsed, rd.must_sync)
        if not send_first:
            for message in rd.messages:  # only now: what they acknowledge is durable
                self._send(message)
        for entry in rd.committed_entries:
            self._apply(entry)
        for state in rd.read_states:
            read = self._reads.get(state.context)
            if read is not None and read.index < 0:
                read.index = state.index
                read.answered.set()
        if rd.soft_state is not None and self._reads:
            self._reissue_reads()
        self._wake_applied()

    def _apply(self, entry: Entry) -> None:
        result: Any = None
        if entry.type is EntryType.CONF_CHANGE:
            result = self.node.apply_conf_change(entry)
            if self._on_conf_change is not None:
                change, _ = codec.decode_conf_change_entry(entry.data)
                self._on_conf_change(entry, change, result)
        elif entry.data:
            result = self.state_machine.apply(entry)
        self._applied = entry.index
        waiter = self._waiters.pop(entry.index, None)
        if waiter is not None:
            if entry.term == waiter.term:
                waiter.finish(result)
            else:
                waiter.finish(error=ProposalLost(
                    f"index {entry.index} holds an entry of term {entry.term}, "
                    f"not the proposal of term {waiter.term}"))

    def _skip_to(self, index: int) -> None:
        """A snapshot replaced the state up to `index`: proposals at or below it
        cannot be matched to an entry any more."""
        self._applied = index
        for at in [i for i in self._waiters if i <= index]:
            self._waiters.pop(at).finish(error=ProposalOutcomeUnknown(
                f"a snapshot up to index {index} covered the proposal at index {at}"))

    async def _maybe_compact(self) -> None:
        every = self.snapshot_every
        if not every or self._applied - self.storage.first_index() < every:
            return
        try:
            snapshot = self.node.create_snapshot(self._applied, self.state_machine.snapshot())
        except ProposalDropped as exc:  # e.g. configuration unknown at that index
            log.debug("node %d skips compaction: %s", self.id, exc)
            return
        await self._io(self.storage.compact, snapshot)
        self._stats.snapshots += 1

    async def _io(self, function: Callable[..., Any], *args: Any) -> Any:
        if self.io_in_thread:
            return await trio.to_thread.run_sync(function, *args)
        return function(*args)

    def _reissue_reads(self) -> None:
        """Ask again for every unanswered read: after a leadership change (the core
        forgot pending requests) and periodically (the network may lose them)."""
        for context, read in self._reads.items():
            if read.index < 0:
                try:
                    self.node.read_index(context)
                except ProposalDropped:
                    pass  # no leader yet: tried again at the next change

    def _fail_unanswered_reads(self) -> None:
        """No leader for an election timeout: reads still waiting for one fail
        (`ProposalDropped`, reason NO_LEADER) instead of waiting without bound."""
        for read in self._reads.values():
            if read.index < 0 and read.error is None:
                read.error = ProposalDropped(
                    DropReason.NO_LEADER, NONE,
                    f"node {self.id} has known no leader for an election timeout")
                read.answered.set()

    def _wake_applied(self) -> None:
        if self._applied_waits:
            still = []
            for index, event in self._applied_waits:
                if self._applied >= index:
                    event.set()
                else:
                    still.append((index, event))
            self._applied_waits = still

    def _fail_all(self, error: BaseException) -> None:
        for waiter in self._waiters.values():
            waiter.finish(error=error)
        self._waiters.clear()
        for _, waiter in self._queued:
            waiter.finish(error=error)
        self._queued.clear()
        for read in self._reads.values():
            read.error = error
            read.answered.set()
        for _, event in self._applied_waits:
            event.set()
        self._changed.set()
        self._leadership_changed.set()

    def _check_running(self) -> None:
        if self._stopped or not self._running:
            raise RuntimeStopped(f"node {self.id} is not running")

    # -- the caller's API ----------------------------------------------------------------

    async def propose(self, data: bytes) -> Any:
        """Replicate `data`; return the state machine's result for it. See the
        module docstring for the errors."""
        self._check_running()
        waiter = _Waiter()
        self._queued.append((bytes(data), waiter))
        self._work.set()
        return await self._outcome(waiter)

    async def change_membership(self, change: ConfChange) -> ConfState:
        """Add or remove one server (voter or learner); return the configuration in
        force once the change is applied on this node."""
        self._check_running()
        async with self._lock:
            index = self.node.propose_conf_change(change)
            waiter = self._waiters[index] = _Waiter(self.node.term)
            await self._drain()
        return await self._outcome(waiter)

    async def _outcome(self, waiter: _Waiter) -> Any:
        await waiter.done.wait()
        if waiter.error is not None:
            raise waiter.error
        return waiter.result

    async def read_barrier(self) -> int:
        """Wait until a read of the local state is linearizable; return the index
        this node has applied up to (at least the commit index at the call).

        Raises:
            ProposalDropped: no leader is known (reason NO_LEADER, at once), or
                none has been for an election timeout while the read waited.
                Retry later, or on another node.
            RuntimeStopped: the runtime stopped first.
        """
        self._check_running()
        context = b"%s%d" % (self._read_prefix, next(self._read_ids))
        read = self._reads[context] = _Read()
        try:
            async with self._lock:
                self.node.read_index(context)  # raises ProposalDropped if no leader
                await self._drain()
            await read.answered.wait()
            if read.error is not None:
                raise read.error
            await self.wait_applied(read.index)
            return self._applied
        finally:
            self._reads.pop(context, None)

    async def wait_applied(self, index: int) -> None:
        """Wait until this node has applied `index`."""
        if self._applied >= index:
            return
        self._check_running()
        event = trio.Event()
        self._applied_waits.append((index, event))
        await event.wait()
        if self._applied < index:
            raise RuntimeStopped(f"node {self.id} stopped at applied index {self._applied}")

    async def leadership_changes(self) -> AsyncIterator[Leadership]:
        """Yield the current `leadership` at once, then again whenever it changes
        (term, leader or role). A slow consumer skips intermediate states but
        always gets the newest one; a state is never yielded twice in a row.

        Example::

            async for leadership in runtime.leadership_changes():
                if leadership.role is Role.LEADER: ...

        Raises:
            RuntimeStopped: the runtime stopped (ends the iteration).
        """
        last: Optional[Leadership] = None
        while True:
            if self._stopped:
                raise RuntimeStopped(f"node {self.id} stopped")
            current = self._leadership
            if current != last:
                last = current
                yield current
            else:
                await self._leadership_changed.wait()

    async def wait_until(self, predicate: Callable[[], bool]) -> None:
        """Wait until `predicate()` holds; it is evaluated after every handled batch
        of work (e.g. ``lambda: rt.leader != NONE``)."""
        while not predicate():
            self._check_running()
            await self._changed.wait()

    async def transfer_leadership(self, to: NodeId) -> None:
        """Ask the leader (this node) to hand leadership to voter `to`."""
        self._check_running()
        async with self._lock:
            self.node.transfer_leadership(to)
            await self._drain()

    async def campaign(self) -> None:
        """Start an election now (tests and operators; normally timers do this)."""
        self._check_running()
        async with self._lock:
            self.node.campaign()
            await self._drain()

    # -- state -----------------------------------------------------------------------

    @property
    def role(self) -> Role:
        return self.node.role

    @property
    def leadership(self) -> Leadership:
        """Term, leader and role as of the last handled batch of work (persisted
        and announced); `leadership_changes` follows them."""
        return self._leadership

    @property
    def commit_index(self) -> int:
        """The highest log index this node knows to be committed."""
        return self.node.log.committed

    @property
    def applied_index(self) -> int:
        """The highest log index applied to the state machine on this node."""
        return self._applied

    @property
    def leader(self) -> NodeId:
        """The leader this node knows of (`raft.NONE` if none)."""
        return self.node.leader

    @property
    def is_leader(self) -> bool:
        return self.node.role is Role.LEADER and self.node.leader == self.id

    def status(self) -> Status:
        return self.node.status()

    @property
    def stats(self) -> RuntimeStats:
        return attrs.evolve(self._stats)

