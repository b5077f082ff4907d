"""Tests of raft.codec: exact round trips, and the decoding contract.

The contract under test: for any input bytes, a decode function returns a valid
value or raises CodecError -- never another exception, never slowly, never with
memory proportional to a length the input merely declares.
"""

from __future__ import annotations

import time
import tracemalloc

import cbor2
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from raft import codec
from raft.codec import (
    FORMAT_VERSION,
    MAX_UINT,
    MessageKind,
    RecordKind,
    decode_conf_change,
    decode_conf_state,
    decode_entry,
    decode_hard_state,
    decode_message,
    decode_snapshot_metadata,
    encode_conf_change,
    encode_conf_change_entry,
    decode_conf_change_entry,
    encode_conf_state,
    encode_entry,
    encode_hard_state,
    encode_message,
    encode_snapshot_metadata,
)
from raft.errors import CodecError
from raft.types import (
    MESSAGE_TYPES,
    AppendEntries,
    AppendResponse,
    ConfChange,
    ConfChangeType,
    ConfState,
    Entry,
    EntryType,
    HardState,
    Heartbeat,
    HeartbeatResponse,
    InstallSnapshot,
    ReadIndexRequest,
    ReadIndexResponse,
    SnapshotMetadata,
    SnapshotResponse,
    TimeoutNow,
    VoteRequest,
    VoteResponse,
)
from strategies import (
    MESSAGE_STRATEGIES,
    conf_changes,
    conf_states,
    entries,
    hard_states,
    messages,
    snapshot_metadata,
)

# Generous: these inputs must fail in microseconds; the bound only catches hangs
# and quadratic blow-ups on a loaded 2-core CI machine.
QUICKLY = 0.5

CC_DATA = encode_conf_change_entry(
    ConfChange(ConfChangeType.ADD_LEARNER, 4, b"10.0.0.4:7000"), ConfState(voters={1, 2, 3}, learners={4})
)

# One hand-written message per kind, with non-default values everywhere, for the
# exhaustive (non-random) corruption tests.
SAMPLES = [
    VoteRequest(7, 1, 2, last_log_index=40, last_log_term=6, pre_vote=True, transfer=True),
    VoteResponse(7, 2, 1, granted=True, pre_vote=True),
    AppendEntries(
        7,
        1,
        3,
        prev_index=40,
        prev_term=6,
        entries=(
            Entry(6, 41, EntryType.NORMAL, b"set x=1"),
            Entry(7, 42, EntryType.CONF_CHANGE, CC_DATA),
            Entry(7, 43, EntryType.NORMAL, b""),
        ),
        commit=39,
    ),
    AppendResponse(7, 3, 1, success=False, index=40, hint_index=30, hint_term=5),
    Heartbeat(7, 1, 2, commit=39, context=b"read-1"),
    HeartbeatResponse(7, 2, 1, context=b"read-1"),
    InstallSnapshot(
        7,
        1,
        5,
        metadata=SnapshotMetadata(1000, 6, ConfState({1, 2, 3}, {5})),
        offset=4096,
        data=b"\x00\x01chunk",
        done=False,
    ),
    SnapshotResponse(7, 5, 1, snapshot_index=1000, next_offset=4096),
    TimeoutNow(7, 1, 2),
    ReadIndexRequest(7, 2, 1, context=b"ctx"),
    ReadIndexResponse(7, 1, 2, index=39, context=b"ctx"),
]

DECODERS = [
    decode_message,
    decode_entry,
    decode_conf_change,
    decode_conf_state,
    decode_hard_state,
    decode_snapshot_metadata,
]


def decode_or_none(data: bytes):
    """Decode, mapping CodecError to None and letting every other exception fail the test.

    A successful decode must produce a valid message that round-trips.
    """
    try:
        msg = decode_message(data)
    except CodecError:
        return None
    assert type(msg) in MESSAGE_TYPES
    assert decode_message(encode_message(msg)) == msg
    return msg


def assert_rejected(data: bytes, decode=decode_message) -> None:
    started = time.perf_counter()
    with pytest.raises(CodecError):
        decode(data)
    assert time.perf_counter() - started < QUICKLY


def message_bytes(*fields) -> bytes:
    """A raw record built with cbor2 directly, to forge invalid messages."""
    return cbor2.dumps(list(fields))


# --------------------------------------------------------------------------------
# Round trips
# --------------------------------------------------------------------------------


def test_every_message_type_has_a_kind_and_a_strategy() -> None:
    assert set(MESSAGE_STRATEGIES) == set(MESSAGE_TYPES)
    assert {type(m) for m in SAMPLES} == set(MESSAGE_TYPES)
    assert len(MessageKind) == len(MESSAGE_TYPES)
    assert not {int(k) for k in MessageKind} & {int(k) for k in RecordKind}


@pytest.mark.parametrize("msg", SAMPLES, ids=lambda m: type(m).__name__)
def test_sample_round_trips(msg) -> None:
    data = encode_message(msg)
    assert decode_message(data) == msg
    assert cbor2.loads(data)[:2] == [FORMAT_VERSION, int(MessageKind[_kind_name(msg)])]


def _kind_name(msg) -> str:
    return "".join(
        "_" + c if c.isupper() and i else c for i, c in enumerate(type(msg).__name__)
    ).upper()


@pytest.mark.parametrize("cls", MESSAGE_TYPES, ids=lambda c: c.__name__)
@settings(max_examples=40)
@given(data=st.data())
def test_each_message_type_round_trips(cls, data) -> None:
    msg = data.draw(MESSAGE_STRATEGIES[cls])
    encoded = encode_message(msg)
    decoded = decode_message(encoded)
    assert decoded == msg
    assert type(decoded) is cls


@given(messages())
def test_encoding_is_standard_shortest_form_cbor(msg) -> None:
    # The hand-written encoder must emit exactly what a generic CBOR encoder emits
    # for the same structure (definite lengths, shortest integer forms).
    encoded = encode_message(msg)
    assert cbor2.dumps(cbor2.loads(encoded)) == encoded


@given(entries())
def test_entry_round_trips(entry) -> None:
    assert decode_entry(encode_entry(entry)) == entry


@given(conf_changes())
def test_conf_change_round_trips(change) -> None:
    encoded = encode_conf_change(change)
    assert decode_conf_change(encoded) == change
    # CONF_CHANGE entries are built from these on the hot path: keep them tiny.
    assert len(encoded) <= 5 + 9 + 9 + len(change.context)


def test_conf_change_is_small() -> None:
    encoded = encode_conf_change(ConfChange(ConfChangeType.ADD_VOTER, 3))
    assert len(encoded) == 6
    assert decode_conf_change(encoded) == ConfChange(ConfChangeType.ADD_VOTER, 3)


@given(conf_states())
def test_conf_state_round_trips(state) -> None:
    assert decode_conf_state(encode_conf_state(state)) == state


@given(hard_states())
def test_hard_state_round_trips(state) -> None:
    assert decode_hard_state(encode_hard_state(state)) == state


@given(snapshot_metadata())
def test_snapshot_metadata_round_trips(metadata) -> None:
    assert decode_snapshot_metadata(encode_snapshot_metadata(metadata)) == metadata


def test_boundary_values_round_trip() -> None:
    for value in (0, 23, 24, 255, 256, 65535, 65536, 2**32 - 1, 2**32, MAX_UINT):
        state = HardState(term=value, vote=max(value, 1), commit=value)
        assert decode_hard_state(encode_hard_state(state)) == state
    big = AppendEntries(MAX_UINT, MAX_UINT, 1, MAX_UINT - 1, 1, (Entry(MAX_UINT, MAX_UINT),), 0)
    assert decode_message(encode_message(big)) == big


def test_equal_conf_states_encode_equally() -> None:
    a = ConfState(voters=[3, 1, 2], learners=[9, 7])
    b = ConfState(voters=[2, 3, 1], learners=[7, 9])
    assert encode_conf_state(a) == encode_conf_state(b)


def test_decoding_accepts_bytearray_and_memoryview() -> None:
    data = encode_message(SAMPLES[2])
    assert decode_message(bytearray(data)) == SAMPLES[2]
    assert decode_message(memoryview(data)) == SAMPLES[2]


# --------------------------------------------------------------------------------
# Only CodecError, for any bytes
# --------------------------------------------------------------------------------


@given(st.binary(max_size=200))
@example(b"")
@example(b"\x80")
@example(b"\x85\x01\x09\x01\x01")
def test_random_bytes_only_raise_codec_error(data) -> None:
    decode_or_none(data)
    for decode in DECODERS[1:]:
        try:
            decode(data)
        except CodecError:
            pass


@given(st.lists(st.integers(0, 40) | st.booleans() | st.binary(max_size=4), max_size=10))
def test_random_arrays_only_raise_codec_error(fields) -> None:
    # Random bytes rarely get past the CBOR parser; well-formed arrays with a valid
    # header exercise the field validation instead.
    for kind in list(MessageKind) + list(RecordKind):
        data = message_bytes(FORMAT_VERSION, int(kind), *fields)
        decode_or_none(data)
        for decode in DECODERS[1:]:
            try:
                decode(data)
            except CodecError:
                pass


@given(messages())
def test_every_truncation_is_rejected(msg) -> None:
    encoded = encode_message(msg)
    for end in range(len(encoded)):
        with pytest.raises(CodecError):
            decode_message(encoded[:end])


@pytest.mark.parametrize("msg", SAMPLES, ids=lambda m: type(m).__name__)
def test_every_bit_flip_of_a_sample_is_rejected_or_valid(msg) -> None:
    encoded = bytearray(encode_message(msg))
    for position in range(len(encoded)):
        for bit in range(8):
            encoded[position] ^= 1 << bit
            decode_or_none(bytes(encoded))
            encoded[position] ^= 1 << bit


@given(messages(), st.data())
def test_random_bit_flips_are_rejected_or_valid(msg, data) -> None:
    encoded = bytearray(encode_message(msg))
    flips = data.draw(st.lists(st.integers(0, len(encoded) * 8 - 1), min_size=1, max_size=4))
    for flip in flips:
        encoded[flip // 8] ^= 1 << (flip % 8)
    decode_or_none(bytes(encoded))


@given(messages(), st.binary(min_size=1, max_size=8))
def test_trailing_bytes_are_rejected(msg, tail) -> None:
    with pytest.raises(CodecError, match="trailing"):
        decode_message(encode_message(msg) + tail)


# --------------------------------------------------------------------------------
# Specific rejections
# --------------------------------------------------------------------------------

TIMEOUT_NOW = int(MessageKind.TIMEOUT_NOW)


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(message_bytes(2, TIMEOUT_NOW, 1, 1, 2), id="future version"),
        pytest.param(message_bytes(0, TIMEOUT_NOW, 1, 1, 2), id="version zero"),
        pytest.param(message_bytes(True, TIMEOUT_NOW, 1, 1, 2), id="version as bool"),
        pytest.param(message_bytes(FORMAT_VERSION, 99, 1, 1, 2), id="unknown kind"),
        pytest.param(message_bytes(FORMAT_VERSION, 0, 1, 1, 2), id="kind zero"),
        pytest.param(message_bytes(FORMAT_VERSION, int(RecordKind.ENTRY), 1, 1, 0, b""),
                     id="record kind as message"),
        pytest.param(message_bytes(FORMAT_VERSION, TIMEOUT_NOW, 1, 1), id="too few fields"),
        pytest.param(message_bytes(FORMAT_VERSION, TIMEOUT_NOW, 1, 1, 2, 3), id="too many"),
        pytest.param(message_bytes(FORMAT_VERSION), id="no kind"),
        pytest.param(message_bytes(), id="empty array"),
        pytest.param(message_bytes(FORMAT_VERSION, TIMEOUT_NOW, 1, 0, 2), id="sender 0"),
        pytest.param(message_bytes(FORMAT_VERSION, TIMEOUT_NOW, 1, 1, 0), id="to 0"),
        pytest.param(message_bytes(FORMAT_VERSION, TIMEOUT_NOW, -1, 1, 2), id="negative term"),
        pytest.param(message_bytes(FORMAT_VERSION, TIMEOUT_NOW, True, 1, 2), id="bool term"),
        pytest.param(message_bytes(FORMAT_VERSION, TIMEOUT_NOW, 1.0, 1, 2), id="float term"),
        pytest.param(message_bytes(FORMAT_VERSION, TIMEOUT_NOW, "1", 1, 2), id="text term"),
        pytest.param(message_bytes(FORMAT_VERSION, TIMEOUT_NOW, b"\x01", 1, 2), id="bytes term"),
        pytest.param(message_bytes(FORMAT_VERSION, TIMEOUT_NOW, None, 1, 2), id="null term"),
        pytest.param(message_bytes(FORMAT_VERSION, TIMEOUT_NOW, [1], 1, 2), id="array term"),
        pytest.param(message_bytes(FORMAT_VERSION, TIMEOUT_NOW, {1: 1}, 1, 2), id="map term"),
        pytest.param(message_bytes(FORMAT_VERSION, TIMEOUT_NOW, 2**64, 1, 2), id="bignum term"),
        pytest.param(message_bytes(FORMAT_VERSION, int(MessageKind.VOTE_RESPONSE), 1, 1, 2, 1, 0),
                     id="int as bool"),
        pytest.param(message_bytes(FORMAT_VERSION, int(MessageKind.HEARTBEAT), 1, 1, 2, 0, "ctx"),
                     id="text as bytes"),
        pytest.param(message_bytes(FORMAT_VERSION, int(MessageKind.HEARTBEAT), 1, 1, 2, 0,
                                   cbor2.CBORTag(24, b"x")),
                     id="tagged bytes"),
        pytest.param(cbor2.dumps({1: 1}), id="map at top level"),
        pytest.param(cbor2.dumps(1), id="integer at top level"),
        pytest.param(b"\x9f\x01\x09\x01\x01\x02\xff", id="indefinite array"),
        pytest.param(b"\x85\x01\x09\x01\x01\xc2\x41\x02", id="bignum tag"),
        pytest.param(b"\x85\x01\x09\x01\x01\xd9\xd9\xf7\x02", id="self-describe tag"),
        pytest.param(b"\x85\x01\x09\x01\x01\xd8\x1c\x02", id="shareable tag"),
        pytest.param(b"\x85\x01\x09\x01\x01\xd9\x03\xe8\x02", id="unknown tag"),
        pytest.param(b"\x85\x01\x09\x01\x01\xf9\x3c\x00", id="half float"),
        pytest.param(b"\x85\x01\x09\x01\x01\xf7", id="undefined"),
        pytest.param(b"\x85\x01\x09\x01\x01\xf0", id="simple value"),
    ],
)
def test_invalid_messages_are_rejected(data) -> None:
    assert_rejected(data)


def test_vote_and_hint_fields_may_be_zero() -> None:
    assert decode_hard_state(encode_hard_state(HardState(3, 0, 0))) == HardState(3, 0, 0)
    zero = AppendResponse(1, 2, 1, success=False, index=0, hint_index=0, hint_term=0)
    assert decode_message(encode_message(zero)) == zero


def _append(prev_index, prev_term, entries, term=7):
    return message_bytes(
        FORMAT_VERSION, int(MessageKind.APPEND_ENTRIES), term, 1, 2, prev_index, prev_term,
        entries, 0,
    )


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(_append(4, 2, [[3, 6, 0, b""]]), id="gap after prev_index"),
        pytest.param(_append(4, 2, [[3, 4, 0, b""]]), id="overlaps prev_index"),
        pytest.param(_append(4, 2, [[3, 5, 0, b""], [3, 7, 0, b""]]), id="gap between"),
        pytest.param(_append(4, 2, [[3, 5, 0, b""], [3, 5, 0, b""]]), id="repeated index"),
        pytest.param(_append(4, 2, [[1, 5, 0, b""]]), id="term below prev_term"),
        pytest.param(_append(4, 2, [[3, 5, 0, b""], [2, 6, 0, b""]]), id="term decreases"),
        pytest.param(_append(4, 2, [[8, 5, 0, b""]]), id="term above message term"),
        pytest.param(_append(0, 0, [[0, 1, 0, b""]]), id="term zero"),
        pytest.param(_append(4, 2, [[3, 5, 2, b""]]), id="unknown entry type"),
        pytest.param(_append(4, 2, [[3, 5, True, b""]]), id="bool entry type"),
        pytest.param(_append(4, 2, [[3, 5, 1, b"junk"]]), id="conf change garbage"),
        pytest.param(_append(4, 2, [[3, 5, 1, b""]]), id="conf change empty"),
        pytest.param(_append(4, 2, [[3, 5, 0, "text"]]), id="text data"),
        pytest.param(_append(4, 2, [[3, 5, 0]]), id="entry arity"),
        pytest.param(_append(4, 2, [3, 5, 0, b""]), id="entry not an array"),
        pytest.param(_append(4, 2, b""), id="entries not an array"),
    ],
)
def test_invalid_append_entries_are_rejected(data) -> None:
    assert_rejected(data)


def _snapshot_with(conf_state) -> bytes:
    return message_bytes(
        FORMAT_VERSION, int(MessageKind.INSTALL_SNAPSHOT), 7, 1, 2, [10, 3, conf_state],
        0, b"", True,
    )


@pytest.mark.parametrize(
    "conf_state",
    [
        pytest.param([[1, 2], [2]], id="voter and learner"),
        pytest.param([[2, 1], []], id="unsorted"),
        pytest.param([[1, 1], []], id="duplicate"),
        pytest.param([[0], []], id="node zero"),
        pytest.param([[1], [True]], id="bool node"),
        pytest.param([[1]], id="arity"),
        pytest.param([[1], [], []], id="arity 3"),
    ],
)
def test_invalid_conf_states_are_rejected(conf_state) -> None:
    assert_rejected(_snapshot_with(conf_state))
    assert_rejected(
        message_bytes(FORMAT_VERSION, int(RecordKind.CONF_STATE), *conf_state), decode_conf_state
    )


@pytest.mark.parametrize(
    "fields",
    [
        pytest.param((3, 1, b""), id="unknown type"),
        pytest.param((0, 0, b""), id="node zero"),
        pytest.param((0, True, b""), id="bool node"),
        pytest.param((0, 1, "x"), id="text context"),
        pytest.param((0, 1), id="arity"),
    ],
)
def test_invalid_conf_changes_are_rejected(fields) -> None:
    assert_rejected(
        message_bytes(FORMAT_VERSION, int(RecordKind.CONF_CHANGE), *fields), decode_conf_change
    )


def test_records_are_not_confused_with_each_other() -> None:
    encoded = {
        decode_message: encode_message(SAMPLES[0]),
        decode_entry: encode_entry(Entry(1, 1)),
        decode_conf_change: encode_conf_change(ConfChange(ConfChangeType.ADD_VOTER, 1)),
        decode_conf_state: encode_conf_state(ConfState({1})),
        decode_hard_state: encode_hard_state(HardState(1, 1, 1)),
        decode_snapshot_metadata: encode_snapshot_metadata(SnapshotMetadata(1, 1)),
    }
    for decode in DECODERS:
        for owner, data in encoded.items():
            if owner is decode:
                decode(data)
            else:
                assert_rejected(data, decode)


def test_entry_record_checks_conf_change_data() -> None:
    assert_rejected(encode_entry(Entry(1, 1, EntryType.CONF_CHANGE, b"junk")), decode_entry)
    good = Entry(1, 1, EntryType.CONF_CHANGE, CC_DATA)
    assert decode_entry(encode_entry(good)) == good


@pytest.mark.parametrize("decode", DECODERS, ids=lambda f: f.__name__)
def test_non_bytes_input_is_a_caller_error(decode) -> None:
    with pytest.raises(TypeError):
        decode("not bytes")


def test_every_cbor_tag_is_rejected() -> None:
    # Generic CBOR decoders interpret many tags (bignums, shared references,
    # regexes...); the codec reads no tag at all, whatever its number. The sweep
    # covers the low range and the tags such decoders commonly interpret.
    tags = set(range(0, 1100)) | {1004, 43000, 55799}
    tags |= {2**16 - 1, 2**16, 2**32 - 1, 2**32, 2**63, MAX_UINT}
    header = b"\x85\x01\x09\x01\x01"
    for tag in sorted(tags):
        for payload in (b"\x02", b"\x41\x02", b"\x82\x01\x02"):
            with pytest.raises(CodecError):
                decode_message(header + cbor2.dumps(cbor2.CBORTag(tag, None))[:-1] + payload)


# --------------------------------------------------------------------------------
# Resource bounds
# --------------------------------------------------------------------------------


def test_oversized_input_is_rejected_before_parsing() -> None:
    data = encode_message(SAMPLES[2])
    assert decode_message(data, max_bytes=len(data)) == SAMPLES[2]
    with pytest.raises(CodecError, match="exceeds"):
        decode_message(data, max_bytes=len(data) - 1)
    # Well past the default 64 MiB limit; must be refused without being read.
    huge = bytes(codec.DEFAULT_MAX_BYTES + 1)
    started = time.perf_counter()
    with pytest.raises(CodecError, match="exceeds"):
        decode_message(huge)
    assert time.perf_counter() - started < QUICKLY


@pytest.mark.parametrize(
    "bomb",
    [
        pytest.param(b"\x81" * 1_000_000, id="nested arrays"),
        pytest.param(b"\x85\x01\x09\x01\x01" + b"\x81" * 100_000 + b"\x01", id="nested field"),
        pytest.param(b"\x85\x01\x09\x01\x01" + b"\xc6" * 100_000 + b"\x01", id="nested tags"),
        pytest.param(b"\x85\x01\x09\x01\x01" + b"\xa1\x01" * 100_000 + b"\x01", id="nested maps"),
        pytest.param(b"\x85\x01\x09\x01\x01" + b"\x9f" * 100_000, id="nested indefinite"),
    ],
)
def test_nesting_bombs_fail_fast(bomb) -> None:
    assert_rejected(bomb)


@pytest.mark.parametrize("major", [0x40, 0x60, 0x80, 0xA0], ids=["bytes", "text", "array", "map"])
@pytest.mark.parametrize("length", [2**31, 2**62, MAX_UINT])
def test_huge_declared_length_fails_fast_and_small(major, length) -> None:
    # A ~20-byte message whose last field declares an enormous string or container:
    # the decoder must hit end-of-input instead of allocating the declared size.
    data = b"\x85\x01\x09\x01\x01" + bytes((major | 27,)) + length.to_bytes(8, "big") + b"abcdef"
    assert len(data) <= 20
    tracemalloc.start()
    try:
        started = time.perf_counter()
        with pytest.raises(CodecError):
            decode_message(data)
        elapsed = time.perf_counter() - started
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert elapsed < QUICKLY
    assert peak < 1_000_000


def test_huge_declared_entries_array_fails_fast() -> None:
    data = _append(4, 2, []).replace(b"\x80\x00", b"\x9b" + (2**62).to_bytes(8, "big") + b"\x00")
    assert_rejected(data)


# --------------------------------------------------------------------------------
# Encoding errors are local errors
# --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "msg, error",
    [
        pytest.param(TimeoutNow(1, 0, 2), ValueError, id="sender 0"),
        pytest.param(TimeoutNow(1, 1, 0), ValueError, id="to 0"),
        pytest.param(TimeoutNow(-1, 1, 2), ValueError, id="negative term"),
        pytest.param(TimeoutNow(2**64, 1, 2), ValueError, id="term too large"),
        pytest.param(TimeoutNow(True, 1, 2), TypeError, id="bool term"),
        pytest.param(TimeoutNow("1", 1, 2), TypeError, id="text term"),
        pytest.param(VoteResponse(1, 1, 2, granted=1), TypeError, id="int as bool"),
        pytest.param(Heartbeat(1, 1, 2, 0, context="x"), TypeError, id="text context"),
        pytest.param(
            AppendEntries(1, 1, 2, 0, 0, (Entry(1, 1, EntryType.NORMAL, "x"),), 0),
            TypeError,
            id="text entry data",
        ),
        pytest.param(AppendEntries(1, 1, 2, 0, 0, (Entry(-1, 1),), 0), ValueError,
                     id="negative entry term"),
        pytest.param(AppendEntries(1, 1, 2, 0, 0, (Entry(1, 1, 5),), 0), ValueError,
                     id="unknown entry type"),
    ],
)
def test_unencodable_messages_raise_local_errors(msg, error) -> None:
    with pytest.raises(error):
        encode_message(msg)


def test_encoding_a_non_message_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        encode_message(HardState())  # type: ignore[arg-type]


@given(change=conf_changes(), state=conf_states())
def test_conf_change_entry_round_trips(change, state):
    assert decode_conf_change_entry(encode_conf_change_entry(change, state)) == (change, state)


def test_conf_change_entry_is_not_a_plain_conf_change():
    data = encode_conf_change_entry(ConfChange(ConfChangeType.ADD_VOTER, 2), ConfState(voters={1, 2}))
    with pytest.raises(CodecError):
        decode_conf_change(data)
    with pytest.raises(CodecError):
        decode_conf_change_entry(encode_conf_change(ConfChange(ConfChangeType.ADD_VOTER, 2)))
