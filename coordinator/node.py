"""The coordinator node driver: worker and client requests in, Raft work out.

`NodeDriver` holds every rule that turns what reaches a coordinator node — worker
heartbeats, releases, checkpoints and leaves, client and operator commands — into
Raft proposals, ReadIndex rounds and replies. It is sans-IO: it reads no clock (every
input carries the node's local clock reading ``now``), does no I/O and keeps no
timers. The simulator drives it over a `raft.RawNode`, the trio server over
`raft.runtime.RaftRuntime`; both run exactly these rules.

Inputs and outputs
==================
Every input method returns a list of outputs, to be carried out **in order**:

* `Propose` — propose ``data`` (an `envelope`: request id + encoded command) to
  Raft. If Raft refuses it (``ProposalDropped``), call `on_dropped`; once its outcome
  is known (RawNode: the entry applied at the index ``propose`` returned carries the
  same request id; RaftRuntime: ``await propose(data)`` returned), call
  `on_proposal_result` with the state machine's result for a reply. The caller may
  skip the latter when nobody waits (``reply_to`` is None).
* `StartRead` — start a ReadIndex round with ``token`` as its context (RawNode:
  ``read_index(token)``; RaftRuntime: ``await read_barrier()``). Once it confirmed
  leadership *and* this node's state machine applied the read index, call
  `on_read_confirmed(token)`; if it failed, `on_read_failed(token)`.
* `Send` — send ``message`` to ``to`` (the opaque address the caller gave with the
  request) with ``request_id`` (the caller's id of the request it answers; 0 for
  none).

The other inputs: `on_role_change` whenever the node's Raft role or known leader
changes; `on_applied` for every applied command (any proposer, in log order, on
every node); `on_caught_up` after applying, with the applied index — also when
only entries the state machine never sees were applied (a new leader's empty entry,
the one it waits for to be ready); `on_tick` periodically (the leader's decisions
and retries run there).

Rules
=====
1. **Leading.** When the node becomes leader at term T with last log index L, the
   driver builds a `CoordinatorLeader` with ``now`` as its term start. It is *ready*
   once the state machine applied index L (the leader's view of the state is then
   current); the leader is dropped with the leadership.
2. **Decisions.** On every tick of a ready leader, `CoordinatorLeader.next_commands`
   runs and what it returns is proposed as one `Batch` (request id
   `LEADER_PROPOSAL`); a refused batch is handed back (`on_dropped`) so that it may
   be proposed again. Every applied command reaches `CoordinatorLeader.on_applied`.
3. **Cluster time.** Commands the driver builds for requests (registrations,
   releases, leaves, operator commands) are stamped with the leader's cluster time,
   never a local clock reading; so they wait for the leader to be ready.
4. **Heartbeats.** A heartbeat at a ready leader from a worker the state knows as
   live starts a ReadIndex round *after* its arrival; only when that round confirms
   leadership does the leader renew the lease (`CoordinatorLeader.on_heartbeat`,
   with the arrival time) and answer `Ack` with the worker's view; None from it (the
   worker is dead or being expired) answers `Nack`. A heartbeat from a worker that
   is unknown or dead proposes `RegisterWorker` (at most once a second per worker)
   and answers `Nack`: the worker starts a new session. A heartbeat at a leader that
   is not ready yet is not answered (the worker retries).
5. **Worker writes.** `Release`, `Checkpoint` and `Leave` at a ready leader become
   `Released`, `FencedPut` (key `checkpoint_key`) and `DeregisterWorker`
   proposals (request id `WORKER_REQUEST`); their results answer `CheckpointResult`
   and `Left` (a release is answered by the next heartbeat's view).
6. **Not the leader.** Any request at a node that does not lead is answered with
   `Redirect` (the leader it knows of and that leader's client address); a request
   that needs the leader's cluster time at a leader not ready yet, or that Raft
   refused at the leader, with `Unavailable`.
"""

from __future__ import annotations

import math
import struct
from typing import Any, Callable, Optional

import attrs

from raft.types import Role

from . import commands as c
from .codec import CommandDecodeError, decode_command, encode_command
from .commands import WorkerState
from .leader import CoordinatorLeader
from .lease import LeaseTiming
from .placement import PlacementPolicy
from .protocol import (
    Ack,
    Checkpoint,
    CheckpointResult,
    Heartbeat,
    Leave,
    Left,
    Nack,
    Redirect,
    Release,
    Unavailable,
)
from .state import CoordinatorState

LEADER_PROPOSAL = -1
"""Request id of the leader's own decisions (nobody waits for their result)."""
WORKER_REQUEST = -2
"""Request id of proposals made for worker messages."""

_REQUEST_ID = struct.Struct("<q")
REGISTER_RETRY = 1.0
"""Local seconds between two registrations proposed for one worker."""


def envelope(request_id: int, command: c.Command) -> bytes:
    """A log entry: the request id (signed 64 bits), then the encoded command."""
    return _REQUEST_ID.pack(request_id) + encode_command(command)


def open_envelope(data: bytes) -> tuple[int, c.Command]:
    """(request id, command) of a log entry made by `envelope`.

    Raises:
        CommandDecodeError: the bytes are not a valid envelope.
    """
    if len(data) < _REQUEST_ID.size:
        raise CommandDecodeError("entry shorter than its request id")
    return _REQUEST_ID.unpack_from(data)[0], decode_command(data[_REQUEST_ID.size:])


def apply_entry(state: CoordinatorState, data: bytes) -> tuple[int, c.Command, Any]:
    """Apply a log entry made by `envelope` to ``state``.

    Returns:
        (request id, command, the state machine's result), for `on_applied`.

    Raises:
        CommandDecodeError: the entry is not a valid envelope (no replica can apply
            it; the log is damaged).
    """
    request_id, command = open_envelope(data)
    return request_id, command, state.apply(command)


def checkpoint_key(partition_id: str) -> str:
    """The metadata KV key a partition's fenced checkpoint is written to."""
    return f"ckpt/{partition_id}"


# -- outputs ---------------------------------------------------------------------------


@attrs.frozen(eq=False)
class Propose:
    """Propose ``data`` to Raft (see the module docstring).

    Attributes:
        data: the log entry (`envelope` of ``request_id`` and ``command``).
        command: the command it carries.
        request_id: the request id inside the entry.
        reply_to: who waits for the outcome (None: nobody).
        reply_id: the caller's request id of the request it answers.
        request: the worker message or client command it was made for (None for the
            leader's own decisions).
        term: the term of the leadership that proposed it.
    """

    data: bytes
    command: c.Command
    request_id: int
    reply_to: Any = None
    reply_id: int = 0
    request: Any = None
    term: int = 0


@attrs.frozen
class StartRead:
    """Start a ReadIndex round with context ``token``."""

    token: bytes


@attrs.frozen
class Send:
    """Send ``message`` to ``to`` answering the caller's request ``request_id`` (0:
    none). For a client command the message is the command's `coordinator.commands`
    result, which the caller wraps in its own reply."""

    to: Any
    message: Any
    request_id: int = 0


Output = Any  # Propose | StartRead | Send


@attrs.define
class _HeartbeatRead:
    term: "_Term"
    reply_to: Any
    request_id: int
    worker_id: str
    seq: int
    received_at: float


class _Term:
    """One leadership: its decisions and what it waits for."""

    def __init__(self, leader: CoordinatorLeader, term: int, start_index: int) -> None:
        self.leader = leader
        self.term = term
        self.start_index = start_index
        self.ready = False
        self.registering: dict[str, float] = {}


_HAS_NOW: dict[type, bool] = {}


def _has_now(command: c.Command) -> bool:
    kind = type(command)
    known = _HAS_NOW.get(kind)
    if known is None:
        known = _HAS_NOW[kind] = isinstance(command, c.Batch) or any(
            field.name == "now" for field in attrs.fields(kind))
    return known


class NodeDriver:
    """The driver of one coordinator node process (module docstring).

    Args:
        node_id: this node's Raft id.
        state: returns the node's current state machine (it may be replaced by a
            snapshot; the driver never mutates it).
        timing: lease arithmetic.
        policy: planner caps and tolerance.
        client_address: the client address of a node id ("" if unknown), for
            redirects.
        leader_class: builds the per-term `CoordinatorLeader` (tests plant broken
            variants here).
    """

    def __init__(self, node_id: int, state: Callable[[], CoordinatorState],
                 timing: LeaseTiming, policy: PlacementPolicy = PlacementPolicy(), *,
                 client_address: Callable[[int], str] = lambda node_id: "",
                 leader_class: type = CoordinatorLeader) -> None:
        self.node_id = node_id
        self._state = state
        self.timing = timing
        self.policy = policy
        self._client_address = client_address
        self._leader_class = leader_class
        self.role = Role.FOLLOWER
        self.leader_id = 0
        self._term: Optional[_Term] = None
        self._reads: dict[bytes, _HeartbeatRead] = {}
        self._read_counter = 0

    # -- observation ---------------------------------------------------------------

    @property
    def ready(self) -> bool:
        """Leading, and the state machine applied the term's first entry."""
        return self._term is not None and self._term.ready

    @property
    def leading(self) -> Optional[CoordinatorLeader]:
        """The current leadership's decisions (None when not leading)."""
        return self._term.leader if self._term is not None else None

    @property
    def term(self) -> int:
        """The term of the current leadership (0 when not leading)."""
        return self._term.term if self._term is not None else 0

    # -- Raft events -----------------------------------------------------------------

    def on_role_change(self, now: float, role: Role, term: int, leader: int,
                       last_index: int) -> list[Output]:
        """The node's role or known leader changed (rule 1).

        Args:
            now: the local clock.
            role: the node's role now.
            term: its current term.
            leader: the leader it knows of (0: none).
            last_index: the last index of its log now.
        """
        self.leader_id = leader
        was, self.role = self.role, role
        if role is Role.LEADER:
            if self._term is None or self._term.term != term or was is not Role.LEADER:
                leader_state = self._leader_class(self._state(), self.timing, self.policy,
                                                  term_start=now)
                self._term = _Term(leader_state, term, last_index)
                self._reads.clear()
        elif self._term is not None:
            self._term = None
            self._reads.clear()
        return []

    def on_caught_up(self, applied_index: int) -> list[Output]:
        """The state machine has applied every entry up to ``applied_index``."""
        term = self._term
        if term is not None and not term.ready and applied_index >= term.start_index:
            term.ready = True
        return []

    def on_applied(self, index: int, request_id: int, command: c.Command,
                   result: Any) -> list[Output]:
        """A command was applied to this node's state machine (rule 2)."""
        if self._term is not None:
            self._term.leader.on_applied(command, result)
        return []

    def on_tick(self, now: float) -> list[Output]:
        """Periodic work: the ready leader's decisions (rule 2)."""
        term = self._term
        if term is None or not term.ready:
            return []
        commands = term.leader.next_commands(now)
        if not commands:
            return []
        batch = c.Batch(commands=commands)
        return [Propose(envelope(LEADER_PROPOSAL, batch), batch, LEADER_PROPOSAL,
                        term=term.term)]

    def on_dropped(self, proposal: Propose, leader_hint: int = 0) -> list[Output]:
        """Raft refused ``proposal`` (nothing was appended).

        Args:
            leader_hint: the leader Raft named in its refusal (0: unknown).
        """
        term = self._term
        if proposal.request_id == LEADER_PROPOSAL:
            if term is not None and term.term == proposal.term:
                term.leader.on_dropped(proposal.command)
            return []
        if proposal.reply_to is None:
            return []
        if leader_hint and leader_hint != self.node_id:
            answer: Any = self._redirect(leader_hint)
        else:
            answer = Unavailable("the proposal was refused; retry")
        return [Send(proposal.reply_to, answer, proposal.reply_id)]

    def on_proposal_result(self, proposal: Propose, result: Any) -> list[Output]:
        """The state machine's ``result`` for ``proposal`` (rule 5): the reply."""
        if proposal.reply_to is None:
            return []
        request = proposal.request
        if isinstance(request, Checkpoint):
            accepted = isinstance(result, c.KvValue)
            detail = "" if accepted else _describe(result)
            answer: Any = CheckpointResult(request.partition_id, request.epoch, accepted, detail)
        elif isinstance(request, Leave):
            answer = Left(request.worker_id)
        elif isinstance(request, (Release, Heartbeat)):
            return []
        else:
            answer = result
        return [Send(proposal.reply_to, answer, proposal.reply_id)]

    def on_read_confirmed(self, token: bytes) -> list[Output]:
        """A ReadIndex round this driver started confirmed leadership and the state
        machine applied its index (rule 4)."""
        read = self._reads.pop(token, None)
        if read is None or read.term is not self._term or self.role is not Role.LEADER:
            return []
        return self._answer_heartbeat(read)

    def on_read_failed(self, token: bytes) -> list[Output]:
        """A ReadIndex round this driver started was refused or abandoned."""
        self._reads.pop(token, None)
        return []

    # -- requests --------------------------------------------------------------------

    def on_worker_message(self, now: float, message: Any, reply_to: Any, request_id: int = 0,
                          peer: str = "") -> list[Output]:
        """A message from a worker (rules 4 to 6).

        Args:
            now: the local clock when it arrived.
            message: a `Heartbeat`, `Release`, `Checkpoint` or `Leave`.
            reply_to: where answers go (opaque to the driver).
            request_id: the caller's id of this request, echoed in answers.
            peer: the worker's address as this node sees it (recorded when the
                heartbeat names none).
        """
        term = self._term
        if term is None or self.role is not Role.LEADER:
            return [Send(reply_to, self._redirect(self.leader_id), request_id)]
        if not term.ready:
            if isinstance(message, Heartbeat):
                return []
            return [Send(reply_to, Unavailable("the leader is catching up"), request_id)]
        leader = term.leader
        cluster = leader.cluster_time(now)
        if isinstance(message, Heartbeat):
            record = self._state().workers.get(message.worker_id)
            dead = record is None or record.state is WorkerState.DEAD
            out: list[Output] = []
            # A live worker heartbeating from a new process restarted within its
            # lease: the new process is registered too (quarantine, rule 6a).
            if (dead or (message.process and message.process != record.process)) \
                    and now >= term.registering.get(message.worker_id, -math.inf) + REGISTER_RETRY:
                term.registering[message.worker_id] = now
                command = c.RegisterWorker(
                    worker_id=message.worker_id, address=message.address or peer,
                    zone=message.zone, process=message.process, now=cluster)
                out.append(Propose(envelope(WORKER_REQUEST, command), command,
                                   WORKER_REQUEST, None, request_id, message, term.term))
            if dead:
                out.append(Send(reply_to, Nack(message.seq), request_id))
                return out
            return out + self._start_heartbeat_read(_HeartbeatRead(
                term, reply_to, request_id, message.worker_id, message.seq, now))
        if isinstance(message, Release):
            command: c.Command = c.Released(
                partition_id=message.partition_id, slot=message.slot,
                worker_id=message.worker_id, epoch=message.epoch, now=cluster)
        elif isinstance(message, Checkpoint):
            command = c.FencedPut(key=checkpoint_key(message.partition_id), value=message.value,
                                  partition_id=message.partition_id, epoch=message.epoch)
        elif isinstance(message, Leave):
            command = c.DeregisterWorker(worker_id=message.worker_id, now=cluster)
        else:
            raise TypeError(f"not a worker message: {type(message).__name__}")
        return [Propose(envelope(WORKER_REQUEST, command), command, WORKER_REQUEST,
                        reply_to, request_id, message, term.term)]

    def on_client_command(self, now: float, command: c.Command, reply_to: Any,
                          request_id: int) -> list[Output]:
        """A client or operator command to replicate (rules 3 and 6).

        Commands with a ``now`` are stamped with the leader's cluster time (any value
        they carry is replaced); in a `ClientRequest` (a deduplicated write), its
        inner command is. ``request_id`` goes into the log entry (and the reply), so
        it should identify the request across the cluster.
        """
        term = self._term
        if term is None or self.role is not Role.LEADER:
            return [Send(reply_to, self._redirect(self.leader_id), request_id)]
        wrapper = command if isinstance(command, c.ClientRequest) else None
        inner = wrapper.command if wrapper is not None else command
        if _has_now(inner):
            if not term.ready:
                return [Send(reply_to, Unavailable("the leader is catching up"), request_id)]
            inner = term.leader.stamp(inner, now)
            command = attrs.evolve(wrapper, command=inner) if wrapper is not None else inner
        return [Propose(envelope(request_id, command), command, request_id, reply_to,
                        request_id, command, term.term)]

    # -- helpers ---------------------------------------------------------------------

    def _start_heartbeat_read(self, read: _HeartbeatRead) -> list[Output]:
        """Confirm leadership with a ReadIndex round begun after the heartbeat arrived."""
        self._read_counter += 1
        token = b"hb%d" % self._read_counter
        self._reads[token] = read
        return [StartRead(token)]

    def _answer_heartbeat(self, read: _HeartbeatRead) -> list[Output]:
        ack = read.term.leader.on_heartbeat(read.worker_id, read.seq, read.received_at)
        if ack is None:
            return [Send(read.reply_to, Nack(read.seq), read.request_id)]
        state = self._state()
        record = state.workers[read.worker_id]
        return [Send(read.reply_to, Ack(ack, tuple(state.worker_view(read.worker_id)),
                                        record.state is WorkerState.DRAINING),
                     read.request_id)]

    def _redirect(self, leader: int) -> Redirect:
        return Redirect(leader, self._client_address(leader) if leader else "")


def _describe(result: Any) -> str:
    if isinstance(result, c.Error):
        return f"{result.code.value}: {result.message}" if result.message else result.code.value
    return type(result).__name__


__all__ = [
    "LEADER_PROPOSAL", "WORKER_REQUEST", "REGISTER_RETRY", "envelope", "open_envelope",
    "apply_entry",
    "checkpoint_key", "Propose", "StartRead", "Send", "NodeDriver",
]
