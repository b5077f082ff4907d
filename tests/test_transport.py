"""The TCP transport on loopback: delivery, reconnection, drops, hostile input.

Every test binds 127.0.0.1 port 0, waits for conditions by polling under
`trio.fail_after` (never a fixed sleep as an assertion), and closes what it opens.
Backoff is shortened (10 ms doubling to 100 ms) so that reconnection is quick.
"""

from __future__ import annotations

import logging
import random
import struct
from collections.abc import Callable
from typing import Any

import cbor2
import pytest
import trio

from raft import AppendEntries, AppendResponse, Entry, Heartbeat, VoteRequest
from raft.codec import encode_message
from raft.transport import HANDSHAKE_MAGIC, HANDSHAKE_VERSION, TcpTransport, TransportStats

HOST = "127.0.0.1"


class Node:
    """A transport plus the list of messages it delivered."""

    def __init__(self, node_id: int, peers: dict[int, tuple[str, int]] | None = None,
                 port: int = 0, **options: Any) -> None:
        self.id = node_id
        self.inbox: list[Any] = []
        options.setdefault("backoff_initial", 0.01)
        options.setdefault("backoff_max", 0.1)
        self.transport = TcpTransport(node_id, (HOST, port), peers or {}, self.inbox.append,
                                      rng=random.Random(node_id), **options)

    @property
    def address(self) -> tuple[str, int]:
        return self.transport.address

    @property
    def stats(self) -> TransportStats:
        return self.transport.stats

    async def start(self, nursery: trio.Nursery) -> "Node":
        await nursery.start(self.transport.serve)
        return self


async def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    with trio.fail_after(timeout):
        while not predicate():
            await trio.sleep(0.005)


async def send_until(node: Node, message: Any, received: Callable[[], bool]) -> None:
    """Resend `message` until `received()`: what Raft's retransmission does."""
    with trio.fail_after(5):
        while not received():
            node.transport.send(message)
            await trio.sleep(0.01)


def heartbeat(sender: int, to: int, commit: int = 0) -> Heartbeat:
    return Heartbeat(term=1, sender=sender, to=to, commit=commit)


def frame(payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + payload


def handshake(sender: int, cluster: str = "raftcoord") -> bytes:
    return frame(cbor2.dumps([HANDSHAKE_MAGIC, HANDSHAKE_VERSION, cluster, sender]))


async def assert_closed_by_peer(stream: trio.SocketStream) -> None:
    """The other side closed the connection (EOF, or a reset if it had unread data)."""
    with trio.fail_after(5):
        try:
            while await stream.receive_some(1024):
                pass
        except trio.BrokenResourceError:
            pass


async def pair(nursery: trio.Nursery, **options: Any) -> tuple[Node, Node]:
    """Node 1 dials node 2; node 2 knows no peers (it only listens)."""
    receiver = await Node(2, **options).start(nursery)
    sender = await Node(1, {2: receiver.address}).start(nursery)
    return sender, receiver


# -- delivery ------------------------------------------------------------------------------


async def test_three_transports_exchange_messages_both_ways(nursery: trio.Nursery) -> None:
    nodes = {i: await Node(i).start(nursery) for i in (1, 2, 3)}
    for i, node in nodes.items():
        for j, other in nodes.items():
            if i != j:
                node.transport.set_peer(j, other.address)
    entries = (Entry(1, 5, data=b"x" * 100), Entry(1, 6, data=b""), Entry(2, 7, data=b"\x00\xff"))
    appends = {j: AppendEntries(term=2, sender=1, to=j, prev_index=4, prev_term=1,
                                entries=entries, commit=4) for j in (2, 3)}
    for message in appends.values():
        nodes[1].transport.send(message)
    await wait_for(lambda: nodes[2].inbox and nodes[3].inbox)
    assert nodes[2].inbox == [appends[2]] and nodes[3].inbox == [appends[3]]

    responses = {j: AppendResponse(term=2, sender=j, to=1, success=True, index=7) for j in (2, 3)}
    for j, message in responses.items():
        nodes[j].transport.send(message)
    nodes[2].transport.send(VoteRequest(term=3, sender=2, to=3, last_log_index=7,
                                        last_log_term=2, pre_vote=True))
    await wait_for(lambda: len(nodes[1].inbox) == 2 and len(nodes[3].inbox) == 2)
    assert sorted(nodes[1].inbox, key=lambda m: m.sender) == [responses[2], responses[3]]
    assert nodes[3].inbox[1].pre_vote is True

    # One connection per direction keeps the order of a burst.
    burst = [heartbeat(1, 2, commit=n) for n in range(200)]
    for message in burst:
        nodes[1].transport.send(message)
    await wait_for(lambda: len(nodes[2].inbox) == 201)
    assert nodes[2].inbox[1:] == burst
    assert nodes[1].stats.sent == 202 and nodes[2].stats.received == 201
    assert all(node.stats.rejected == 0 for node in nodes.values())
    for node in nodes.values():
        await node.transport.aclose()


async def test_large_messages_cross_many_reads_and_oversize_is_not_sent(
        nursery: trio.Nursery) -> None:
    sender, receiver = await pair(nursery)
    big = AppendEntries(term=1, sender=1, to=2, prev_index=0, prev_term=0,
                        entries=(Entry(1, 1, data=bytes(range(256)) * 12_000),), commit=0)
    sender.transport.send(big)
    await wait_for(lambda: receiver.inbox)
    assert receiver.inbox == [big]

    small = await Node(3, {2: receiver.address}, max_frame_bytes=1000).start(nursery)
    small.transport.send(AppendEntries(term=1, sender=3, to=2, prev_index=0, prev_term=0,
                                       entries=(Entry(1, 1, data=b"y" * 2000),), commit=0))
    assert small.stats.dropped_too_large == 1 and small.stats.sent == 0


# -- reconnection -------------------------------------------------------------------------


async def test_peer_that_starts_later_is_reached_after_backoff(nursery: trio.Nursery) -> None:
    # Hold the port with a bound socket that does not listen: dials are refused.
    placeholder = trio.socket.socket()
    await placeholder.bind((HOST, 0))
    port = placeholder.getsockname()[1]
    try:
        early = await Node(1, {2: (HOST, port)}).start(nursery)
        early.transport.send(heartbeat(1, 2))
        await wait_for(lambda: early.stats.dropped_unreachable >= 1)
        assert early.stats.connects == 0
    finally:
        placeholder.close()
    late = await Node(2, port=port).start(nursery)
    await send_until(early, heartbeat(1, 2), lambda: bool(late.inbox))
    assert late.inbox[0] == heartbeat(1, 2)
    assert early.stats.connects == 1


async def test_restarted_peer_is_reconnected(nursery: trio.Nursery) -> None:
    sender, receiver = await pair(nursery)
    sender.transport.send(heartbeat(1, 2, commit=1))
    await wait_for(lambda: receiver.inbox)
    port = receiver.address[1]

    await receiver.transport.aclose()
    # The sender notices the close without having to write into it.
    await wait_for(lambda: sender.stats.disconnects == 1)

    restarted = await Node(2, port=port).start(nursery)
    await send_until(sender, heartbeat(1, 2, commit=2), lambda: bool(restarted.inbox))
    assert restarted.inbox[0] == heartbeat(1, 2, commit=2)
    assert sender.stats.connects == 2
    await restarted.transport.aclose()
    await sender.transport.aclose()


async def test_address_change_redials(nursery: trio.Nursery) -> None:
    first = await Node(2).start(nursery)
    second = await Node(2).start(nursery)
    sender = await Node(1, {2: first.address}).start(nursery)
    sender.transport.send(heartbeat(1, 2, commit=1))
    await wait_for(lambda: first.inbox)
    sender.transport.set_peer(2, second.address)
    await wait_for(lambda: first.stats.disconnects == 1)
    sender.transport.send(heartbeat(1, 2, commit=2))
    await wait_for(lambda: second.inbox)
    assert first.inbox == [heartbeat(1, 2, commit=1)]
    assert second.inbox == [heartbeat(1, 2, commit=2)]


# -- drops ----------------------------------------------------------------------------------


async def test_full_queue_drops_and_counts(nursery: trio.Nursery) -> None:
    receiver = await Node(2).start(nursery)
    sender = Node(1, {2: receiver.address}, queue_limit=3)
    messages = [heartbeat(1, 2, commit=n) for n in range(5)]
    for message in messages:  # not serving yet: nothing leaves the queue
        sender.transport.send(message)
    assert sender.stats.dropped_queue_full == 2
    await sender.start(nursery)
    await wait_for(lambda: len(receiver.inbox) == 3)
    assert receiver.inbox == messages[:3]
    assert sender.stats.sent == 3


async def test_unknown_peer_drops_and_counts() -> None:
    node = Node(1, {2: (HOST, 9)})
    node.transport.send(heartbeat(1, 7))
    node.transport.send(heartbeat(1, 1))  # itself: not a peer either
    stats = node.stats
    assert stats.dropped_unknown_peer == 2
    assert stats == TransportStats(dropped_unknown_peer=2)
    node.transport.send(heartbeat(1, 7))
    assert stats.dropped_unknown_peer == 2, "stats is a snapshot"


async def test_removed_peer_is_no_longer_sent_to(nursery: trio.Nursery) -> None:
    sender, receiver = await pair(nursery)
    sender.transport.send(heartbeat(1, 2, commit=1))
    await wait_for(lambda: receiver.inbox)

    sender.transport.set_peer(2, None)
    await wait_for(lambda: receiver.stats.disconnects == 1)  # its connection was closed
    sender.transport.send(heartbeat(1, 2, commit=2))
    assert sender.stats.dropped_unknown_peer == 1 and sender.stats.sent == 1

    sender.transport.set_peer(2, receiver.address)  # and it can come back
    sender.transport.send(heartbeat(1, 2, commit=3))
    await wait_for(lambda: len(receiver.inbox) == 2)
    assert receiver.inbox == [heartbeat(1, 2, commit=1), heartbeat(1, 2, commit=3)]


def test_bad_arguments_are_local_errors() -> None:
    with pytest.raises(ValueError):
        TcpTransport(0, (HOST, 0), {}, print)
    with pytest.raises(ValueError):
        TcpTransport(1, (HOST, 0), {2: ("h", 70000)}, print)
    transport = TcpTransport(1, (HOST, 0), {}, print)
    with pytest.raises(ValueError):
        transport.set_peer(1, (HOST, 1))
    with pytest.raises(RuntimeError):
        transport.address


# -- hostile input --------------------------------------------------------------------------


BAD_HANDSHAKES = {
    "http": b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
    "not cbor": frame(b"\xff\xfe\xfd"),
    "truncated cbor": frame(b"\x84\x6e"),
    "empty frame": frame(b""),
    "map": frame(cbor2.dumps({"magic": HANDSHAKE_MAGIC})),
    "short array": frame(cbor2.dumps([HANDSHAKE_MAGIC, 1, "raftcoord"])),
    "wrong magic": frame(cbor2.dumps(["etcd-raft", 1, "raftcoord", 1])),
    "wrong version": frame(cbor2.dumps([HANDSHAKE_MAGIC, 2, "raftcoord", 1])),
    "wrong cluster": handshake(1, cluster="other"),
    "zero sender": frame(cbor2.dumps([HANDSHAKE_MAGIC, 1, "raftcoord", 0])),
    "bool sender": frame(cbor2.dumps([HANDSHAKE_MAGIC, 1, "raftcoord", True])),
}


@pytest.mark.parametrize("data", BAD_HANDSHAKES.values(), ids=BAD_HANDSHAKES.keys())
async def test_bad_handshake_is_rejected_while_serving_a_good_peer(
        nursery: trio.Nursery, data: bytes, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="raft.transport")
    good, receiver = await pair(nursery)
    good.transport.send(heartbeat(1, 2, commit=1))
    await wait_for(lambda: receiver.inbox)

    stream = await trio.open_tcp_stream(*receiver.address)
    await stream.send_all(data)
    await assert_closed_by_peer(stream)
    await stream.aclose()
    await wait_for(lambda: receiver.stats.rejected == 1)
    assert any(r.levelno == logging.WARNING and "rejected connection" in r.getMessage()
               for r in caplog.records)

    good.transport.send(heartbeat(1, 2, commit=2))
    await wait_for(lambda: len(receiver.inbox) == 2)
    assert good.stats.disconnects == 0 and receiver.stats.received == 2


async def test_connection_closed_without_a_word_is_no_warning(
        nursery: trio.Nursery, caplog: pytest.LogCaptureFixture) -> None:
    # TCP health checks and port probes connect and close: not worth a warning.
    caplog.set_level(logging.WARNING, logger="raft.transport")
    good, receiver = await pair(nursery)
    for _ in range(3):
        stream = await trio.open_tcp_stream(*receiver.address)
        await stream.send_eof()
        await assert_closed_by_peer(stream)
        await stream.aclose()
    good.transport.send(heartbeat(1, 2, commit=1))
    await wait_for(lambda: receiver.inbox)
    assert receiver.stats.rejected == 0
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


async def test_silent_connection_times_out(nursery: trio.Nursery) -> None:
    _, receiver = await pair(nursery, handshake_timeout=0.1)
    stream = await trio.open_tcp_stream(*receiver.address)
    await stream.send_all(handshake(3)[:5])  # a partial handshake, then nothing
    await assert_closed_by_peer(stream)
    await stream.aclose()
    assert receiver.stats.rejected == 1


BAD_FRAMES = {
    "oversize length": struct.pack(">I", 4097),  # header only: it must not wait for more
    "huge length": b"\xff\xff\xff\xff",
    "undecodable payload": frame(b"\x00\x01\x02"),
    "cbor that is no message": frame(cbor2.dumps([1, 99, 1, 3, 2])),
    "text payload": frame(b"hello raft"),
}


@pytest.mark.parametrize("data", BAD_FRAMES.values(), ids=BAD_FRAMES.keys())
async def test_bad_frame_after_handshake_closes_that_connection(
        nursery: trio.Nursery, data: bytes) -> None:
    good, receiver = await pair(nursery, max_frame_bytes=4096)
    stream = await trio.open_tcp_stream(*receiver.address)
    await stream.send_all(handshake(3) + frame(encode_message(heartbeat(3, 2, commit=7))) + data)
    await assert_closed_by_peer(stream)
    await stream.aclose()
    assert receiver.inbox == [heartbeat(3, 2, commit=7)]  # what came before is kept
    assert receiver.stats.rejected == 1

    good.transport.send(heartbeat(1, 2))
    await wait_for(lambda: len(receiver.inbox) == 2)
    assert receiver.inbox[1] == heartbeat(1, 2)


async def test_forged_sender_or_recipient_is_dropped_and_connection_kept(
        nursery: trio.Nursery) -> None:
    good, receiver = await pair(nursery)
    stream = await trio.open_tcp_stream(*receiver.address)
    await stream.send_all(handshake(3))
    await stream.send_all(frame(encode_message(heartbeat(1, 2))))  # claims to be node 1
    await stream.send_all(frame(encode_message(heartbeat(3, 5))))  # meant for node 5
    await wait_for(lambda: receiver.stats.rejected == 2)
    await stream.send_all(frame(encode_message(heartbeat(3, 2, commit=9))))
    await wait_for(lambda: receiver.inbox)
    assert receiver.inbox == [heartbeat(3, 2, commit=9)]

    good.transport.send(heartbeat(1, 2))
    await wait_for(lambda: len(receiver.inbox) == 2)
    assert receiver.stats.received == 2 and receiver.stats.rejected == 2
    await stream.aclose()


async def test_reconnecting_node_replaces_its_old_inbound_connection(
        nursery: trio.Nursery) -> None:
    receiver = await Node(2).start(nursery)
    old = await trio.open_tcp_stream(*receiver.address)
    await old.send_all(handshake(3) + frame(encode_message(heartbeat(3, 2, commit=1))))
    await wait_for(lambda: receiver.inbox)
    new = await trio.open_tcp_stream(*receiver.address)
    await new.send_all(handshake(3))
    await assert_closed_by_peer(old)  # a half-open leftover would otherwise linger
    await new.send_all(frame(encode_message(heartbeat(3, 2, commit=2))))
    await wait_for(lambda: len(receiver.inbox) == 2)
    assert receiver.stats.rejected == 0
    assert receiver.stats.connects == 2 and receiver.stats.disconnects == 1
    await old.aclose()
    await new.aclose()


async def test_a_failing_deliver_closes_only_that_connection(nursery: trio.Nursery,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="raft.transport")
    delivered: list[Any] = []

    def deliver(message: Any) -> None:
        if message.sender == 3:
            raise RuntimeError("embedder bug")
        delivered.append(message)

    receiver = TcpTransport(2, (HOST, 0), {}, deliver)
    await nursery.start(receiver.serve)
    faulty = await Node(3, {2: receiver.address}).start(nursery)
    faulty.transport.send(heartbeat(3, 2))
    await wait_for(lambda: faulty.stats.disconnects == 1)
    assert any("embedder bug" in (r.exc_text or "") for r in caplog.records)
    good = await Node(1, {2: receiver.address}).start(nursery)
    good.transport.send(heartbeat(1, 2))
    await wait_for(lambda: delivered)
    assert delivered == [heartbeat(1, 2)]
    await receiver.aclose()


# -- with the runtime -----------------------------------------------------------------------


class Log:
    """The smallest state machine: the applied commands, in order."""

    def __init__(self) -> None:
        self.items: list[bytes] = []

    def apply(self, entry: Entry) -> int:
        self.items.append(entry.data)
        return len(self.items)

    def snapshot(self) -> bytes:
        return b"\n".join(self.items)

    def restore(self, data: bytes) -> None:
        self.items = data.split(b"\n") if data else []


async def test_three_runtimes_replicate_over_tcp(nursery: trio.Nursery) -> None:
    from raft import Config, MemoryStorage
    from raft.runtime import RaftRuntime

    ids = (1, 2, 3)
    machines = {i: Log() for i in ids}
    transports = {i: TcpTransport(i, (HOST, 0), {}, backoff_initial=0.01, backoff_max=0.1,
                                  rng=random.Random(i)) for i in ids}
    # Each runtime sends through its transport, which delivers to it.
    runtimes = {i: RaftRuntime.over(transports[i], Config(id=i, voters=ids), MemoryStorage(),
                                    machines[i], tick_interval=0.01, io_in_thread=False)
                for i in ids}
    for i in ids:
        await nursery.start(transports[i].serve)
    for i in ids:
        for j in ids:
            if i != j:
                transports[i].set_peer(j, transports[j].address)
    for i in ids:
        await nursery.start(runtimes[i].run)
    with trio.fail_after(10):
        await runtimes[1].wait_until(lambda: runtimes[1].leader != 0)
        leader = runtimes[runtimes[1].leader]
        assert await leader.propose(b"over tcp") == 1
        follower = runtimes[next(i for i in ids if i != leader.id)]
        await follower.wait_until(lambda: follower.leader == leader.id)
        await follower.read_barrier()
    assert machines[follower.id].items == [b"over tcp"]
    assert all(t.stats.rejected == 0 for t in transports.values())


async def test_one_receiver_per_transport_attached_before_serving() -> None:
    transport = TcpTransport(1, (HOST, 0), {})
    with pytest.raises(RuntimeError, match="receiver"):
        await transport.serve()  # inbound messages would have nowhere to go
    delivered: list[Any] = []
    transport = TcpTransport(1, (HOST, 0), {})
    transport.attach(delivered.append)
    with pytest.raises(RuntimeError, match="already has a receiver"):
        transport.attach(print)
    with pytest.raises(RuntimeError, match="already has a receiver"):
        TcpTransport(2, (HOST, 0), {}, print).attach(print)


async def test_close_before_serving_and_serving_twice(nursery: trio.Nursery) -> None:
    idle = TcpTransport(1, (HOST, 0), {}, print)
    await idle.aclose()  # nothing to close: returns at once
    with pytest.raises(RuntimeError):
        await idle.serve()
    node = await Node(2).start(nursery)
    with pytest.raises(RuntimeError):
        await node.transport.serve()
    await node.transport.aclose()
    await node.transport.aclose()  # idempotent
    with trio.fail_after(5):
        with pytest.raises(OSError):  # the listener is gone
            await trio.open_tcp_stream(*node.address)
