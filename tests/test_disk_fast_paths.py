"""DiskStorage's shortcuts give the same results as the long way round."""

from __future__ import annotations

import copy
import random

from raft.disk_storage import DiskStorage
from raft.fs import MemoryFileSystem
from raft.types import Entry, EntryType, HardState

D = "/data"


class CountingFs(MemoryFileSystem):
    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    def read(self, path: str, offset: int = 0, length: int | None = None) -> bytes:
        self.reads += 1
        return super().read(path, offset, length)


def _filled(fs: MemoryFileSystem, last: int, **kwargs) -> None:
    s = DiskStorage(D, fs=fs, segment_bytes=4096, **kwargs)
    for i in range(1, last + 1):
        s.save(HardState(term=1 + i // 50, vote=1, commit=i - 1), [Entry(1 + i // 50, i, EntryType.NORMAL, b"x%d" % i)])
    s.close()


def test_a_full_read_after_reopening_warms_the_cache() -> None:
    fs = CountingFs()
    _filled(fs, 300)
    s = DiskStorage(D, fs=fs, segment_bytes=4096)
    first = s.entries(1, 301)
    assert [e.index for e in first] == list(range(1, 301))
    reads = fs.reads
    assert s.entries(1, 301) == first
    assert s.entries(7, 250) == first[6:249]
    assert s.entries(1, 301, max_bytes=100) == first[: len(s.entries(1, 301, max_bytes=100))]
    assert fs.reads == reads  # served from memory
    # The log keeps working on top of a warmed cache.
    s.save(None, [Entry(9, 150, EntryType.NORMAL, b"new")])
    assert s.entries(148, 151) == first[147:149] + [Entry(9, 150, EntryType.NORMAL, b"new")]
    assert s.last_index() == 150


def test_a_small_cache_is_not_overfilled() -> None:
    fs = CountingFs()
    _filled(fs, 120)
    s = DiskStorage(D, fs=fs, segment_bytes=4096, cache_entries=50)
    whole = s.entries(1, 121)
    again = s.entries(1, 121)
    assert whole == again and len(whole) == 120
    assert len(s._cache) <= 50


def test_random_reads_match_a_cold_storage() -> None:
    rng = random.Random(3)
    fs = MemoryFileSystem()
    _filled(fs, 200)
    warm = DiskStorage(D, fs=fs, segment_bytes=4096)
    for step in range(300):
        last = warm.last_index()
        if step % 5 == 4:  # overwrite a suffix, or append
            index = rng.randint(max(1, last - 30), last + 1)
            term = warm.term(index - 1) + rng.randint(0, 1)
            warm.save(None, [Entry(term, i, EntryType.NORMAL, b"w%d" % i) for i in range(index, index + rng.randint(1, 3))])
            continue
        lo = rng.randint(1, last)
        hi = rng.randint(lo, last + 1)
        max_bytes = rng.choice([None, 1, 50, 500])
        # A second storage may not open the directory the warm one holds: read a
        # copy of the disk as a restarted process would (every save was fsynced).
        disk = copy.deepcopy(fs)
        disk.crash()
        cold = DiskStorage(D, fs=disk, segment_bytes=4096, cache_entries=1)
        assert warm.entries(lo, hi, max_bytes) == cold.entries(lo, hi, max_bytes)
        cold.close()
