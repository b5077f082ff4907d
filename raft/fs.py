"""A minimal file-system layer for durable storage, real or simulated.

`raft.disk_storage.DiskStorage` does *all* its I/O through a `FileSystem`, so the very
same on-disk format runs on a real disk (`OsFileSystem`) and inside tests and the
deterministic simulator (`MemoryFileSystem`).

`MemoryFileSystem` models what a POSIX file system promises after a power loss, and
nothing more:

* Rule 1: file contents written with `write` live in a *volatile* view. Only `fsync`
  of the file makes them durable.
* Rule 2: creating, renaming and removing a name changes the volatile directory. Only
  `fsync_dir` of the parent directory makes the change durable.
* Rule 3: `crash()` throws the volatile view away: every directory holds its durable
  names, every file its durable contents. With a `random.Random`, a crash may also
  *tear*: a file keeps its durable contents plus a random prefix of the bytes appended
  after them, which is what a real crash in the middle of a write can leave.

Rule 4 (overwrites, as into a preallocated file): a write lands at the file's
write position, which `open_append` may put before the end (`at`). Bytes it
overwrites keep their durable value until `fsync`; a torn crash keeps a prefix of the
bytes written since the last `fsync`, counted from the first one, and the old durable
bytes after it.

Rule 5: `lock` takes an exclusive lock that lasts until it is released or the
process ends (for `MemoryFileSystem`: until `crash()`); it is not a file a crash can
lose, and taking it is not a mutating operation.

Directories themselves (`makedirs`) are durable at once; the storage layer creates its
directory once and the interesting failures are about files. The model is
deterministic given the rng, and reads neither a clock nor the global `random`.
"""

from __future__ import annotations

import fcntl
import os
import posixpath
import random
from typing import Callable, Protocol, runtime_checkable

__all__ = [
    "FileLock",
    "FileSystem",
    "WritableFile",
    "OsFileSystem",
    "MemoryFileSystem",
    "InjectedFault",
]


@runtime_checkable
class WritableFile(Protocol):
    """A file opened for appending at its write position (see `open_append`).

    The file may extend past the write position with zeros (`allocate`): writes
    then overwrite those zeros, which is what makes an fsync cheap (no size or
    block allocation to record).
    """

    def write(self, data: bytes) -> None:
        """Write all of `data` at the write position and move the position past it
        (not durable until `fsync`)."""
        ...

    def fsync(self) -> None:
        """Make the file's contents (and its size) durable."""
        ...

    def allocate(self, size: int) -> None:
        """Extend the file with zeros to at least `size` bytes, without moving the
        write position (durable only after `fsync`)."""
        ...

    def truncate(self, size: int) -> None:
        """Cut the file to `size` bytes and put the write position there (durable
        only after `fsync`)."""
        ...

    def tell(self) -> int:
        """The write position: where the next write lands."""
        ...

    def allocated(self) -> int:
        """The file's size, zeros after the write position included."""
        ...

    def close(self) -> None:
        ...


class FileLock(Protocol):
    """An exclusive lock taken with `FileSystem.lock`."""

    def release(self) -> None:
        """Give the lock up (idempotent)."""
        ...


@runtime_checkable
class FileSystem(Protocol):
    """The file operations durable storage needs. Paths are plain strings."""

    def open_append(self, path: str, at: int | None = None) -> WritableFile:
        """Open `path` for appending, creating an empty file if it is missing.

        A newly created name is durable only after `fsync_dir` of its parent.

        Args:
            path: the file.
            at: the write position (default: the end of the file). Bytes from there
                on are overwritten by later writes.
        """
        ...

    def read(self, path: str, offset: int = 0, length: int | None = None) -> bytes:
        """Read `length` bytes at `offset` (to the end when `length` is None).

        Returns fewer bytes when the file is shorter.

        Raises:
            FileNotFoundError: there is no such file.
        """
        ...

    def size(self, path: str) -> int:
        ...

    def exists(self, path: str) -> bool:
        ...

    def listdir(self, path: str) -> list[str]:
        """Names (not paths) in directory `path`, sorted."""
        ...

    def makedirs(self, path: str) -> None:
        """Create `path` and its parents if missing."""
        ...

    def rename(self, src: str, dst: str) -> None:
        """Atomically rename `src` to `dst`, replacing `dst` if it exists."""
        ...

    def remove(self, path: str) -> None:
        ...

    def fsync_dir(self, path: str) -> None:
        """Make creations, renames and removals inside directory `path` durable."""
        ...

    def lock(self, path: str) -> FileLock:
        """Take an exclusive lock on `path` (a lock file, created if missing) without
        waiting. It is held until released or until the process ends.

        Raises:
            BlockingIOError: someone else holds it.
        """
        ...


# ---------------------------------------------------------------------------------
# The real thing.
# ---------------------------------------------------------------------------------


_ZEROS = bytes(1 << 20)
# fdatasync makes the data and the size durable, which is all a log needs; it skips
# the timestamps, so an overwrite of preallocated space records no metadata at all.
_datasync = getattr(os, "fdatasync", os.fsync)


class _OsFile:
    """A file written at its own position with `pwrite`. Unbuffered: the caller
    batches its writes."""

    __slots__ = ("_fd", "_pos", "_size")

    def __init__(self, path: str, at: int | None) -> None:
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        self._size = os.fstat(self._fd).st_size
        self._pos = self._size if at is None else at

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        pos = self._pos
        while view:
            # pwrite may write less than asked (signals, huge buffers): loop.
            written = os.pwrite(self._fd, view, pos)
            view = view[written:]
            pos += written
        self._pos = pos
        if pos > self._size:
            self._size = pos

    def fsync(self) -> None:
        _datasync(self._fd)

    def allocate(self, size: int) -> None:
        # Real zeros, not fallocate: ext4 and XFS keep fallocated blocks "unwritten",
        # and the first write to each then needs a journal commit at every fsync.
        pos = self._size
        while pos < size:
            chunk = min(size - pos, len(_ZEROS))
            written = os.pwrite(self._fd, memoryview(_ZEROS)[:chunk], pos)
            pos += written
        self._size = max(self._size, size)

    def truncate(self, size: int) -> None:
        os.ftruncate(self._fd, size)
        self._size = size
        self._pos = size

    def tell(self) -> int:
        return self._pos

    def allocated(self) -> int:
        return self._size

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class _OsLock:
    """A `flock` on an open lock file: the kernel releases it when the process ends,
    however it ends, so a crash never leaves a stale lock behind."""

    __slots__ = ("_fd",)

    def __init__(self, path: str) -> None:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    def release(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)  # closing the only descriptor drops the flock
            self._fd = -1


class OsFileSystem:
    """`FileSystem` on the real operating system, with real `os.fsync` calls."""

    def lock(self, path: str) -> FileLock:
        return _OsLock(path)

    def open_append(self, path: str, at: int | None = None) -> WritableFile:
        return _OsFile(path, at)

    def read(self, path: str, offset: int = 0, length: int | None = None) -> bytes:
        with open(path, "rb", buffering=0) as f:
            if length is None:
                f.seek(offset)
                return f.readall()
            return os.pread(f.fileno(), length, offset)

    def size(self, path: str) -> int:
        return os.stat(path).st_size

    def exists(self, path: str) -> bool:
        return os.path.exists(path)

    def listdir(self, path: str) -> list[str]:
        return sorted(os.listdir(path))

    def makedirs(self, path: str) -> None:
        os.makedirs(path, exist_ok=True)

    def rename(self, src: str, dst: str) -> None:
        os.replace(src, dst)

    def remove(self, path: str) -> None:
        os.remove(path)

    def fsync_dir(self, path: str) -> None:
        # Renames and new names are recorded in the directory; POSIX makes them
        # durable only when the directory itself is fsynced.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


# ---------------------------------------------------------------------------------
# The simulated one.
# ---------------------------------------------------------------------------------


class InjectedFault(OSError):
    """Raised by `MemoryFileSystem` once a fault injected with `fail_after` fires."""


class _Inode:
    """A file's two views: what a running process reads, and what a crash keeps.

    The durable contents are usually the volatile ones up to a length, except for
    bytes overwritten since the last sync (as in a preallocated file), whose durable
    value is kept in `patches`: so `fsync` copies nothing and a write copies only
    the bytes it overwrites. The durable contents get bytes of their own only when a
    truncation cuts below them or when they are assigned directly.
    """

    __slots__ = ("volatile", "_durable", "_durable_size", "_patches")

    def __init__(self) -> None:
        self.volatile = bytearray()
        self._durable: bytes | None = b""  # None: derived from volatile (see above)
        self._durable_size = 0
        self._patches: list[tuple[int, bytes]] = []  # (offset, durable bytes there)

    @property
    def durable(self) -> bytes:
        if self._durable is None:
            contents = bytearray(self.volatile[: self._durable_size])
            for offset, old in reversed(self._patches):
                contents[offset : offset + len(old)] = old
            return bytes(contents)
        return self._durable

    @durable.setter
    def durable(self, contents: bytes) -> None:
        self._durable = contents
        self._patches = []

    def first_unsynced(self) -> int:
        """Where the bytes written since the last sync begin (their first offset)."""
        if self._durable is None:
            return min([offset for offset, _ in self._patches], default=self._durable_size)
        return len(self._durable)

    def write(self, pos: int, data: bytes) -> None:
        volatile = self.volatile
        end = pos + len(data)
        if self._durable is None and pos < self._durable_size:
            self._patches.append((pos, bytes(volatile[pos : min(end, self._durable_size)])))
        if pos == len(volatile):
            volatile += data
        else:
            volatile[pos:end] = data  # same length, or runs past the end

    def sync(self) -> None:
        """The durable contents become the volatile ones."""
        self._durable = None
        self._durable_size = len(self.volatile)
        self._patches = []

    def truncate(self, size: int) -> None:
        if self._durable is None and (size < self._durable_size or self._patches):
            self.durable = self.durable  # cut below the durable bytes: keep a copy
        del self.volatile[size:]


class _MemoryFile:
    __slots__ = ("_fs", "_inode", "_generation", "_closed", "_pos")

    def __init__(self, fs: MemoryFileSystem, inode: _Inode, at: int | None) -> None:
        self._fs = fs
        self._inode = inode
        self._generation = fs._generation
        self._closed = False
        self._pos = len(inode.volatile) if at is None else at
        if not 0 <= self._pos <= len(inode.volatile):
            raise ValueError(f"write position {at} outside the file ({len(inode.volatile)} bytes)")

    def _check(self) -> None:
        if self._closed:
            raise ValueError("I/O on a closed file")
        if self._generation != self._fs._generation:
            # A handle that outlived a crash belongs to a dead process.
            raise OSError("file handle from before a crash")

    # write and fsync run once per save of a simulated node: the checks and the
    # operation count are done in place while no fault is armed.

    def write(self, data: bytes) -> None:
        fs = self._fs
        if self._closed or self._generation != fs._generation:
            self._check()
        if fs._fail_after is None:
            fs.ops += 1
        else:
            fs._mutating("write")
        inode = self._inode
        pos = self._pos
        if pos == len(inode.volatile) and inode._durable is None:
            inode.volatile += data  # the usual append: what _Inode.write does
        else:
            inode.write(pos, data)
        self._pos = pos + len(data)

    def fsync(self) -> None:
        fs = self._fs
        if self._closed or self._generation != fs._generation:
            self._check()
        if fs._fail_after is None:
            fs.ops += 1
        else:
            fs._mutating("fsync")
        inode = self._inode
        inode._durable = None  # what _Inode.sync does
        inode._durable_size = len(inode.volatile)
        if inode._patches:
            inode._patches = []

    def allocate(self, size: int) -> None:
        self._check()
        self._fs._mutating("allocate")
        volatile = self._inode.volatile
        if size > len(volatile):
            volatile += bytes(size - len(volatile))

    def truncate(self, size: int) -> None:
        self._check()
        self._fs._mutating("truncate")
        self._inode.truncate(size)
        self._pos = size

    def tell(self) -> int:
        self._check()
        return self._pos

    def allocated(self) -> int:
        self._check()
        return len(self._inode.volatile)

    def close(self) -> None:
        self._closed = True


class _MemoryLock:
    """A lock of a `MemoryFileSystem`; a crash in between releases it already."""

    def __init__(self, fs: MemoryFileSystem, path: str) -> None:
        self._fs = fs
        self._path = path
        self._generation = fs._generation

    def release(self) -> None:
        if self._generation == self._fs._generation:
            self._fs._locks.discard(self._path)
        self._generation = -1


class MemoryFileSystem:
    """An in-memory `FileSystem` with exact durability semantics (see module doc).

    Attributes:
        ops: how many mutating operations (write, fsync, truncate, create, rename,
            remove, fsync_dir) have run; tests use it to inject a fault at every step.
    """

    def __init__(self) -> None:
        self._dirs: set[str] = {"/"}
        # Two views of the namespace: what a running process sees, and what would
        # survive a crash. Both map a normalized path to its inode.
        self._volatile: dict[str, _Inode] = {}
        self._durable: dict[str, _Inode] = {}
        self._generation = 0
        self._fail_after: int | None = None
        self._hook: Callable[[str], None] | None = None
        self._locks: set[str] = set()
        self.ops = 0

    # -- fault injection -------------------------------------------------------------

    def fail_after(self, count: int | None) -> None:
        """Let `count` more mutating operations succeed, then raise `InjectedFault`.

        Every later mutating operation fails too, as if the process had died at that
        point; call `crash()` afterwards to see what the disk kept. None disarms.
        """
        self._fail_after = count

    def _mutating(self, what: str) -> None:
        if self._fail_after is not None:
            if self._fail_after <= 0:
                raise InjectedFault(f"injected fault at {what} (op {self.ops})")
            self._fail_after -= 1
        self.ops += 1

    def crash(self, rng: random.Random | None = None) -> None:
        """Lose everything that is not durable, as a power cut would.

        Args:
            rng: when given, each file may also keep a random prefix of the bytes
                appended after its durable contents (a torn write). Files are visited
                in sorted path order, so the outcome depends only on the rng's seed.
        """
        self._generation += 1
        self._fail_after = None
        self._locks.clear()  # every process died with the power
        survivors: dict[str, _Inode] = {}
        # One inode can sit under two durable names (a rename across directories
        # with only the target directory fsynced); tear it once, not twice.
        done: dict[int, _Inode] = {}
        for path in sorted(self._durable):
            inode = self._durable[path]
            if id(inode) not in done:
                kept = inode.durable
                volatile = bytes(inode.volatile)
                start = inode.first_unsynced()
                if rng is not None and len(volatile) > start and volatile[:start] == kept[:start]:
                    # Rule 3/4: a prefix of what was written since the last sync.
                    extra = rng.randint(0, len(volatile) - start)
                    kept = volatile[: start + extra] + kept[start + extra :]
                inode.durable = kept
                inode.volatile = bytearray(kept)
                done[id(inode)] = inode
            survivors[path] = inode
        self._durable = survivors
        self._volatile = dict(survivors)

    # -- helpers ---------------------------------------------------------------------

    @staticmethod
    def _norm(path: str) -> str:
        return posixpath.normpath(posixpath.join("/", path))

    def _inode(self, path: str) -> _Inode:
        try:
            return self._volatile[self._norm(path)]
        except KeyError:
            raise FileNotFoundError(path) from None

    def _check_parent(self, path: str) -> None:
        if posixpath.dirname(path) not in self._dirs:
            raise FileNotFoundError(f"no directory for {path}")

    # -- FileSystem ------------------------------------------------------------------

    def lock(self, path: str) -> FileLock:
        norm = self._norm(path)
        if norm in self._locks:
            raise BlockingIOError(f"{path} is locked")
        self._locks.add(norm)
        return _MemoryLock(self, norm)

    def open_append(self, path: str, at: int | None = None) -> WritableFile:
        norm = self._norm(path)
        inode = self._volatile.get(norm)
        if inode is None:
            self._check_parent(norm)
            self._mutating("create")
            inode = _Inode()
            self._volatile[norm] = inode
        return _MemoryFile(self, inode, at)

    def read(self, path: str, offset: int = 0, length: int | None = None) -> bytes:
        data = self._inode(path).volatile
        end = len(data) if length is None else offset + length
        return bytes(data[offset:end])

    def size(self, path: str) -> int:
        return len(self._inode(path).volatile)

    def exists(self, path: str) -> bool:
        norm = self._norm(path)
        return norm in self._volatile or norm in self._dirs

    def listdir(self, path: str) -> list[str]:
        norm = self._norm(path)
        if norm not in self._dirs:
            raise FileNotFoundError(path)
        names = {posixpath.basename(p) for p in self._volatile if posixpath.dirname(p) == norm}
        names |= {posixpath.basename(d) for d in self._dirs if d != "/" and posixpath.dirname(d) == norm}
        return sorted(names)

    def makedirs(self, path: str) -> None:
        norm = self._norm(path)
        while norm not in self._dirs:
            self._dirs.add(norm)
            norm = posixpath.dirname(norm)

    def rename(self, src: str, dst: str) -> None:
        nsrc, ndst = self._norm(src), self._norm(dst)
        inode = self._inode(nsrc)
        self._check_parent(ndst)
        self._mutating("rename")
        del self._volatile[nsrc]
        self._volatile[ndst] = inode

    def remove(self, path: str) -> None:
        norm = self._norm(path)
        self._inode(norm)
        self._mutating("remove")
        del self._volatile[norm]

    def fsync_dir(self, path: str) -> None:
        norm = self._norm(path)
        if norm not in self._dirs:
            raise FileNotFoundError(path)
        self._mutating("fsync_dir")
        # The durable directory becomes exactly the volatile one, for this directory.
        for p in [p for p in self._durable if posixpath.dirname(p) == norm]:
            if self._volatile.get(p) is not self._durable[p]:
                del self._durable[p]
        for p, inode in self._volatile.items():
            if posixpath.dirname(p) == norm:
                self._durable[p] = inode

    # -- test helpers ----------------------------------------------------------------

    def corrupt(self, path: str, offset: int, xor: int = 0xFF) -> None:
        """Flip bits of one byte in both views, as bit rot on the medium would."""
        inode = self._inode(path)
        durable = bytearray(inode.durable)  # before the flip: it may share `volatile`
        inode.volatile[offset] ^= xor
        if offset < len(durable):
            durable[offset] ^= xor
            inode.durable = bytes(durable)

    def durable_bytes(self, path: str) -> bytes | None:
        """The contents a crash would keep under `path` (None: the name would vanish)."""
        inode = self._durable.get(self._norm(path))
        return None if inode is None else inode.durable
