"""The storage contract and the in-memory implementation.

The core only *reads* storage (`Storage`). The driver writes it, following the
ordering contract of `raft.Ready`: install `ready.snapshot`, then persist
`ready.hard_state` and `ready.entries` (`WritableStorage.save`), and only then send
messages and call `RawNode.advance`.

Index conventions (as in etcd): storage holds a snapshot at `snapshot.index` (0 for
none) followed by entries `first_index() .. last_index()`, where
`first_index() == snapshot.index + 1`. `term(snapshot.index)` is the snapshot's term.
"""

from __future__ import annotations

from typing import Protocol, Sequence, runtime_checkable

from .errors import CompactedError, SnapshotOutOfDateError, UnavailableError
from .types import ConfState, Entry, HardState, Snapshot, SnapshotMetadata


@runtime_checkable
class Storage(Protocol):
    """What the core reads. Implementations must be consistent after every `save`."""

    def initial_state(self) -> tuple[HardState, ConfState]:
        """The persisted hard state and the configuration of the snapshot."""
        ...

    def entries(self, lo: int, hi: int, max_bytes: int | None = None) -> list[Entry]:
        """Entries with index in [lo, hi), at least one, at most about `max_bytes`.

        Raises:
            CompactedError: lo <= snapshot index.
            UnavailableError: hi > last_index() + 1.
        """
        ...

    def term(self, index: int) -> int:
        """The term of the entry at `index` (snapshot.index gives the snapshot term).

        Raises:
            CompactedError: index < snapshot index.
            UnavailableError: index > last_index().
        """
        ...

    def first_index(self) -> int:
        ...

    def last_index(self) -> int:
        ...

    def snapshot(self) -> Snapshot:
        """The most recent snapshot (an empty one when there is none)."""
        ...


@runtime_checkable
class WritableStorage(Storage, Protocol):
    """What the driver writes."""

    def save(self, hard_state: HardState | None, entries: Sequence[Entry], sync: bool = True) -> bool:
        """Persist a hard state and entries durably, in one step (group commit).

        Entries that overlap existing ones replace them and everything after them
        (a leader overwrote a conflicting suffix). Returns whether a sync was done.
        """
        ...

    def apply_snapshot(self, snapshot: Snapshot) -> None:
        """Install a snapshot received from the leader, replacing the whole log."""
        ...

    def compact(self, snapshot: Snapshot) -> None:
        """Store a locally taken snapshot and discard entries up to its index."""
        ...


class MemoryStorage:
    """A `WritableStorage` held in memory. Nothing survives the process.

    Used by tests, simulations, benchmarks and embedders that keep durability
    elsewhere.
    """

    def __init__(self) -> None:
        self._hard_state = HardState()
        self._snapshot = Snapshot()
        # _entries[0] is a dummy holding the snapshot index and term.
        self._entries: list[Entry] = [Entry(term=0, index=0)]

    # -- reads ---------------------------------------------------------------------

    def initial_state(self) -> tuple[HardState, ConfState]:
        return self._hard_state, self._snapshot.metadata.conf_state

    @property
    def hard_state(self) -> HardState:
        return self._hard_state

    def first_index(self) -> int:
        return self._entries[0].index + 1

    def last_index(self) -> int:
        return self._entries[0].index + len(self._entries) - 1

    def term(self, index: int) -> int:
        stored = self._entries
        pos = index - stored[0].index
        if pos < 0:
            raise CompactedError(f"index {index} compacted (first is {stored[0].index + 1})")
        if pos >= len(stored):
            raise UnavailableError(f"index {index} beyond last {self.last_index()}")
        return stored[pos].term

    def entries(self, lo: int, hi: int, max_bytes: int | None = None) -> list[Entry]:
        stored = self._entries
        offset = stored[0].index
        if lo <= offset:
            raise CompactedError(f"index {lo} compacted (first is {offset + 1})")
        if hi - offset > len(stored):
            raise UnavailableError(f"index {hi - 1} beyond last {self.last_index()}")
        result = stored[lo - offset : hi - offset]
        if max_bytes is not None and hi - lo > 1:  # one entry is always within the limit
            result = limit_size(result, max_bytes)
        return result

    def snapshot(self) -> Snapshot:
        return self._snapshot

    # -- writes --------------------------------------------------------------------

    def save(self, hard_state: HardState | None, entries: Sequence[Entry], sync: bool = True) -> bool:
        if entries:
            self._append(entries)
        if hard_state is not None:
            self._hard_state = hard_state
        return bool(entries) or hard_state is not None

    def set_hard_state(self, hard_state: HardState) -> None:
        self._hard_state = hard_state

    def _append(self, entries: Sequence[Entry]) -> None:
        stored = self._entries
        if entries[0].index == stored[0].index + len(stored):
            stored.extend(entries)  # the usual case: right after the last entry
            return
        first = self._entries[0].index + 1  # == first_index()
        if entries[-1].index < first:
            return  # all already compacted
        if entries[0].index < first:
            entries = entries[first - entries[0].index :]
        offset = entries[0].index - self._entries[0].index
        if offset > len(self._entries):
            raise UnavailableError(
                f"missing log entries: last {self.last_index()}, appending at {entries[0].index}"
            )
        del self._entries[offset:]
        self._entries.extend(entries)

    def apply_snapshot(self, snapshot: Snapshot) -> None:
        if snapshot.index <= self._snapshot.index:
            raise SnapshotOutOfDateError(
                f"snapshot at {snapshot.index} is not newer than {self._snapshot.index}"
            )
        self._snapshot = snapshot
        self._entries = [Entry(term=snapshot.term, index=snapshot.index)]

    def compact(self, snapshot: Snapshot) -> None:
        index = snapshot.index
        offset = self._entries[0].index
        if index <= offset:
            raise SnapshotOutOfDateError(f"already compacted to {offset}")
        if index > self.last_index():
            raise UnavailableError(f"compact index {index} beyond last {self.last_index()}")
        if self._entries[index - offset].term != snapshot.term:
            raise ValueError("snapshot term does not match the log")
        self._snapshot = snapshot
        self._entries = [Entry(term=snapshot.term, index=index)] + self._entries[index - offset + 1 :]


def limit_size(entries: list[Entry], max_bytes: int) -> list[Entry]:
    """The longest prefix of `entries` within `max_bytes` (always at least one)."""
    if len(entries) <= 1:
        return entries
    total = entries[0].size()
    for i in range(1, len(entries)):
        total += entries[i].size()
        if total > max_bytes:
            return entries[:i]
    return entries


def snapshot_of(index: int, term: int, conf_state: ConfState, data: bytes) -> Snapshot:
    """Build a `Snapshot` value."""
    return Snapshot(SnapshotMetadata(index=index, term=term, conf_state=conf_state), data)
