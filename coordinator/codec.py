"""CBOR wire format of coordinator commands and results.

An encoded command is a CBOR map ``{"v": FORMAT_VERSION, "c": <value>}`` where an
attrs value is a map ``{"_t": <class name>, <field>: <value>, ...}``, an enum member is
``{"_e": <enum name>, "v": <member value>}``, tuples are arrays and everything else is
a CBOR primitive. Results use the same shape under ``"r"``.

Decoding is the filter between the outside world and the state machine: anything that
is not a well-formed command of a known version (bad CBOR, trailing bytes, unknown
type, missing or extra fields, a field the constructor rejects) raises
`CommandDecodeError` and nothing is applied. This is a *remote* error: a driver logs it
and answers the client; it never crashes the node.
"""

from __future__ import annotations

import enum
import io
from typing import Any

import attrs
import cbor2

from . import commands as c

FORMAT_VERSION = 1
"""Bump when an encoded command could be read differently; decoders refuse others."""

_CLASSES: dict[str, type] = {cls.__name__: cls for cls in c.COMMAND_TYPES + c.RESULT_TYPES}
_ENUMS: dict[str, type[enum.Enum]] = {
    cls.__name__: cls for cls in (c.WorkerState, c.ErrorCode)
}
_MAX_DEPTH = 8


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
    if envelope["v"] != FORMAT_VERSION:
        raise CommandDecodeError(f"unsupported format version {envelope['v']!r}")
    return _from_wire(envelope[key], 0)


def _to_wire(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return {"_e": type(value).__name__, "v": value.value}
    if attrs.has(type(value)):
        out = {"_t": type(value).__name__}
        for field in attrs.fields(type(value)):
            out[field.name] = _to_wire(getattr(value, field.name))
        return out
    if isinstance(value, (tuple, list)):
        return [_to_wire(item) for item in value]
    return value


def _from_wire(value: Any, depth: int) -> Any:
    if depth > _MAX_DEPTH:
        raise CommandDecodeError("value nested too deeply")
    if isinstance(value, list):
        return tuple(_from_wire(item, depth + 1) for item in value)
    if not isinstance(value, dict):
        if isinstance(value, (str, bytes, int, float, bool)) or value is None:
            return value
        raise CommandDecodeError(f"unexpected CBOR value of type {type(value).__name__}")
    if "_e" in value:
        enum_cls = _ENUMS.get(value.get("_e")) if isinstance(value.get("_e"), str) else None
        if enum_cls is None or set(value) != {"_e", "v"}:
            raise CommandDecodeError(f"unknown enum {value.get('_e')!r}")
        try:
            return enum_cls(value["v"])
        except ValueError as exc:
            raise CommandDecodeError(str(exc)) from exc
    name = value.get("_t")
    cls = _CLASSES.get(name) if isinstance(name, str) else None
    if cls is None:
        raise CommandDecodeError(f"unknown type {name!r}")
    names = {field.name for field in attrs.fields(cls)}
    fields = {k: v for k, v in value.items() if k != "_t"}
    if not set(fields) <= names:
        raise CommandDecodeError(f"{name}: unknown fields {sorted(map(repr, set(fields) - names))}")
    try:
        kwargs = {k: _from_wire(v, depth + 1) for k, v in fields.items()}
        return cls(**kwargs)
    except CommandDecodeError:
        raise
    except (TypeError, ValueError) as exc:
        raise CommandDecodeError(f"{name}: {exc}") from exc
