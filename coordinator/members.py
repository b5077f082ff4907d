"""Member addresses, kept in the replicated state.

Raft knows members by id; clients and peers need addresses. Each member's peer
(raft) and client addresses live in the metadata KV under ``raftcoord/members/<id>``,
written through the log *before* the membership change that adds the node, so every
replica, including ones added later or restored from a snapshot, can reach every
member without manual configuration. Clients may read these keys, not write them
(`coordinator.api.RESERVED_PREFIX`).
"""

from __future__ import annotations

from typing import Optional

import attrs
import cbor2

from . import commands as c
from .api import RESERVED_PREFIX, parse_address
from .state import CoordinatorState

MEMBERS_PREFIX = RESERVED_PREFIX + "members/"


@attrs.frozen(kw_only=True)
class Member:
    """One coordinator node's addresses.

    Attributes:
        node_id: its raft id.
        peer_address: ``host:port`` of its raft transport.
        client_address: ``host:port`` of its client port.
    """

    node_id: int = attrs.field()
    peer_address: str = attrs.field()
    client_address: str = attrs.field()

    @node_id.validator
    def _check_id(self, attribute: attrs.Attribute, value: object) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"a node id must be a positive int, got {value!r}")

    def __attrs_post_init__(self) -> None:
        parse_address(self.peer_address)
        parse_address(self.client_address)

    @classmethod
    def parse(cls, text: str) -> "Member":
        """``"ID=PEER_HOST:PORT/CLIENT_HOST:PORT"`` (the ``--peers`` syntax).

        Raises:
            ValueError: any other shape.
        """
        ident, sep, rest = text.strip().partition("=")
        peer, slash, client = rest.partition("/")
        if not sep or not slash or not ident.strip().isdigit():
            raise ValueError(f"a member must look like ID=PEER_HOST:PORT/CLIENT_HOST:PORT, "
                             f"got {text!r}")
        return cls(node_id=int(ident), peer_address=peer.strip(),
                   client_address=client.strip())

    def key(self) -> str:
        return member_key(self.node_id)

    def put_command(self) -> c.KvPut:
        """The command that records this member in the replicated state."""
        value = cbor2.dumps({"peer": self.peer_address, "client": self.client_address})
        return c.KvPut(key=self.key(), value=value)


def member_key(node_id: int) -> str:
    return f"{MEMBERS_PREFIX}{node_id}"


def decode_member(key: str, value: bytes) -> Optional[Member]:
    """The member a ``raftcoord/members/`` entry records (None if it is not one)."""
    if not key.startswith(MEMBERS_PREFIX):
        return None
    try:
        fields = cbor2.loads(value)
        return Member(node_id=int(key[len(MEMBERS_PREFIX):]), peer_address=fields["peer"],
                      client_address=fields["client"])
    except Exception:
        return None


def members_of(state: CoordinatorState) -> dict[int, Member]:
    """Every member address the state records, by node id."""
    result = {}
    for entry in state.kv_list(MEMBERS_PREFIX):
        member = decode_member(entry.key, entry.value)
        if member is not None:
            result[member.node_id] = member
    return result
