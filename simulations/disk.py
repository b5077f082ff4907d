"""A disk per simulated node: durable only at fsync, a crash loses or tears the rest.

Every disk keeps a *durability shadow*: a `MemoryStorage` that receives exactly the
writes that were fsynced. It is what a correct disk must give back after a crash
(plus, possibly, a prefix of the unsynced writes that happened to reach the medium).
The safety checker compares what a restarted node recovers with it.

Two disks share that contract:

* `ModelDisk` keeps the node's log in a `MemoryStorage` and *is* the model: a crash
  keeps the shadow plus a random prefix of the unsynced writes (a torn tail).
* `FileDisk` runs the real `raft.disk_storage.DiskStorage` on a
  `raft.fs.MemoryFileSystem`, so the simulator exercises the on-disk format and
  its recovery code; the file system decides what a crash keeps.
"""

from __future__ import annotations

import random
from typing import Any, Callable, Sequence

from raft.storage import MemoryStorage
from raft.types import Entry, HardState, Snapshot

# An unsynced write, replayable on a MemoryStorage.
_Write = tuple[str, Any, Any]


def replay(storage: MemoryStorage, write: _Write) -> None:
    """Apply one recorded write to `storage`."""
    _replay(storage, write)


def _replay(storage: MemoryStorage, write: _Write) -> None:
    kind, a, b = write
    if kind == "save":
        storage.save(a, b, sync=True)
    elif kind == "snapshot":
        storage.apply_snapshot(a)
    else:
        storage.compact(a)


def copy_storage(source: MemoryStorage) -> MemoryStorage:
    """An independent copy of a `MemoryStorage` (entries are immutable values)."""
    copy = MemoryStorage()
    copy._hard_state = source._hard_state
    copy._snapshot = source._snapshot
    copy._entries = list(source._entries)
    return copy


class ModelDisk:
    """The log in memory, with exactly the crash semantics of a write-ahead log.

    Attributes:
        storage: the storage the current incarnation of the node reads and writes.
        durable: the durability shadow (fsynced state).
        pending: writes since the last fsync, oldest first.
    """

    kind = "model"

    def __init__(self) -> None:
        self.storage = MemoryStorage()
        self.durable = MemoryStorage()
        self.before_crash = self.durable
        self.unsynced_at_crash: list[_Write] = []
        self.pending: list[_Write] = []
        self.syncs = 0

    def save(self, hard_state: HardState | None, entries: Sequence[Entry], sync: bool) -> None:
        if hard_state is None and not entries:
            return
        self.storage.save(hard_state, entries, sync)
        if sync and not self.pending:
            # Nothing older awaits the fsync: the write goes straight to the shadow,
            # as `_sync` would replay it, without recording it first.
            self.durable.save(hard_state, entries, sync=True)
            self.syncs += 1
            return
        self.pending.append(("save", hard_state, list(entries)))
        if sync:
            self._sync()

    def apply_snapshot(self, snapshot: Snapshot) -> None:
        # A snapshot is written to a temporary file, fsynced and renamed: durable.
        self.storage.apply_snapshot(snapshot)
        self.pending.append(("snapshot", snapshot, None))
        self._sync()

    def compact(self, snapshot: Snapshot) -> None:
        # DiskStorage fsyncs the log before it writes the snapshot file durably.
        self.storage.compact(snapshot)
        self.pending.append(("compact", snapshot, None))
        self._sync()

    def _sync(self) -> None:
        for write in self.pending:
            _replay(self.durable, write)
        self.pending.clear()
        self.syncs += 1

    def crash(self, rng: random.Random) -> None:
        """Power cut: a random prefix of the unsynced writes reaches the medium."""
        self.before_crash = copy_storage(self.durable)
        self.unsynced_at_crash = list(self.pending)
        kept = rng.randint(0, len(self.pending)) if self.pending else 0
        for write in self.pending[:kept]:
            _replay(self.durable, write)
        self.pending.clear()
        self.storage = None  # type: ignore[assignment]  # the process is gone

    def recover(self) -> MemoryStorage:
        """Reopen after a crash: the node's new storage is what the medium holds."""
        self.storage = copy_storage(self.durable)
        return self.storage


class FileDisk(ModelDisk):
    """The real `DiskStorage` on a `MemoryFileSystem`; the shadow is kept as in
    `ModelDisk`, but what survives a crash is decided by the file system alone."""

    kind = "file"

    def __init__(self, node_id: int) -> None:
        super().__init__()
        from raft.disk_storage import DiskStorage
        from raft.fs import MemoryFileSystem

        self._open = DiskStorage
        self.fs = MemoryFileSystem()
        self.path = f"/node{node_id}"
        # Small segments keep every fsync of the in-memory file system cheap (it
        # copies the file) and exercise segment rolling and deletion.
        self.storage = DiskStorage(self.path, fs=self.fs, segment_bytes=SEGMENT_BYTES)

    def crash(self, rng: random.Random) -> None:
        self.before_crash = copy_storage(self.durable)
        self.unsynced_at_crash = list(self.pending)
        self.pending.clear()
        self.fs.crash(rng)
        self.storage = None  # type: ignore[assignment]

    def recover(self) -> Any:
        self.storage = self._open(self.path, fs=self.fs, segment_bytes=SEGMENT_BYTES)
        self.durable = storage_copy_of(self.storage)
        return self.storage


def storage_copy_of(storage: Any) -> MemoryStorage:
    """A `MemoryStorage` holding the same state as any `Storage`."""
    copy = MemoryStorage()
    snapshot = storage.snapshot()
    if not snapshot.is_empty():
        copy.apply_snapshot(snapshot)
    first, last = storage.first_index(), storage.last_index()
    if last >= first:
        copy.save(None, storage.entries(first, last + 1))
    copy.set_hard_state(storage.initial_state()[0])
    return copy


SEGMENT_BYTES = 64 * 1024

DISK_KINDS = {"model": lambda node_id: ModelDisk(), "file": FileDisk}


DiskFactory = Callable[[int], Any]
"""Builds the disk of node `id`."""
