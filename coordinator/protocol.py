"""The coordinator's wire protocol: messages, their stable tags, and framing.

Everything here is sans-IO: bytes in, values out, and the reverse. The trio server,
the worker agent and the client library move these bytes over TCP; the simulator
passes the message values themselves.

Messages
========
A message is a frozen attrs class registered under a **wire tag** (an int in
``1..65535``) with `register_message`. The tag, not the Python class name, is what
goes on the wire, so classes may be renamed or moved without breaking old peers.
Tag ranges (one tag space for every module that adds messages):

* ``1..99``: the worker session (this module);
* ``100..199``: client requests (KV, partition groups, drain, status, membership,
  leadership transfer);
* ``200..299``: client replies and typed errors;
* ``1000..``: reserved for extensions.

A message's body is a CBOR map from field name to value. Values are typed by the
class's annotations, which decoding enforces: ``str``, ``int`` (not ``bool``),
``float`` (an ``int`` is accepted), ``bool``, ``bytes``, ``None``, ``Optional[X]``,
``tuple[X, ...]``, ``tuple[X, Y]``, an enum (by value), or another attrs class
(encoded as its own field map; it need not be registered). Fields with defaults may
be missing (a newer peer may add fields with defaults); unknown fields are refused.

Frames
======
One frame carries one message::

    length   4 bytes, big endian: the number of bytes that follow (<= max frame size)
    version  1 byte: PROTOCOL_VERSION
    request  8 bytes, big endian unsigned: the request id (0 for pushes)
    tag      2 bytes, big endian: the message's wire tag
    body     CBOR map of the message's fields

A reply carries the request id of the request it answers. `FrameDecoder` takes bytes
as they arrive and returns complete frames. Anything that is not a valid frame of a
known message — garbage, a truncated body, a length above `MAX_FRAME_SIZE`, another
version, an unknown tag, a wrong field type — raises `ProtocolError` (a *remote*
error: the peer sent it), never another exception; the connection that sent it
should be closed, and the node keeps serving everyone else.
"""

from __future__ import annotations

import enum
import io
import math
import struct
import types
import typing
from typing import Any, Callable, Optional, TypeVar, Union

import attrs
import cbor2

from .lease import HeartbeatAck
from .records import OwnedSlot

PROTOCOL_VERSION = 1
"""Bump when a frame could be read differently; decoders refuse other versions."""

MAX_FRAME_SIZE = 4 * 1024 * 1024
"""Largest frame (bytes after the length prefix) a decoder accepts by default."""

_HEADER = struct.Struct(">IBQH")  # length, version, request id, tag
HEADER_SIZE = _HEADER.size
_AFTER_LENGTH = HEADER_SIZE - 4
_MAX_DEPTH = 16
_MAX_REQUEST_ID = 2**64 - 1


class ProtocolError(ValueError):
    """Bytes that are not a valid frame or message (a remote error).

    Attributes:
        request_id: the request id of the offending frame, when the header was read
            (None otherwise), so that a server may answer before closing.
    """

    def __init__(self, message: str, request_id: Optional[int] = None) -> None:
        super().__init__(message)
        self.request_id = request_id


# -- the tag registry ---------------------------------------------------------------

_BY_TAG: dict[int, type] = {}
_TAG_OF: dict[type, int] = {}
_SCHEMAS: dict[type, "_Schema"] = {}

M = TypeVar("M", bound=type)


def register_message(tag: int) -> Callable[[M], M]:
    """Class decorator: register an attrs message class under a wire tag.

    Raises:
        ValueError: the tag is out of range or taken, or the class already has one.
        TypeError: the class is not an attrs class, or a field type is not supported.
    """
    if isinstance(tag, bool) or not isinstance(tag, int) or not 1 <= tag <= 0xFFFF:
        raise ValueError(f"a wire tag is an int in 1..65535, got {tag!r}")

    def decorate(cls: M) -> M:
        if not attrs.has(cls):
            raise TypeError(f"{cls.__name__} is not an attrs class")
        if tag in _BY_TAG:
            raise ValueError(f"wire tag {tag} is taken by {_BY_TAG[tag].__name__}")
        if cls in _TAG_OF:
            raise ValueError(f"{cls.__name__} already has wire tag {_TAG_OF[cls]}")
        _schema(cls)  # fail now, not at the first message
        _BY_TAG[tag] = cls
        _TAG_OF[cls] = tag
        return cls

    return decorate


def tag_of(message_type: type) -> int:
    """The wire tag of a registered message class.

    Raises:
        KeyError: the class is not registered.
    """
    return _TAG_OF[message_type]


def message_type(tag: int) -> Optional[type]:
    """The message class registered under ``tag`` (None if there is none)."""
    return _BY_TAG.get(tag)


# -- typed conversion -----------------------------------------------------------------


class _Schema:
    """How to encode and decode one attrs class: per field, its converters."""

    def __init__(self, cls: type) -> None:
        hints = typing.get_type_hints(cls)
        self.cls = cls
        self.fields: list[tuple[str, Callable[[Any], Any], Callable[[Any, int], Any]]] = []
        self.required: set[str] = set()
        for field in attrs.fields(cls):
            if not field.init:
                continue
            encode, decode = _converters(hints[field.name], f"{cls.__name__}.{field.name}")
            self.fields.append((field.name, encode, decode))
            if field.default is attrs.NOTHING:
                self.required.add(field.name)
        self.names = {name for name, _, _ in self.fields}

    def encode(self, value: Any) -> dict:
        return {name: encode(getattr(value, name)) for name, encode, _ in self.fields}

    def decode(self, data: Any, depth: int) -> Any:
        name = self.cls.__name__
        if not isinstance(data, dict):
            raise ProtocolError(f"{name}: expected a map, got {type(data).__name__}")
        if not all(isinstance(key, str) for key in data):
            raise ProtocolError(f"{name}: field names must be strings")
        unknown = set(data) - self.names
        if unknown:
            raise ProtocolError(f"{name}: unknown fields {sorted(unknown)}")
        missing = self.required - set(data)
        if missing:
            raise ProtocolError(f"{name}: missing fields {sorted(missing)}")
        kwargs = {field: decode(data[field], depth + 1)
                  for field, _, decode in self.fields if field in data}
        try:
            return self.cls(**kwargs)
        except (TypeError, ValueError) as exc:  # the class's own validation
            raise ProtocolError(f"{name}: {exc}") from exc


def _schema(cls: type) -> _Schema:
    schema = _SCHEMAS.get(cls)
    if schema is None:
        schema = _SCHEMAS[cls] = _Schema(cls)
    return schema


def _identity(value: Any) -> Any:
    return value


def _exact(kind: type, where: str) -> Callable[[Any, int], Any]:
    def decode(value: Any, depth: int) -> Any:
        if type(value) is not kind:
            raise ProtocolError(f"{where}: expected {kind.__name__}, got {type(value).__name__}")
        return value
    return decode


def _decode_float(where: str) -> Callable[[Any, int], Any]:
    def decode(value: Any, depth: int) -> Any:
        if type(value) is int:
            return float(value)
        if type(value) is not float or not math.isfinite(value):
            raise ProtocolError(f"{where}: expected a finite float, got {value!r}")
        return value
    return decode


def _converters(hint: Any, where: str) -> tuple[Callable[[Any], Any], Callable[[Any, int], Any]]:
    """(encode, decode) for a value of type ``hint``."""
    if hint in (str, int, bool, bytes):
        return _identity, _exact(hint, where)
    if hint is float:
        return _identity, _decode_float(where)
    if hint is type(None):
        return _identity, _exact(type(None), where)
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (Union, types.UnionType):
        options = [_converters(arg, where) for arg in args if arg is not type(None)]
        if len(options) != 1 or type(None) not in args:
            raise TypeError(f"{where}: only Optional[X] unions are supported, got {hint!r}")
        encode_inner, decode_inner = options[0]
        return (lambda v: None if v is None else encode_inner(v),
                lambda v, d: None if v is None else decode_inner(v, d))
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            encode_item, decode_item = _converters(args[0], where)

            def decode_items(value: Any, depth: int) -> tuple:
                if type(value) is not list:
                    raise ProtocolError(f"{where}: expected an array, got {type(value).__name__}")
                if depth > _MAX_DEPTH:
                    raise ProtocolError(f"{where}: nested too deeply")
                return tuple(decode_item(item, depth + 1) for item in value)
            return (lambda v: [encode_item(item) for item in v]), decode_items
        parts = [_converters(arg, where) for arg in args]

        def decode_fixed(value: Any, depth: int) -> tuple:
            if type(value) is not list or len(value) != len(parts):
                raise ProtocolError(f"{where}: expected an array of {len(parts)}")
            return tuple(decode(item, depth + 1) for (_, decode), item in zip(parts, value))
        return (lambda v: [encode(item) for (encode, _), item in zip(parts, v)]), decode_fixed
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        enum_cls = hint

        def decode_enum(value: Any, depth: int) -> Any:
            if type(value) not in (str, int):
                raise ProtocolError(f"{where}: expected a {enum_cls.__name__} value")
            try:
                return enum_cls(value)
            except ValueError as exc:
                raise ProtocolError(f"{where}: {exc}") from exc
        return (lambda v: v.value), decode_enum
    if isinstance(hint, type) and attrs.has(hint):
        nested = hint

        def decode_nested(value: Any, depth: int) -> Any:
            if depth > _MAX_DEPTH:
                raise ProtocolError(f"{where}: nested too deeply")
            return _schema(nested).decode(value, depth)
        return (lambda v: _schema(nested).encode(v)), decode_nested
    raise TypeError(f"{where}: unsupported field type {hint!r}")


# -- messages <-> bytes ---------------------------------------------------------------


def encode_message(message: Any) -> tuple[int, bytes]:
    """(wire tag, CBOR body) of a registered message.

    Raises:
        TypeError: the message's class is not registered (caller misuse).
    """
    tag = _TAG_OF.get(type(message))
    if tag is None:
        raise TypeError(f"not a registered message: {type(message).__name__}")
    return tag, cbor2.dumps(_schema(type(message)).encode(message), canonical=True)


def decode_message(tag: int, body: bytes) -> Any:
    """The message of wire tag ``tag`` encoded in ``body``.

    Raises:
        ProtocolError: unknown tag, invalid CBOR, trailing bytes, or fields that do
            not match the message's schema.
    """
    cls = _BY_TAG.get(tag)
    if cls is None:
        raise ProtocolError(f"unknown message tag {tag}")
    stream = io.BytesIO(body)
    try:
        data = cbor2.CBORDecoder(stream).decode()
    except Exception as exc:  # cbor2 raises several types for garbage input
        raise ProtocolError(f"invalid CBOR body: {exc}") from exc
    if stream.read(1):
        raise ProtocolError("trailing bytes after the message body")
    return _schema(cls).decode(data, 0)


@attrs.frozen
class Frame:
    """A decoded frame: the request id and the message it carries."""

    request_id: int
    message: Any


def encode_frame(request_id: int, message: Any) -> bytes:
    """One frame carrying ``message`` (module docstring).

    Raises:
        TypeError: ``message`` is not a registered message.
        ValueError: the request id is not in ``0..2**64-1``, or the frame would
            exceed `MAX_FRAME_SIZE` (caller misuse).
    """
    if isinstance(request_id, bool) or not isinstance(request_id, int) \
            or not 0 <= request_id <= _MAX_REQUEST_ID:
        raise ValueError(f"request id must be an int in 0..2**64-1, got {request_id!r}")
    tag, body = encode_message(message)
    length = _AFTER_LENGTH + len(body)
    if length > MAX_FRAME_SIZE:
        raise ValueError(f"frame of {length} bytes exceeds MAX_FRAME_SIZE")
    return _HEADER.pack(length, PROTOCOL_VERSION, request_id, tag) + body


class FrameDecoder:
    """Incremental frame decoder: `feed` bytes as they arrive, get whole frames.

    After a `ProtocolError` the stream is out of step: the decoder refuses all
    further input (close the connection).

    Args:
        max_frame_size: largest frame accepted (bytes after the length prefix).
    """

    def __init__(self, max_frame_size: int = MAX_FRAME_SIZE) -> None:
        self.max_frame_size = max_frame_size
        self._buffer = bytearray()
        self._broken: Optional[ProtocolError] = None

    @property
    def buffered(self) -> int:
        """Bytes received that do not make a whole frame yet (a peer that closes
        with some left sent a truncated frame)."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[Frame]:
        """Add received bytes; return the frames they complete, in order.

        Raises:
            ProtocolError: the bytes are not a valid frame stream (see the module
                docstring); also on every call after one was raised.
        """
        if self._broken is not None:
            raise ProtocolError(f"stream already failed: {self._broken}")
        buffer = self._buffer
        buffer += data
        frames = []
        try:
            while len(buffer) >= 4:
                length = int.from_bytes(buffer[:4], "big")
                if length > self.max_frame_size:
                    raise ProtocolError(f"frame length {length} exceeds {self.max_frame_size}")
                if length < _AFTER_LENGTH:
                    raise ProtocolError(f"frame length {length} is shorter than a header")
                if len(buffer) < 4 + length:
                    break
                _, version, request_id, tag = _HEADER.unpack_from(buffer)
                body = bytes(buffer[HEADER_SIZE:4 + length])
                del buffer[:4 + length]
                if version != PROTOCOL_VERSION:
                    raise ProtocolError(f"unsupported protocol version {version}", request_id)
                try:
                    message = decode_message(tag, body)
                except ProtocolError as exc:
                    raise ProtocolError(str(exc), request_id) from exc
                frames.append(Frame(request_id, message))
        except ProtocolError as exc:
            self._broken = exc
            buffer.clear()
            raise
        return frames


# -- the worker session (tags 1..99) ---------------------------------------------------
# Worker -> coordinator node.


@register_message(1)
@attrs.frozen
class Heartbeat:
    """Renew my lease (and register me if you do not know me).

    Attributes:
        worker_id: the worker's stable identity.
        seq: the heartbeat's sequence number (`WorkerLease.heartbeat_sent`).
        zone: the worker's failure domain (used when registering it).
        address: where the worker's own clients reach it (opaque to the
            coordinator; empty: the node records the connection's peer address).
        process: the id of this worker process, drawn when it starts (empty: not
            sent); a new one after a death tells a crash from a lost lease
            (quarantine, rule 6 of `coordinator.state`).
    """

    worker_id: str
    seq: int
    zone: str
    address: str = ""
    process: str = ""


@register_message(2)
@attrs.frozen
class Release:
    """I stopped acting for this revoked slot."""

    worker_id: str
    partition_id: str
    slot: int
    epoch: int


@register_message(3)
@attrs.frozen
class Checkpoint:
    """A fenced write of the partition's checkpoint key (``ckpt/<partition>``): the
    coordinator applies it only while ``epoch`` is the partition's current epoch."""

    worker_id: str
    partition_id: str
    epoch: int
    value: bytes


@register_message(4)
@attrs.frozen
class Leave:
    """I drained and stopped: deregister me."""

    worker_id: str


# Coordinator node -> worker.


@register_message(10)
@attrs.frozen
class Ack:
    """A confirmed leader's acknowledgement of a heartbeat, the worker's slots as
    the state shows them at that instant, and whether the worker is draining."""

    ack: HeartbeatAck
    view: tuple[OwnedSlot, ...]
    draining: bool


@register_message(11)
@attrs.frozen
class Nack:
    """The leader does not know the worker as live (unknown, dead, or being
    expired): forget every lease and register again (the heartbeat did that)."""

    seq: int


@register_message(12)
@attrs.frozen
class Redirect:
    """Not the leader.

    Attributes:
        leader: the node id of the leader this node knows of (0 = unknown).
        address: that leader's client address ("" = unknown).
    """

    leader: int
    address: str = ""


@register_message(13)
@attrs.frozen
class CheckpointResult:
    """The outcome of a `Checkpoint` (sent with its request id).

    Attributes:
        partition_id / epoch: the write's, to identify it.
        accepted: the write was applied; False: refused (``detail`` says why, e.g.
            a stale epoch because the partition moved on).
    """

    partition_id: str
    epoch: int
    accepted: bool
    detail: str = ""


@register_message(14)
@attrs.frozen
class Left:
    """The worker was deregistered (the answer to `Leave`)."""

    worker_id: str


@register_message(15)
@attrs.frozen
class Unavailable:
    """This node leads but cannot serve the request yet (it is still catching up
    with its own term's first entry, or Raft refused the proposal): retry soon."""

    detail: str = ""


WORKER_MESSAGES = (Heartbeat, Release, Checkpoint, Leave)
"""What a worker sends to a coordinator node."""

WORKER_REPLIES = (Ack, Nack, Redirect, CheckpointResult, Left, Unavailable)
"""What a coordinator node sends to a worker."""

__all__ = [
    "PROTOCOL_VERSION", "MAX_FRAME_SIZE", "HEADER_SIZE", "ProtocolError",
    "register_message", "tag_of", "message_type", "encode_message", "decode_message",
    "Frame", "encode_frame", "FrameDecoder",
    "Heartbeat", "Release", "Checkpoint", "Leave", "Ack", "Nack", "Redirect",
    "CheckpointResult", "Left", "Unavailable", "WORKER_MESSAGES", "WORKER_REPLIES",
]
