"""The hand-written readers and writers of the hot message kinds agree with the
table-driven ones: the same bytes out, the same messages or CodecError in."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from raft import codec
from raft.codec import MAX_UINT, decode_message, encode_message
from raft.errors import CodecError
from raft.types import AppendEntries, AppendResponse, Entry, EntryType, Heartbeat, HeartbeatResponse
from strategies import append_entries, append_responses, heartbeat_responses, heartbeats

HOT = st.one_of(append_entries(), append_responses(), heartbeats(), heartbeat_responses())


def generic_decode(data: bytes):
    """decode_message through the message table only."""
    try:
        return codec._read_message(data)
    except (IndexError, struct.error):
        raise CodecError("truncated") from None


def outcome(decode, data: bytes):
    try:
        return decode(data)
    except CodecError:
        return CodecError


def assert_agree(data: bytes) -> None:
    assert outcome(decode_message, data) == outcome(generic_decode, data)


def test_every_hot_kind_has_a_reader_and_a_writer() -> None:
    assert set(codec._HOT_WRITERS) == {AppendEntries, AppendResponse, Heartbeat, HeartbeatResponse}
    assert set(codec._HOT_READERS) == {codec._FORMATS_BY_CLASS[cls].prefix for cls in codec._HOT_WRITERS}


@given(HOT)
def test_hot_writers_write_the_table_bytes(msg) -> None:
    data = encode_message(msg)
    assert data == codec._write_message(msg)
    assert decode_message(data) == generic_decode(data) == msg


@given(HOT, st.data())
def test_hot_readers_accept_and_reject_like_the_table(msg, data) -> None:
    encoded = encode_message(msg)
    pos = data.draw(st.integers(0, len(encoded) - 1))
    byte = data.draw(st.integers(0, 255))
    assert_agree(encoded[:pos])
    assert_agree(encoded[:pos] + bytes([byte]) + encoded[pos + 1 :])
    assert_agree(encoded[:pos] + bytes([byte]) + encoded[pos:])
    assert_agree(encoded[:pos] + encoded[pos + 1 :])
    assert_agree(encoded + bytes([byte]))


@given(
    st.sampled_from([b"\x89\x01\x03", b"\x89\x01\x04", b"\x87\x01\x05", b"\x86\x01\x06"]),
    st.lists(
        st.one_of(
            st.integers(0, 255),
            st.sampled_from([0x00, 0x01, 0x17, 0x18, 0x19, 0x1A, 0x1B, 0x40, 0x57, 0x58, 0x59, 0x80, 0x84, 0xF4, 0xF5]),
        ),
        max_size=40,
    ),
)
def test_random_bodies_after_a_hot_prefix_agree(prefix, body) -> None:
    assert_agree(prefix + bytes(body))


BOUNDARIES = [0, 1, 23, 24, 255, 256, 65535, 65536, 2**32 - 1, 2**32, MAX_UINT]


@pytest.mark.parametrize("value", BOUNDARIES)
def test_boundary_values_round_trip(value) -> None:
    sender = max(value, 1)
    data = bytes(value % 300)
    for msg in [
        AppendResponse(value, sender, sender, True, value, value, value),
        Heartbeat(value, sender, sender, value, data),
        HeartbeatResponse(value, sender, sender, data),
        AppendEntries(value, sender, sender, value, value, (), value),
        AppendEntries(MAX_UINT, 1, 2, 6, 5, (Entry(max(value, 5), 7, EntryType.NORMAL, data),), value),
    ]:
        encoded = encode_message(msg)
        assert encoded == codec._write_message(msg)
        assert decode_message(encoded) == generic_decode(encoded) == msg


@pytest.mark.parametrize("size", [23, 24, 255, 256, 65535, 65536])
def test_entry_data_sizes_round_trip(size) -> None:
    msg = AppendEntries(3, 1, 2, 300, 2, (Entry(3, 301, EntryType.NORMAL, b"d" * size),), 300)
    encoded = encode_message(msg)
    assert encoded == codec._write_message(msg)
    assert decode_message(encoded) == msg
    assert_agree(encoded[:-1])


@pytest.mark.parametrize("bad", [-1, 2**64, True, False, 1.0, "1", None, b"1"])
def test_hot_writers_raise_like_the_table(bad) -> None:
    def error(write, msg):
        try:
            write(msg)
        except (TypeError, ValueError) as exc:
            return type(exc)
        return None

    candidates = [
        AppendResponse(bad, 1, 2, True, 5),
        AppendResponse(1, bad, 2, True, 5),
        AppendResponse(1, 2, bad, True, 5),
        AppendResponse(1, 2, 3, bad, 5),
        AppendResponse(1, 2, 3, True, bad),
        AppendResponse(1, 2, 3, True, 5, bad, bad),
        Heartbeat(bad, 1, 2, 3),
        Heartbeat(1, 2, 3, bad),
        Heartbeat(1, 2, 3, 4, bad),
        HeartbeatResponse(1, bad, 2),
        HeartbeatResponse(1, 2, 3, bad),
        AppendEntries(bad, 1, 2, 3, 4, (), 5),
        AppendEntries(1, 2, 3, bad, 4, (), 5),
        AppendEntries(1, 2, 3, 4, bad, (), 5),
        AppendEntries(1, 2, 3, 4, 5, (), bad),
        AppendEntries(1, 2, 3, 4, 5, (Entry(bad, 5),), 6),
        AppendEntries(1, 2, 3, 4, 5, (Entry(1, 5, EntryType.NORMAL, bad),), 6),
    ]
    for msg in candidates:
        assert error(encode_message, msg) == error(codec._write_message, msg), msg
