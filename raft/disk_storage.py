"""Durable Raft storage: a segmented write-ahead log plus snapshot files.

Layout of a data directory::

    wal-0000000000000001.seg   log segments, CRC-framed records (see raft._wal)
    wal-0000000000000002.seg   ... the highest-numbered one is appended to
    snap-<index>-<term>.snap   the newest valid snapshot (older ones are removed)
    LOCK                       flocked while a DiskStorage has the directory open

Rules this module keeps:

* Rule 1 (acknowledged means durable): `save` writes ONE record holding the hard state
  and all its entries, then fsyncs once (group commit), and only then updates memory
  and returns. A conflicting suffix is replaced by the same record: on replay a batch
  starting at index i drops every entry >= i, so truncation and the new entries become
  durable together, atomically.
* Rule 2 (a crash damages only the tail): because of Rule 1, a crash can only leave the
  last record of the last segment incomplete. Recovery cuts such a torn tail off and
  logs it; a damaged record anywhere else is corruption and raises `CorruptionError`
  naming the file and offset, before any file is modified.
* Rule 3 (snapshots are atomic): a snapshot is written to a temporary name, fsynced,
  renamed, and the directory fsynced. Only then are older snapshots and fully
  compacted segments deleted, so a crash at any step leaves a usable older state.
* Rule 4 (every segment restates the hard state): a new segment begins with a record
  of the current hard state, so deleting old segments never loses term and vote.
* Rule 5 (segments are deleted oldest first, each removal made durable): the surviving
  segments are always a suffix of the sequence, so replay never sees a hole.
* Rule 6 (segments are preallocated): the active segment is extended with zeros, and
  the new size synced, ahead of the records, `preallocate_bytes` at a time. A save
  then overwrites zeros inside the file, and its fsync (an fdatasync) records no new
  size and no new blocks: on ext4 that is the difference between a data write and a
  journal commit. Recovery reads zeros after the last record as free space.

Memory holds, for the whole log, each entry's term (as runs of equal terms) and the
location of each batch record; the most recent entries are also cached as `Entry`
objects, so the leader's replication reads never touch the disk.
"""

from __future__ import annotations

import bisect
import logging
import posixpath
from array import array
from collections import OrderedDict
from typing import Any, Sequence

from . import _wal
from .errors import (
    DirectoryLockedError,
    CompactedError,
    CorruptionError,
    SnapshotOutOfDateError,
    StorageError,
    UnavailableError,
)
from .fs import FileSystem, OsFileSystem, WritableFile
from .storage import limit_size
from .types import ConfState, Entry, HardState, Snapshot

__all__ = ["DiskStorage", "inspect_data_dir", "DEFAULT_SEGMENT_BYTES", "DEFAULT_PREALLOCATE_BYTES"]

log = logging.getLogger(__name__)

DEFAULT_SEGMENT_BYTES = 64 << 20
DEFAULT_PREALLOCATE_BYTES = 4 << 20
DEFAULT_CACHE_ENTRIES = 65536
LOCK_FILE = "LOCK"
"""The lock file in a data directory (its contents are unused; its flock counts)."""
_RECORD_CACHE_SIZE = 64


class _Replay:
    """The log rebuilt from the segments, before it is reconciled with the snapshot.

    Indices are "raw": they ignore compaction, which the WAL does not record.
    """

    def __init__(self) -> None:
        self.hard_state = HardState()
        self.base: int | None = None  # index just before the first entry; None = no log yet
        self.last = 0
        self.run_starts: list[int] = []
        self.run_terms: list[int] = []
        self.rec_first = array("q")
        self.rec_seq = array("q")
        self.rec_off = array("q")
        self.rec_len = array("q")

    def reset(self, base: int) -> None:
        self.base = base
        self.last = base
        del self.run_starts[:], self.run_terms[:]
        del self.rec_first[:], self.rec_seq[:], self.rec_off[:], self.rec_len[:]

    def truncate_from(self, index: int) -> None:
        p = bisect.bisect_left(self.run_starts, index)
        del self.run_starts[p:], self.run_terms[p:]
        p = bisect.bisect_left(self.rec_first, index)
        del self.rec_first[p:], self.rec_seq[p:], self.rec_off[p:], self.rec_len[p:]
        self.last = index - 1

    def append(self, first: int, count: int, runs: list[tuple[int, int]], seq: int, off: int, length: int) -> None:
        for start, term in runs:
            if not self.run_terms or self.run_terms[-1] != term:
                self.run_starts.append(start)
                self.run_terms.append(term)
        self.rec_first.append(first)
        self.rec_seq.append(seq)
        self.rec_off.append(off)
        self.rec_len.append(length)
        self.last = first + count - 1

    def term(self, index: int) -> int:
        return self.run_terms[bisect.bisect_right(self.run_starts, index) - 1]


class _Recovered:
    """Everything `DiskStorage` needs after reading a data directory (read-only)."""

    def __init__(self) -> None:
        self.snapshot = Snapshot()
        self.snapshot_name: str | None = None
        self.snapshots: list[dict[str, Any]] = []
        self.segments: list[int] = []
        self.segment_info: list[dict[str, Any]] = []
        self.replay = _Replay()
        self.torn_tail: tuple[str, int, int, str] | None = None  # path, valid_end, size, reason
        self.active_end = 0  # where the last segment's records end (zeros may follow)
        self.temp_files: list[str] = []


def _recover(fs: FileSystem, path: str) -> _Recovered:
    """Read a data directory without modifying it.

    Raises:
        CorruptionError: mid-log corruption, or a log that does not fit the snapshot.
    """
    out = _Recovered()
    names = fs.listdir(path) if fs.exists(path) else []
    snaps = []
    for name in names:
        if name.endswith(".tmp"):
            out.temp_files.append(name)
        elif (parsed := _wal.parse_snapshot_name(name)) is not None:
            snaps.append((parsed, name))
        elif (seq := _wal.parse_segment_name(name)) is not None:
            out.segments.append(seq)
    out.segments.sort()

    # The newest snapshot that reads back whole wins; a damaged newer one (a crash
    # before its rename was durable cannot produce one, but bit rot can) is skipped.
    for (index, term), name in sorted(snaps, reverse=True):
        full = posixpath.join(path, name)
        info: dict[str, Any] = {"name": name, "index": index, "term": term, "size": fs.size(full)}
        try:
            snapshot = _wal.decode_snapshot_file(fs.read(full))
            if (snapshot.index, snapshot.term) != (index, term):
                raise ValueError("file name does not match its contents")
        except (ValueError, TypeError) as exc:  # TypeError: ConfState rejects bad ids
            info.update(valid=False, error=str(exc))
            if out.snapshot_name is None:
                log.warning("snapshot %s is unusable (%s); falling back to an older one", full, exc)
        else:
            info.update(valid=True, error=None)
            if out.snapshot_name is None:
                out.snapshot, out.snapshot_name = snapshot, name
        out.snapshots.append(info)

    snap_index = out.snapshot.index
    replay = out.replay
    hard_state: tuple[int, int, int] | None = None
    summary = _wal.batch_summary
    run_terms = replay.run_terms
    for i, seq in enumerate(out.segments):
        name = _wal.segment_name(seq)
        full = posixpath.join(path, name)
        data = fs.read(full)
        is_last = i == len(out.segments) - 1
        scanned = _wal.scan_segment(data, full, is_last)
        seg_first = seg_last = None
        for offset, kind, payload, end in scanned.records:
            try:
                if kind == _wal.KIND_BATCH:
                    hs, first, count, runs = summary(payload)
                    if hs is not None:
                        hard_state = hs
                    if count:
                        if replay.base is None or first <= replay.base:
                            replay.reset(first - 1)
                        elif first > replay.last + 1:
                            raise ValueError(f"gap in the log: index {first} follows {replay.last}")
                        elif first <= replay.last:
                            replay.truncate_from(first)
                        if len(runs) == 1 and run_terms and run_terms[-1] == runs[0][1]:
                            # Fast path of replay.append: same term as before.
                            replay.rec_first.append(first)
                            replay.rec_seq.append(seq)
                            replay.rec_off.append(offset)
                            replay.rec_len.append(end - offset)
                            replay.last = first + count - 1
                        else:
                            replay.append(first, count, runs, seq, offset, end - offset)
                        if seg_first is None or first < seg_first:
                            seg_first = first
                        if seg_last is None or replay.last > seg_last:
                            seg_last = replay.last
                elif kind == _wal.KIND_RESET:
                    index, _term = _wal.decode_reset(payload)
                    replay.reset(index)
                else:
                    raise ValueError(f"unexpected record kind {kind} in a segment")
            except ValueError as exc:
                raise CorruptionError(
                    f"corrupt record in {full} at byte offset {offset}: {exc}", path=full, offset=offset
                ) from None
        out.segment_info.append(
            {
                "name": name,
                "size": len(data),
                "used": scanned.valid_end,
                "first_index": seg_first,
                "last_index": seg_last,
                "records": len(scanned.records),
                "torn_tail": scanned.tail_error,
            }
        )
        if scanned.tail_error is not None:
            out.torn_tail = (full, scanned.valid_end, len(data), scanned.tail_error)
        out.active_end = scanned.valid_end

    if hard_state is not None:
        replay.hard_state = HardState(*hard_state)

    # Reconcile the replayed log with the snapshot.
    if replay.base is None:
        replay.reset(snap_index)
    elif replay.base > snap_index:
        raise CorruptionError(
            f"log in {path} starts after index {replay.base} but the newest usable snapshot is at "
            f"{snap_index}: entries {snap_index + 1}..{replay.base} are missing",
            path=path,
        )
    elif replay.last < snap_index or (
        snap_index > replay.base and replay.term(snap_index) != out.snapshot.term
    ):
        # A snapshot from the leader whose RESET record did not reach the disk: the
        # snapshot replaces the log, exactly as `apply_snapshot` would have.
        replay.reset(snap_index)
    else:
        _drop_below(replay, snap_index + 1)
    return out


def _drop_below(replay: _Replay, first: int) -> None:
    """Forget runs and records that end before `first` (they were compacted)."""
    p = bisect.bisect_right(replay.run_starts, first) - 1
    if p > 0:
        del replay.run_starts[:p], replay.run_terms[:p]
    p = bisect.bisect_right(replay.rec_first, first) - 1
    if p > 0:
        del replay.rec_first[:p], replay.rec_seq[:p], replay.rec_off[:p], replay.rec_len[:p]


class DiskStorage:
    """A durable `raft.storage.WritableStorage` in a directory of its own.

    Example:
        storage = DiskStorage("/var/lib/raftcoord/node1")
        storage.save(HardState(term=1, vote=1), [Entry(term=1, index=1)])
        storage.close()

    Only one `DiskStorage` may use a directory at a time: opening takes an exclusive
    lock on the file `LOCK` in it (`flock`, released by `close` or when the process
    ends), and a second open is refused with `DirectoryLockedError`.
    """

    def __init__(
        self,
        path: str,
        fs: FileSystem | None = None,
        segment_bytes: int = DEFAULT_SEGMENT_BYTES,
        unsafe_no_fsync: bool = False,
        cache_entries: int = DEFAULT_CACHE_ENTRIES,
        preallocate_bytes: int = DEFAULT_PREALLOCATE_BYTES,
    ) -> None:
        """Open (or create) the storage in `path`, recovering from any crash.

        Args:
            path: the data directory; created if missing.
            fs: the file system to use (default: the real one).
            segment_bytes: a new segment is started once the current one would grow
                past this size. A single batch larger than this still goes in one
                segment.
            unsafe_no_fsync: skip every fsync. Acknowledged writes can then be lost
                or torn by a power cut (and a torn non-last segment makes the next
                open fail). Only for tests and benchmarks.
            cache_entries: how many of the most recent entries to keep in memory.
            preallocate_bytes: extend the active segment with zeros this many bytes
                at a time (at most to `segment_bytes`), so that a save's fsync has
                no file size or block allocation to record (Rule 6). 0 = grow the
                file with each save.

        Raises:
            DirectoryLockedError: another `DiskStorage`, in this process or another,
                has the directory open.
            CorruptionError: the log is corrupt other than at its tail; no file was
                modified.
        """
        if segment_bytes <= 0:
            raise ValueError("segment_bytes must be positive")
        if preallocate_bytes < 0:
            raise ValueError("preallocate_bytes must be >= 0")
        self._preallocate = preallocate_bytes
        self._fs: FileSystem = fs if fs is not None else OsFileSystem()
        self._dir = path
        self._segment_bytes = segment_bytes
        self._fsync = not unsafe_no_fsync
        self._cache_limit = max(1, cache_entries)
        self._failed: BaseException | None = None
        self._closed = False

        self._fs.makedirs(path)
        try:
            self._lock = self._fs.lock(posixpath.join(path, LOCK_FILE))
        except BlockingIOError:
            raise DirectoryLockedError(path) from None
        try:
            self._open(path)
        except BaseException:
            self._lock.release()
            raise

    def _open(self, path: str) -> None:
        """Recover from the directory and open the active segment (lock held)."""
        recovered = _recover(self._fs, path)
        self._repair(recovered)

        replay = recovered.replay
        self._hs = replay.hard_state
        self._snapshot = recovered.snapshot
        # The snapshot's index, read by every term/entries/save call (a plain
        # attribute instead of two property hops); set wherever _snapshot is.
        self._snap_index = self._snapshot.index
        self._snapshot_name = recovered.snapshot_name
        self._last = replay.last
        self._run_starts = replay.run_starts
        self._run_terms = replay.run_terms
        self._rec_first = replay.rec_first
        self._rec_seq = replay.rec_seq
        self._rec_off = replay.rec_off
        self._rec_len = replay.rec_len
        self._cache: list[Entry] = []
        self._cache_first = self._last + 1
        self._records: OrderedDict[tuple[int, int], tuple[bytes, _wal.BatchHead]] = OrderedDict()

        self._segments = recovered.segments
        if not self._segments:
            self._segments.append(1)
        self._active_seq = self._segments[-1]
        self._active: WritableFile = self._fs.open_append(
            self._segment_path(self._active_seq), at=recovered.active_end if recovered.segments else None)
        self._active_size = self._active.tell()
        self._allocated = self._allocated_end()
        self._dirty = False
        if not recovered.segments or self._active_size == 0:
            self._sync_dir()  # the (possibly new) segment's name must be durable
            if not self._hs.is_empty():
                # An empty segment left by a crash during a roll: restate the hard
                # state first (Rule 4), or deleting older segments could lose it.
                record, _ = _wal.encode_batch(self._hs, ())
                self._active.write(record)
                self._active_size = len(record)
                self._dirty = True
                self._sync_active()

    def _repair(self, recovered: _Recovered) -> None:
        """Cut off a torn tail and remove leftover temporary files (validation passed)."""
        if recovered.torn_tail is not None:
            file_path, valid_end, size, reason = recovered.torn_tail
            log.warning(
                "cutting off a torn tail of %s at byte offset %d (%d bytes dropped): %s",
                file_path,
                valid_end,
                size - valid_end,
                reason,
            )
            handle = self._fs.open_append(file_path)
            try:
                handle.truncate(valid_end)
                if self._fsync:
                    handle.fsync()
            finally:
                handle.close()
        for name in recovered.temp_files:
            self._fs.remove(posixpath.join(self._dir, name))

    # -- reads -----------------------------------------------------------------------

    @property
    def path(self) -> str:
        """The data directory."""
        return self._dir

    @property
    def fs(self) -> FileSystem:
        """The file-system layer the storage does its I/O through."""
        return self._fs

    def initial_state(self) -> tuple[HardState, ConfState]:
        return self._hs, self._snapshot.metadata.conf_state

    @property
    def hard_state(self) -> HardState:
        return self._hs

    def first_index(self) -> int:
        return self._snap_index + 1

    def last_index(self) -> int:
        return self._last

    def snapshot(self) -> Snapshot:
        return self._snapshot

    def term(self, index: int) -> int:
        snap_index = self._snap_index
        if index < snap_index:
            raise CompactedError(f"index {index} compacted (first is {snap_index + 1})")
        if index > self._last:
            raise UnavailableError(f"index {index} beyond last {self._last}")
        if index == snap_index:
            return self._snapshot.term
        return self._run_terms[bisect.bisect_right(self._run_starts, index) - 1]

    def entries(self, lo: int, hi: int, max_bytes: int | None = None) -> list[Entry]:
        snap_index = self._snap_index
        if lo <= snap_index:
            raise CompactedError(f"index {lo} compacted (first is {snap_index + 1})")
        if hi > self._last + 1:
            raise UnavailableError(f"index {hi - 1} beyond last {self._last}")
        if lo >= hi:
            return []
        cache_first = self._cache_first
        if lo >= cache_first:
            result = self._cache[lo - cache_first : hi - cache_first]
        else:
            result = self._read_entries(lo, min(hi, cache_first), max_bytes)
            if hi >= cache_first and len(result) == cache_first - lo:
                self._warm_cache(result)  # copies `result`
            if hi > cache_first and (max_bytes is None or _size(result) <= max_bytes):
                result.extend(self._cache[cache_first - self._cache_first : hi - self._cache_first])
        if max_bytes is not None:
            result = limit_size(result, max_bytes)
        return result

    def _warm_cache(self, below: list[Entry]) -> None:
        """Put entries just read from disk, which end where the cache begins, in
        front of the cache while it has room. After a restart the cache is empty
        and the whole log is read several times in a row (the core looks for
        membership changes, then applies every committed entry): only the first
        read then goes to the disk."""
        if len(below) + len(self._cache) <= self._cache_limit:
            self._cache = below + self._cache
            self._cache_first -= len(below)

    def _read_entries(self, lo: int, hi: int, max_bytes: int | None) -> list[Entry]:
        """Entries in [lo, hi) from the segment files (they are not in the cache)."""
        result: list[Entry] = []
        total = 0
        p = bisect.bisect_right(self._rec_first, lo) - 1
        index = lo
        while index < hi:
            # A later record starting at rec_first[p + 1] overrode the rest of this one.
            stop = hi if p + 1 >= len(self._rec_first) else min(hi, self._rec_first[p + 1])
            payload, head = self._load_record(p)
            try:
                chunk = _wal.decode_batch_entries(payload, head, index, stop)
            except ValueError as exc:
                raise CorruptionError(
                    f"corrupt batch in {self._segment_path(self._rec_seq[p])} at offset {self._rec_off[p]}: {exc}",
                    path=self._segment_path(self._rec_seq[p]),
                    offset=self._rec_off[p],
                ) from None
            result.extend(chunk)
            if max_bytes is not None:
                total += _size(chunk)
                if total > max_bytes:
                    break
            index = stop
            p += 1
        return result

    def _load_record(self, p: int) -> tuple[bytes, _wal.BatchHead]:
        key = (self._rec_seq[p], self._rec_off[p])
        cached = self._records.get(key)
        if cached is not None:
            self._records.move_to_end(key)
            return cached
        path = self._segment_path(key[0])
        data = self._fs.read(path, key[1], self._rec_len[p])
        try:
            kind, payload_view, _ = _wal.read_one(data, 0)
            payload = bytes(payload_view)
            head = _wal.decode_batch_head(payload)
            if kind != _wal.KIND_BATCH:
                raise ValueError("not a batch record")
        except ValueError as exc:
            # The record was sound when the storage was opened: the disk changed under us.
            raise CorruptionError(f"record in {path} at byte offset {key[1]} is damaged: {exc}", path, key[1]) from None
        self._records[key] = (payload, head)
        if len(self._records) > _RECORD_CACHE_SIZE:
            self._records.popitem(last=False)
        return payload, head

    # -- writes ----------------------------------------------------------------------

    def save(self, hard_state: HardState | None, entries: Sequence[Entry], sync: bool = True) -> bool:
        """Persist a hard state and entries with a single write and at most one fsync.

        Entries overlapping existing ones replace them and everything after them;
        entries at or below the snapshot index are ignored.

        Args:
            hard_state: the new hard state, or None to keep the current one.
            entries: consecutive entries.
            sync: fsync before returning. With False, the data becomes durable with
                the next synced `save`, `sync` or `close`. Until then a crash may lose
                it; and since the disk may then persist a later unsynced record but
                not an earlier one, the next open may even report corruption. Use it
                only for writes that a synced call follows promptly.

        Returns:
            Whether a sync was needed: True when this call had unsynced data to make
            durable (even under `unsafe_no_fsync`, which skips the fsync itself).

        Raises:
            UnavailableError: the entries would leave a gap after the last index.
            ValueError: the entries are not consecutive.
            StorageError: an earlier write failed; the storage must be reopened.
        """
        if self._closed or self._failed is not None:
            self._check_writable()
        first = self._snap_index + 1
        if entries:
            if entries[-1].index < first:
                entries = ()
            elif entries[0].index < first:
                entries = entries[first - entries[0].index :]
        if entries and entries[0].index > self._last + 1:
            raise UnavailableError(f"missing log entries: last {self._last}, appending at {entries[0].index}")
        if hard_state is not None and hard_state == self._hs:
            hard_state = None  # nothing new to persist
        if not entries and hard_state is None:
            if sync and self._dirty:
                self._run_guarded(self._sync_active)
                return True
            return False
        record, runs = _wal.encode_batch(hard_state, entries)
        size = len(record)
        # What _run_guarded, _roll_if_needed and _sync_active do, written out for
        # the usual case (no new segment): this is the hot path of a running node.
        try:
            offset = self._active_size
            if offset and offset + size > self._segment_bytes:
                prefix = self._roll_if_needed(size)
                offset = self._active_size + len(prefix)
                if offset + size > self._allocated:
                    self._allocate(offset + size)
                self._active.write(prefix + record)
            else:
                if offset + size > self._allocated:
                    self._allocate(offset + size)
                self._active.write(record)
            self._active_size = offset + size
            self._dirty = True
            if sync:
                if self._fsync:
                    self._active.fsync()
                self._dirty = False
        except BaseException as exc:
            self._failed = exc
            raise
        # Memory changes only once the record is on disk (and synced when asked).
        if entries:
            self._index_append(entries, runs, offset, size)
        if hard_state is not None:
            self._hs = hard_state
        return sync

    def sync(self) -> None:
        """Make every earlier `save(..., sync=False)` durable."""
        self._check_writable()
        if self._dirty:
            self._run_guarded(self._sync_active)

    def _index_append(self, entries: Sequence[Entry], runs: list[tuple[int, int]], offset: int, length: int) -> None:
        first = entries[0].index
        if first <= self._last:
            self._truncate_from(first)
        for start, term in runs:
            if not self._run_terms or self._run_terms[-1] != term:
                self._run_starts.append(start)
                self._run_terms.append(term)
        self._rec_first.append(first)
        self._rec_seq.append(self._active_seq)
        self._rec_off.append(offset)
        self._rec_len.append(length)
        self._last = entries[-1].index
        if not self._cache:
            self._cache_first = first
        self._cache.extend(entries)
        excess = len(self._cache) - self._cache_limit
        # Trim in large steps so appends stay amortized O(1).
        if excess >= self._cache_limit // 2 + 1:
            del self._cache[:excess]
            self._cache_first += excess

    def _truncate_from(self, index: int) -> None:
        p = bisect.bisect_left(self._run_starts, index)
        del self._run_starts[p:], self._run_terms[p:]
        p = bisect.bisect_left(self._rec_first, index)
        del self._rec_first[p:], self._rec_seq[p:], self._rec_off[p:], self._rec_len[p:]
        if index <= self._cache_first:
            self._cache = []
            self._cache_first = index
        else:
            del self._cache[index - self._cache_first :]
        self._last = index - 1

    def compact(self, snapshot: Snapshot) -> None:
        """Store a locally taken snapshot durably and discard entries up to its index.

        Raises:
            SnapshotOutOfDateError: the log is already compacted to that index.
            UnavailableError: the index is beyond the last entry.
            ValueError: the snapshot's term does not match the log.
        """
        self._check_writable()
        index = snapshot.index
        if index <= self._snapshot.index:
            raise SnapshotOutOfDateError(f"already compacted to {self._snapshot.index}")
        if index > self._last:
            raise UnavailableError(f"compact index {index} beyond last {self._last}")
        if self.term(index) != snapshot.term:
            raise ValueError("snapshot term does not match the log")
        self.sync()  # the snapshot must never be durable ahead of the log it covers
        self._write_snapshot(snapshot)
        self._snapshot = snapshot
        self._snap_index = snapshot.index
        if self._cache_first <= index:
            del self._cache[: index + 1 - self._cache_first]
            self._cache_first = index + 1
        self._after_snapshot()

    def apply_snapshot(self, snapshot: Snapshot) -> None:
        """Install a snapshot from the leader durably, replacing the whole log.

        Raises:
            SnapshotOutOfDateError: it is not newer than the current snapshot.
        """
        self._check_writable()
        if snapshot.index <= self._snapshot.index:
            raise SnapshotOutOfDateError(
                f"snapshot at {snapshot.index} is not newer than {self._snapshot.index}"
            )
        self.sync()
        self._write_snapshot(snapshot)
        # The RESET record tells replay to drop the old log even where it happens to
        # agree with the snapshot. Until it is durable, recovery falls back on the
        # Raft rule (keep a suffix whose entry at the snapshot index matches its term).
        record = _wal.encode_reset(snapshot.index, snapshot.term)

        def write() -> None:
            prefix = self._roll_if_needed(len(record))
            if self._active_size + len(prefix) + len(record) > self._allocated:
                self._allocate(self._active_size + len(prefix) + len(record))
            self._active.write(prefix + record)
            self._active_size += len(prefix) + len(record)
            self._dirty = True
            self._sync_active()

        self._run_guarded(write)
        self._snapshot = snapshot
        self._snap_index = snapshot.index
        self._last = snapshot.index
        del self._run_starts[:], self._run_terms[:]
        del self._rec_first[:], self._rec_seq[:], self._rec_off[:], self._rec_len[:]
        self._cache = []
        self._cache_first = snapshot.index + 1
        self._after_snapshot()

    def _write_snapshot(self, snapshot: Snapshot) -> None:
        name = _wal.snapshot_name(snapshot.index, snapshot.term)
        final = posixpath.join(self._dir, name)
        temp = final + ".tmp"
        data = _wal.encode_snapshot(snapshot)
        if self._fs.exists(temp):
            self._fs.remove(temp)
        handle = self._fs.open_append(temp)
        try:
            handle.write(data)
            if self._fsync:
                handle.fsync()
        finally:
            handle.close()
        self._fs.rename(temp, final)
        self._sync_dir()
        self._snapshot_name = name

    def _after_snapshot(self) -> None:
        """Delete what the new (durable) snapshot made useless. Failures only log."""
        try:
            for name in self._fs.listdir(self._dir):
                if _wal.parse_snapshot_name(name) is not None and name != self._snapshot_name:
                    self._fs.remove(posixpath.join(self._dir, name))
            self._delete_compacted_segments()
        except OSError as exc:
            log.warning("could not remove compacted files in %s: %s", self._dir, exc)

    def _delete_compacted_segments(self) -> None:
        snap_index = self._snapshot.index
        while len(self._segments) > 1:
            seq = self._segments[0]
            # Entries still live in segments <= seq end where the next segment's
            # first record begins (live entries are ordered by segment).
            p = bisect.bisect_right(self._rec_seq, seq)
            next_first = self._rec_first[p] if p < len(self._rec_first) else self._last + 1
            if next_first - 1 > snap_index:
                break
            self._segments.pop(0)
            if p:
                del self._rec_first[:p], self._rec_seq[:p], self._rec_off[:p], self._rec_len[:p]
            path = self._segment_path(seq)
            if self._fs.exists(path):  # an earlier attempt may have removed it already
                self._fs.remove(path)
            # Rule 5: the next removal may only happen once this one is durable.
            self._sync_dir()
        p = bisect.bisect_right(self._run_starts, snap_index + 1) - 1
        if p > 0:
            del self._run_starts[:p], self._run_terms[:p]

    def _roll_if_needed(self, incoming: int) -> bytes:
        """Start a new segment if `incoming` bytes would overfill the current one.

        Returns:
            Bytes to write before the record: the hard state that opens a segment.
        """
        if self._active_size == 0 or self._active_size + incoming <= self._segment_bytes:
            return b""
        if self._dirty:
            self._sync_active()  # never leave an unsynced tail in a non-last segment
        self._active.close()
        seq = self._active_seq + 1
        self._active = self._fs.open_append(self._segment_path(seq))
        self._active_seq = seq
        self._active_size = self._active.tell()
        self._allocated = self._allocated_end()
        self._segments.append(seq)
        self._sync_dir()
        record, _ = _wal.encode_batch(self._hs, ())
        return record

    def close(self) -> None:
        """Sync pending writes and release the segment file. Idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._dirty and self._failed is None:
                self._sync_active()
        finally:
            try:
                self._active.close()
            finally:
                self._lock.release()

    def __enter__(self) -> DiskStorage:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- helpers ---------------------------------------------------------------------

    def _segment_path(self, seq: int) -> str:
        return posixpath.join(self._dir, _wal.segment_name(seq))

    def _allocate(self, needed: int) -> None:
        """Extend the active segment with zeros to hold `needed` bytes, and a
        preallocation step more while the segment has room (Rule 6). Syncs the
        file: the new size is then durable, and so is every record before it."""
        self._active.allocate(max(needed, min(self._allocated + self._preallocate, self._segment_bytes)))
        self._allocated = self._active.allocated()
        self._sync_active()

    def _allocated_end(self) -> int:
        """Where the active segment's zeros end; without preallocation, never (the
        file just grows)."""
        return self._active.allocated() if self._preallocate else 1 << 62

    def _sync_active(self) -> None:
        if self._fsync:
            self._active.fsync()
        self._dirty = False

    def _sync_dir(self) -> None:
        if self._fsync:
            self._fs.fsync_dir(self._dir)

    def _check_writable(self) -> None:
        if self._closed:
            raise StorageError("storage is closed")
        if self._failed is not None:
            raise StorageError(f"an earlier write failed ({self._failed!r}); reopen the storage") from self._failed

    def _run_guarded(self, action: Any) -> Any:
        # After a failed write or fsync the file's state is unknown (the page cache may
        # even have dropped the dirty pages): refuse further writes until reopened,
        # when recovery re-reads what really is on disk.
        try:
            return action()
        except BaseException as exc:
            self._failed = exc
            raise


def _size(entries: list[Entry]) -> int:
    return sum(len(e.data) for e in entries) + 16 * len(entries)


def inspect_data_dir(path: str, fs: FileSystem | None = None) -> dict[str, Any]:
    """Describe a data directory without modifying it.

    Returns:
        A JSON-serializable dict: ``segments`` (name, size, used (where the records
        end; preallocated zeros follow), first_index, last_index, records,
        torn_tail), ``snapshots`` (name, index, term, size, valid, error),
        ``hard_state``, ``first_index``, ``last_index``, ``snapshot_index`` and
        ``error`` (a corruption that would stop `DiskStorage` from opening, else None).
    """
    fs = fs if fs is not None else OsFileSystem()
    result: dict[str, Any] = {"path": path, "error": None}
    try:
        recovered = _recover(fs, path)
    except CorruptionError as exc:
        result["error"] = {"message": str(exc), "file": exc.path, "offset": exc.offset}
        # Still list the files so the operator can see what is there.
        names = fs.listdir(path) if fs.exists(path) else []
        result["segments"] = [
            {"name": n, "size": fs.size(posixpath.join(path, n))}
            for n in names
            if _wal.parse_segment_name(n) is not None
        ]
        result["snapshots"] = [{"name": n} for n in names if _wal.parse_snapshot_name(n) is not None]
        return result
    replay = recovered.replay
    hs = replay.hard_state
    result.update(
        segments=recovered.segment_info,
        snapshots=recovered.snapshots,
        hard_state={"term": hs.term, "vote": hs.vote, "commit": hs.commit},
        snapshot_index=recovered.snapshot.index,
        snapshot_term=recovered.snapshot.term,
        first_index=recovered.snapshot.index + 1,
        last_index=replay.last,
        temp_files=recovered.temp_files,
    )
    return result
