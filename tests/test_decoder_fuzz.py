"""Fuzzing the decoders of both ports: whatever bytes arrive, only the port's typed
error comes out (client port: `ProtocolError`; peer port: the frame reader's and
handshake's rejection, raft's `CodecError`)."""

from __future__ import annotations

import cbor2
import trio
from hypothesis import given, settings
from hypothesis import strategies as st

from coordinator import api
from coordinator import protocol as p
from raft import codec
from raft.errors import CodecError
from raft.transport import (HANDSHAKE_MAGIC, HANDSHAKE_VERSION, TcpTransport, _FrameReader,
                            _Rejected)

from strategies import messages

CLIENT_MESSAGES = [
    api.KvPutRequest(client_id="c1", seq=3, acked_below=1, key="app/k", value=b"v" * 40),
    api.KvGetRequest(key="app/k"),
    api.KvListRequest(prefix="app/", limit=10),
    api.StatusRequest(),
    api.AddMemberRequest(node_id=4, peer_address="127.0.0.1:7104",
                         client_address="127.0.0.1:7004"),
    api.ErrorReply(kind="overloaded", message="busy", retry_after=0.25),
    api.ErrorReply(kind="not_leader", leader_id=2, leader_address="127.0.0.1:7002"),
    api.ok({"entries": [{"key": "a", "value": b"x", "version": 2}]}),
]


@st.composite
def mutated(draw: st.DrawFn, data: bytes) -> bytes:
    """`data` with a few random edits: overwrite, insert, delete, truncate."""
    raw = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        action = draw(st.sampled_from(["set", "insert", "delete", "truncate"]))
        at = draw(st.integers(0, max(len(raw) - 1, 0)))
        if action == "set" and raw:
            raw[at] = draw(st.integers(0, 255))
        elif action == "insert":
            raw[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif action == "delete" and raw:
            del raw[at:at + draw(st.integers(1, 8))]
        elif action == "truncate":
            del raw[at:]
    return bytes(raw)


def feed_client_decoder(data: bytes, cuts: list[int]) -> None:
    decoder = p.FrameDecoder(max_frame_size=4096)
    start = 0
    try:
        for cut in sorted(c % (len(data) + 1) for c in cuts) + [len(data)]:
            for frame in decoder.feed(data[start:cut]):
                assert type(frame.message) in p._TAG_OF  # a registered message
            start = cut
    except p.ProtocolError:
        pass


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600), st.lists(st.integers(0, 600), max_size=4))
def test_client_port_random_bytes(data, cuts):
    feed_client_decoder(data, cuts)


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(CLIENT_MESSAGES).flatmap(
    lambda message: mutated(p.encode_frame(7, message) + p.encode_frame(8, message))),
    st.lists(st.integers(0, 600), max_size=4))
def test_client_port_mutated_valid_frames(data, cuts):
    feed_client_decoder(data, cuts)


class _Chunks:
    """A stream that returns the given chunks, then end of stream."""

    def __init__(self, chunks: list[bytes]) -> None:
        self._chunks = list(chunks)

    async def receive_some(self, max_bytes: int) -> bytes:
        await trio.lowlevel.checkpoint()
        return self._chunks.pop(0) if self._chunks else b""


def handshake(node_id: int = 2, cluster: str = "raftcoord") -> bytes:
    body = cbor2.dumps([HANDSHAKE_MAGIC, HANDSHAKE_VERSION, cluster, node_id])
    return len(body).to_bytes(4, "big") + body


def frame(body: bytes) -> bytes:
    return len(body).to_bytes(4, "big") + body


def read_peer_stream(data: bytes, cuts: list[int]) -> None:
    """What the peer port does with an inbound connection: a handshake frame, then
    raft messages; only the typed rejections may come out."""
    points = sorted(c % (len(data) + 1) for c in cuts) + [len(data)]
    chunks, start = [], 0
    for point in points:
        chunks.append(data[start:point])
        start = point
    chunks = [c for c in chunks if c]
    transport = TcpTransport(1, ("127.0.0.1", 0), {})

    async def main() -> None:
        reader = _FrameReader(_Chunks(chunks))
        try:
            first = await reader.read(1024)
            if first is None:
                return
            transport._parse_handshake(first)
            while (body := await reader.read(1 << 16)) is not None:
                try:
                    codec.decode_message(body, 1 << 16)
                except CodecError:
                    return
        except _Rejected:
            return
    trio.run(main)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400), st.lists(st.integers(0, 400), max_size=3))
def test_peer_port_random_bytes(data, cuts):
    read_peer_stream(data, cuts)


@settings(max_examples=200, deadline=None)
@given(st.data(), st.lists(st.integers(0, 2000), max_size=3))
def test_peer_port_mutated_handshake_and_messages(data, cuts):
    message = data.draw(messages())
    valid = handshake() + frame(codec.encode_message(message))
    read_peer_stream(data.draw(mutated(valid)), cuts)


@settings(max_examples=400, deadline=None)
@given(st.data())
def test_raft_codec_mutated_messages_decode_or_raise_codec_error(data):
    message = data.draw(messages())
    body = data.draw(mutated(codec.encode_message(message)))
    try:
        codec.decode_message(body, 1 << 20)
    except CodecError:
        pass
