"""A trio TCP transport for raft messages: the network half of the batteries.

Theory of operation
===================

Raft tolerates a lossy network: every message is retransmitted or superseded by a
later one. The transport therefore never blocks the caller and never retries a
message itself; under trouble it drops, counts, and lets Raft recover. That keeps
every buffer bounded and the code small.

Wire format. Every frame is a 4-byte big-endian length followed by that many
bytes. A connection carries one direction only: the dialing node sends, the
listening node reads (so each pair of nodes uses two connections, one per
direction, and nobody has to arbitrate which of two crossing dials survives).
The first frame is a handshake, the CBOR array
``["raftcoord-raft", 1, cluster, sender_node_id]``; every later frame is one
`raft.codec.encode_message` payload.

Outbound. `send` encodes the message at once (so a caller bug surfaces at the call
site) and appends the bytes to a bounded per-peer queue; a full queue or an unknown
peer drops the message. One sender task per peer dials lazily, keeps the
connection open and writes queued frames in batches. When a dial fails the whole
queue is dropped: after the backoff those messages would be stale, and Raft's
next heartbeat or retransmission carries the same information. When a write fails
the batch in flight is dropped. Backoff is exponential with jitter and is reset
only by a connection that stayed up, so a peer that accepts and then hangs up at
once (e.g. a wrong cluster name) is not hammered. A watcher reads the outbound
connection: the listener never writes, so any EOF or data means the peer went away
(or is not one of us) and the connection is re-established.

Inbound. Everything read from the network is untrusted. A connection must present
a valid handshake within `handshake_timeout`; a declared frame length above the
limit closes the connection before reading the frame; a payload that
`decode_message` rejects closes it too (the stream can no longer be trusted); a
well-formed message whose sender is not the handshake's node or whose recipient is
not this node is dropped but the connection is kept. Each of these counts as
`rejected` and logs a warning. No input from the network can raise out of the
listener: one bad connection never disturbs the others. A new connection from a
node replaces that node's previous inbound connection, so half-open leftovers of
a restarted peer do not pile up.

The transport never touches the disk and never fsyncs: durability is the
runtime's job, done before it calls `send`.
"""

from __future__ import annotations

import logging
import random
import struct
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any, Optional

import attrs
import cbor2
import trio

from .codec import decode_message, encode_message
from .errors import CodecError
from .types import Message, NodeId

__all__ = ["HANDSHAKE_MAGIC", "HANDSHAKE_VERSION", "TcpTransport", "TransportStats"]

log = logging.getLogger(__name__)

HANDSHAKE_MAGIC = "raftcoord-raft"
"""First element of the handshake: this is a raftcoord raft connection."""
HANDSHAKE_VERSION = 1
"""Version of the framing and handshake; a listener rejects any other."""

Address = tuple[str, int]

_HEADER = struct.Struct(">I")
_HANDSHAKE_MAX_BYTES = 1024  # the handshake is tiny; never parse big CBOR from strangers
_BATCH_BYTES = 1 << 20  # frames joined into one write: fewer syscalls under load
_RECEIVE_BYTES = 1 << 18  # per read: receive_some allocates what it is allowed
_STABLE_SECONDS = 1.0  # a connection that lived this long resets the backoff


@attrs.define
class TransportStats:
    """Counters of one transport since it was created (`TcpTransport.stats` returns
    a copy, so a value read once does not change under the reader).

    Attributes:
        sent: messages written to a peer's connection.
        dropped_queue_full: messages dropped because their peer's queue was full.
        dropped_unknown_peer: messages for a node with no known address.
        dropped_unreachable: messages dropped because their peer could not be
            dialed or the connection broke while they were being written.
        dropped_too_large: messages whose encoding exceeds `max_frame_bytes`.
        received: inbound messages handed to `deliver`.
        rejected: bad handshakes, frames and messages from the network.
        connects: connections established (outbound dials and accepted inbound
            handshakes).
        disconnects: established connections that ended.
    """

    sent: int = 0
    dropped_queue_full: int = 0
    dropped_unknown_peer: int = 0
    dropped_unreachable: int = 0
    dropped_too_large: int = 0
    received: int = 0
    rejected: int = 0
    connects: int = 0
    disconnects: int = 0


class _Rejected(Exception):
    """The remote side sent something that ends its connection."""


@attrs.define(eq=False)
class _Peer:
    """Outbound state for one peer, owned by its sender task."""

    node_id: NodeId
    address: Address
    queue: deque[bytes] = attrs.Factory(deque)
    ready: trio.Event = attrs.Factory(trio.Event)
    scope: trio.CancelScope = attrs.Factory(trio.CancelScope)


class _FrameReader:
    """Reads length-prefixed frames from a stream, checking the length first."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self._stream = stream
        self._buffer = bytearray()

    async def _fill(self, size: int) -> bool:
        while len(self._buffer) < size:
            wanted = min(max(size - len(self._buffer), 1 << 16), _RECEIVE_BYTES)
            data = await self._stream.receive_some(wanted)
            if not data:
                return False
            self._buffer += data
        return True

    async def read(self, limit: int) -> Optional[bytes]:
        """Return the next frame, or None at end of stream (even inside a frame).

        Raises:
            _Rejected: the declared length exceeds `limit` (nothing more is read).
        """
        if not await self._fill(_HEADER.size):
            return None
        (length,) = _HEADER.unpack_from(self._buffer)
        if length > limit:
            raise _Rejected(f"frame of {length} bytes exceeds the limit of {limit}")
        end = _HEADER.size + length
        if not await self._fill(end):
            return None
        frame = bytes(self._buffer[_HEADER.size:end])
        del self._buffer[:end]
        return frame


def _check_address(address: Any, *, dial: bool = True) -> Address:
    lowest_port = 1 if dial else 0  # port 0 only makes sense to bind
    if (not isinstance(address, tuple) or len(address) != 2 or not isinstance(address[0], str)
            or type(address[1]) is not int or not lowest_port <= address[1] < 65536
            or (dial and not address[0])):
        raise ValueError(f"an address is a (host, port) tuple, got {address!r}")
    return address


def _check_node_id(node_id: Any) -> NodeId:
    if type(node_id) is not int or node_id <= 0:
        raise ValueError(f"node ids are positive integers, got {node_id!r}")
    return node_id


def _set_nodelay(stream: trio.SocketStream) -> None:
    # trio already sets it on TCP streams; be explicit, Raft's small messages
    # must not wait for Nagle's algorithm.
    stream.setsockopt(trio.socket.IPPROTO_TCP, trio.socket.TCP_NODELAY, True)


def _remote_name(stream: trio.SocketStream) -> str:
    try:
        host, port = stream.socket.getpeername()[:2]
    except OSError:
        return "?"
    return f"{host}:{port}"


class TcpTransport:
    """Carries raft messages between nodes over TCP. See the module docstring.

    Args:
        node_id: this node.
        listen: (host, port) to bind; port 0 picks a free port (see `address`),
            host "" binds every interface.
        peers: node id -> (host, port) to dial; change it later with `set_peer`.
        deliver: called synchronously, in the trio thread, with every valid inbound
            message addressed to this node. Leave it out and `attach` the receiver
            later (`RaftRuntime.over(transport, ...)` does), before `serve`.
        cluster: cluster name; connections naming another cluster are rejected.
        queue_limit: outbound messages queued per peer; more are dropped.
        max_frame_bytes: largest frame sent or accepted.
        handshake_timeout: seconds an inbound connection may take to present its
            handshake, so idle junk connections do not pile up.
        connect_timeout: seconds a dial (and writing the handshake) may take.
        write_timeout: seconds one batched write (about 1 MiB, or one larger
            message) may take before the connection is considered dead (a peer
            that stopped reading).
        backoff_initial / backoff_max: reconnection delay, doubled after every
            failure up to the maximum, with jitter.
        rng: source of the jitter (seed it to make the delays reproducible).
    """

    def __init__(self, node_id: NodeId, listen: Address, peers: Mapping[NodeId, Address],
                 deliver: Optional[Callable[[Message], None]] = None, cluster: str = "raftcoord",
                 queue_limit: int = 1024, max_frame_bytes: int = 64 * 2**20, *,
                 handshake_timeout: float = 5.0, connect_timeout: float = 5.0,
                 write_timeout: float = 30.0, backoff_initial: float = 0.05,
                 backoff_max: float = 2.0, rng: Optional[random.Random] = None) -> None:
        self.node_id = _check_node_id(node_id)
        self.listen = _check_address(listen, dial=False)
        if not isinstance(cluster, str):
            raise TypeError(f"cluster must be a str, got {cluster!r}")
        if queue_limit < 1 or max_frame_bytes < 1:
            raise ValueError("queue_limit and max_frame_bytes must be positive")
        if not 0 < backoff_initial <= backoff_max:
            raise ValueError("need 0 < backoff_initial <= backoff_max")
        self.cluster = cluster
        self.queue_limit = queue_limit
        self.max_frame_bytes = max_frame_bytes
        self.handshake_timeout = handshake_timeout
        self.connect_timeout = connect_timeout
        self.write_timeout = write_timeout
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self._deliver: Optional[Callable[[Message], None]] = deliver
        self._rng = rng if rng is not None else random.Random()
        handshake = cbor2.dumps([HANDSHAKE_MAGIC, HANDSHAKE_VERSION, cluster, node_id])
        if len(handshake) > _HANDSHAKE_MAX_BYTES:
            raise ValueError("cluster name too long")
        self._handshake_frame = _HEADER.pack(len(handshake)) + handshake
        self._stats = TransportStats()
        self._peers: dict[NodeId, _Peer] = {}
        for peer_id, address in peers.items():
            self._peers[_check_node_id(peer_id)] = _Peer(peer_id, _check_address(address))
        self._inbound: dict[NodeId, trio.CancelScope] = {}
        self._address: Optional[Address] = None
        self._nursery: Optional[trio.Nursery] = None
        self._scope = trio.CancelScope()  # serve's: cancelled by aclose
        self._started = False
        self._closed = False
        self._stopped = trio.Event()

    # -- the embedder's API ------------------------------------------------------------

    @property
    def address(self) -> Address:
        """The bound (host, port), with the real port when `listen` asked for 0
        (the first listener's, if the host resolved to several addresses)."""
        if self._address is None:
            raise RuntimeError("the transport is not serving yet")
        return self._address

    @property
    def stats(self) -> TransportStats:
        """A snapshot of the counters."""
        return attrs.evolve(self._stats)

    def attach(self, deliver: Callable[[Message], None]) -> None:
        """Hand every valid inbound message to `deliver` (e.g. `RaftRuntime.deliver`).

        Raises:
            RuntimeError: a receiver is already attached (one node per transport).
        """
        if self._deliver is not None:
            raise RuntimeError(f"transport of node {self.node_id} already has a receiver")
        self._deliver = deliver

    def send(self, message: Message) -> None:
        """Queue `message` for `message.to`; never blocks, never raises for network
        trouble. Drops (and counts) it if the peer is unknown or its queue is full.

        Raises:
            TypeError, ValueError: `message` cannot be encoded (a caller bug).
        """
        payload = encode_message(message)
        peer = self._peers.get(message.to)
        if peer is None:
            self._stats.dropped_unknown_peer += 1
        elif len(payload) > self.max_frame_bytes:
            self._stats.dropped_too_large += 1
            log.warning("node %d: dropped a %d-byte %s to %d: above max_frame_bytes",
                        self.node_id, len(payload), type(message).__name__, message.to)
        elif len(peer.queue) >= self.queue_limit:
            self._stats.dropped_queue_full += 1
        else:
            peer.queue.append(payload)
            peer.ready.set()

    def set_peer(self, node_id: NodeId, address: Optional[Address]) -> None:
        """Add, move or (with None) remove a peer, e.g. on a membership change.

        Removing a peer closes its connection and drops what was queued for it;
        moving it redials the new address (keeping the queue).
        """
        _check_node_id(node_id)
        if node_id == self.node_id:
            raise ValueError(f"node {node_id} is this node, not a peer")
        old = self._peers.pop(node_id, None)
        if address is None:
            if old is not None:
                old.scope.cancel()
            return
        address = _check_address(address)
        if old is not None and old.address == address:
            self._peers[node_id] = old
            return
        peer = _Peer(node_id, address)
        if old is not None:
            old.scope.cancel()
            peer.queue = old.queue
            if peer.queue:
                peer.ready.set()
        self._peers[node_id] = peer
        if self._nursery is not None:
            self._nursery.start_soon(self._run_peer, peer)

    async def serve(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Bind, then listen and send until cancelled or closed.

        Use ``await nursery.start(transport.serve)``; it reports the bound address.
        Failing to bind raises (`OSError`) out of `nursery.start`.
        """
        if self._started or self._closed:
            raise RuntimeError("a TcpTransport serves once")
        if self._deliver is None:
            raise RuntimeError("attach a receiver (or pass deliver) before serving")
        self._started = True
        try:
            with self._scope:
                host, port = self.listen
                listeners = await trio.open_tcp_listeners(port, host=host or None)
                try:
                    self._address = tuple(listeners[0].socket.getsockname()[:2])  # type: ignore[assignment]
                    async with trio.open_nursery() as nursery:
                        self._nursery = nursery
                        for peer in self._peers.values():
                            nursery.start_soon(self._run_peer, peer)
                        await nursery.start(trio.serve_listeners, self._serve_connection, listeners)
                        task_status.started(self._address)
                finally:
                    for listener in listeners:
                        await trio.aclose_forcefully(listener)
        finally:
            self._nursery = None
            self._closed = True
            self._stopped.set()

    async def aclose(self) -> None:
        """Close the listener and every connection, and wait until they are closed."""
        self._closed = True
        self._scope.cancel()  # also works while `serve` is still binding
        if self._started:
            await self._stopped.wait()

    # -- outbound ----------------------------------------------------------------------

    def _jitter(self, delay: float) -> float:
        return delay * (0.5 + 0.5 * self._rng.random())

    async def _run_peer(self, peer: _Peer) -> None:
        delay = self.backoff_initial
        with peer.scope:
            while True:
                while not peer.queue:
                    peer.ready = trio.Event()
                    await peer.ready.wait()
                stream = await self._dial(peer)
                if stream is None:
                    # Stale by the time we can reconnect; Raft resends what matters.
                    self._stats.dropped_unreachable += len(peer.queue)
                    peer.queue.clear()
                else:
                    self._stats.connects += 1
                    log.info("node %d: connected to node %d at %s:%d", self.node_id,
                             peer.node_id, *peer.address)
                    opened = trio.current_time()
                    try:
                        await self._pump(peer, stream)
                    finally:
                        self._stats.disconnects += 1
                        await trio.aclose_forcefully(stream)
                    log.info("node %d: lost the connection to node %d", self.node_id, peer.node_id)
                    if trio.current_time() - opened >= _STABLE_SECONDS:
                        delay = self.backoff_initial
                await trio.sleep(self._jitter(delay))
                delay = min(delay * 2, self.backoff_max)

    async def _dial(self, peer: _Peer) -> Optional[trio.SocketStream]:
        """Connect and send the handshake; None on failure or timeout."""
        stream: Optional[trio.SocketStream] = None
        done = False
        try:
            with trio.move_on_after(self.connect_timeout):
                stream = await trio.open_tcp_stream(*peer.address)
                _set_nodelay(stream)
                await stream.send_all(self._handshake_frame)
                done = True
        except (OSError, trio.BrokenResourceError) as exc:
            log.debug("node %d: cannot reach node %d at %s:%d: %s", self.node_id,
                      peer.node_id, *peer.address, exc)
        finally:
            if not done and stream is not None:
                await trio.aclose_forcefully(stream)
        return stream if done else None

    async def _pump(self, peer: _Peer, stream: trio.SocketStream) -> None:
        """Write queued frames until the connection breaks (then return)."""
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._watch, stream, nursery.cancel_scope)
            try:
                while True:
                    while not peer.queue:
                        peer.ready = trio.Event()
                        await peer.ready.wait()
                    frames: list[bytes] = []
                    size = 0
                    while peer.queue and size < _BATCH_BYTES:
                        payload = peer.queue.popleft()
                        frames += (_HEADER.pack(len(payload)), payload)
                        size += _HEADER.size + len(payload)
                    count = len(frames) // 2
                    written = False
                    try:
                        with trio.move_on_after(self.write_timeout):
                            await stream.send_all(b"".join(frames))
                            written = True
                    except (OSError, trio.BrokenResourceError, trio.ClosedResourceError):
                        pass
                    finally:
                        if written:
                            self._stats.sent += count
                        else:  # failed, timed out, or cancelled by the watcher
                            self._stats.dropped_unreachable += count
                    if not written:
                        return
            finally:
                nursery.cancel_scope.cancel()

    @staticmethod
    async def _watch(stream: trio.SocketStream, scope: trio.CancelScope) -> None:
        """End the connection when the peer closes it: listeners never write."""
        try:
            await stream.receive_some(1)
        except (OSError, trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        scope.cancel()

    # -- inbound -----------------------------------------------------------------------

    def _parse_handshake(self, frame: bytes) -> NodeId:
        try:
            value = cbor2.loads(frame)
        except Exception as exc:  # any garbage: cbor2 raises several kinds
            raise _Rejected(f"malformed handshake: {exc!r}") from None
        if not (isinstance(value, list) and len(value) == 4):
            raise _Rejected("malformed handshake: not a 4-element array")
        magic, version, cluster, sender = value
        if magic != HANDSHAKE_MAGIC:
            raise _Rejected(f"not a raftcoord raft connection (magic {magic!r})")
        if type(version) is not int or version != HANDSHAKE_VERSION:
            raise _Rejected(f"unsupported handshake version {version!r}")
        if cluster != self.cluster:
            raise _Rejected(f"wrong cluster {cluster!r}, expected {self.cluster!r}")
        if type(sender) is not int or not 0 < sender < 2**64:
            raise _Rejected(f"invalid sender node id {sender!r}")
        return sender

    def _on_frame(self, frame: bytes, sender: NodeId, remote: str) -> None:
        try:
            message = decode_message(frame, self.max_frame_bytes)
        except CodecError as exc:
            raise _Rejected(f"undecodable message: {exc}") from None
        if message.sender != sender or message.to != self.node_id:
            self._stats.rejected += 1
            log.warning("node %d: rejected a %s from %s (connection of node %d) "
                        "with sender %d and recipient %d", self.node_id,
                        type(message).__name__, remote, sender, message.sender, message.to)
            return
        self._stats.received += 1
        self._deliver(message)

    async def _serve_connection(self, stream: trio.SocketStream) -> None:
        """Read one inbound connection. Nothing it sends can raise out of here."""
        remote = _remote_name(stream)
        reader = _FrameReader(stream)
        sender: Optional[NodeId] = None
        scope = trio.CancelScope()
        established = False
        try:
            _set_nodelay(stream)
            with trio.move_on_after(self.handshake_timeout):
                frame = await reader.read(_HANDSHAKE_MAX_BYTES)
                if frame is None:
                    # Connected and closed without a word: a TCP health check or a
                    # port probe, not an attack worth a warning.
                    log.debug("node %d: %s closed before the handshake", self.node_id, remote)
                    return
                sender = self._parse_handshake(frame)
            if sender is None:
                raise _Rejected(f"no handshake within {self.handshake_timeout} s")
            previous = self._inbound.get(sender)
            if previous is not None:
                previous.cancel()  # the peer reconnected: the old connection is dead
            self._inbound[sender] = scope
            self._stats.connects += 1
            established = True
            with scope:
                while (frame := await reader.read(self.max_frame_bytes)) is not None:
                    self._on_frame(frame, sender, remote)
        except _Rejected as exc:
            self._stats.rejected += 1
            log.warning("node %d: rejected connection from %s: %s", self.node_id, remote, exc)
        except (OSError, trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # the peer went away; it will redial
        except Exception:
            # A bug (ours or in `deliver`) must not take the listener down with it.
            log.exception("node %d: error on connection from %s", self.node_id, remote)
        finally:
            if established:
                self._stats.disconnects += 1
                if self._inbound.get(sender) is scope:  # type: ignore[arg-type]
                    del self._inbound[sender]  # type: ignore[arg-type]
            await trio.aclose_forcefully(stream)
