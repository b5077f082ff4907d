"""CBOR wire format of coordinator commands and results.

An encoded command is a CBOR map ``{"v": FORMAT_VERSION, "c": <value>}`` where an
attrs value is a map ``{"_t": <wire tag>, <field>: <value>, ...}``, an enum member is
``{"_e": <wire tag>, "v": <member value>}``, tuples are arrays and everything else is
a CBOR primitive. Results use the same shape under ``"r"``.

Wire tags
=========
Every command, result and enum has a stable integer **wire tag**, listed once in
`WIRE_TAGS` (the same idea as `coordinator.protocol.register_message` for the
messages of the worker and client protocol). The tag, not the Python class name, is
what a log entry stores, so classes may be renamed or moved without making committed
entries undecodable. A tag is never reused: a removed class keeps its row retired.
Field names are still written out, so renaming a *field* is a format change.

Compatibility
=============
Format 1 (up to this release) tagged values with their class names; format 2 tags
them with `WIRE_TAGS`; format 3 adds the quarantine evidence fields
(``RegisterWorker.process``, ``ExpireWorker.last_heard``), which an entry of an
older format lacks and which then take their defaults. Decoders read all three
(format 1 names are mapped through the frozen `_FORMAT1_NAMES` table, not through
today's class names), encoders write format 3. A node of an older release cannot
read newer entries: upgrade every node of a cluster before it elects a leader of the
new release. Golden files under ``tests/golden`` pin every format.

Decoding is the filter between the outside world and the state machine: anything that
is not a well-formed command of a known version (bad CBOR, trailing bytes, unknown
type, missing or extra fields, a field the constructor rejects) raises
`CommandDecodeError` and nothing is applied. This is a *remote* error: a driver logs it
and answers the client; it never crashes the node.
"""

from __future__ import annotations

import enum
import io
from typing import Any, Mapping

import attrs
import cbor2

from . import commands as c

FORMAT_VERSION = 3
"""Bump when an encoded command could be read differently; decoders refuse others."""

_READABLE_FORMATS = (1, 2, FORMAT_VERSION)

WIRE_TAGS: Mapping[int, type] = {
    # Commands: 1..99.
    1: c.RegisterWorker,
    2: c.DeregisterWorker,
    3: c.ExpireWorker,
    4: c.DrainWorker,
    5: c.UndrainWorker,
    6: c.CreatePartitionGroup,
    7: c.DeletePartitionGroup,
    8: c.Assign,
    9: c.Revoke,
    10: c.Released,
    11: c.ForceRevoke,
    12: c.ReleaseQuarantine,
    13: c.KvPut,
    14: c.KvCas,
    15: c.KvDelete,
    16: c.KvGet,
    17: c.KvList,
    18: c.FencedPut,
    19: c.Batch,
    20: c.ClientRequest,
    # Results: 100..199.
    100: c.SlotRef,
    101: c.Error,
    102: c.WorkerRegistered,
    103: c.WorkerRemoved,
    104: c.WorkerStateChanged,
    105: c.GroupChanged,
    106: c.Assigned,
    107: c.RevokeStarted,
    108: c.SlotReleased,
    109: c.QuarantineReleased,
    110: c.KvValue,
    111: c.KvEntries,
    112: c.BatchResult,
    # Enums: 200..299.
    200: c.WorkerState,
    201: c.ErrorCode,
}
"""Wire tag → command, result or enum class. Never change or reuse a tag."""

_TAG_OF: dict[type, int] = {cls: tag for tag, cls in WIRE_TAGS.items()}

_FORMAT1_NAMES: Mapping[str, int] = {
    "RegisterWorker": 1, "DeregisterWorker": 2, "ExpireWorker": 3, "DrainWorker": 4,
    "UndrainWorker": 5, "CreatePartitionGroup": 6, "DeletePartitionGroup": 7,
    "Assign": 8, "Revoke": 9, "Released": 10, "ForceRevoke": 11,
    "ReleaseQuarantine": 12, "KvPut": 13, "KvCas": 14, "KvDelete": 15, "KvGet": 16,
    "KvList": 17, "FencedPut": 18, "Batch": 19, "ClientRequest": 20,
    "SlotRef": 100, "Error": 101, "WorkerRegistered": 102, "WorkerRemoved": 103,
    "WorkerStateChanged": 104, "GroupChanged": 105, "Assigned": 106,
    "RevokeStarted": 107, "SlotReleased": 108, "QuarantineReleased": 109,
    "KvValue": 110, "KvEntries": 111, "BatchResult": 112,
    "WorkerState": 200, "ErrorCode": 201,
}
"""The class names format 1 wrote, frozen: renaming a class must not change them."""

_MAX_DEPTH = 8


def tag_of(cls: type) -> int:
    """The wire tag of a command, result or enum class.

    Raises:
        KeyError: the class has no wire tag.
    """
    return _TAG_OF[cls]


class CommandDecodeError(ValueError):
    """Bytes that are not a valid encoded command or result (a remote error)."""


def encode_command(command: c.Command) -> bytes:
    """Encode a command for a log entry.

    Raises:
        TypeError: ``command`` is not a coordinator command (caller misuse).
    """
    if not isinstance(command, c.COMMAND_TYPES):
        raise TypeError(f"not a coordinator command: {type(command).__name__}")
    return cbor2.dumps({"v": FORMAT_VERSION, "c": _to_wire(command)}, canonical=True)


def decode_command(data: bytes) -> c.Command:
    """Decode a log entry into a command.

    Raises:
        CommandDecodeError: the bytes are not one valid command of this format version.
    """
    value = _decode(data, "c")
    if not isinstance(value, c.COMMAND_TYPES):
        raise CommandDecodeError(f"not a command: {type(value).__name__}")
    return value


def encode_result(result: c.Result) -> bytes:
    """Encode a command result (for replies to clients)."""
    if not isinstance(result, c.RESULT_TYPES):
        raise TypeError(f"not a coordinator result: {type(result).__name__}")
    return cbor2.dumps({"v": FORMAT_VERSION, "r": _to_wire(result)}, canonical=True)


def decode_result(data: bytes) -> c.Result:
    """Decode a command result.

    Raises:
        CommandDecodeError: the bytes are not one valid result of this format version.
    """
    value = _decode(data, "r")
    if not isinstance(value, c.RESULT_TYPES):
        raise CommandDecodeError(f"not a result: {type(value).__name__}")
    return value


def _decode(data: bytes, key: str) -> Any:
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise CommandDecodeError(f"expected bytes, got {type(data).__name__}")
    stream = io.BytesIO(bytes(data))
    try:
        envelope = cbor2.CBORDecoder(stream).decode()
    except Exception as exc:  # cbor2 raises several types for garbage input
        raise CommandDecodeError(f"invalid CBOR: {exc}") from exc
    if stream.read(1):
        raise CommandDecodeError("trailing bytes after the encoded value")
    if not isinstance(envelope, dict) or set(envelope) != {"v", key}:
        raise CommandDecodeError("malformed envelope")
    version = envelope["v"]
    if isinstance(version, bool) or version not in _READABLE_FORMATS:
        raise CommandDecodeError(f"unsupported format version {version!r}")
    return _from_wire(envelope[key], 0, version)


def _to_wire(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return {"_e": _TAG_OF[type(value)], "v": value.value}
    if attrs.has(type(value)):
        out: dict[str, Any] = {"_t": _TAG_OF[type(value)]}
        for field in attrs.fields(type(value)):
            out[field.name] = _to_wire(getattr(value, field.name))
        return out
    if isinstance(value, (tuple, list)):
        return [_to_wire(item) for item in value]
    return value


def _lookup(tag: Any, version: int, kind: str) -> Any:
    """The class a ``_t``/``_e`` tag names in the given format (None if none)."""
    if version == 1:
        tag = _FORMAT1_NAMES.get(tag) if isinstance(tag, str) else None
    elif isinstance(tag, bool) or not isinstance(tag, int):
        return None
    cls = WIRE_TAGS.get(tag)
    is_enum = isinstance(cls, type) and issubclass(cls, enum.Enum)
    return cls if cls is not None and is_enum == (kind == "_e") else None


def _from_wire(value: Any, depth: int, version: int) -> Any:
    if depth > _MAX_DEPTH:
        raise CommandDecodeError("value nested too deeply")
    if isinstance(value, list):
        return tuple(_from_wire(item, depth + 1, version) for item in value)
    if not isinstance(value, dict):
        if isinstance(value, (str, bytes, int, float, bool)) or value is None:
            return value
        raise CommandDecodeError(f"unexpected CBOR value of type {type(value).__name__}")
    if "_e" in value:
        enum_cls = _lookup(value.get("_e"), version, "_e")
        if enum_cls is None or set(value) != {"_e", "v"}:
            raise CommandDecodeError(f"unknown enum {value.get('_e')!r}")
        try:
            return enum_cls(value["v"])
        except ValueError as exc:
            raise CommandDecodeError(str(exc)) from exc
    tag = value.get("_t")
    cls = _lookup(tag, version, "_t")
    if cls is None:
        raise CommandDecodeError(f"unknown type {tag!r}")
    name = cls.__name__
    names = {field.name for field in attrs.fields(cls)}
    fields = {k: v for k, v in value.items() if k != "_t"}
    if not set(fields) <= names:
        raise CommandDecodeError(f"{name}: unknown fields {sorted(map(repr, set(fields) - names))}")
    try:
        kwargs = {k: _from_wire(v, depth + 1, version) for k, v in fields.items()}
        return cls(**kwargs)
    except CommandDecodeError:
        raise
    except (TypeError, ValueError) as exc:
        raise CommandDecodeError(f"{name}: {exc}") from exc
