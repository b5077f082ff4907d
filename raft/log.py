"""The node's view of its log: stable entries in `Storage` plus an unstable tail.

Entries the node has appended but the driver has not yet persisted live in the
*unstable* part (with, possibly, a snapshot received from the leader and not yet
installed). `Ready.entries` / `Ready.snapshot` hand them to the driver; `stable_to`
and `stable_snap_to` drop them once the driver reports them persisted. Lookups
consult the unstable part first because it may overwrite a stale stable suffix.
"""

from __future__ import annotations

from .errors import CompactedError, UnavailableError
from .storage import Storage, limit_size
from .types import Entry, Snapshot


class RaftLog:
    """Log of one node. Invariant: applied <= committed <= last_index()."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        first = storage.first_index()
        last = storage.last_index()
        self.unstable_offset = last + 1
        self.unstable_entries: list[Entry] = []
        self.unstable_snapshot: Snapshot | None = None
        self.committed = first - 1
        self.applied = first - 1

    # -- boundaries ----------------------------------------------------------------

    def first_index(self) -> int:
        if self.unstable_snapshot is not None:
            return self.unstable_snapshot.index + 1
        return self.storage.first_index()

    def last_index(self) -> int:
        # unstable_offset is always one past the stable log: storage's last index,
        # or the pending snapshot's (restore() sets it, stable_to() moves it with the
        # entries the driver persisted). So no storage call is needed here.
        return self.unstable_offset + len(self.unstable_entries) - 1

    def stable_last_index(self) -> int:
        """The last index the driver has reported persisted (`stable_to`)."""
        return self.unstable_offset - 1

    def last_term(self) -> int:
        return self.term(self.last_index())

    # -- lookups -------------------------------------------------------------------

    def term(self, index: int) -> int:
        """Term of the entry at `index`.

        Raises:
            CompactedError / UnavailableError: the index is outside the log.
        """
        offset = self.unstable_offset
        if index >= offset:
            pos = index - offset
            if pos < len(self.unstable_entries):
                return self.unstable_entries[pos].term
            if not (self.unstable_snapshot is not None and index == self.unstable_snapshot.index):
                raise UnavailableError(f"index {index} beyond last {self.last_index()}")
        snap = self.unstable_snapshot
        if snap is not None:
            if index == snap.index:
                return snap.term
            raise CompactedError(f"index {index} is covered by the pending snapshot")
        return self.storage.term(index)

    def term_or_zero(self, index: int) -> int:
        """Like `term`, but 0 for an index outside the log."""
        try:
            return self.term(index)
        except (CompactedError, UnavailableError):
            return 0

    def match_term(self, index: int, term: int) -> bool:
        try:
            return self.term(index) == term
        except (CompactedError, UnavailableError):
            return False

    def entries(self, lo: int, hi: int, max_bytes: int | None = None) -> list[Entry]:
        """Entries in [lo, hi), limited to about `max_bytes` (at least one)."""
        if lo >= hi:
            return []
        offset = self.unstable_offset
        if hi <= offset and self.unstable_snapshot is None:
            # All stable (the usual case once the driver persisted the tail):
            # storage checks the same bounds and limits the size itself.
            return self.storage.entries(lo, hi, max_bytes)
        if lo >= offset:
            # All unstable (a leader streaming what it just appended): nothing
            # before offset is involved, so only the upper bound needs a check.
            unstable = self.unstable_entries
            if hi > offset + len(unstable):
                raise UnavailableError(f"index {hi - 1} beyond last {self.last_index()}")
            result = unstable[lo - offset : hi - offset]
            # One entry is always within the limit: skip the call.
            return limit_size(result, max_bytes) if max_bytes is not None and hi - lo > 1 else result
        if lo < self.first_index():
            raise CompactedError(f"index {lo} compacted (first is {self.first_index()})")
        if hi > self.last_index() + 1:
            raise UnavailableError(f"index {hi - 1} beyond last {self.last_index()}")
        result = self.storage.entries(lo, min(hi, offset))
        if hi > offset:
            result = result + self.unstable_entries[: hi - offset]
        if max_bytes is not None:
            result = limit_size(result, max_bytes)
        return result

    def is_up_to_date(self, last_index: int, last_term: int) -> bool:
        """Whether a log ending at (last_index, last_term) is at least as up to date
        as ours (Raft §5.4.1)."""
        our_term = self.last_term()
        return last_term > our_term or (last_term == our_term and last_index >= self.last_index())

    def find_conflict(self, entries: tuple[Entry, ...] | list[Entry]) -> int:
        """Index of the first entry that is new or conflicts with ours; 0 if none."""
        last = self.last_index()
        for e in entries:
            if e.index > last or not self.match_term(e.index, e.term):
                return e.index
        return 0

    def find_conflict_by_term(self, index: int, term: int) -> tuple[int, int]:
        """Largest index <= `index` whose term is <= `term`, with that term.

        This is the fast-backtracking hint: everything after it is known to differ
        from a log whose entry at `index` has term `term`, so the leader can skip a
        whole term per round trip instead of one entry.
        """
        index = min(index, self.last_index())
        while index > 0:
            try:
                t = self.term(index)
            except CompactedError:
                return index, 0
            if t <= term:
                return index, t
            index -= 1
        return 0, 0

    # -- mutation ------------------------------------------------------------------

    def append(self, entries: list[Entry] | tuple[Entry, ...]) -> int:
        """Append entries (the first may overwrite a suffix). Returns the last index."""
        if not entries:
            return self.last_index()
        after = entries[0].index
        if after - 1 < self.committed:
            raise ValueError(f"cannot overwrite committed entry {after} (commit {self.committed})")
        offset = self.unstable_offset
        unstable = self.unstable_entries
        if after == offset + len(unstable):
            unstable.extend(entries)
            return after + len(entries) - 1  # == last_index(), the usual case
        if after <= offset:
            # The new entries replace part of the stable log too; the driver's save()
            # overwrites it when it persists them.
            self.unstable_offset = after
            self.unstable_entries = list(entries)
        elif after <= offset + len(unstable):
            del unstable[after - offset :]
            unstable.extend(entries)
        else:
            raise ValueError(f"entries from {after} would leave a gap after {self.last_index()}")
        return self.last_index()

    def append_one(self, entry: Entry) -> None:
        """Append one entry right after the last (the leader's proposal path)."""
        unstable = self.unstable_entries
        if entry.index == self.unstable_offset + len(unstable):
            unstable.append(entry)
        else:
            self.append((entry,))

    def commit_to(self, index: int) -> bool:
        if index > self.committed:
            self.committed = min(index, self.last_index())
            return True
        return False

    def maybe_commit(self, index: int, term: int) -> bool:
        """Commit up to `index` if that entry is of `term` (never count old terms)."""
        if index > self.committed and self.term_or_zero(index) == term:
            self.committed = index
            return True
        return False

    def applied_to(self, index: int) -> None:
        if index > self.applied:
            self.applied = min(index, self.committed)

    def stable_to(self, index: int, term: int) -> None:
        """The driver persisted entries up to (index, term)."""
        offset = self.unstable_offset
        pos = index - offset
        if pos < 0 or pos >= len(self.unstable_entries):
            return
        if self.unstable_entries[pos].term != term:
            return  # overwritten meanwhile; keep the newer entries unstable
        del self.unstable_entries[: pos + 1]
        self.unstable_offset = index + 1

    def stable_snap_to(self, index: int) -> None:
        if self.unstable_snapshot is not None and self.unstable_snapshot.index == index:
            self.unstable_snapshot = None

    def restore(self, snapshot: Snapshot) -> None:
        """Replace the whole log with a snapshot received from the leader."""
        self.committed = snapshot.index
        self.unstable_offset = snapshot.index + 1
        self.unstable_entries = []
        self.unstable_snapshot = snapshot

    # -- what the driver must do -------------------------------------------------------

    def has_next_committed(self) -> bool:
        # Checked after every input; nearly always everything committed is applied,
        # which settles it without asking storage for its first index.
        if self.committed <= self.applied or self.unstable_snapshot is not None:
            return False
        return self.committed > self.first_index() - 1

    def next_committed(self) -> list[Entry]:
        if self.committed <= self.applied or self.unstable_snapshot is not None:
            return []
        lo = self.applied + 1
        first = self.storage.first_index()  # == first_index(): no snapshot is pending
        if lo < first:
            lo = first
        if self.committed < lo:
            return []
        return self.entries(lo, self.committed + 1)
