"""The client protocol: what operators, tools and `coordinator.Client` ask a node.

Every request is a small frozen class registered in `coordinator.protocol`'s tag
space (requests 100..199, replies 200..299; tags never depend on class names) and
travels in a `coordinator.protocol` frame whose header carries the caller's request
id; the node answers each with an `OkReply` (the result as CBOR bytes of plain data)
or an `ErrorReply` in a frame with the same request id. Requests on one connection
may be answered out of order.

Rules:

1. **Redirect, not forward.** Only the leader serves requests (except `StatusRequest`
   and `ListMembersRequest`, which any node answers from its own view). A follower
   answers `ErrorKind.NOT_LEADER` with the leader's id and client address when it
   knows them; the client retries there. Forwarding would hide which node served
   a read and double the failure modes of every request.
2. **Writes are idempotent.** Every write carries the client's ``client_id``, a
   sequence number ``seq`` and ``acked_below`` (see `coordinator.commands.ClientRequest`):
   a client retries a write with the same ``seq``, and the state machine applies it
   once.
3. **Reads are linearizable.** `KvGetRequest`, `KvListRequest`, `ListGroupsRequest`,
   `ShowGroupRequest` and `ListWorkersRequest` are served after a ReadIndex round.
4. **Errors are typed** (`ErrorKind`): the transport-level ones below, and
   ``refused`` for a command the state machine refused (``code`` then holds its
   `coordinator.commands.ErrorCode` value, e.g. ``version_mismatch``, ``fenced``,
   ``unknown_worker``).

The frozen classes validate their fields in the constructor, so a decoded request
that could not make sense never reaches the server (`ProtocolError` instead).
"""

from __future__ import annotations

import enum
from typing import Any, Optional

import attrs

import cbor2

from .commands import MAX_ID_LENGTH, MAX_KEY_LENGTH, MAX_VALUE_BYTES
from .protocol import register_message

RESERVED_PREFIX = "raftcoord/"
"""Metadata keys the cluster itself writes (member addresses); clients may read
them but not write them."""


class ErrorKind(enum.Enum):
    """Why a request was not served (`ErrorReply.kind`)."""

    NOT_LEADER = "not_leader"
    """This node does not lead; ``leader_address`` says where to go (when known)."""
    BAD_REQUEST = "bad_request"
    """The request makes no sense (an invalid field, a reserved key); do not retry."""
    REFUSED = "refused"
    """The state machine refused the command; ``code`` is its ErrorCode value."""
    OVERLOADED = "overloaded"
    """Too many requests in flight on this node; retry after a backoff."""
    TIMEOUT = "timeout"
    """The outcome is unknown within the node's deadline; retrying a write is safe
    (it is idempotent)."""
    UNAVAILABLE = "unavailable"
    """The node is starting, stopping or cannot reach a quorum; retry elsewhere."""


# -- field checks ----------------------------------------------------------------------


def _text(limit: int, *, empty: bool = False):
    def check(instance: object, attribute: attrs.Attribute, value: object) -> None:
        if not isinstance(value, str) or len(value) > limit or (not empty and not value):
            raise ValueError(f"{attribute.name} must be a {'' if empty else 'non-empty '}"
                             f"str of at most {limit} characters, got {value!r}")
    return check


def _count(minimum: int, maximum: int = 2**63 - 1):
    def check(instance: object, attribute: attrs.Attribute, value: object) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
            raise ValueError(f"{attribute.name} must be an int in [{minimum}, {maximum}], "
                             f"got {value!r}")
    return check


def _optional_count(instance: object, attribute: attrs.Attribute, value: object) -> None:
    if value is not None:
        _count(0)(instance, attribute, value)


def _value(instance: object, attribute: attrs.Attribute, value: object) -> None:
    if not isinstance(value, bytes) or len(value) > MAX_VALUE_BYTES:
        raise ValueError(f"{attribute.name} must be bytes of at most {MAX_VALUE_BYTES}")


def _address(instance: object, attribute: attrs.Attribute, value: object) -> None:
    parse_address(value)


def parse_address(value: Any, *, listen: bool = False) -> tuple[str, int]:
    """``"host:port"`` → ``(host, port)``; with ``listen``, port 0 (any free port)
    is allowed too.

    Raises:
        ValueError: not a host and a port in 1..65535.
    """
    if not isinstance(value, str) or ":" not in value:
        raise ValueError(f"an address must look like host:port, got {value!r}")
    host, _, port = value.rpartition(":")
    host = host.strip("[]")
    if not host or not port.isdigit() or not (0 if listen else 1) <= int(port) < 65536:
        raise ValueError(f"an address must look like host:port, got {value!r}")
    return host, int(port)


_ID = _text(MAX_ID_LENGTH)
_KEY = _text(MAX_KEY_LENGTH)


# -- requests ----------------------------------------------------------------------------

@attrs.frozen(kw_only=True)
class _Write:
    """Fields every write carries (rule 2)."""

    client_id: str = attrs.field(validator=_ID)
    seq: int = attrs.field(validator=_count(1))
    acked_below: int = attrs.field(default=0, validator=_count(0))


@register_message(100)
@attrs.frozen(kw_only=True)
class KvGetRequest:
    """Read one key (linearizable)."""

    key: str = attrs.field(validator=_KEY)


@register_message(101)
@attrs.frozen(kw_only=True)
class KvListRequest:
    """List keys starting with ``prefix`` (``limit`` 0 = all)."""

    prefix: str = attrs.field(default="", validator=_text(MAX_KEY_LENGTH, empty=True))
    limit: int = attrs.field(default=0, validator=_count(0))


@register_message(102)
@attrs.frozen(kw_only=True)
class KvPutRequest(_Write):
    """Set a key."""

    key: str = attrs.field(validator=_KEY)
    value: bytes = attrs.field(validator=_value)


@register_message(103)
@attrs.frozen(kw_only=True)
class KvCasRequest(_Write):
    """Set a key only at ``expected_version`` (0 = must not exist)."""

    key: str = attrs.field(validator=_KEY)
    expected_version: int = attrs.field(validator=_count(0))
    value: bytes = attrs.field(validator=_value)


@register_message(104)
@attrs.frozen(kw_only=True)
class KvDeleteRequest(_Write):
    """Delete a key (only at ``expected_version`` when given)."""

    key: str = attrs.field(validator=_KEY)
    expected_version: Optional[int] = attrs.field(default=None, validator=_optional_count)


@register_message(105)
@attrs.frozen(kw_only=True)
class CreateGroupRequest(_Write):
    """Create a partition group of ``count`` partitions."""

    name: str = attrs.field(validator=_ID)
    count: int = attrs.field(validator=_count(1, 1_000_000))
    weight: int = attrs.field(default=1, validator=_count(1, 1_000_000))
    replication_factor: int = attrs.field(default=1, validator=_count(1, 16))


@register_message(106)
@attrs.frozen(kw_only=True)
class DeleteGroupRequest(_Write):
    """Delete a partition group."""

    name: str = attrs.field(validator=_ID)


@register_message(107)
@attrs.frozen(kw_only=True)
class DrainRequest(_Write):
    """Move every partition off a worker, gracefully; it gets nothing new."""

    worker_id: str = attrs.field(validator=_ID)


@register_message(108)
@attrs.frozen(kw_only=True)
class UndrainRequest(_Write):
    """Make a draining worker active again."""

    worker_id: str = attrs.field(validator=_ID)


@register_message(109)
@attrs.frozen(kw_only=True)
class ListGroupsRequest:
    """Every partition group with its owned and unowned counts."""



@register_message(110)
@attrs.frozen(kw_only=True)
class ShowGroupRequest:
    """Every partition of a group: owners, epoch, quarantine."""

    name: str = attrs.field(validator=_ID)


@register_message(111)
@attrs.frozen(kw_only=True)
class ListWorkersRequest:
    """Every known worker: zone, state, partitions owned."""



@register_message(112)
@attrs.frozen(kw_only=True)
class StatusRequest:
    """The answering node's view: raft role, term, indexes, leader, members, and a
    summary of the coordinator state (any node answers, rule 1)."""



@register_message(113)
@attrs.frozen(kw_only=True)
class ListMembersRequest:
    """The cluster members with their roles and addresses (any node answers)."""



@register_message(114)
@attrs.frozen(kw_only=True)
class AddMemberRequest:
    """Add a node as a learner: its addresses are replicated first, then the
    membership change, so every member can reach it."""

    node_id: int = attrs.field(validator=_count(1))
    peer_address: str = attrs.field(validator=_address)
    client_address: str = attrs.field(validator=_address)


@register_message(115)
@attrs.frozen(kw_only=True)
class PromoteMemberRequest:
    """Make a caught-up learner a voter."""

    node_id: int = attrs.field(validator=_count(1))


@register_message(116)
@attrs.frozen(kw_only=True)
class RemoveMemberRequest:
    """Remove a voter or learner from the cluster."""

    node_id: int = attrs.field(validator=_count(1))


@register_message(117)
@attrs.frozen(kw_only=True)
class TransferLeaderRequest:
    """Hand leadership to voter ``to`` (0: the most caught-up other voter)."""

    to: int = attrs.field(default=0, validator=_count(0))


# -- replies -----------------------------------------------------------------------------


@register_message(200)
@attrs.frozen(kw_only=True)
class OkReply:
    """The request succeeded; ``result`` is CBOR bytes of plain data (documented per
    request on `coordinator.Client`; see `ok` and `OkReply.value`)."""

    result: bytes = b"null"

    @property
    def value(self) -> Any:
        """The decoded result."""
        return cbor2.loads(self.result)


def ok(result: Any) -> OkReply:
    """An `OkReply` carrying plain data."""
    return OkReply(result=cbor2.dumps(result))


@register_message(201)
@attrs.frozen(kw_only=True)
class ErrorReply:
    """The request failed (see `ErrorKind`).

    Attributes:
        kind: the error kind's value.
        code: for ``refused``, the state machine's ErrorCode value; else "".
        message: a human-readable explanation.
        leader_id: for ``not_leader``, the leader this node knows of (0: none).
        leader_address: for ``not_leader``, the leader's client address ("" if unknown).
    """

    kind: str = attrs.field(validator=attrs.validators.in_([k.value for k in ErrorKind]))
    code: str = attrs.field(default="", validator=_text(64, empty=True))
    message: str = attrs.field(default="", validator=_text(4096, empty=True))
    leader_id: int = attrs.field(default=0, validator=_count(0))
    leader_address: str = attrs.field(default="", validator=_text(300, empty=True))


WRITE_REQUESTS = (KvPutRequest, KvCasRequest, KvDeleteRequest, CreateGroupRequest,
                  DeleteGroupRequest, DrainRequest, UndrainRequest)
READ_REQUESTS = (KvGetRequest, KvListRequest, ListGroupsRequest, ShowGroupRequest,
                 ListWorkersRequest)
LOCAL_REQUESTS = (StatusRequest, ListMembersRequest)
ADMIN_REQUESTS = (AddMemberRequest, PromoteMemberRequest, RemoveMemberRequest,
                  TransferLeaderRequest)
