"""An in-memory network of RawNodes for scenario tests (no sockets, no threads).

Messages are queued, not delivered, until `deliver()` runs; `cut`, `isolate` and
`drop` filter them, the way etcd-raft's test `network` does.
"""

from __future__ import annotations

from collections import deque

import cbor2
from typing import Callable, Iterable

from raft import Config, ConfChange, ConfChangeType, EntryType, MemoryStorage, Role
from raft.node import RawNode, next_conf_state
from raft.types import Entry, Message, Snapshot


class Peer:
    """A node with its storage and a trivial state machine (the applied entries)."""

    def __init__(self, config: Config, storage: MemoryStorage | None = None) -> None:
        self.config = config
        self.storage = storage if storage is not None else MemoryStorage()
        self.node = RawNode(config, self.storage)
        self.applied: list[Entry] = []
        # The application state: payloads of applied NORMAL entries, in order.
        self.state: list[bytes] = []
        self.snapshots_installed = 0
        self.read_states = []
        self.conf_changes = []

    @property
    def id(self) -> int:
        return self.node.id

    def handle_ready(self) -> list[Message]:
        """Persist, apply and return the messages of every pending Ready."""
        out: list[Message] = []
        while self.node.has_ready():
            rd = self.node.ready()
            if rd.snapshot is not None:
                self.storage.apply_snapshot(rd.snapshot)
                self.state = list(cbor2.loads(rd.snapshot.data))
                self.applied = [e for e in self.applied if e.index <= rd.snapshot.index]
                self.snapshots_installed += 1
            self.storage.save(rd.hard_state, rd.entries)
            out.extend(rd.messages)
            for e in rd.committed_entries:
                self.applied.append(e)
                if e.type is EntryType.NORMAL and e.data:
                    self.state.append(e.data)
                if e.type is EntryType.CONF_CHANGE:
                    self.conf_changes.append(self.node.apply_conf_change(e))
            self.read_states.extend(rd.read_states)
            self.node.advance(rd)
        return out

    def app_data(self) -> list[bytes]:
        """Application payloads applied, in order (no-ops and changes skipped)."""
        return list(self.state)

    def compact(self) -> Snapshot:
        """Snapshot the state at the applied index and compact the log up to it."""
        snap = self.node.create_snapshot(self.node.applied_index, cbor2.dumps(self.state))
        self.storage.compact(snap)
        return snap

    def restart(self) -> None:
        """Crash and restart from storage (everything Ready asked to persist)."""
        self.node = RawNode(self.config, self.storage)
        snap = self.storage.snapshot()
        self.state = list(cbor2.loads(snap.data)) if not snap.is_empty() else []
        self.applied = []


def make_config(nid: int, voters: Iterable[int], **kwargs) -> Config:
    kwargs.setdefault("seed", nid)
    return Config(id=nid, voters=tuple(voters), **kwargs)


class Network:
    """A set of peers and the messages in flight between them."""

    def __init__(self, peers: dict[int, Peer]) -> None:
        self.peers = peers
        self.queue: deque[Message] = deque()
        self.cuts: set[tuple[int, int]] = set()
        self.filters: list[Callable[[Message], bool]] = []
        self.delivered: list[Message] = []

    @classmethod
    def of(cls, n: int, **config_kwargs) -> "Network":
        ids = list(range(1, n + 1))
        return cls({i: Peer(make_config(i, ids, **config_kwargs)) for i in ids})

    def add(self, peer: Peer) -> None:
        self.peers[peer.id] = peer

    # -- fault injection -------------------------------------------------------------

    def cut(self, a: int, b: int) -> None:
        self.cuts.add((a, b))
        self.cuts.add((b, a))

    def isolate(self, nid: int) -> None:
        for other in self.peers:
            if other != nid:
                self.cut(nid, other)

    def heal(self) -> None:
        self.cuts.clear()
        self.filters.clear()

    def drop_if(self, predicate: Callable[[Message], bool]) -> None:
        self.filters.append(predicate)

    # -- driving -----------------------------------------------------------------------

    def collect(self) -> None:
        for pid in sorted(self.peers):
            self.queue.extend(self.peers[pid].handle_ready())

    def deliver(self, max_messages: int = 1_000_000) -> int:
        """Deliver messages until the network is quiet. Returns how many."""
        count = 0
        self.collect()
        while self.queue and count < max_messages:
            m = self.queue.popleft()
            if (m.sender, m.to) in self.cuts or m.to not in self.peers:
                continue
            if any(f(m) for f in self.filters):
                continue
            count += 1
            self.delivered.append(m)
            peer = self.peers[m.to]
            peer.node.step(m)
            self.queue.extend(peer.handle_ready())
        return count

    def tick(self, n: int = 1, only: Iterable[int] | None = None) -> None:
        ids = sorted(only) if only is not None else sorted(self.peers)
        for _ in range(n):
            for pid in ids:
                self.peers[pid].node.tick()
            self.deliver()

    def campaign(self, nid: int) -> None:
        self.peers[nid].node.campaign()
        self.deliver()

    def propose(self, nid: int, data: bytes) -> int:
        index = self.peers[nid].node.propose(data)
        self.deliver()
        return index

    def leaders(self) -> list[int]:
        return [pid for pid, p in self.peers.items() if p.node.role is Role.LEADER]

    def leader(self) -> int:
        leaders = self.leaders()
        assert len(leaders) == 1, f"expected one leader, got {leaders}"
        return leaders[0]

    def change(self, leader: int, kind: ConfChangeType, nid: int) -> int:
        index = self.peers[leader].node.propose_conf_change(ConfChange(kind, nid))
        self.deliver()
        return index


def log_of(peer: Peer) -> list[tuple[int, int]]:
    """(index, term) of every entry the node's log holds."""
    node = peer.node
    first, last = node.log.first_index(), node.log.last_index()
    return [(e.index, e.term) for e in node.log.entries(first, last + 1)] if last >= first else []


__all__ = ["Network", "Peer", "make_config", "log_of", "next_conf_state", "Snapshot"]
