"""The versioned CBOR wire format of the raft library.

Layout
======

Every top-level record is one definite-length CBOR array::

    [FORMAT_VERSION, kind, field, field, ...]

`kind` says which class follows (see `MessageKind` and `RecordKind`; the numbers are
part of the format and are never reused). Fields appear in the order of the
attributes of the class in `raft.types`. Only four CBOR data types are used:
unsigned integers, byte strings, booleans and arrays. Nested values are bare arrays,
without version or kind:

* `Entry`            -> ``[term, index, type, data]``
* `ConfState`        -> ``[[voter, ...], [learner, ...]]``, ids strictly ascending
* `SnapshotMetadata` -> ``[index, term, conf_state]``

Messages carry ``term, sender, to`` first, then their own fields; for example an
`AppendEntries` is ``[1, 3, term, sender, to, prev_index, prev_term, [entry, ...],
commit]``.

Decoding contract
=================

Decoding is the filter between untrusted bytes (a peer, a disk) and the core. Every
``decode_*`` function either returns a valid value of the `raft.types` class or
raises `raft.errors.CodecError` -- never any other exception, for any input bytes:

* inputs longer than ``max_bytes`` are rejected before any parsing;
* the decoder never allocates more than a small multiple of the input size: every
  declared length is compared with the bytes that are left before anything is
  read, so a huge declared length inside a short input fails at once;
* the decoder reads only the four CBOR types of the format, so nesting deeper than
  the format needs, indefinite lengths, CBOR tags, floats, maps, text strings,
  negative integers, null/undefined and trailing bytes are rejected (non-shortest
  integer and length forms are read like any decoder reads them);
* every field is type-checked exactly (a CBOR boolean is not accepted as an
  integer, nor an integer as a boolean), enum values must be known, node ids in
  ``to``/``sender`` (and in configurations and conf changes) must be >= 1, while
  vote/leader style fields may be 0 ("none");
* cross-field rules hold: the entries of an `AppendEntries` have consecutive
  indexes starting at ``prev_index + 1`` and non-decreasing terms between
  ``prev_term`` and the message term; the data of a CONF_CHANGE entry is itself a
  valid encoded `ConfChange` (so a committed change can always be applied).

Passing something that is not bytes-like at all is a caller bug and raises
`TypeError`, in keeping with the local/remote split of `raft.errors`.

Encoding is the local side: a value whose fields cannot be represented (negative or
>= 2**64 integers, non-bytes data, non-bool flags, zero node ids where forbidden)
raises `TypeError` or `ValueError` instead of producing bytes that peers reject.
"""

from __future__ import annotations

import enum
import operator
import struct
from typing import Any, Callable, NoReturn

import attrs

from .errors import CodecError
from .types import (
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
    Message,
    ReadIndexRequest,
    ReadIndexResponse,
    SnapshotMetadata,
    SnapshotResponse,
    TimeoutNow,
    VoteRequest,
    VoteResponse,
)

__all__ = [
    "FORMAT_VERSION",
    "DEFAULT_MAX_BYTES",
    "MAX_UINT",
    "MessageKind",
    "RecordKind",
    "encode_message",
    "decode_message",
    "encode_entry",
    "decode_entry",
    "encode_conf_change",
    "decode_conf_change",
    "encode_conf_change_entry",
    "decode_conf_change_entry",
    "encode_conf_state",
    "decode_conf_state",
    "encode_hard_state",
    "decode_hard_state",
    "encode_snapshot_metadata",
    "decode_snapshot_metadata",
]

FORMAT_VERSION: int = 1
"""The version written as the first element of every record; others are rejected."""

DEFAULT_MAX_BYTES: int = 64 * 1024 * 1024
"""Default upper bound on the size of an encoded message accepted by `decode_message`."""

MAX_UINT: int = 2**64 - 1
"""The largest integer the format carries (larger ones would need a CBOR bignum tag)."""


class MessageKind(enum.IntEnum):
    """Kind tags of messages on the wire. Part of the format: never renumber."""

    VOTE_REQUEST = 1
    VOTE_RESPONSE = 2
    APPEND_ENTRIES = 3
    APPEND_RESPONSE = 4
    HEARTBEAT = 5
    HEARTBEAT_RESPONSE = 6
    INSTALL_SNAPSHOT = 7
    SNAPSHOT_RESPONSE = 8
    TIMEOUT_NOW = 9
    READ_INDEX_REQUEST = 10
    READ_INDEX_RESPONSE = 11


class RecordKind(enum.IntEnum):
    """Kind tags of the standalone (storage) records, disjoint from `MessageKind`.

    Distinct tags mean a record decoded with the wrong function fails cleanly
    instead of being misread as something else. All tags are below 24 so that
    they take a single byte on the wire.
    """

    ENTRY = 16
    CONF_CHANGE = 17
    CONF_STATE = 18
    HARD_STATE = 19
    SNAPSHOT_METADATA = 20
    CONF_CHANGE_ENTRY = 21


# --------------------------------------------------------------------------------
# Reading CBOR. The format uses four CBOR types, so the decoder reads them itself
# instead of asking a general CBOR library to build arbitrary values: anything
# outside those four types (tags, floats, maps, text, negative integers, null,
# undefined, indefinite lengths) cannot even be represented, so it cannot slip
# through. Readers take the input and a position and return (value, next
# position); they never read past the input: a declared length is compared with
# what is left before anything is sliced or allocated. Reading past the end
# raises IndexError or struct.error, which the public functions turn into
# CodecError ("truncated").
# --------------------------------------------------------------------------------

# The deepest value of the format is InstallSnapshot -> metadata -> conf state ->
# voter list; anything deeper is garbage, and a small bound keeps depth bombs cheap.
_MAX_DEPTH = 4

# The argument of an initial byte whose low five bits are 24..27 follows it in
# 1, 2, 4 or 8 big-endian bytes (28..30 are reserved, 31 means indefinite).
_ARGUMENT_READERS = {
    24: (struct.Struct(">B").unpack_from, 2),
    25: (struct.Struct(">H").unpack_from, 3),
    26: (struct.Struct(">I").unpack_from, 5),
    27: (struct.Struct(">Q").unpack_from, 9),
}

_MAJOR_NAMES = (
    "an unsigned integer", "a negative integer", "a byte string", "a text string",
    "an array", "a map", "a tag", "a float or simple value",
)  # fmt: skip


def _unexpected(data: bytes, pos: int, where: str, expected: str) -> NoReturn:
    head = data[pos]
    if head == 0xF4 or head == 0xF5:
        found = "a boolean"
    elif head & 0x1F in (28, 29, 30) and head < 0xC0:
        found = "a malformed head"
    elif head & 0x1F == 31 and 0x40 <= head < 0xC0:
        found = "an indefinite-length item"
    else:
        found = _MAJOR_NAMES[head >> 5]
    raise CodecError(f"{where}: expected {expected}, found {found} at byte {pos}")


def _read_argument(data: bytes, pos: int, where: str, expected: str) -> tuple[int, int]:
    """The argument (value or length) of a head with a 1..8 byte extension at `pos`."""
    reader = _ARGUMENT_READERS.get(data[pos] & 0x1F)
    if reader is None:
        _unexpected(data, pos, where, expected)
    unpack, size = reader
    return unpack(data, pos + 1)[0], pos + size


def _read_uint(data: bytes, pos: int, where: str) -> tuple[int, int]:
    head = data[pos]
    if head < 24:
        return head, pos + 1
    # One- and two-byte arguments (indexes, terms, lengths of a running cluster)
    # are read in place; reading past the end raises IndexError like the others.
    if head == 24:
        return data[pos + 1], pos + 2
    if head == 25:
        return data[pos + 1] << 8 | data[pos + 2], pos + 3
    if head < 32:
        return _read_argument(data, pos, where, "an unsigned integer")
    _unexpected(data, pos, where, "an unsigned integer")


def _read_bytes(data: bytes, pos: int, where: str) -> tuple[bytes, int]:
    head = data[pos]
    if 0x40 <= head < 0x58:
        length = head - 0x40
        pos += 1
    elif 0x58 <= head < 0x60:
        length, pos = _read_argument(data, pos, where, "a byte string")
    else:
        _unexpected(data, pos, where, "a byte string")
    end = pos + length
    if end > len(data):
        raise IndexError("byte string runs past the end of the input")
    return data[pos:end], end


def _read_array_head(data: bytes, pos: int, where: str) -> tuple[int, int]:
    """The length of the array starting at `pos`, and the position of its first item."""
    head = data[pos]
    if 0x80 <= head < 0x98:
        length = head - 0x80
        pos += 1
    elif 0x98 <= head < 0xA0:
        length, pos = _read_argument(data, pos, where, "an array")
    else:
        _unexpected(data, pos, where, "an array")
    # Every item takes at least one byte: a longer declared length is certainly
    # truncated, and failing now means no list is ever sized after a lie.
    if length > len(data) - pos:
        raise IndexError("array runs past the end of the input")
    return length, pos


def _read_value(data: bytes, pos: int, depth: int, where: str) -> tuple[Any, int]:
    """Any value of the format: an unsigned integer, byte string, boolean or array
    (as a list, at most `depth` arrays deep)."""
    head = data[pos]
    if head < 32:
        return _read_uint(data, pos, where)
    if 0x40 <= head < 0x60:
        return _read_bytes(data, pos, where)
    if head == 0xF5:
        return True, pos + 1
    if head == 0xF4:
        return False, pos + 1
    if 0x80 <= head < 0xA0 and depth > 0:
        length, pos = _read_array_head(data, pos, where)
        items = []
        for _ in range(length):
            item, pos = _read_value(data, pos, depth - 1, where)
            items.append(item)
        return items, pos
    if 0x80 <= head < 0xA0:
        raise CodecError(f"{where}: arrays nested deeper than the format allows")
    _unexpected(data, pos, where, "an integer, byte string, boolean or array")


def _as_bytes(data: Any, max_bytes: int, what: str) -> bytes:
    """`data` as bytes after the size check.

    Raises:
        CodecError: the input is longer than `max_bytes`.
        TypeError: `data` is not bytes-like.
    """
    if type(data) is bytes:
        size = len(data)
    elif isinstance(data, (bytes, bytearray, memoryview)):
        size = data.nbytes if isinstance(data, memoryview) else len(data)
    else:
        raise TypeError(f"can only decode bytes-like data, not {type(data).__name__}")
    if size > max_bytes:
        raise CodecError(f"{what}: {size} bytes exceeds the limit of {max_bytes}")
    # Copy only after the size check; a memoryview of another item format would
    # otherwise index as something other than bytes.
    return data if type(data) is bytes else bytes(data)


def _parse_cbor(data: Any, max_bytes: int, what: str) -> list[Any]:
    """Parse `data` as exactly one CBOR array, without trusting anything in it.

    Returns:
        The top-level array as a list; nested values are still unchecked.

    Raises:
        CodecError: the input is too long, is not one well-formed CBOR array of the
            format's types, nests too deeply or has trailing bytes.
        TypeError: `data` is not bytes-like.
    """
    data = _as_bytes(data, max_bytes, what)
    # Every record is a short array (< 24 elements), so its first byte is 0x80..0x97.
    if not data or not 0x80 <= data[0] <= 0x97:
        raise CodecError(f"{what}: not a CBOR array of a known record")
    try:
        value, end = _read_value(data, 0, _MAX_DEPTH, what)
    except (IndexError, struct.error):
        raise CodecError(f"{what}: truncated") from None
    if end != len(data):
        raise CodecError(f"{what}: {len(data) - end} trailing bytes after the record")
    return value


# --------------------------------------------------------------------------------
# Field checkers for decoding. Each returns the checked Python value or raises
# CodecError; `where` names the field for the error message.
# --------------------------------------------------------------------------------


def _fail(where: str, expected: str, value: Any) -> NoReturn:
    raise CodecError(f"{where}: expected {expected}, got {_describe(value)}")


def _describe(value: Any) -> str:
    text = repr(value)
    if len(text) > 40:
        text = text[:37] + "..."
    return f"{type(value).__name__} {text}"


def _uint(value: Any, where: str) -> int:
    # `type(...) is int` on purpose: bool is an int subclass and must not pass.
    if type(value) is not int or value < 0:
        _fail(where, "an unsigned integer", value)
    return value


def _node_id(value: Any, where: str) -> int:
    if type(value) is not int or value <= 0:
        _fail(where, "a node id >= 1", value)
    return value


def _bool(value: Any, where: str) -> bool:
    if type(value) is not bool:
        _fail(where, "a boolean", value)
    return value


def _bytes(value: Any, where: str) -> bytes:
    if type(value) is not bytes:
        _fail(where, "a byte string", value)
    return value


def _array(value: Any, length: int, where: str) -> list[Any]:
    if type(value) is not list or len(value) != length:
        _fail(where, f"an array of {length} elements", value)
    return value


_ENTRY_TYPES = {int(t): t for t in EntryType}
_CONF_CHANGE_TYPES = {int(t): t for t in ConfChangeType}
_NORMAL = EntryType.NORMAL


def _entry_type(value: Any, where: str) -> EntryType:
    if type(value) is not int or value not in _ENTRY_TYPES:
        _fail(where, f"an entry type {sorted(_ENTRY_TYPES)}", value)
    return _ENTRY_TYPES[value]


def _node_set(value: Any, where: str) -> frozenset[int]:
    if type(value) is not list:
        _fail(where, "an array of node ids", value)
    previous = 0
    for node in value:
        _node_id(node, where)
        # Strictly ascending keeps the encoding unique and rejects duplicates.
        if node <= previous:
            raise CodecError(f"{where}: node ids must be strictly ascending")
        previous = node
    return frozenset(value)


def _conf_state(value: Any, where: str) -> ConfState:
    voters, learners = _array(value, 2, where)
    state_voters = _node_set(voters, f"{where}.voters")
    state_learners = _node_set(learners, f"{where}.learners")
    if state_voters & state_learners:
        raise CodecError(f"{where}: a node is both voter and learner")
    return ConfState(voters=state_voters, learners=state_learners)


def _snapshot_metadata(value: Any, where: str) -> SnapshotMetadata:
    index, term, conf_state = _array(value, 3, where)
    return SnapshotMetadata(
        index=_uint(index, f"{where}.index"),
        term=_uint(term, f"{where}.term"),
        conf_state=_conf_state(conf_state, f"{where}.conf_state"),
    )


def _entry_fields(term: Any, index: Any, type_: Any, data: Any, where: str) -> Entry:
    entry_type = _entry_type(type_, f"{where}.type")
    entry = Entry(
        term=_uint(term, f"{where}.term"),
        index=_uint(index, f"{where}.index"),
        type=entry_type,
        data=_bytes(data, f"{where}.data"),
    )
    if entry_type is EntryType.CONF_CHANGE:
        # Validated here, at the boundary, so that a committed CONF_CHANGE entry can
        # never fail to decode when the core applies it.
        record = _parse_record(data, f"{where}.data")
        _conf_change_entry_fields(
            *_expect_header(record, RecordKind.CONF_CHANGE_ENTRY, 4, f"{where}.data"),
            f"{where}.data",
        )
    return entry


def _read_entries(
    data: bytes, pos: int, term: int, prev_index: int, prev_term: int
) -> tuple[tuple[Entry, ...], int]:
    """The entries of an `AppendEntries`, checked against its other fields."""
    count = data[pos] - 0x80
    if 0 <= count < 24:  # the usual short array: its head is one byte
        pos += 1
        if count > len(data) - pos:
            raise IndexError("array runs past the end of the input")
    else:
        count, pos = _read_array_head(data, pos, "AppendEntries.entries")
    entries: list[Entry] = []
    expected_index = prev_index + 1
    # Terms in a Raft log never decrease and start at 1, and a leader only sends
    # entries of its own term or older.
    min_term = prev_term if prev_term > 1 else 1
    where = "AppendEntries.entries"
    for position in range(count):
        if data[pos] != 0x84:  # [term, index, type, data] has a one-byte head
            where = f"AppendEntries.entries[{position}]"
            arity, pos = _read_array_head(data, pos, where)
            if arity != 4:
                raise CodecError(f"{where}: expected an array of 4 elements, got {arity}")
            pos -= 1
        # Small terms, NORMAL entries and data shorter than 256 bytes are read in
        # place; anything else through the checking readers.
        entry_term = data[pos + 1]
        if entry_term < 24:
            pos += 2
        else:
            entry_term, pos = _read_uint(data, pos + 1, where)
        if data[pos] == 0x19:  # indexes 256..65535
            entry_index = data[pos + 1] << 8 | data[pos + 2]
            pos += 3
        else:
            entry_index, pos = _read_uint(data, pos, where)
        entry_type = data[pos]
        head = data[pos + 1]
        if entry_type == 0 and 0x40 <= head <= 0x58:
            if head == 0x58:
                start = pos + 3
                end = start + data[pos + 2]
            else:
                start = pos + 2
                end = start + head - 0x40
            if end > len(data):
                raise IndexError("byte string runs past the end of the input")
            entry = Entry(entry_term, entry_index, _NORMAL, data[start:end])
            pos = end
        else:
            where = f"AppendEntries.entries[{position}]"
            entry_type, pos = _read_uint(data, pos, where)
            entry_data, pos = _read_bytes(data, pos, where)
            entry = _entry_fields(entry_term, entry_index, entry_type, entry_data, where)
        if entry_index != expected_index:
            raise CodecError(
                f"AppendEntries.entries[{position}]: index {entry_index}, expected {expected_index}"
            )
        if not min_term <= entry_term <= term:
            raise CodecError(
                f"AppendEntries.entries[{position}]: term {entry_term} outside [{min_term}, {term}]"
            )
        entries.append(entry)
        expected_index += 1
        min_term = entry_term
    return tuple(entries), pos


# --------------------------------------------------------------------------------
# Encoding. The format uses four CBOR types, so it is written directly as bytes:
# this is about twice as fast as building lists for cbor2.dumps (measured with
# cbor2 6.2), and the output is byte-for-byte what cbor2 would produce for the
# same lists (`test_codec.py` checks it). Each writer also checks what CBOR
# would otherwise carry in a form the decoder rejects (negative ints, bignums,
# text strings, ints as bools).
# --------------------------------------------------------------------------------

_PACK_8 = struct.Struct(">BB").pack
_PACK_16 = struct.Struct(">BH").pack
_PACK_32 = struct.Struct(">BI").pack
_PACK_64 = struct.Struct(">BQ").pack
# Shortest encodings of the unsigned integers 0..255 (one byte below 24, then two),
# and the heads of byte strings of 0..255 bytes: table lookups instead of packing
# for the values a running cluster sends all the time.
_SMALL_UINTS = tuple(bytes((n,)) if n < 24 else _PACK_8(0x18, n) for n in range(256))
_SMALL_BYTES_HEADS = tuple(bytes((0x40 | n,)) if n < 24 else _PACK_8(0x58, n) for n in range(256))
_VERSION_BYTES = _SMALL_UINTS[FORMAT_VERSION]
_TRUE = b"\xf5"
_FALSE = b"\xf4"


def _head(major: int, length: int) -> bytes:
    """The initial bytes of a CBOR item: major type plus the shortest length form."""
    if length < 24:
        return bytes((major | length,))
    if length < 0x100:
        return _PACK_8(major | 24, length)
    if length < 0x10000:
        return _PACK_16(major | 25, length)
    if length < 0x100000000:
        return _PACK_32(major | 26, length)
    return _PACK_64(major | 27, length)


def _put_uint(value: Any, where: str) -> bytes:
    if type(value) is not int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise TypeError(f"{where}: expected an int, got {type(value).__name__}")
        value = int(value)
    if value < 0x100:
        if value < 0:
            raise ValueError(f"{where}: {value} is outside [0, 2**64 - 1]")
        return _SMALL_UINTS[value]
    if value < 0x10000:
        return _PACK_16(0x19, value)
    if value > MAX_UINT:
        raise ValueError(f"{where}: {value} is outside [0, 2**64 - 1]")
    return _head(0x00, value)


def _put_node_id(value: Any, where: str) -> bytes:
    if value == 0 and not isinstance(value, bool):
        raise ValueError(f"{where}: node id must be >= 1")
    return _put_uint(value, where)


def _put_bool(value: Any, where: str) -> bytes:
    if value is True:
        return _TRUE
    if value is False:
        return _FALSE
    raise TypeError(f"{where}: expected a bool, got {type(value).__name__}")


def _put_bytes(value: Any, where: str) -> bytes:
    if type(value) is not bytes:
        if not isinstance(value, (bytes, bytearray, memoryview)):
            raise TypeError(f"{where}: expected bytes, got {type(value).__name__}")
        value = bytes(value)
    size = len(value)
    return (_SMALL_BYTES_HEADS[size] if size < 0x100 else _head(0x40, size)) + value


def _put_node_ids(nodes: frozenset[int], where: str) -> bytes:
    # Sorted so that equal configurations always encode to equal bytes (and the
    # decoder can insist on strictly ascending ids).
    ordered = sorted(nodes)
    return _head(0x80, len(ordered)) + b"".join(_put_node_id(n, where) for n in ordered)


def _put_conf_state(state: ConfState, where: str) -> bytes:
    return b"".join(
        (
            b"\x82",
            _put_node_ids(state.voters, f"{where}.voters"),
            _put_node_ids(state.learners, f"{where}.learners"),
        )
    )


def _put_snapshot_metadata(metadata: SnapshotMetadata, where: str) -> bytes:
    return b"".join(
        (
            b"\x83",
            _put_uint(metadata.index, f"{where}.index"),
            _put_uint(metadata.term, f"{where}.term"),
            _put_conf_state(metadata.conf_state, f"{where}.conf_state"),
        )
    )


def _put_entry_type(entry_type: Any, where: str) -> bytes:
    if type(entry_type) is EntryType:
        return _SMALL_UINTS[entry_type]
    if isinstance(entry_type, bool) or entry_type not in _ENTRY_TYPES:
        raise ValueError(f"{where}: unknown entry type {entry_type!r}")
    return _SMALL_UINTS[entry_type]


def _put_entry(entry: Entry, where: str) -> bytes:
    """``[term, index, type, data]`` without version or kind."""
    return b"".join(
        (
            b"\x84",
            _put_uint(entry.term, f"{where}.term"),
            _put_uint(entry.index, f"{where}.index"),
            _put_entry_type(entry.type, f"{where}.type"),
            _put_bytes(entry.data, f"{where}.data"),
        )
    )


def _put_entries(entries: Any, where: str, parts: list[bytes]) -> None:
    """Append ``[[term, index, type, data], ...]`` to `parts`."""
    count = len(entries)
    if count == 0:
        parts.append(b"\x80")  # no entries: a heartbeat-like append, or a probe
        return
    parts.append(_head(0x80, count))
    extend = parts.extend
    for position, entry in enumerate(entries):
        term, index, entry_type, data = entry.term, entry.index, entry.type, entry.data
        # The hot loop of the encoder. Well-formed entries of the sizes a cluster
        # sends all the time (term < 256, index < 65536, data < 256 bytes) take this
        # branch, which builds no error-message strings; anything else goes
        # through the checking writers, which raise with a precise field name.
        if (
            type(term) is int
            and type(index) is int
            and type(data) is bytes
            and type(entry_type) is EntryType
            and 0 <= term < 0x100
            and 0 <= index < 0x10000
            and len(data) < 0x100
        ):
            extend((
                b"\x84",
                _SMALL_UINTS[term],
                _SMALL_UINTS[index] if index < 0x100 else _PACK_16(0x19, index),
                _SMALL_UINTS[entry_type],
                _SMALL_BYTES_HEADS[len(data)],
                data,
            ))  # fmt: skip
        else:
            parts.append(_put_entry(entry, f"{where}[{position}]"))


# --------------------------------------------------------------------------------
# Message table: one row per kind, fields in wire order after term, sender, to.
# Messages are read and written field by field from this table, without building
# an intermediate list: each field's type says how to read or write it.
# --------------------------------------------------------------------------------

# Field types.
_UINT = 0
_NODE = 1  # an unsigned integer >= 1
_BOOL = 2
_BYTES = 3
_ENTRIES = 4  # AppendEntries.entries, checked against term, prev_index, prev_term
_METADATA = 5

_HEADER = (("term", _UINT), ("sender", _NODE), ("to", _NODE))

_MESSAGE_FIELDS: dict[type, tuple[MessageKind, tuple[tuple[str, int], ...]]] = {
    VoteRequest: (
        MessageKind.VOTE_REQUEST,
        _HEADER
        + (
            ("last_log_index", _UINT),
            ("last_log_term", _UINT),
            ("pre_vote", _BOOL),
            ("transfer", _BOOL),
        ),
    ),
    VoteResponse: (
        MessageKind.VOTE_RESPONSE,
        _HEADER + (("granted", _BOOL), ("pre_vote", _BOOL)),
    ),
    AppendEntries: (
        MessageKind.APPEND_ENTRIES,
        _HEADER
        + (
            ("prev_index", _UINT),
            ("prev_term", _UINT),
            ("entries", _ENTRIES),
            ("commit", _UINT),
        ),
    ),
    AppendResponse: (
        MessageKind.APPEND_RESPONSE,
        _HEADER
        + (
            ("success", _BOOL),
            ("index", _UINT),
            ("hint_index", _UINT),
            ("hint_term", _UINT),
        ),
    ),
    Heartbeat: (MessageKind.HEARTBEAT, _HEADER + (("commit", _UINT), ("context", _BYTES))),
    HeartbeatResponse: (MessageKind.HEARTBEAT_RESPONSE, _HEADER + (("context", _BYTES),)),
    InstallSnapshot: (
        MessageKind.INSTALL_SNAPSHOT,
        _HEADER
        + (
            ("metadata", _METADATA),
            ("offset", _UINT),
            ("data", _BYTES),
            ("done", _BOOL),
        ),
    ),
    SnapshotResponse: (
        MessageKind.SNAPSHOT_RESPONSE,
        _HEADER + (("snapshot_index", _UINT), ("next_offset", _UINT)),
    ),
    TimeoutNow: (MessageKind.TIMEOUT_NOW, _HEADER),
    ReadIndexRequest: (MessageKind.READ_INDEX_REQUEST, _HEADER + (("context", _BYTES),)),
    ReadIndexResponse: (
        MessageKind.READ_INDEX_RESPONSE,
        _HEADER + (("index", _UINT), ("context", _BYTES)),
    ),
}


class _MessageFormat:
    """One row of the table, prepared for encoding and decoding.

    Attributes:
        cls: the message class; it is built positionally, so the wire order must
            be the order of its attributes (checked when the module loads).
        length: elements of the top-level array (version and kind included).
        prefix: the encoded array head, version and kind.
        values: returns the field values of a message, in wire order.
        fields: (field type, "Class.field" for error messages), in wire order.
    """

    __slots__ = ("cls", "length", "prefix", "values", "fields")

    def __init__(self, cls: type, kind: MessageKind, fields: tuple[tuple[str, int], ...]) -> None:
        names = [name for name, _type in fields]
        declared = [attribute.name for attribute in attrs.fields(cls)]
        if declared[: len(names)] != names:
            raise TypeError(f"{cls.__name__}: wire fields {names} are not its attributes {declared}")
        self.cls = cls
        self.length = 2 + len(fields)
        self.prefix = _head(0x80, self.length) + _VERSION_BYTES + _head(0x00, kind)
        # Every message has at least term, sender and to, so this returns a tuple.
        self.values = operator.attrgetter(*names)
        self.fields = tuple((field_type, f"{cls.__name__}.{name}") for name, field_type in fields)


_FORMATS_BY_CLASS: dict[type, _MessageFormat] = {
    cls: _MessageFormat(cls, kind, fields) for cls, (kind, fields) in _MESSAGE_FIELDS.items()
}
_FORMATS_BY_KIND: dict[int, _MessageFormat] = {
    int(kind): _FORMATS_BY_CLASS[cls] for cls, (kind, _fields) in _MESSAGE_FIELDS.items()
}


# --------------------------------------------------------------------------------
# The hot kinds. A running cluster sends little but AppendEntries, AppendResponse,
# Heartbeat and HeartbeatResponse, so these four have writers and readers of their
# own, spelled out field by field: for them the table-driven loops cost more than
# the fields themselves. Each field has an inline branch for the values a cluster
# actually sends (small integers, short byte strings) and otherwise calls the same
# checking writers and readers as the table. They write the same bytes and accept
# and reject the same inputs as the table-driven code (tests/test_codec_hot.py
# checks both against each other).
# --------------------------------------------------------------------------------


def _prefix(cls: type) -> bytes:
    return _FORMATS_BY_CLASS[cls].prefix


_APPEND_ENTRIES_PREFIX = _prefix(AppendEntries)
_APPEND_RESPONSE_PREFIX = _prefix(AppendResponse)
_HEARTBEAT_PREFIX = _prefix(Heartbeat)
_HEARTBEAT_RESPONSE_PREFIX = _prefix(HeartbeatResponse)


def _write_append_entries(msg: AppendEntries) -> bytes:
    term, sender, to, commit = msg.term, msg.sender, msg.to, msg.commit
    prev_index, prev_term = msg.prev_index, msg.prev_term
    parts = [
        _APPEND_ENTRIES_PREFIX,
        _SMALL_UINTS[term] if type(term) is int and 0 <= term < 0x100 else _put_uint(term, "AppendEntries.term"),
        _SMALL_UINTS[sender] if type(sender) is int and 0 < sender < 0x100 else _put_node_id(sender, "AppendEntries.sender"),
        _SMALL_UINTS[to] if type(to) is int and 0 < to < 0x100 else _put_node_id(to, "AppendEntries.to"),
        _put_uint(prev_index, "AppendEntries.prev_index"),
        _SMALL_UINTS[prev_term] if type(prev_term) is int and 0 <= prev_term < 0x100 else _put_uint(prev_term, "AppendEntries.prev_term"),
    ]  # fmt: skip
    _put_entries(msg.entries, "AppendEntries.entries", parts)
    parts.append(_put_uint(commit, "AppendEntries.commit"))
    return b"".join(parts)


def _write_append_response(msg: AppendResponse) -> bytes:
    term, sender, to, success = msg.term, msg.sender, msg.to, msg.success
    hint_index, hint_term = msg.hint_index, msg.hint_term
    return b"".join((
        _APPEND_RESPONSE_PREFIX,
        _SMALL_UINTS[term] if type(term) is int and 0 <= term < 0x100 else _put_uint(term, "AppendResponse.term"),
        _SMALL_UINTS[sender] if type(sender) is int and 0 < sender < 0x100 else _put_node_id(sender, "AppendResponse.sender"),
        _SMALL_UINTS[to] if type(to) is int and 0 < to < 0x100 else _put_node_id(to, "AppendResponse.to"),
        _TRUE if success is True else _put_bool(success, "AppendResponse.success"),
        _put_uint(msg.index, "AppendResponse.index"),
        _SMALL_UINTS[hint_index] if type(hint_index) is int and 0 <= hint_index < 0x100 else _put_uint(hint_index, "AppendResponse.hint_index"),
        _SMALL_UINTS[hint_term] if type(hint_term) is int and 0 <= hint_term < 0x100 else _put_uint(hint_term, "AppendResponse.hint_term"),
    ))  # fmt: skip


def _write_heartbeat(msg: Heartbeat) -> bytes:
    term, sender, to, context = msg.term, msg.sender, msg.to, msg.context
    return b"".join((
        _HEARTBEAT_PREFIX,
        _SMALL_UINTS[term] if type(term) is int and 0 <= term < 0x100 else _put_uint(term, "Heartbeat.term"),
        _SMALL_UINTS[sender] if type(sender) is int and 0 < sender < 0x100 else _put_node_id(sender, "Heartbeat.sender"),
        _SMALL_UINTS[to] if type(to) is int and 0 < to < 0x100 else _put_node_id(to, "Heartbeat.to"),
        _put_uint(msg.commit, "Heartbeat.commit"),
        _put_bytes(context, "Heartbeat.context"),
    ))  # fmt: skip


def _write_heartbeat_response(msg: HeartbeatResponse) -> bytes:
    term, sender, to = msg.term, msg.sender, msg.to
    return b"".join((
        _HEARTBEAT_RESPONSE_PREFIX,
        _SMALL_UINTS[term] if type(term) is int and 0 <= term < 0x100 else _put_uint(term, "HeartbeatResponse.term"),
        _SMALL_UINTS[sender] if type(sender) is int and 0 < sender < 0x100 else _put_node_id(sender, "HeartbeatResponse.sender"),
        _SMALL_UINTS[to] if type(to) is int and 0 < to < 0x100 else _put_node_id(to, "HeartbeatResponse.to"),
        _put_bytes(msg.context, "HeartbeatResponse.context"),
    ))  # fmt: skip


_HOT_WRITERS: dict[type, Callable[[Any], bytes]] = {
    AppendEntries: _write_append_entries,
    AppendResponse: _write_append_response,
    Heartbeat: _write_heartbeat,
    HeartbeatResponse: _write_heartbeat_response,
}


# The readers start after the 3-byte prefix (array head, version, kind), which
# selected them. term, sender and to are nearly always below 24, one byte each, and
# so are hint fields and flags: those bytes are taken as they are, anything else
# goes through the checking readers. Reading past the end raises IndexError, as in
# the generic reader.


def _read_header(data: bytes, where: str) -> tuple[int, int, int, int]:
    """term, sender, to and the position after them, in their general forms."""
    term, pos = _read_uint(data, 3, f"{where}.term")
    sender, pos = _read_node_id(data, pos, f"{where}.sender")
    to, pos = _read_node_id(data, pos, f"{where}.to")
    return term, sender, to, pos


def _read_node_id(data: bytes, pos: int, where: str) -> tuple[int, int]:
    value, pos = _read_uint(data, pos, where)
    if value == 0:
        raise CodecError(f"{where}: expected a node id >= 1, got 0")
    return value, pos


def _check_end(data: bytes, pos: int) -> None:
    if pos != len(data):
        raise CodecError(f"message: {len(data) - pos} trailing bytes after the record")


def _read_append_entries(data: bytes) -> AppendEntries:
    term, sender, to = data[3], data[4], data[5]
    if term < 24 and 0 < sender < 24 and 0 < to < 24:
        pos = 6
    else:
        term, sender, to, pos = _read_header(data, "AppendEntries")
    if data[pos] == 0x19:  # indexes 256..65535
        prev_index = data[pos + 1] << 8 | data[pos + 2]
        pos += 3
    else:
        prev_index, pos = _read_uint(data, pos, "AppendEntries.prev_index")
    prev_term = data[pos]
    if prev_term < 24:
        pos += 1
    else:
        prev_term, pos = _read_uint(data, pos, "AppendEntries.prev_term")
    entries, pos = _read_entries(data, pos, term, prev_index, prev_term)
    if data[pos] == 0x19:
        commit = data[pos + 1] << 8 | data[pos + 2]
        pos += 3
    else:
        commit, pos = _read_uint(data, pos, "AppendEntries.commit")
    if pos != len(data):
        _check_end(data, pos)
    return AppendEntries(term, sender, to, prev_index, prev_term, entries, commit)


def _read_append_response(data: bytes) -> AppendResponse:
    term, sender, to = data[3], data[4], data[5]
    if term < 24 and 0 < sender < 24 and 0 < to < 24:
        pos = 6
    else:
        term, sender, to, pos = _read_header(data, "AppendResponse")
    head = data[pos]
    if head == 0xF5:
        success = True
    elif head == 0xF4:
        success = False
    else:
        _unexpected(data, pos, "AppendResponse.success", "a boolean")
    pos += 1
    if data[pos] == 0x19:  # indexes 256..65535
        index = data[pos + 1] << 8 | data[pos + 2]
        pos += 3
    else:
        index, pos = _read_uint(data, pos, "AppendResponse.index")
    hint_index = data[pos]
    if hint_index < 24:
        pos += 1
    else:
        hint_index, pos = _read_uint(data, pos, "AppendResponse.hint_index")
    hint_term = data[pos]
    if hint_term < 24:
        pos += 1
    else:
        hint_term, pos = _read_uint(data, pos, "AppendResponse.hint_term")
    if pos != len(data):
        _check_end(data, pos)
    return AppendResponse(term, sender, to, success, index, hint_index, hint_term)


def _read_heartbeat(data: bytes) -> Heartbeat:
    term, sender, to = data[3], data[4], data[5]
    if term < 24 and 0 < sender < 24 and 0 < to < 24:
        pos = 6
    else:
        term, sender, to, pos = _read_header(data, "Heartbeat")
    commit, pos = _read_uint(data, pos, "Heartbeat.commit")
    if data[pos] == 0x40:  # no read context
        context = b""
        pos += 1
    else:
        context, pos = _read_bytes(data, pos, "Heartbeat.context")
    if pos != len(data):
        _check_end(data, pos)
    return Heartbeat(term, sender, to, commit, context)


def _read_heartbeat_response(data: bytes) -> HeartbeatResponse:
    term, sender, to = data[3], data[4], data[5]
    if term < 24 and 0 < sender < 24 and 0 < to < 24:
        pos = 6
    else:
        term, sender, to, pos = _read_header(data, "HeartbeatResponse")
    if data[pos] == 0x40:  # no read context
        context = b""
        pos += 1
    else:
        context, pos = _read_bytes(data, pos, "HeartbeatResponse.context")
    if pos != len(data):
        _check_end(data, pos)
    return HeartbeatResponse(term, sender, to, context)


_HOT_READERS: dict[bytes, Callable[[bytes], Any]] = {
    _APPEND_ENTRIES_PREFIX: _read_append_entries,
    _APPEND_RESPONSE_PREFIX: _read_append_response,
    _HEARTBEAT_PREFIX: _read_heartbeat,
    _HEARTBEAT_RESPONSE_PREFIX: _read_heartbeat_response,
}


def encode_message(msg: Message) -> bytes:
    """Encode a message for the wire.

    Args:
        msg: an instance of one of the classes in `raft.types.MESSAGE_TYPES`.

    Returns:
        ``[FORMAT_VERSION, kind, term, sender, to, fields...]`` as CBOR.

    Raises:
        TypeError: `msg` is not a message, or a field has a type the format cannot
            carry (e.g. a non-bool flag or non-bytes data).
        ValueError: a field is out of range (negative, >= 2**64, a zero node id).
    """
    writer = _HOT_WRITERS.get(type(msg))
    if writer is not None:
        return writer(msg)
    return _write_message(msg)


def _write_message(msg: Message) -> bytes:
    """`encode_message` driven by the message table (any kind)."""
    fmt = _FORMATS_BY_CLASS.get(type(msg))
    if fmt is None:
        raise TypeError(f"not a raft message: {type(msg).__name__}")
    parts = [fmt.prefix]
    append = parts.append
    # Small integers, flags and short byte strings are written inline; anything
    # else goes through the checking writers, which raise with the field's name.
    for value, (field_type, where) in zip(fmt.values(msg), fmt.fields):
        if field_type is _UINT:
            if type(value) is int and 0 <= value < 0x100:
                append(_SMALL_UINTS[value])
            else:
                append(_put_uint(value, where))
        elif field_type is _NODE:
            if type(value) is int and 0 < value < 0x100:
                append(_SMALL_UINTS[value])
            else:
                append(_put_node_id(value, where))
        elif field_type is _BOOL:
            append(_put_bool(value, where))
        elif field_type is _BYTES:
            if type(value) is bytes and len(value) < 0x100:
                append(_SMALL_BYTES_HEADS[len(value)])
                append(value)
            else:
                append(_put_bytes(value, where))
        elif field_type is _ENTRIES:
            _put_entries(value, where, parts)
        else:
            append(_put_snapshot_metadata(value, where))
    return b"".join(parts)


def decode_message(data: bytes, max_bytes: int = DEFAULT_MAX_BYTES) -> Message:
    """Decode a message received from a peer.

    Args:
        data: the encoded message (bytes, bytearray or memoryview).
        max_bytes: inputs longer than this are rejected before parsing.

    Returns:
        A valid instance of one of `raft.types.MESSAGE_TYPES`.

    Raises:
        CodecError: `data` is not a valid encoded message (see the module docstring
            for everything that is checked). No other exception is raised for bad
            bytes.
        TypeError: `data` is not bytes-like (a caller bug).
    """
    if type(data) is not bytes or len(data) > max_bytes:
        data = _as_bytes(data, max_bytes, "message")
    try:
        # The hot kinds are recognised by their first three bytes (array head,
        # version, kind) and read by readers of their own.
        reader = _HOT_READERS.get(data[:3])
        if reader is not None:
            return reader(data)
        return _read_message(data)
    except CodecError:
        raise
    except (IndexError, struct.error):
        raise CodecError("message: truncated") from None
    # Every check raises CodecError explicitly; this only guards the promise
    # "CodecError and nothing else" against a validation bug or a future change in
    # the value classes' constructors.
    except Exception as exc:  # pragma: no cover - defensive
        raise CodecError(f"message: invalid: {exc}") from exc


def _read_message(data: bytes) -> Message:
    # Every message is a short array (< 24 elements), so its first byte is 0x80..0x97.
    if not data or not 0x80 <= data[0] <= 0x97:
        raise CodecError("message: not a CBOR array of a known record")
    if data[0] < 0x82:
        raise CodecError("message: missing version or kind")
    version, pos = _read_uint(data, 1, "message: version")
    if version != FORMAT_VERSION:
        raise CodecError(
            f"message: unsupported format version {version}, this node speaks {FORMAT_VERSION}"
        )
    kind, pos = _read_uint(data, pos, "message: kind")
    fmt = _FORMATS_BY_KIND.get(kind)
    if fmt is None:
        raise CodecError(f"message: unknown kind {kind}")
    if data[0] - 0x80 != fmt.length:
        raise CodecError(
            f"{fmt.cls.__name__}: expected {fmt.length - 2} fields, got {data[0] - 0x82}"
        )
    values: list[Any] = []
    append = values.append
    for field_type, where in fmt.fields:
        head = data[pos]
        if field_type is _UINT:
            if head < 24:
                value = head
                pos += 1
            else:
                value, pos = _read_uint(data, pos, where)
        elif field_type is _NODE:
            value, pos = _read_uint(data, pos, where)
            if value == 0:
                raise CodecError(f"{where}: expected a node id >= 1, got 0")
        elif field_type is _BOOL:
            if head == 0xF5:
                value = True
            elif head == 0xF4:
                value = False
            else:
                _unexpected(data, pos, where, "a boolean")
            pos += 1
        elif field_type is _BYTES:
            value, pos = _read_bytes(data, pos, where)
        elif field_type is _ENTRIES:
            term, _sender, _to, prev_index, prev_term = values
            value, pos = _read_entries(data, pos, term, prev_index, prev_term)
        else:
            raw, pos = _read_value(data, pos, _MAX_DEPTH - 1, where)
            value = _snapshot_metadata(raw, where)
        append(value)
    if pos != len(data):
        raise CodecError(f"message: {len(data) - pos} trailing bytes after the record")
    return fmt.cls(*values)


def _check_version(version: Any, what: str) -> None:
    if type(version) is not int or version != FORMAT_VERSION:
        raise CodecError(
            f"{what}: unsupported format version {_describe(version)}, "
            f"this node speaks {FORMAT_VERSION}"
        )


# --------------------------------------------------------------------------------
# Standalone records: [FORMAT_VERSION, record kind, fields...].
# --------------------------------------------------------------------------------


def _parse_record(data: Any, what: str) -> list[Any]:
    # Records are small (entries are bounded by the message limit anyway); reuse
    # the same ceiling so no caller can be made to parse more than a message.
    return _parse_cbor(data, DEFAULT_MAX_BYTES, what)


def _expect_header(record: list[Any], kind: RecordKind, arity: int, what: str) -> list[Any]:
    if len(record) < 2:
        raise CodecError(f"{what}: missing version or kind")
    _check_version(record[0], what)
    if type(record[1]) is not int or record[1] != kind:
        raise CodecError(f"{what}: expected record kind {int(kind)}, got {_describe(record[1])}")
    if len(record) != 2 + arity:
        raise CodecError(f"{what}: expected {arity} fields, got {len(record) - 2}")
    return record[2:]


def _decode_record(data: Any, kind: RecordKind, arity: int, what: str,
                   build: Callable[..., Any]) -> Any:
    record = _parse_record(data, what)
    try:
        return build(*_expect_header(record, kind, arity, what), what)
    except CodecError:
        raise
    except Exception as exc:  # pragma: no cover - defensive, see decode_message
        raise CodecError(f"{what}: invalid: {exc}") from exc


def _record_prefix(kind: RecordKind, arity: int) -> bytes:
    """Array head, version and kind of a standalone record with `arity` fields."""
    return _head(0x80, 2 + arity) + _VERSION_BYTES + _head(0x00, kind)


def encode_entry(e: Entry) -> bytes:
    """Encode a log entry as ``[FORMAT_VERSION, 16, term, index, type, data]``.

    Raises:
        TypeError, ValueError: a field cannot be represented (see module docstring).
    """
    # The nested form is [term, index, type, data]; a record adds two elements.
    return _record_prefix(RecordKind.ENTRY, 4) + _put_entry(e, "Entry")[1:]


def decode_entry(data: bytes) -> Entry:
    """Decode a log entry written by `encode_entry`.

    Raises:
        CodecError: `data` is not a valid encoded entry (a CONF_CHANGE entry must
            carry a valid encoded `ConfChange`).
        TypeError: `data` is not bytes-like.
    """
    return _decode_record(data, RecordKind.ENTRY, 4, "entry", _entry_fields)


def encode_conf_change(cc: ConfChange) -> bytes:
    """Encode a membership change as ``[FORMAT_VERSION, 17, type, node_id, context]``.

    This is the `data` of CONF_CHANGE entries; it is a handful of bytes.

    Raises:
        TypeError, ValueError: a field cannot be represented.
    """
    change_type = cc.type
    if change_type not in _CONF_CHANGE_TYPES or type(change_type) is bool:
        raise ValueError(f"ConfChange.type: unknown change type {change_type!r}")
    return b"".join(
        (
            _record_prefix(RecordKind.CONF_CHANGE, 3),
            _SMALL_UINTS[change_type],
            _put_node_id(cc.node_id, "ConfChange.node_id"),
            _put_bytes(cc.context, "ConfChange.context"),
        )
    )


def _conf_change_fields(type_: Any, node_id: Any, context: Any, where: str) -> ConfChange:
    if type(type_) is not int or type_ not in _CONF_CHANGE_TYPES:
        _fail(f"{where}.type", f"a conf change type {sorted(_CONF_CHANGE_TYPES)}", type_)
    return ConfChange(
        type=_CONF_CHANGE_TYPES[type_],
        node_id=_node_id(node_id, f"{where}.node_id"),
        context=_bytes(context, f"{where}.context"),
    )


def decode_conf_change(data: bytes) -> ConfChange:
    """Decode a membership change written by `encode_conf_change`.

    Raises:
        CodecError: `data` is not a valid encoded conf change.
        TypeError: `data` is not bytes-like.
    """
    return _decode_record(data, RecordKind.CONF_CHANGE, 3, "conf change", _conf_change_fields)


def encode_conf_change_entry(cc: ConfChange, conf_state: ConfState) -> bytes:
    """Encode the data of a CONF_CHANGE log entry:
    ``[FORMAT_VERSION, 21, type, node_id, context, [[voters...], [learners...]]]``.

    The entry carries the configuration that results from the change, so a node
    that joins an existing cluster learns the whole membership from the log alone.

    Raises:
        TypeError, ValueError: a field cannot be represented.
    """
    change = encode_conf_change(cc)
    # Reuse the change's fields (after its 3-byte prefix) and append the state.
    return b"".join(
        (
            _record_prefix(RecordKind.CONF_CHANGE_ENTRY, 4),
            change[len(_record_prefix(RecordKind.CONF_CHANGE, 3)) :],
            _put_conf_state(conf_state, "ConfState"),
        )
    )


def _conf_change_entry_fields(
    type_: Any, node_id: Any, context: Any, conf_state: Any, where: str
) -> tuple[ConfChange, ConfState]:
    change = _conf_change_fields(type_, node_id, context, where)
    return change, _conf_state(conf_state, f"{where}.conf_state")


def decode_conf_change_entry(data: bytes) -> tuple[ConfChange, ConfState]:
    """Decode the data of a CONF_CHANGE entry written by `encode_conf_change_entry`.

    Returns:
        The change and the configuration in force after it.

    Raises:
        CodecError: `data` is not a valid conf change entry.
        TypeError: `data` is not bytes-like.
    """
    return _decode_record(
        data, RecordKind.CONF_CHANGE_ENTRY, 4, "conf change entry", _conf_change_entry_fields
    )


def encode_conf_state(cs: ConfState) -> bytes:
    """Encode a configuration as ``[FORMAT_VERSION, 18, [voters...], [learners...]]``.

    Raises:
        TypeError, ValueError: a node id cannot be represented.
    """
    return _record_prefix(RecordKind.CONF_STATE, 2) + _put_conf_state(cs, "ConfState")[1:]


def decode_conf_state(data: bytes) -> ConfState:
    """Decode a configuration written by `encode_conf_state`.

    Raises:
        CodecError: `data` is not a valid encoded configuration.
        TypeError: `data` is not bytes-like.
    """
    return _decode_record(
        data,
        RecordKind.CONF_STATE,
        2,
        "conf state",
        lambda voters, learners, where: _conf_state([voters, learners], where),
    )


def encode_hard_state(hs: HardState) -> bytes:
    """Encode a hard state as ``[FORMAT_VERSION, 19, term, vote, commit]``.

    Raises:
        TypeError, ValueError: a field cannot be represented.
    """
    return b"".join(
        (
            _record_prefix(RecordKind.HARD_STATE, 3),
            _put_uint(hs.term, "HardState.term"),
            _put_uint(hs.vote, "HardState.vote"),
            _put_uint(hs.commit, "HardState.commit"),
        )
    )


def _hard_state_fields(term: Any, vote: Any, commit: Any, where: str) -> HardState:
    return HardState(
        term=_uint(term, f"{where}.term"),
        vote=_uint(vote, f"{where}.vote"),  # 0 means "no vote"
        commit=_uint(commit, f"{where}.commit"),
    )


def decode_hard_state(data: bytes) -> HardState:
    """Decode a hard state written by `encode_hard_state`.

    Raises:
        CodecError: `data` is not a valid encoded hard state.
        TypeError: `data` is not bytes-like.
    """
    return _decode_record(data, RecordKind.HARD_STATE, 3, "hard state", _hard_state_fields)


def encode_snapshot_metadata(md: SnapshotMetadata) -> bytes:
    """Encode snapshot metadata as ``[FORMAT_VERSION, 20, index, term, conf_state]``.

    Raises:
        TypeError, ValueError: a field cannot be represented.
    """
    return _record_prefix(RecordKind.SNAPSHOT_METADATA, 3) + _put_snapshot_metadata(
        md, "SnapshotMetadata"
    )[1:]


def decode_snapshot_metadata(data: bytes) -> SnapshotMetadata:
    """Decode snapshot metadata written by `encode_snapshot_metadata`.

    Raises:
        CodecError: `data` is not valid encoded snapshot metadata.
        TypeError: `data` is not bytes-like.
    """
    return _decode_record(
        data,
        RecordKind.SNAPSHOT_METADATA,
        3,
        "snapshot metadata",
        lambda index, term, conf_state, where: _snapshot_metadata(
            [index, term, conf_state], where
        ),
    )
