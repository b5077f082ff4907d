"""DiskStorage: round trips, crash consistency, corruption, snapshot atomicity."""

from __future__ import annotations

import copy
import logging
import random

import pytest

from raft.disk_storage import DiskStorage, inspect_data_dir
from raft.errors import (
    CompactedError,
    CorruptionError,
    SnapshotOutOfDateError,
    StorageError,
    UnavailableError,
)
from raft.fs import InjectedFault, MemoryFileSystem, OsFileSystem
from raft.storage import WritableStorage
from raft.types import ConfState, Entry, EntryType, HardState, Snapshot, SnapshotMetadata

D = "/data"
CONF = ConfState(voters={1, 2, 3}, learners={4})


def ents(lo: int, hi: int, term: int = 1, size: int = 10) -> list[Entry]:
    return [Entry(term, i, EntryType.NORMAL, bytes([i % 251]) * size) for i in range(lo, hi)]


def snap(index: int, term: int, data: bytes = b"state") -> Snapshot:
    return Snapshot(SnapshotMetadata(index=index, term=term, conf_state=CONF), data)


def state(s: DiskStorage) -> tuple:
    """Everything observable through the Storage interface."""
    first, last = s.first_index(), s.last_index()
    entries = s.entries(first, last + 1) if last >= first else []
    return (s.initial_state(), first, last, s.snapshot(), tuple(entries), s.term(first - 1))


def reopen(fs: MemoryFileSystem, **kwargs) -> DiskStorage:
    return DiskStorage(D, fs=fs, **kwargs)


def files(fs: MemoryFileSystem) -> dict[str, bytes]:
    return {n: fs.read(f"{D}/{n}") for n in fs.listdir(D)}


def segments(fs: MemoryFileSystem) -> list[str]:
    return [n for n in fs.listdir(D) if n.endswith(".seg")]


def used(fs: MemoryFileSystem, path: str) -> int:
    """Where the records of segment `path` end (preallocated zeros may follow)."""
    name = path.rsplit("/", 1)[-1]
    return next(x["used"] for x in inspect_data_dir(D, fs)["segments"] if x["name"] == name)


# -- round trips ----------------------------------------------------------------------


def test_implements_writable_storage() -> None:
    s = DiskStorage(D, fs=MemoryFileSystem())
    assert isinstance(s, WritableStorage)


def test_empty_storage_reads_like_memory_storage() -> None:
    s = DiskStorage(D, fs=MemoryFileSystem())
    assert s.initial_state() == (HardState(), ConfState())
    assert (s.first_index(), s.last_index(), s.term(0)) == (1, 0, 0)
    assert s.entries(1, 1) == []
    with pytest.raises(UnavailableError):
        s.term(1)
    with pytest.raises(CompactedError):
        s.entries(0, 1)


@pytest.mark.parametrize("use_os", [False, True])
def test_round_trip_after_reopen(tmp_path, use_os: bool) -> None:
    fs = OsFileSystem() if use_os else MemoryFileSystem()
    path = str(tmp_path / "node") if use_os else D
    s = DiskStorage(path, fs=fs)
    assert s.save(HardState(1, 1, 0), ents(1, 6)) is True
    s.save(HardState(2, 3, 4), [Entry(2, 6, EntryType.CONF_CHANGE, b"cc"), Entry(2, 7, data=b"")])
    before = state(s)
    s.close()
    s2 = DiskStorage(path, fs=fs)
    assert state(s2) == before
    assert s2.hard_state == HardState(2, 3, 4)
    assert s2.entries(6, 8)[0].type is EntryType.CONF_CHANGE
    assert s2.term(7) == 2 and s2.term(5) == 1
    s2.close()


def test_segment_rollover_and_reads_across_segments() -> None:
    fs = MemoryFileSystem()
    s = reopen(fs, segment_bytes=256, cache_entries=4)
    for i in range(1, 101):
        s.save(HardState(1 + i // 30, 1, i - 1), [Entry(1 + i // 30, i, data=b"p" * (i % 17))])
    assert len(segments(fs)) > 10
    before = state(s)
    # Reads below the small cache go to the segment files.
    assert [e.index for e in s.entries(3, 50)] == list(range(3, 50))
    s.close()
    s2 = reopen(fs, segment_bytes=256)
    assert state(s2) == before
    assert s2.entries(10, 90, max_bytes=100) == s2.entries(10, 90)[: len(s2.entries(10, 90, max_bytes=100))]
    assert len(s2.entries(10, 90, max_bytes=0)) == 1


def test_conflicting_suffix_is_replaced_durably() -> None:
    fs = MemoryFileSystem()
    s = reopen(fs, segment_bytes=300)
    s.save(HardState(1, 1, 0), ents(1, 21, term=1))
    s.save(HardState(2, 2, 0), ents(8, 12, term=2))
    assert s.last_index() == 11 and s.term(7) == 1 and s.term(8) == 2
    with pytest.raises(UnavailableError):
        s.entries(1, 13)
    s.save(None, ents(12, 15, term=2))
    expected = ents(1, 8, term=1) + ents(8, 15, term=2)
    assert s.entries(1, 15) == expected
    fs.crash()
    s2 = reopen(fs, segment_bytes=300)
    assert s2.entries(1, 15) == expected and s2.last_index() == 14


def test_compaction_round_trip_and_segment_deletion() -> None:
    fs = MemoryFileSystem()
    s = reopen(fs, segment_bytes=200)
    for i in range(1, 61):
        s.save(HardState(1, 1, i - 1), ents(i, i + 1))
    n_before = len(segments(fs))
    s.compact(snap(40, 1))
    assert len(segments(fs)) < n_before
    assert s.first_index() == 41 and s.term(40) == 1
    with pytest.raises(CompactedError):
        s.entries(40, 42)
    with pytest.raises(CompactedError):
        s.term(39)
    before = state(s)
    fs.crash()
    s2 = reopen(fs, segment_bytes=200)
    assert state(s2) == before
    assert s2.snapshot() == snap(40, 1)
    assert s2.hard_state == HardState(1, 1, 59)  # survived deletion of old segments
    assert [n for n in fs.listdir(D) if n.endswith(".snap")] == ["snap-00000000000000000040-00000000000000000001.snap"]


def test_compact_errors_match_memory_storage() -> None:
    s = DiskStorage(D, fs=MemoryFileSystem())
    s.save(None, ents(1, 5))
    with pytest.raises(UnavailableError):
        s.compact(snap(9, 1))
    with pytest.raises(ValueError):
        s.compact(snap(3, 7))
    s.compact(snap(3, 1))
    with pytest.raises(SnapshotOutOfDateError):
        s.compact(snap(3, 1))


def test_apply_snapshot_replaces_the_log() -> None:
    fs = MemoryFileSystem()
    s = reopen(fs, segment_bytes=200)
    s.save(HardState(1, 1, 3), ents(1, 31))
    s.apply_snapshot(snap(20, 1, b"leader"))  # agrees with the log, still replaces it
    assert (s.first_index(), s.last_index()) == (21, 20)
    s.save(None, ents(21, 23, term=3))
    with pytest.raises(SnapshotOutOfDateError):
        s.apply_snapshot(snap(20, 1))
    before = state(s)
    assert len(segments(fs)) == 1
    fs.crash()
    s2 = reopen(fs, segment_bytes=200)
    assert state(s2) == before
    assert s2.snapshot().data == b"leader"
    assert s2.initial_state()[1] == CONF


def test_save_validation_and_compacted_entries_are_ignored() -> None:
    s = DiskStorage(D, fs=MemoryFileSystem())
    s.save(None, ents(1, 11))
    with pytest.raises(UnavailableError):
        s.save(None, ents(13, 14))
    with pytest.raises(ValueError):
        s.save(None, [Entry(1, 11), Entry(1, 13)])
    s.compact(snap(5, 1))
    s.save(None, ents(3, 13))  # 3..5 are compacted: ignored
    assert s.first_index() == 6 and s.last_index() == 12
    assert s.save(None, ents(1, 4)) is False  # entirely compacted, nothing to do
    assert s.save(HardState(), []) is False  # unchanged hard state: no sync needed


def test_unsynced_saves_become_durable_with_sync() -> None:
    fs = MemoryFileSystem()
    s = reopen(fs)
    assert s.save(HardState(1, 0, 0), ents(1, 3), sync=False) is False
    fs2 = copy.deepcopy(fs)
    fs2.crash()
    assert reopen(fs2).last_index() == 0
    s.sync()
    fs.crash()
    assert reopen(fs).last_index() == 2


def test_a_failed_write_poisons_the_storage() -> None:
    fs = MemoryFileSystem()
    s = reopen(fs)
    s.save(None, ents(1, 3))
    fs.fail_after(1)  # the write succeeds, the fsync fails
    with pytest.raises(InjectedFault):
        s.save(None, ents(3, 5))
    assert s.last_index() == 2  # memory never ran ahead of the disk
    fs.fail_after(None)
    with pytest.raises(StorageError):
        s.save(None, ents(3, 5))
    fs.crash()
    assert reopen(fs).last_index() == 2


def test_unsafe_no_fsync_loses_data_on_crash_as_documented() -> None:
    fs = MemoryFileSystem()
    s = reopen(fs, unsafe_no_fsync=True)
    s.save(HardState(1, 1, 0), ents(1, 5))
    assert s.entries(1, 5) == ents(1, 5)
    fs.crash()
    assert not fs.exists(D + "/wal-0000000000000001.seg")  # not even the name survived


# -- crash at every byte offset of the last write --------------------------------------


def _durable_copy(files_: dict[str, bytes]) -> MemoryFileSystem:
    fs = MemoryFileSystem()
    fs.makedirs(D)
    for name, data in files_.items():
        f = fs.open_append(f"{D}/{name}")
        f.write(data)
        f.fsync()
        f.close()
    fs.fsync_dir(D)
    return fs


@pytest.mark.parametrize("preallocate", [0, 4096])
@pytest.mark.parametrize("rolls", [False, True])
def test_crash_at_every_byte_offset_of_the_last_write(rolls: bool, preallocate: int) -> None:
    fs = MemoryFileSystem()
    # A segment size the last write overflows (rolls=True) or not; a segment that
    # grows with each write, or one preallocated with zeros the write overwrites.
    options = dict(segment_bytes=500 if rolls else 1 << 20, preallocate_bytes=preallocate)
    s = reopen(fs, **options)
    s.save(HardState(1, 1, 0), ents(1, 4, size=20))
    s.save(HardState(1, 1, 2), ents(4, 7, size=20))
    synced = state(s)
    before = files(fs)
    # The interrupted write: a conflicting suffix, new entries, a new hard state.
    s.save(HardState(2, 2, 3), ents(5, 12, term=2, size=30))
    after = files(fs)
    full = state(s)
    changed = sorted(n for n in after if after[n] != before.get(n))
    assert len(changed) == 1 and (not rolls or changed[0] not in before)
    last_seg = changed[0]
    old = before.get(last_seg, b"")
    new = after[last_seg]
    start = next((i for i, (a, b) in enumerate(zip(old, new)) if a != b), len(old))
    assert preallocate or start == len(old)
    outcomes = set()
    for cut in range(start, len(new) + 1):
        # The crash kept a prefix of the write; the old bytes (zeros) stay after it.
        crashed = dict(after)
        crashed[last_seg] = new[:cut] + old[cut:]
        fs2 = _durable_copy(crashed)
        s2 = reopen(fs2, **options)
        got = state(s2)
        # All or nothing: never a partial record, never a lost fsynced one.
        assert got in (synced, full), f"cut at {cut}"
        outcomes.add(got == full)
        # The torn tail was cut off durably; writing again works and survives.
        s2.save(None, [Entry(9, s2.last_index() + 1, data=b"after")])
        fs2.crash()
        s3 = reopen(fs2, **options)
        assert s3.entries(s3.last_index(), s3.last_index() + 1)[0].data == b"after"
    assert outcomes == {False, True}


def test_torn_tail_is_logged(caplog) -> None:
    fs = MemoryFileSystem()
    s = reopen(fs)
    s.save(None, ents(1, 3))
    s.save(None, ents(3, 5))
    seg = f"{D}/{segments(fs)[0]}"
    data = fs.read(seg)
    fs2 = _durable_copy({segments(fs)[0]: data[: used(fs, seg) - 3]})
    with caplog.at_level(logging.WARNING, logger="raft.disk_storage"):
        s2 = reopen(fs2)
    assert s2.last_index() == 2
    assert "torn tail" in caplog.text and seg in caplog.text


# -- write loss under a power cut -------------------------------------------------------


@pytest.mark.parametrize("seed", range(40))
def test_crash_keeps_exactly_what_was_synced(seed: int) -> None:
    rng = random.Random(seed)
    tear = seed % 2 == 1
    fs = MemoryFileSystem()
    kwargs = {"segment_bytes": rng.choice([150, 400, 1 << 20])}
    s = reopen(fs, **kwargs)
    # States reachable by the crash: the last synced one, plus any later unsynced one.
    candidates = [state(s)]
    term = 1
    for _step in range(rng.randint(1, 40)):
        op = rng.random()
        sync = rng.random() < 0.8
        if op < 0.7:
            lo = rng.randint(max(s.first_index(), s.last_index() - 3), s.last_index() + 1)
            term += rng.random() < 0.3
            new = ents(lo, lo + rng.randint(0, 6), term=term, size=rng.randint(0, 40))
            hs = HardState(term, rng.randint(0, 3), rng.randint(0, 5)) if rng.random() < 0.7 else None
            s.save(hs, new, sync=sync)
        elif op < 0.85 and s.last_index() > s.first_index():
            index = rng.randint(s.first_index(), s.last_index())
            s.compact(snap(index, s.term(index)))
            sync = True
        elif op < 0.95:
            index = s.last_index() + rng.randint(1, 5)
            s.apply_snapshot(snap(index, term))
            sync = True
        else:
            s.close()
            s = reopen(fs, **kwargs)
            sync = True
        if sync:
            candidates = [state(s)]
        else:
            candidates.append(state(s))
    fs.crash(random.Random(seed) if tear else None)
    recovered = state(reopen(fs, **kwargs))
    # Never less than what was synced, never a state that did not exist. (An
    # unsynced state can survive: a segment roll fsyncs the old segment, a
    # compaction syncs the log first, and a torn crash may keep whole records.)
    assert recovered in candidates
    if len(candidates) == 1:
        assert recovered == candidates[0]


# -- corruption -----------------------------------------------------------------------


def _three_record_segment() -> tuple[MemoryFileSystem, str, list[int]]:
    fs = MemoryFileSystem()
    s = reopen(fs)
    offsets = []
    for lo in (1, 4, 7):
        offsets.append(used(fs, f"{D}/{segments(fs)[0]}"))
        s.save(HardState(1, 1, lo), ents(lo, lo + 3, size=16))
    s.close()
    return fs, f"{D}/{segments(fs)[0]}", offsets


@pytest.mark.parametrize("where", ["header", "length", "payload"])
def test_corrupt_middle_record_refuses_to_open(where: str) -> None:
    fs, seg, offsets = _three_record_segment()
    delta = {"header": 0, "length": 5, "payload": 40}[where]
    fs.corrupt(seg, offsets[1] + delta, 0x10)
    snapshot_of_files = files(fs)
    with pytest.raises(CorruptionError) as info:
        reopen(fs)
    assert info.value.path == seg and info.value.offset == offsets[1]
    assert seg in str(info.value) and str(offsets[1]) in str(info.value)
    assert files(fs) == snapshot_of_files  # nothing was touched
    report = inspect_data_dir(D, fs)
    assert report["error"]["offset"] == offsets[1]


@pytest.mark.parametrize("delta", [0, 7, 30, -1])
def test_corrupt_last_record_is_cut_off(delta: int, caplog) -> None:
    fs, seg, offsets = _three_record_segment()
    size = used(fs, seg)
    fs.corrupt(seg, (offsets[2] + delta) if delta >= 0 else size - 1, 0x04)
    with caplog.at_level(logging.WARNING, logger="raft.disk_storage"):
        s = reopen(fs)
    assert s.last_index() == 6 and s.hard_state == HardState(1, 1, 4)
    assert fs.size(seg) == offsets[2]
    assert "torn tail" in caplog.text


def test_corruption_in_a_non_last_segment_is_never_a_torn_tail() -> None:
    fs = MemoryFileSystem()
    s = reopen(fs, segment_bytes=150)
    for i in range(1, 20):
        s.save(None, ents(i, i + 1, size=30))
    s.close()
    first = f"{D}/{segments(fs)[0]}"
    fs.corrupt(first, used(fs, first) - 2)
    with pytest.raises(CorruptionError) as info:
        reopen(fs, segment_bytes=150)
    assert info.value.path == first


def test_garbage_after_a_torn_tail_of_zeros_is_cut() -> None:
    fs, seg, offsets = _three_record_segment()
    data = fs.read(seg)
    fs2 = _durable_copy({seg.rsplit("/", 1)[1]: data + b"\x00" * 100})
    assert reopen(fs2).last_index() == 9


# -- snapshots under crashes ----------------------------------------------------------


def _with_snapshot() -> MemoryFileSystem:
    fs = MemoryFileSystem()
    s = reopen(fs, segment_bytes=200)
    s.save(HardState(1, 1, 5), ents(1, 31))
    s.compact(snap(10, 1, b"first"))
    s.close()
    return fs


@pytest.mark.parametrize("operation", ["compact", "apply_snapshot"])
@pytest.mark.parametrize("tear", [False, True])
def test_snapshot_crash_at_every_step(operation: str, tear: bool) -> None:
    base = _with_snapshot()
    outcomes = set()
    for step in range(60):
        fs = copy.deepcopy(base)
        s = reopen(fs, segment_bytes=200)
        old = state(s)
        fs.fail_after(step)
        finished = False
        try:
            if operation == "compact":
                s.compact(snap(20, 1, b"second"))
            else:
                s.apply_snapshot(snap(40, 2, b"second"))
            finished = True
        except InjectedFault:
            pass
        new = state(s) if finished else None
        fs.crash(random.Random(step) if tear else None)
        s2 = reopen(fs, segment_bytes=200)
        got = state(s2)
        assert s2.hard_state == HardState(1, 1, 5)
        if got[3].data == b"first":
            assert got == old, f"step {step}"
            outcomes.add("old")
        else:
            assert got[3].data == b"second"
            if new is not None:
                assert got == new
            else:
                assert got[1] == got[3].index + 1
            outcomes.add("new")
        if finished:
            break
    else:
        pytest.fail("operation never finished")
    assert outcomes == {"old", "new"}


def test_damaged_newest_snapshot_falls_back_to_the_previous_one(caplog) -> None:
    fs = _with_snapshot()
    # A newer snapshot file that is damaged (as if renamed before its data was synced).
    f = fs.open_append(f"{D}/snap-00000000000000000020-00000000000000000001.snap")
    f.write(b"\x52\xc7garbage")
    f.fsync()
    with caplog.at_level(logging.WARNING, logger="raft.disk_storage"):
        s = reopen(fs, segment_bytes=200)
    assert s.snapshot().data == b"first" and s.first_index() == 11 and s.last_index() == 30
    assert "unusable" in caplog.text
    report = inspect_data_dir(D, fs)
    assert [x["valid"] for x in report["snapshots"]] == [False, True]


def test_missing_snapshot_with_compacted_log_is_corruption() -> None:
    fs = MemoryFileSystem()
    s = reopen(fs, segment_bytes=150)
    for i in range(1, 40):
        s.save(None, ents(i, i + 1, size=30))
    s.compact(snap(30, 1))
    s.close()
    fs.remove(f"{D}/snap-00000000000000000030-00000000000000000001.snap")
    with pytest.raises(CorruptionError):
        reopen(fs, segment_bytes=150)


def test_leftover_temporary_snapshot_is_removed() -> None:
    fs = _with_snapshot()
    f = fs.open_append(f"{D}/snap-00000000000000000025-00000000000000000001.snap.tmp")
    f.write(b"partial")
    fs.fsync_dir(D)
    assert inspect_data_dir(D, fs)["temp_files"]
    s = reopen(fs, segment_bytes=200)
    assert s.snapshot().data == b"first"
    assert not any(n.endswith(".tmp") for n in fs.listdir(D))


# -- inspect --------------------------------------------------------------------------


def test_inspect_describes_the_directory_without_changing_it() -> None:
    fs = MemoryFileSystem()
    s = reopen(fs, segment_bytes=200)
    s.save(HardState(3, 2, 7), ents(1, 21))
    for i in range(21, 30):
        s.save(None, ents(i, i + 1))
    s.compact(snap(12, 1))
    s.close()
    seg = f"{D}/{segments(fs)[-1]}"
    fs.corrupt(seg, used(fs, seg) - 1)
    before = files(fs)
    report = inspect_data_dir(D, fs)
    assert files(fs) == before
    assert report["hard_state"] == {"term": 3, "vote": 2, "commit": 7}
    assert (report["first_index"], report["last_index"], report["snapshot_index"]) == (13, 28, 12)
    assert report["segments"][-1]["torn_tail"]
    assert all({"name", "size", "first_index", "last_index", "records"} <= set(x) for x in report["segments"])
    assert report["snapshots"][0]["valid"] and report["snapshots"][0]["index"] == 12


def test_inspect_cli(tmp_path) -> None:
    from click.testing import CliRunner

    from cli.inspect_cmd import inspect_cmd

    path = str(tmp_path / "node")
    s = DiskStorage(path)
    s.save(HardState(1, 1, 1), ents(1, 5))
    s.compact(snap(2, 1))
    s.close()
    result = CliRunner().invoke(inspect_cmd, [path])
    assert result.exit_code == 0, result.output
    assert "term=1 vote=1 commit=1" in result.output and "last_index=4" in result.output
    result = CliRunner().invoke(inspect_cmd, [path, "--json"])
    assert result.exit_code == 0 and '"last_index": 4' in result.output


# -- one storage per directory -----------------------------------------------------------


def test_a_second_open_of_a_directory_is_refused(tmp_path) -> None:
    from raft import DirectoryLockedError

    path = str(tmp_path / "node")
    first = DiskStorage(path)
    first.save(HardState(term=1, vote=1), ents(1, 3))
    with pytest.raises(DirectoryLockedError) as caught:
        DiskStorage(path)
    assert caught.value.path == path and path in str(caught.value)
    assert first.last_index() == 2  # the refused open touched nothing
    first.close()
    with DiskStorage(path) as again:  # closing released the directory
        assert again.last_index() == 2


def test_another_process_holding_the_directory_is_refused_until_it_dies(tmp_path) -> None:
    import subprocess
    import sys

    from raft import DirectoryLockedError

    path = str(tmp_path / "node")
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys; from raft import DiskStorage; s = DiskStorage(sys.argv[1]); "
         "print('open', flush=True); sys.stdin.read()", path],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "open"
        with pytest.raises(DirectoryLockedError):
            DiskStorage(path)
        holder.kill()  # kill -9: the kernel drops its lock, no stale lock remains
        holder.wait(timeout=10)
        DiskStorage(path).close()
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait(timeout=10)


def test_memory_file_system_locks_until_release_or_crash() -> None:
    from raft import DirectoryLockedError

    fs = MemoryFileSystem()
    first = DiskStorage("/d", fs=fs)
    with pytest.raises(DirectoryLockedError):
        DiskStorage("/d", fs=fs)
    fs.crash()  # the process died with the power: its lock went with it
    second = DiskStorage("/d", fs=fs)
    first.close()  # a late close of the dead incarnation releases nothing of the new one
    with pytest.raises(DirectoryLockedError):
        DiskStorage("/d", fs=fs)
    second.close()
    DiskStorage("/d", fs=fs).close()


# -- preallocated segments --------------------------------------------------------------


def test_preallocated_segment_reopens_at_its_last_record_on_a_real_disk(tmp_path) -> None:
    path = str(tmp_path / "log")
    s = DiskStorage(path, preallocate_bytes=64 << 10)
    s.save(HardState(1, 1, 0), ents(1, 4))
    s.close()
    (seg,) = [n for n in OsFileSystem().listdir(path) if n.endswith(".seg")]
    report = inspect_data_dir(path)["segments"][0]
    assert report["size"] == 64 << 10 and report["used"] < 1024 and not report["torn_tail"]
    s = DiskStorage(path, preallocate_bytes=64 << 10)
    s.save(HardState(1, 1, 3), ents(4, 6))  # lands after the records, not at the end
    s.close()
    s = DiskStorage(path, preallocate_bytes=64 << 10)
    assert s.last_index() == 5 and s.hard_state == HardState(1, 1, 3)
    assert [e.data for e in s.entries(1, 6)] == [e.data for e in ents(1, 6)]
    assert OsFileSystem().size(f"{path}/{seg}") == 64 << 10  # no new allocation
    s.close()


def test_preallocation_grows_in_steps_and_rolls_at_the_segment_size() -> None:
    fs = MemoryFileSystem()
    s = reopen(fs, segment_bytes=1000, preallocate_bytes=300)
    sizes = []
    for i in range(1, 40):
        s.save(None, ents(i, i + 1, size=30))
        sizes.append(fs.size(f"{D}/{segments(fs)[-1]}"))
    assert len(segments(fs)) > 1
    assert set(sizes) <= {300, 600, 900, 1000}
    s.close()
    s = reopen(fs, segment_bytes=1000, preallocate_bytes=300)
    assert s.last_index() == 39
    assert [x["torn_tail"] for x in inspect_data_dir(D, fs)["segments"]] == [None] * len(segments(fs))


def test_torn_write_over_preallocated_zeros_whose_header_never_landed_is_cut() -> None:
    # The disk wrote a later page of the last record but not the page with its
    # header: zeros, then part of a record, then zeros.
    fs, seg, offsets = _three_record_segment()
    end = used(fs, seg)
    data = bytearray(fs.read(seg))
    data[offsets[2] : offsets[2] + 20] = bytes(20)
    fs2 = _durable_copy({seg.rsplit("/", 1)[1]: bytes(data)})
    s = reopen(fs2)
    assert s.last_index() == 6 and fs2.size(seg) == offsets[2]
    assert end > offsets[2] + 20


def test_garbage_in_the_preallocated_space_is_a_torn_tail() -> None:
    fs, seg, offsets = _three_record_segment()
    end = used(fs, seg)
    assert fs.size(seg) > end + 100  # preallocated zeros follow the records
    fs.corrupt(seg, end + 50)
    s = reopen(fs)
    assert s.last_index() == 9 and s.hard_state == HardState(1, 1, 7)


def test_zeroed_record_before_a_valid_one_is_corruption_not_free_space() -> None:
    fs, seg, offsets = _three_record_segment()
    data = bytearray(fs.read(seg))
    data[offsets[1] : offsets[2]] = bytes(offsets[2] - offsets[1])
    fs2 = _durable_copy({seg.rsplit("/", 1)[1]: bytes(data)})
    with pytest.raises(CorruptionError) as info:
        reopen(fs2)
    assert info.value.offset == offsets[1]


def test_memory_file_system_tears_an_overwrite_of_synced_zeros() -> None:
    fs = MemoryFileSystem()
    fs.makedirs(D)
    f = fs.open_append(f"{D}/f")
    f.write(b"head")
    f.allocate(64)
    f.fsync()
    fs.fsync_dir(D)
    f.write(b"0123456789")
    assert f.tell() == 14 and f.allocated() == 64
    fs.crash(random.Random(3))
    kept = fs.read(f"{D}/f")
    assert len(kept) == 64 and kept.startswith(b"head")
    written = kept[4:14]
    cut = written.find(0) if 0 in written else 10
    assert written[:cut] == b"0123456789"[:cut] and kept[4 + cut :] == bytes(60 - cut)
