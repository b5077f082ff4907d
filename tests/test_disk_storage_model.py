"""Hypothesis: DiskStorage behaves exactly like MemoryStorage, across reopens and crashes."""

from __future__ import annotations

import random

import hypothesis.strategies as st
from hypothesis import settings
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from raft.disk_storage import DiskStorage
from raft.errors import StorageError
from raft.fs import MemoryFileSystem
from raft.storage import MemoryStorage
from raft.types import ConfState, Entry, EntryType, HardState, Snapshot, SnapshotMetadata

D = "/data"


def outcome(call):
    """The result of `call`, or the type of the exception it raised."""
    try:
        return ("ok", call())
    except (StorageError, ValueError) as exc:
        return ("error", type(exc))


class DiskMatchesMemory(RuleBasedStateMachine):
    @initialize(segment_bytes=st.sampled_from([120, 300, 1 << 20]), cache=st.sampled_from([1, 3, 1000]))
    def start(self, segment_bytes: int, cache: int) -> None:
        self.fs = MemoryFileSystem()
        self.kwargs = {"segment_bytes": segment_bytes, "cache_entries": cache}
        self.disk = DiskStorage(D, fs=self.fs, **self.kwargs)
        self.model = MemoryStorage()
        self.term = 1

    @rule(
        back=st.integers(0, 4),
        count=st.integers(0, 5),
        bump=st.booleans(),
        hs=st.none() | st.tuples(st.integers(0, 5), st.integers(0, 3), st.integers(0, 9)),
        size=st.integers(0, 40),
        kind=st.sampled_from(list(EntryType)),
        gap=st.integers(0, 10).map(lambda n: n == 0),
    )
    def save(self, back, count, bump, hs, size, kind, gap) -> None:
        self.term += bump
        lo = self.model.last_index() + 1 - back + (2 if gap else 0)
        lo = max(lo, 1)
        entries = [Entry(self.term, i, kind, bytes([i % 256]) * size) for i in range(lo, lo + count)]
        hard_state = HardState(*hs) if hs is not None else None
        expected = outcome(lambda: self.model.save(hard_state, entries))
        got = outcome(lambda: self.disk.save(hard_state, entries))
        assert got[0] == expected[0] and (got[0] == "ok" or got[1] == expected[1]), (got, expected)

    @rule(pick=st.integers(0, 100), term_ok=st.integers(0, 9).map(lambda n: n > 0))
    def compact(self, pick, term_ok) -> None:
        first, last = self.model.first_index() - 1, self.model.last_index() + 1
        index = first + pick % (last - first + 1)
        try:
            term = self.model.term(index)
        except StorageError:
            term = 1
        if not term_ok:
            term += 1
        s = Snapshot(SnapshotMetadata(index, term, ConfState(voters={1, 2})), b"c%d" % index)
        expected = outcome(lambda: self.model.compact(s))
        got = outcome(lambda: self.disk.compact(s))
        assert got == expected

    @rule(delta=st.integers(-2, 6), data=st.binary(max_size=20))
    def apply_snapshot(self, delta, data) -> None:
        index = max(0, self.model.last_index() + delta)
        s = Snapshot(SnapshotMetadata(index, self.term, ConfState(voters={1}, learners={5})), data)
        expected = outcome(lambda: self.model.apply_snapshot(s))
        got = outcome(lambda: self.disk.apply_snapshot(s))
        assert got == expected

    @rule()
    def reopen(self) -> None:
        self.disk.close()
        self.disk = DiskStorage(D, fs=self.fs, **self.kwargs)

    @rule(seed=st.integers(0, 2**16))
    def power_cut(self, seed) -> None:
        # Every operation synced, so even a tearing crash must lose nothing.
        self.fs.crash(random.Random(seed))
        self.disk = DiskStorage(D, fs=self.fs, **self.kwargs)

    @rule(lo_pick=st.integers(0, 50), span=st.integers(0, 10), max_bytes=st.none() | st.integers(0, 120))
    def read_range(self, lo_pick, span, max_bytes) -> None:
        lo = self.model.first_index() - 1 + lo_pick % (self.model.last_index() - self.model.first_index() + 3)
        hi = lo + span
        expected = outcome(lambda: self.model.entries(lo, hi, max_bytes))
        got = outcome(lambda: self.disk.entries(lo, hi, max_bytes))
        assert got == expected, (lo, hi, max_bytes)

    @invariant()
    def same_observable_state(self) -> None:
        disk, model = self.disk, self.model
        assert disk.initial_state() == model.initial_state()
        assert disk.snapshot() == model.snapshot()
        first, last = model.first_index(), model.last_index()
        assert (disk.first_index(), disk.last_index()) == (first, last)
        for index in range(first - 1, last + 1):
            assert disk.term(index) == model.term(index)
        assert outcome(lambda: disk.term(first - 2))[0] == outcome(lambda: model.term(first - 2))[0]
        assert outcome(lambda: disk.term(last + 1)) == outcome(lambda: model.term(last + 1))
        if last >= first:
            assert disk.entries(first, last + 1) == model.entries(first, last + 1)


TestDiskMatchesMemory = DiskMatchesMemory.TestCase
TestDiskMatchesMemory.settings = settings(max_examples=60, stateful_step_count=30, deadline=None)
