"""The file-system layer: MemoryFileSystem's durability model, and OsFileSystem basics."""

from __future__ import annotations

import random

import pytest

from raft.fs import FileSystem, InjectedFault, MemoryFileSystem, OsFileSystem


@pytest.fixture
def mfs() -> MemoryFileSystem:
    fs = MemoryFileSystem()
    fs.makedirs("/d")
    return fs


def test_both_implement_the_protocol(tmp_path) -> None:
    assert isinstance(MemoryFileSystem(), FileSystem)
    assert isinstance(OsFileSystem(), FileSystem)


def test_unsynced_writes_vanish_on_crash(mfs: MemoryFileSystem) -> None:
    f = mfs.open_append("/d/a")
    mfs.fsync_dir("/d")
    f.write(b"hello")
    assert mfs.read("/d/a") == b"hello"
    mfs.crash()
    assert mfs.read("/d/a") == b""


def test_fsynced_contents_survive_but_later_writes_do_not(mfs: MemoryFileSystem) -> None:
    f = mfs.open_append("/d/a")
    mfs.fsync_dir("/d")
    f.write(b"hello")
    f.fsync()
    f.write(b" world")
    mfs.crash()
    assert mfs.read("/d/a") == b"hello"


def test_new_file_needs_directory_fsync(mfs: MemoryFileSystem) -> None:
    f = mfs.open_append("/d/a")
    f.write(b"data")
    f.fsync()  # contents durable, but the name is not
    mfs.crash()
    assert not mfs.exists("/d/a")
    assert mfs.listdir("/d") == []


def test_rename_needs_directory_fsync(mfs: MemoryFileSystem) -> None:
    f = mfs.open_append("/d/tmp")
    f.write(b"new")
    f.fsync()
    mfs.fsync_dir("/d")
    mfs.rename("/d/tmp", "/d/final")
    assert mfs.listdir("/d") == ["final"]
    mfs.crash()
    assert mfs.listdir("/d") == ["tmp"]
    mfs.rename("/d/tmp", "/d/final")
    mfs.fsync_dir("/d")
    mfs.crash()
    assert mfs.listdir("/d") == ["final"]
    assert mfs.read("/d/final") == b"new"


def test_rename_replaces_target_atomically(mfs: MemoryFileSystem) -> None:
    for name, data in (("/d/a", b"old"), ("/d/b", b"new")):
        f = mfs.open_append(name)
        f.write(data)
        f.fsync()
    mfs.fsync_dir("/d")
    mfs.rename("/d/b", "/d/a")
    mfs.crash()
    assert mfs.read("/d/a") == b"old" and mfs.read("/d/b") == b"new"
    mfs.rename("/d/b", "/d/a")
    mfs.fsync_dir("/d")
    mfs.crash()
    assert mfs.listdir("/d") == ["a"] and mfs.read("/d/a") == b"new"


def test_remove_needs_directory_fsync(mfs: MemoryFileSystem) -> None:
    f = mfs.open_append("/d/a")
    f.write(b"x")
    f.fsync()
    mfs.fsync_dir("/d")
    mfs.remove("/d/a")
    assert not mfs.exists("/d/a")
    mfs.crash()
    assert mfs.read("/d/a") == b"x"
    mfs.remove("/d/a")
    mfs.fsync_dir("/d")
    mfs.crash()
    assert not mfs.exists("/d/a")


def test_truncate_is_durable_only_after_fsync(mfs: MemoryFileSystem) -> None:
    f = mfs.open_append("/d/a")
    mfs.fsync_dir("/d")
    f.write(b"abcdef")
    f.fsync()
    f.truncate(2)
    f.write(b"Z")
    assert mfs.read("/d/a") == b"abZ"
    mfs.crash(random.Random(1))  # not an append of the durable bytes: nothing to tear
    assert mfs.read("/d/a") == b"abcdef"


def test_torn_crash_keeps_a_prefix_of_unsynced_bytes(mfs: MemoryFileSystem) -> None:
    seen = set()
    for seed in range(200):
        fs = MemoryFileSystem()
        fs.makedirs("/d")
        f = fs.open_append("/d/a")
        fs.fsync_dir("/d")
        f.write(b"durable|")
        f.fsync()
        f.write(b"0123456789")
        fs.crash(random.Random(seed))
        data = fs.read("/d/a")
        assert (b"durable|" + b"0123456789").startswith(data)
        assert data.startswith(b"durable|")
        seen.add(len(data))
    assert len(seen) > 5  # tearing really happens at many points


def test_torn_crash_is_deterministic_given_the_seed() -> None:
    def run(seed: int) -> list[bytes]:
        fs = MemoryFileSystem()
        fs.makedirs("/d")
        for name in ("a", "b", "c"):
            f = fs.open_append(f"/d/{name}")
            f.write(name.encode() * 50)
        fs.fsync_dir("/d")
        fs.crash(random.Random(seed))
        return [fs.read(f"/d/{n}") for n in ("a", "b", "c")]

    assert run(7) == run(7)
    assert any(run(s) != run(7) for s in range(8, 20))


def test_handles_from_before_a_crash_are_dead(mfs: MemoryFileSystem) -> None:
    f = mfs.open_append("/d/a")
    mfs.crash()
    with pytest.raises(OSError):
        f.write(b"x")


def test_fail_after_injects_faults_at_an_exact_step(mfs: MemoryFileSystem) -> None:
    f = mfs.open_append("/d/a")
    mfs.fail_after(2)
    f.write(b"1")
    f.write(b"2")
    with pytest.raises(InjectedFault):
        f.fsync()
    with pytest.raises(InjectedFault):
        mfs.fsync_dir("/d")
    mfs.crash()
    assert not mfs.exists("/d/a")
    mfs.open_append("/d/b")  # crash disarms the fault


def test_read_ranges_listdir_and_errors(mfs: MemoryFileSystem) -> None:
    f = mfs.open_append("/d/a")
    f.write(b"0123456789")
    assert mfs.read("/d/a", 3, 4) == b"3456"
    assert mfs.read("/d/a", 8, 10) == b"89"
    assert mfs.size("/d/a") == 10
    assert f.tell() == 10
    mfs.makedirs("/d/sub")
    assert mfs.listdir("/d") == ["a", "sub"]
    with pytest.raises(FileNotFoundError):
        mfs.read("/d/missing")
    with pytest.raises(FileNotFoundError):
        mfs.open_append("/nodir/x")


def test_corrupt_flips_durable_and_volatile_bytes(mfs: MemoryFileSystem) -> None:
    f = mfs.open_append("/d/a")
    mfs.fsync_dir("/d")
    f.write(b"\x00\x00")
    f.fsync()
    mfs.corrupt("/d/a", 1, 0x01)
    assert mfs.read("/d/a") == b"\x00\x01"
    mfs.crash()
    assert mfs.read("/d/a") == b"\x00\x01"


def test_os_file_system_round_trip(tmp_path) -> None:
    fs = OsFileSystem()
    d = str(tmp_path / "x" / "y")
    fs.makedirs(d)
    f = fs.open_append(d + "/a")
    f.write(b"hello world")
    f.fsync()
    assert f.tell() == 11
    f.truncate(5)
    f.write(b"!")
    f.close()
    fs.fsync_dir(d)
    assert fs.read(d + "/a") == b"hello!"
    assert fs.read(d + "/a", 1, 3) == b"ell"
    assert fs.read(d + "/a", 4) == b"o!"
    fs.rename(d + "/a", d + "/b")
    assert fs.listdir(d) == ["b"] and fs.size(d + "/b") == 6
    fs.remove(d + "/b")
    assert not fs.exists(d + "/b")
    g = fs.open_append(d + "/c")
    assert g.tell() == 0
    g.close()
