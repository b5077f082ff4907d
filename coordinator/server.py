"""One coordinator node as a process: raft runtime, peer transport, client port.

Theory of operation
===================

`CoordinatorServer` wires together, under one trio nursery:

* a `raft.runtime.RaftRuntime` over `raft.DiskStorage` in ``data_dir``, whose
  state machine is `Replica` (a `CoordinatorState` plus what the server watches
  in applied entries: member addresses and recent moves);
* a `raft.transport.TcpTransport` on the peer port; its peer table follows the
  member addresses in the replicated state (`coordinator.members`), so a node added
  later is reached by everyone without configuration;
* a listener on the client port that speaks `coordinator.protocol` frames: client
  requests (`coordinator.api`) and worker sessions (heartbeats, releases, fenced
  checkpoints, leaves) share it. Every connection is read by one task, requests are
  answered concurrently, replies are written under a per-connection lock;
* the node driver (`coordinator.node`), which owns every rule of what a node
  proposes and answers for workers and operators; the server only moves its
  inputs and outputs.

Rules:

1. **Only the leader serves** (except status and member listing). A follower
   answers `ErrorKind.NOT_LEADER` with the leader's client address from the
   replicated member table; `coordinator.Client` follows it.
2. **A write is answered once applied** (the runtime fsyncs before it replicates),
   so an acknowledged write survives any minority of crashes. A write whose
   outcome is unknown within ``request_timeout`` is answered ``timeout``; the client
   retries it with the same sequence number and the state machine applies it once.
3. **Bad input closes one connection.** A frame that is not valid CBOR, has an
   unknown tag, fails validation, declares more than ``max_frame_bytes`` or is cut
   short closes only that connection, with a logged reason. Too many requests in
   flight on the node are answered ``overloaded``; a connection with too many of its
   own in flight is not read until one is answered; a client that does not read
   its replies is disconnected; too many connections are closed at accept.
5. **Member addresses are replicated.** Adding a member first writes its peer and
   client addresses through the log (`coordinator.members`), then proposes the
   membership change (which carries them too, in its context). The leader records
   the initial members' addresses from its configuration once it leads.
4. **Clean stop.** `stop()` (SIGTERM / Ctrl-C in `raftcoord serve`) first hands
   leadership to another voter when this node leads, then cancels everything;
   storage is closed after the runtime, so every acknowledged entry is on disk.

Seams for later: `_serve_client` takes any trio stream (TLS would wrap it), every
request passes through `_authorize` (always allows today), and `ServerStats` holds
the counters a metrics endpoint would export.
"""

from __future__ import annotations

import collections
import functools
import itertools
import logging
import random
from typing import Any, Callable, Optional

import attrs
import cbor2
import trio

from raft import Config, DiskStorage
from raft.errors import (
    DropReason,
    ProposalDropped,
    ProposalLost,
    ProposalOutcomeUnknown,
    RuntimeStopped,
)
from raft.runtime import RaftRuntime
from raft.transport import TcpTransport
from raft.types import NONE, ConfChange, ConfChangeType, Entry, Role

from . import api
from . import commands as c
from . import views
from .api import ErrorKind
from .config import CoordinatorConfig
from .lease import LeaseTiming
from .members import MEMBERS_PREFIX, Member, member_key, members_of
from .node import NodeDriver, Propose, Send, StartRead, apply_entry
from .protocol import (
    WORKER_MESSAGES,
    FrameDecoder,
    ProtocolError,
    Redirect,
    Unavailable,
    encode_frame,
)
from .state import CoordinatorState

log = logging.getLogger(__name__)

_RECENT_MOVES = 32


@attrs.frozen(kw_only=True)
class ServerConfig:
    """Settings of one coordinator node.

    Attributes:
        node_id: raft id of this node (>= 1).
        data_dir: where the raft log and snapshots live (a restart resumes from it).
        listen: client address ``host:port`` (port 0 = any free port).
        peer_listen: raft transport address ``host:port``.
        members: the initial members of a new cluster, this node included; empty for
            a node that joins a running cluster (it learns the members from the
            leader once it is added).
        advertise_client / advertise_peer: addresses other nodes and clients use to
            reach this node (default: the bound listen addresses).
        tick_interval: seconds per raft tick.
        election_ticks / heartbeat_ticks: raft timers in ticks.
        fsync: fsync the log before acknowledging (turn off only for throwaway data).
        request_timeout: a request not answered within it gets ``timeout``.
        max_in_flight: requests being served at once on this node; more get
            ``overloaded``.
        max_connections: open client connections; more are closed at accept.
        max_requests_per_connection: requests of one connection being served at
            once; beyond it the node stops reading that connection until one is
            answered (backpressure on that client only).
        send_timeout: a connection whose reader does not take a reply within it is
            closed (a client that never reads cannot pin the node's memory).
        max_frame_bytes: the largest client frame accepted.
        snapshot_every: compact the log after this many applied entries.
        lease_duration / max_drift / safety_margin: worker lease timing
            (`coordinator.lease.LeaseTiming`); workers must use the same values.
        driver_tick: seconds between two rounds of the leader's decisions.
        cluster: cluster name checked by the peer transport's handshake.
        seed: seeds raft's election jitter (None: random).
    """

    node_id: int
    data_dir: str
    listen: str = "127.0.0.1:7001"
    peer_listen: str = "127.0.0.1:7101"
    members: tuple[Member, ...] = attrs.field(default=(), converter=tuple)
    advertise_client: Optional[str] = None
    advertise_peer: Optional[str] = None
    tick_interval: float = 0.1
    election_ticks: int = 10
    heartbeat_ticks: int = 1
    fsync: bool = True
    request_timeout: float = 5.0
    max_in_flight: int = 4096
    max_connections: int = 1024
    max_requests_per_connection: int = 256
    send_timeout: float = 10.0
    max_frame_bytes: int = 2 * 1024 * 1024
    snapshot_every: int = 20_000
    lease_duration: float = 3.0
    max_drift: float = 0.05
    safety_margin: float = 0.3
    driver_tick: float = 0.1
    cluster: str = "raftcoord"
    seed: Optional[int] = None


@attrs.define
class ServerStats:
    """Counters of the client port (a metrics endpoint would export these)."""

    connections: int = 0
    requests: int = 0
    overloaded: int = 0
    rejected_connections: int = 0
    """Connections closed for bad input."""


class Replica:
    """The runtime's state machine: a `CoordinatorState` whose applied entries the
    server also watches (member addresses, recent moves) and hands to the node
    driver."""

    def __init__(self, config: CoordinatorConfig) -> None:
        self.config = config
        self.state = CoordinatorState(config)
        self.recent_moves: collections.deque = collections.deque(maxlen=_RECENT_MOVES)
        self.on_members: Callable[[dict[int, Member]], None] = lambda members: None
        self.on_applied: Callable[[int, int, c.Command, Any], None] = \
            lambda index, request_id, command, result: None

    def apply(self, entry: Entry) -> Any:
        request_id, command, result = apply_entry(self.state, entry.data)
        self._watch(command, result)
        self.on_applied(entry.index, request_id, command, result)
        return result

    def _watch(self, command: Any, result: Any) -> None:
        if isinstance(command, c.ClientRequest):
            command = command.command
        if isinstance(command, c.Batch) and isinstance(result, c.BatchResult):
            for inner, outcome in zip(command.commands, result.results):
                self._watch(inner, outcome)
        elif isinstance(result, c.Assigned):
            self.recent_moves.append({"partition": result.partition_id, "slot": result.slot,
                                      "worker": result.worker_id, "epoch": result.epoch,
                                      "at": self.state.log_time})
        elif isinstance(command, (c.KvPut, c.KvDelete)) and \
                command.key.startswith(MEMBERS_PREFIX) and not isinstance(result, c.Error):
            self.on_members(members_of(self.state))

    def snapshot(self) -> bytes:
        return self.state.snapshot()

    def restore(self, data: bytes) -> None:
        self.state = CoordinatorState.restore(data) if data else CoordinatorState(self.config)
        self.on_members(members_of(self.state))


@attrs.define(eq=False)
class _Pending:
    """A server task waiting for the driver's answer to a command it handed over."""

    done: trio.Event = attrs.Factory(trio.Event)
    message: Any = None
    error: Optional[BaseException] = None

    def finish(self, message: Any = None, error: Optional[BaseException] = None) -> None:
        if not self.done.is_set():
            self.message, self.error = message, error
            self.done.set()


@attrs.define(eq=False)
class _Connection:
    """A client or worker connection: where the driver's `Send` outputs go."""

    stream: trio.abc.Stream
    remote: str
    slots: trio.Semaphore
    send_lock: trio.Lock = attrs.Factory(trio.Lock)


class CoordinatorServer:
    """One coordinator node (see the module docstring).

    Use ``await nursery.start(server.run)``; `client_address` and `peer_address` are
    the bound addresses once started. `stop()` shuts down cleanly.
    """

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.stats = ServerStats()
        self.timing = LeaseTiming(lease_duration=config.lease_duration,
                                  max_drift=config.max_drift,
                                  safety_margin=config.safety_margin)
        self.replica = Replica(CoordinatorConfig(revoke_timeout=self.timing.leader_lease + 0.5))
        self.replica.on_members = self._members_changed
        self.replica.on_applied = self._applied
        self.driver = NodeDriver(config.node_id, lambda: self.replica.state, self.timing,
                                 client_address=self._client_address_of)
        self._nursery: Optional[trio.Nursery] = None
        self._request_ids = itertools.count(1)
        self.storage: Optional[DiskStorage] = None
        self.runtime: Optional[RaftRuntime] = None
        self.transport: Optional[TcpTransport] = None
        self.client_address = ""
        self.peer_address = ""
        self._in_flight = 0
        self._connections = 0
        self._recorded_peers: set[int] = set()
        # Requests being served as leader: answered at once when leadership is lost
        # (their outcome is unknown; the client retries at the new leader).
        self._leading_requests: set[trio.CancelScope] = set()
        self._scope: Optional[trio.CancelScope] = None
        self._stopping = False
        self._rng = random.Random(config.seed)

    # -- lifecycle ------------------------------------------------------------------

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Serve until `stop()` or cancellation."""
        config = self.config
        host, port = api.parse_address(config.peer_listen, listen=True)
        voters = tuple(sorted(m.node_id for m in config.members))
        if voters and config.node_id not in voters:
            raise ValueError(f"node {config.node_id} is not among the initial members {voters}")
        self.storage = DiskStorage(config.data_dir, unsafe_no_fsync=not config.fsync)
        try:
            peers = {m.node_id: api.parse_address(m.peer_address)
                     for m in config.members if m.node_id != config.node_id}
            self.transport = TcpTransport(config.node_id, (host, port), peers,
                                          cluster=config.cluster)
            raft_config = Config(id=config.node_id, voters=voters,
                                 election_ticks=config.election_ticks,
                                 heartbeat_ticks=config.heartbeat_ticks,
                                 seed=self._rng.randrange(2**31))
            self.runtime = RaftRuntime.over(self.transport, raft_config, self.storage,
                                            self.replica, tick_interval=config.tick_interval,
                                            snapshot_every=config.snapshot_every)
            async with trio.open_nursery() as nursery:
                self._scope = nursery.cancel_scope
                self._nursery = nursery
                await nursery.start(self.transport.serve)
                self.peer_address = config.advertise_peer or _format(self.transport.address)
                # Addresses recorded in the restored state (a restart) override the
                # command line: the replicated table is the truth.
                self._members_changed(members_of(self.replica.state))
                host, port = api.parse_address(config.listen, listen=True)
                listeners = await nursery.start(functools.partial(
                    trio.serve_tcp, self._serve_client, port, host=host))
                self.client_address = config.advertise_client or \
                    _format(listeners[0].socket.getsockname()[:2])
                await nursery.start(self.runtime.run)
                nursery.start_soon(self._watch_role)
                nursery.start_soon(self._ticker)
                nursery.start_soon(self._leader_duties)
                log.info("node %d serving clients on %s, peers on %s", config.node_id,
                         self.client_address, self.peer_address)
                task_status.started()
        finally:
            if self.storage is not None:
                self.storage.close()

    async def stop(self, transfer_timeout: float = 3.0) -> None:
        """Hand leadership over when leading, then stop everything."""
        if self._stopping:
            return
        self._stopping = True
        runtime = self.runtime
        if runtime is not None and runtime.is_leader:
            target = self._transfer_target()
            if target:
                log.info("node %d hands leadership to %d before stopping",
                         self.config.node_id, target)
                with trio.move_on_after(transfer_timeout):
                    try:
                        await runtime.transfer_leadership(target)
                        await runtime.wait_until(lambda: not runtime.is_leader)
                    except Exception as exc:  # stopping anyway
                        log.warning("leadership transfer before stop failed: %r", exc)
        if self._scope is not None:
            self._scope.cancel()

    def _transfer_target(self) -> int:
        """The most caught-up other voter (0 if none)."""
        status = self.runtime.status()
        others = [(progress.match, node) for node, progress in status.progress.items()
                  if node != self.config.node_id and node in status.conf_state.voters]
        return max(others)[1] if others else 0

    # -- the node driver -----------------------------------------------------------
    # The driver decides; these methods only carry its inputs and outputs.

    @staticmethod
    def _now() -> float:
        """The local clock the driver's lease arithmetic reads (monotonic)."""
        return trio.current_time()

    def _applied(self, index: int, request_id: int, command: c.Command, result: Any) -> None:
        self._run(self.driver.on_applied(index, request_id, command, result))
        self._run(self.driver.on_caught_up(index))

    async def _watch_role(self) -> None:
        """Tell the driver about every role or leader change."""
        runtime = self.runtime
        async for leadership in runtime.leadership_changes():
            if leadership.role is not Role.LEADER:
                for scope in self._leading_requests:
                    scope.cancel()
            self._run(self.driver.on_role_change(self._now(), leadership.role, leadership.term,
                                                 leadership.leader,
                                                 runtime.status().last_index))
            self._run(self.driver.on_caught_up(runtime.applied_index))

    async def _ticker(self) -> None:
        while True:
            await trio.sleep(self.config.driver_tick)
            self._run(self.driver.on_tick(self._now()))

    def _run(self, outputs: list) -> None:
        """Carry out the driver's outputs, in order (`coordinator.node`)."""
        for output in outputs:
            if isinstance(output, Propose):
                self._nursery.start_soon(self._propose_for_driver, output)
            elif isinstance(output, StartRead):
                self._nursery.start_soon(self._read_for_driver, output.token)
            elif isinstance(output, Send):
                self._deliver_send(output)

    async def _propose_for_driver(self, proposal: Propose) -> None:
        try:
            result = await self.runtime.propose(proposal.data)
        except ProposalDropped as exc:
            self._run(self.driver.on_dropped(proposal, exc.leader_hint))
            return
        except (ProposalLost, ProposalOutcomeUnknown, RuntimeStopped) as exc:
            if isinstance(proposal.reply_to, _Pending):
                proposal.reply_to.finish(error=exc)
            return
        self._run(self.driver.on_proposal_result(proposal, result))

    async def _read_for_driver(self, token: bytes) -> None:
        try:
            with trio.fail_after(self.config.request_timeout):
                await self.runtime.read_barrier()
        except Exception:  # refused, stopped or too slow: the worker asks again
            self._run(self.driver.on_read_failed(token))
            return
        self._run(self.driver.on_read_confirmed(token))

    def _deliver_send(self, send: Send) -> None:
        to = send.to
        if isinstance(to, _Pending):
            to.finish(send.message)
        elif isinstance(to, _Connection):
            self._nursery.start_soon(self._send, to, send.request_id, send.message)

    async def replicate(self, command: c.Command) -> Any:
        """Replicate a command through the driver (stamped with cluster time when it
        carries one); its state machine result.

        Raises:
            _NotLeader / _Unavailable: the driver could not take it here.
            ProposalLost, ProposalOutcomeUnknown, RuntimeStopped: from the runtime.
        """
        pending = _Pending()
        outputs = self.driver.on_client_command(self._now(), command, pending,
                                                next(self._request_ids))
        self._run(outputs)
        await pending.done.wait()
        if pending.error is not None:
            raise pending.error
        answer = pending.message
        if isinstance(answer, Redirect):
            raise _NotLeader()
        if isinstance(answer, Unavailable):
            raise _Unavailable(answer.detail or "the leader cannot take it now")
        return answer

    def _client_address_of(self, node_id: int) -> str:
        if node_id == self.config.node_id:
            return self.client_address
        member = members_of(self.replica.state).get(node_id)
        if member is None:  # not recorded yet: the initial configuration knows
            member = next((m for m in self.config.members if m.node_id == node_id), None)
        return member.client_address if member is not None else ""

    # -- member addresses ---------------------------------------------------------

    def _members_changed(self, members: dict[int, Member]) -> None:
        """Point the transport at every recorded member (and away from removed ones)."""
        transport = self.transport
        if transport is None:
            return
        for node_id, member in members.items():
            if node_id != self.config.node_id:
                try:
                    transport.set_peer(node_id, api.parse_address(member.peer_address))
                except ValueError as exc:
                    log.warning("member %d has an unusable peer address: %s", node_id, exc)
        for node_id in self._recorded_peers - set(members):
            transport.set_peer(node_id, None)
        self._recorded_peers = set(members) - {self.config.node_id}

    def leader_address(self) -> tuple[int, str]:
        """The leader this node knows of and its client address ("" if unknown)."""
        runtime = self.runtime
        leader = runtime.leader if runtime is not None else NONE
        if leader == NONE:
            return 0, ""
        return leader, self._client_address_of(leader)

    async def _leader_duties(self) -> None:
        """While leading: make sure every initial member's addresses are recorded."""
        runtime = self.runtime
        while True:
            await runtime.wait_until(lambda: runtime.is_leader)
            try:
                await self._record_members()
            except Exception as exc:  # retried at the next leadership
                log.info("recording member addresses failed: %r", exc)
            await runtime.wait_until(lambda: not runtime.is_leader)

    async def _record_members(self) -> None:
        known = members_of(self.replica.state)
        me = Member(node_id=self.config.node_id, peer_address=self.peer_address,
                    client_address=self.client_address)
        wanted = {m.node_id: m for m in self.config.members}
        wanted[me.node_id] = me
        voters = self.runtime.status().conf_state.members()
        for node_id, member in sorted(wanted.items()):
            if node_id in voters and known.get(node_id) != member and (
                    node_id == me.node_id or node_id not in known):
                while self.runtime.is_leader:
                    try:  # the driver may not know of the leadership or be ready yet
                        with trio.fail_after(self.config.request_timeout):
                            await self.replicate(member.put_command())
                        break
                    except (_Unavailable, _NotLeader):
                        await trio.sleep(0.05)

    # -- client connections --------------------------------------------------------

    async def _serve_client(self, stream: trio.abc.Stream) -> None:
        remote = _remote(stream)
        if self._connections >= self.config.max_connections:
            log.warning("refusing client connection from %s: %d connections open",
                        remote, self._connections)
            await trio.aclose_forcefully(stream)
            return
        self._connections += 1
        self.stats.connections += 1
        decoder = FrameDecoder(self.config.max_frame_bytes)
        connection = _Connection(stream, remote,
                                 trio.Semaphore(self.config.max_requests_per_connection))
        try:
            async with trio.open_nursery() as nursery:
                try:
                    while True:
                        data = await stream.receive_some(1 << 16)
                        if not data:
                            if decoder.buffered:
                                raise ProtocolError(
                                    f"connection closed inside a frame ({decoder.buffered} "
                                    f"bytes pending)")
                            break
                        for frame in decoder.feed(data):
                            if not isinstance(frame.message, WORKER_MESSAGES):
                                await connection.slots.acquire()  # released once answered
                            self._dispatch(nursery, connection, frame.request_id,
                                           frame.message)
                except ProtocolError as exc:
                    self.stats.rejected_connections += 1
                    log.warning("closing client connection from %s: %s", remote, exc)
                    if exc.request_id is not None:  # tell the sender why, if it listens
                        with trio.move_on_after(1):
                            await self._send(connection, exc.request_id,
                                             _error(ErrorKind.BAD_REQUEST, str(exc)))
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    pass
                nursery.cancel_scope.cancel()
        finally:
            self._connections -= 1
            await trio.aclose_forcefully(stream)

    def _dispatch(self, nursery: trio.Nursery, connection: _Connection, request_id: int,
                  message: Any) -> None:
        if isinstance(message, WORKER_MESSAGES):
            # Worker sessions: the driver answers (through `Send`) when it can.
            self.stats.requests += 1
            self._run(self.driver.on_worker_message(self._now(), message, connection,
                                                    request_id, peer=connection.remote))
            return
        if not isinstance(message, _REQUESTS):
            raise ProtocolError(f"{type(message).__name__} is not a request a node serves")
        self.stats.requests += 1
        if self._in_flight >= self.config.max_in_flight:
            self.stats.overloaded += 1
            reply: Any = _error(ErrorKind.OVERLOADED, f"{self._in_flight} requests in flight")
            nursery.start_soon(self._reply, connection, request_id, reply)
            return
        self._in_flight += 1
        nursery.start_soon(self._answer, connection, request_id, message)

    async def _answer(self, connection: _Connection, request_id: int, message: Any) -> None:
        try:
            reply = await self._handle(message)
        finally:
            self._in_flight -= 1
        await self._reply(connection, request_id, reply)

    async def _reply(self, connection: _Connection, request_id: int, reply: Any) -> None:
        try:
            await self._send(connection, request_id, reply)
        finally:
            connection.slots.release()

    async def _send(self, connection: _Connection, request_id: int, reply: Any) -> None:
        async with connection.send_lock:
            with trio.move_on_after(self.config.send_timeout) as scope:
                try:
                    await connection.stream.send_all(encode_frame(request_id, reply))
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    pass  # the client went away; the reader task ends the connection
            if scope.cancelled_caught:
                log.warning("closing client connection from %s: it does not read its "
                            "replies", connection.remote)
                await trio.aclose_forcefully(connection.stream)

    # -- requests ----------------------------------------------------------------------

    def _authorize(self, request: Any) -> None:
        """Where authentication and authorization will plug in (allows all today)."""

    async def _handle(self, request: Any) -> Any:
        runtime = self.runtime
        if runtime is None or self._stopping:
            return _error(ErrorKind.UNAVAILABLE, "the node is stopping")
        self._authorize(request)
        if isinstance(request, api.StatusRequest):
            return api.ok(self.status())
        if isinstance(request, api.ListMembersRequest):
            return api.ok(self.members_view())
        if not runtime.is_leader:
            return self._not_leader(request)
        scope = trio.CancelScope()
        self._leading_requests.add(scope)
        try:
            with scope, trio.fail_after(self.config.request_timeout):
                result = await self._serve(request)
            if scope.cancelled_caught:
                return _error(ErrorKind.TIMEOUT, "this node stopped leading before the "
                              "outcome was known; retrying is safe")
        except trio.TooSlowError:
            return _error(ErrorKind.TIMEOUT,
                          f"no outcome within {self.config.request_timeout} s; "
                          "retrying is safe")
        except ProposalDropped as exc:
            return self._dropped(request, exc)
        except (ProposalLost, ProposalOutcomeUnknown) as exc:
            return _error(ErrorKind.TIMEOUT, f"outcome unknown ({exc}); "
                          "retrying is safe")
        except RuntimeStopped as exc:
            return _error(ErrorKind.UNAVAILABLE, str(exc))
        except _BadRequest as exc:
            return _error(ErrorKind.BAD_REQUEST, str(exc))
        except _NotLeader:
            return self._not_leader(request)
        except _Unavailable as exc:
            return _error(ErrorKind.UNAVAILABLE, str(exc))
        finally:
            self._leading_requests.discard(scope)
        if isinstance(result, c.Error):
            return api.ErrorReply(kind=ErrorKind.REFUSED.value,
                                  code=result.code.value, message=result.message[:4000])
        return api.ok(result)

    def _not_leader(self, request: Any) -> api.ErrorReply:
        leader, address = self.leader_address()
        return api.ErrorReply(kind=ErrorKind.NOT_LEADER.value,
                              message=f"node {self.config.node_id} is not the leader",
                              leader_id=leader, leader_address=address)

    def _dropped(self, request: Any, exc: ProposalDropped) -> api.ErrorReply:
        reason = exc.reason
        if reason in (DropReason.NOT_LEADER, DropReason.NO_LEADER):
            return self._not_leader(request)
        if reason is DropReason.TOO_MUCH_UNCOMMITTED:
            kind = ErrorKind.OVERLOADED
        elif reason in (DropReason.INVALID_CHANGE, DropReason.INVALID_TARGET):
            kind = ErrorKind.BAD_REQUEST
        else:
            kind = ErrorKind.UNAVAILABLE
        return _error(kind, str(exc))

    async def _serve(self, request: Any) -> Any:
        if isinstance(request, api.WRITE_REQUESTS):
            command = self._command(request)
            wrapped = c.ClientRequest(client_id=request.client_id, seq=request.seq,
                                      acked_below=request.acked_below, command=command)
            return _plain(await self.replicate(wrapped))
        if isinstance(request, api.READ_REQUESTS):
            await self.runtime.read_barrier()
            return self._read(request)
        if isinstance(request, api.AddMemberRequest):
            return await self._add_member(request)
        if isinstance(request, api.PromoteMemberRequest):
            conf = await self.runtime.change_membership(
                ConfChange(ConfChangeType.ADD_VOTER, request.node_id))
            return _conf(conf)
        if isinstance(request, api.RemoveMemberRequest):
            return await self._remove_member(request)
        if isinstance(request, api.TransferLeaderRequest):
            return await self._transfer(request)
        raise _BadRequest(f"unsupported request {type(request).__name__}")

    def _command(self, request: Any) -> c.Command:
        """The state machine command a write request asks for."""
        if isinstance(request, (api.KvPutRequest, api.KvCasRequest, api.KvDeleteRequest)) \
                and request.key.startswith(api.RESERVED_PREFIX):
            raise _BadRequest(f"keys under {api.RESERVED_PREFIX!r} are written by the "
                              "cluster itself")
        try:
            if isinstance(request, api.KvPutRequest):
                return c.KvPut(key=request.key, value=request.value)
            if isinstance(request, api.KvCasRequest):
                return c.KvCas(key=request.key, expected_version=request.expected_version,
                               value=request.value)
            if isinstance(request, api.KvDeleteRequest):
                return c.KvDelete(key=request.key, expected_version=request.expected_version)
            now = 0.0  # the driver stamps cluster time
            if isinstance(request, api.CreateGroupRequest):
                return c.CreatePartitionGroup(
                    name=request.name, count=request.count, weight=request.weight,
                    replication_factor=request.replication_factor, now=now)
            if isinstance(request, api.DeleteGroupRequest):
                return c.DeletePartitionGroup(name=request.name, now=now)
            if isinstance(request, api.DrainRequest):
                return c.DrainWorker(worker_id=request.worker_id, now=now)
            if isinstance(request, api.UndrainRequest):
                return c.UndrainWorker(worker_id=request.worker_id, now=now)
        except (TypeError, ValueError) as exc:
            raise _BadRequest(str(exc)) from exc
        raise _BadRequest(f"unsupported write {type(request).__name__}")

    def _read(self, request: Any) -> Any:
        state = self.replica.state
        if isinstance(request, api.KvGetRequest):
            record = state.kv_get(request.key)
            return views.kv_entry(request.key, record.value if record else None,
                                  record.version if record else 0)
        if isinstance(request, api.KvListRequest):
            return {"entries": [views.kv_entry(e.key, e.value, e.version)
                                for e in state.kv_list(request.prefix, request.limit)]}
        if isinstance(request, api.ListGroupsRequest):
            return {"groups": views.groups_view(state)}
        if isinstance(request, api.ShowGroupRequest):
            group = views.group_view(state, request.name)
            if group is None:
                return c.Error(code=c.ErrorCode.UNKNOWN_GROUP,
                               message=f"no partition group {request.name!r}")
            return group
        if isinstance(request, api.ListWorkersRequest):
            return {"workers": views.workers_view(state)}
        raise _BadRequest(f"unsupported read {type(request).__name__}")

    async def _add_member(self, request: api.AddMemberRequest) -> Any:
        member = Member(node_id=request.node_id, peer_address=request.peer_address,
                        client_address=request.client_address)
        # Addresses first: once the change applies, every member must reach it.
        if members_of(self.replica.state).get(member.node_id) != member:
            await self.replicate(member.put_command())
        conf = self.runtime.status().conf_state
        if member.node_id in conf.members():
            return _conf(conf)
        return _conf(await self.runtime.change_membership(
            ConfChange(ConfChangeType.ADD_LEARNER, member.node_id,
                       context=cbor2.dumps({"peer": member.peer_address,
                                            "client": member.client_address}))))

    async def _remove_member(self, request: api.RemoveMemberRequest) -> Any:
        conf = self.runtime.status().conf_state
        if request.node_id in conf.members():
            conf = await self.runtime.change_membership(
                ConfChange(ConfChangeType.REMOVE_NODE, request.node_id))
        if request.node_id != self.config.node_id and \
                member_key(request.node_id) in {e.key for e in
                                                self.replica.state.kv_list(MEMBERS_PREFIX)}:
            await self.replicate(c.KvDelete(key=member_key(request.node_id)))
        return _conf(conf)

    async def _transfer(self, request: api.TransferLeaderRequest) -> Any:
        runtime = self.runtime
        target = request.to or self._transfer_target()
        if not target:
            raise _BadRequest("no other voter to hand leadership to")
        if target == self.config.node_id:
            return {"leader": target}
        await runtime.transfer_leadership(target)
        await runtime.wait_until(lambda: runtime.leader not in (NONE, self.config.node_id))
        return {"leader": runtime.leader}

    # -- views ---------------------------------------------------------------------------

    def members_view(self) -> dict[str, Any]:
        status = self.runtime.status()
        addresses = members_of(self.replica.state)
        out = []
        for node_id in sorted(status.conf_state.members() | set(addresses)):
            member = addresses.get(node_id)
            role = "voter" if node_id in status.conf_state.voters else \
                "learner" if node_id in status.conf_state.learners else "none"
            progress = status.progress.get(node_id)
            out.append({"id": node_id, "role": role,
                        "leader": node_id == status.leader,
                        "peer": member.peer_address if member else "",
                        "client": member.client_address if member else "",
                        "match": progress.match if progress else None})
        return {"members": out, "leader": status.leader}

    def status(self) -> dict[str, Any]:
        runtime = self.runtime
        status = runtime.status()
        leader, leader_address = self.leader_address()
        raft = {"node": self.config.node_id, "role": status.role.name.lower(),
                "term": status.term, "leader": leader, "leader_address": leader_address,
                "commit": status.commit, "applied": status.applied,
                "voters": sorted(status.conf_state.voters),
                "learners": sorted(status.conf_state.learners),
                "runtime": attrs.asdict(runtime.stats),
                "server": attrs.asdict(self.stats)}
        return views.status_view(self.replica.state, raft, self.replica.recent_moves)


class _BadRequest(Exception):
    """The request cannot be served as asked."""


class _NotLeader(Exception):
    """The driver redirected the command: this node does not lead."""


class _Unavailable(Exception):
    """The driver cannot take the command now (leader catching up, refused)."""


def _error(kind: ErrorKind, message: str) -> api.ErrorReply:
    return api.ErrorReply(kind=kind.value, message=message[:4000])


_REQUESTS = api.WRITE_REQUESTS + api.READ_REQUESTS + api.LOCAL_REQUESTS + api.ADMIN_REQUESTS


def _plain(result: Any) -> Any:
    """A command result as plain data for the reply (errors pass through)."""
    if isinstance(result, c.KvValue):
        return views.kv_entry(result.key, result.value, result.version)
    if isinstance(result, c.GroupChanged):
        return {"name": result.name, "count": result.count, "created": result.created}
    if isinstance(result, c.WorkerStateChanged):
        return {"worker_id": result.worker_id, "state": result.state.value}
    return result


def _conf(conf: Any) -> dict[str, Any]:
    return {"voters": sorted(conf.voters), "learners": sorted(conf.learners)}


def _format(address: tuple) -> str:
    host, port = address[0], address[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _remote(stream: Any) -> str:
    try:
        host, port = stream.socket.getpeername()[:2]
        return f"{host}:{port}"
    except Exception:
        return "?"
