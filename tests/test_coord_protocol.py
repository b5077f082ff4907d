"""The wire protocol: stable tags, round trips, and strict decoding of bad input."""

from __future__ import annotations

import struct

import attrs
import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coordinator import protocol as p
from coordinator.lease import HeartbeatAck
from coordinator.records import OwnedSlot

ACK = p.Ack(HeartbeatAck(seq=3, covered=[("g/1", 2)]), (OwnedSlot("g/1", 0, 2, False),), True)
MESSAGES = [
    p.Heartbeat("w1", 7, "z1"), p.Heartbeat("w1", 8, "z1", "10.0.0.1:9000"),
    p.Release("w1", "g/1", 0, 2), p.Checkpoint("w1", "g/1", 2, b"\x00state"),
    p.Leave("w1"), ACK, p.Nack(4), p.Redirect(0), p.Redirect(2, "127.0.0.1:7002"),
    p.CheckpointResult("g/1", 2, False, "fenced"), p.Left("w1"), p.Unavailable("later"),
]


def test_tags_are_explicit_and_stable():
    # Peers depend on these numbers; changing one breaks the wire format.
    assert [p.tag_of(cls) for cls in (p.Heartbeat, p.Release, p.Checkpoint, p.Leave, p.Ack,
                                      p.Nack, p.Redirect, p.CheckpointResult, p.Left,
                                      p.Unavailable)] == [1, 2, 3, 4, 10, 11, 12, 13, 14, 15]
    assert p.message_type(12) is p.Redirect and p.message_type(999) is None


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: type(m).__name__)
def test_round_trip_byte_by_byte(message):
    data = p.encode_frame(42, message) + p.encode_frame(2**64 - 1, p.Nack(1))
    decoder = p.FrameDecoder()
    frames = []
    for byte in data:
        frames += decoder.feed(bytes([byte]))
    assert frames == [p.Frame(42, message), p.Frame(2**64 - 1, p.Nack(1))]
    assert decoder.buffered == 0


def test_a_registered_class_from_another_module_shares_the_tag_space():
    @p.register_message(1999)
    @attrs.frozen
    class Probe:
        name: str
        sizes: tuple[int, ...] = ()

    frame = p.FrameDecoder().feed(p.encode_frame(1, Probe("x", (1, 2))))
    assert frame == [p.Frame(1, Probe("x", (1, 2)))]
    with pytest.raises(ValueError, match="taken"):
        p.register_message(1)(attrs.frozen(type("Other", (), {"__annotations__": {}})))


def frame(tag, body, version=p.PROTOCOL_VERSION, request_id=5):
    return struct.pack(">IBQH", 11 + len(body), version, request_id, tag) + body


BAD = {
    "random bytes": b"\x00\x00\x00\x0c\xff\xfe\xfd\xfc\xfb\xfa\xf9\xf8\xf7\xf6\xf5\xf4",
    "oversized length": struct.pack(">I", p.MAX_FRAME_SIZE + 1),
    "length shorter than a header": struct.pack(">I", 3) + b"abc",
    "unknown tag": frame(4321, cbor2.dumps({})),
    "other version": frame(11, cbor2.dumps({"seq": 1}), version=9),
    "not CBOR": frame(11, b"\xff\xff"),
    "trailing bytes": frame(11, cbor2.dumps({"seq": 1}) + b"\x00"),
    "not a map": frame(11, cbor2.dumps([1])),
    "wrong field type": frame(11, cbor2.dumps({"seq": "1"})),
    "bool for int": frame(11, cbor2.dumps({"seq": True})),
    "missing field": frame(11, cbor2.dumps({})),
    "unknown field": frame(11, cbor2.dumps({"seq": 1, "extra": 0})),
    "constructor refuses": frame(10, cbor2.dumps({
        "ack": {"seq": -1, "covered": []}, "view": [], "draining": False})),
    "nested wrong type": frame(10, cbor2.dumps({
        "ack": {"seq": 1, "covered": [["g/1", "two"]]}, "view": [], "draining": False})),
    "cbor tag": frame(11, cbor2.dumps({"seq": cbor2.CBORTag(1, 5)})),
}


@pytest.mark.parametrize("data", BAD.values(), ids=list(BAD))
def test_bad_input_is_a_protocol_error_and_the_decoder_stays_closed(data):
    decoder = p.FrameDecoder()
    with pytest.raises(p.ProtocolError):
        decoder.feed(data)
    with pytest.raises(p.ProtocolError):
        decoder.feed(p.encode_frame(1, p.Nack(1)))


def test_the_error_names_the_request_once_the_header_was_read():
    with pytest.raises(p.ProtocolError) as caught:
        p.FrameDecoder().feed(BAD["unknown tag"])
    assert caught.value.request_id == 5


def test_a_truncated_frame_waits_for_more():
    data = p.encode_frame(1, ACK)
    decoder = p.FrameDecoder()
    assert decoder.feed(data[:-1]) == []
    assert decoder.buffered == len(data) - 1  # a peer closing now sent a truncated frame


def test_encoding_refuses_caller_mistakes():
    with pytest.raises(ValueError):
        p.encode_frame(-1, p.Nack(1))
    with pytest.raises(TypeError):
        p.encode_frame(1, "not a message")
    with pytest.raises(ValueError):
        p.encode_frame(1, p.Checkpoint("w", "g/1", 1, b"x" * p.MAX_FRAME_SIZE))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200), st.integers(0, 200))
def test_any_bytes_give_frames_or_a_protocol_error(data, cut):
    decoder = p.FrameDecoder(max_frame_size=1024)
    try:
        decoder.feed(data[:cut])
        decoder.feed(data[cut:])
    except p.ProtocolError:
        pass


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(MESSAGES), st.data())
def test_corrupted_frames_give_a_protocol_error_or_a_valid_message(message, data):
    raw = bytearray(p.encode_frame(9, message))
    index = data.draw(st.integers(4, len(raw) - 1))
    raw[index] = data.draw(st.integers(0, 255))
    try:
        frames = p.FrameDecoder().feed(bytes(raw))
    except p.ProtocolError:
        return
    for decoded in frames:
        assert p.message_type(p.tag_of(type(decoded.message))) is type(decoded.message)
