"""Benchmark of DiskStorage: fsynced appends at several batch sizes, and recovery.

Run from the repository root:

    .venv/bin/python benchmarks/bench_disk.py                      # quick (256 MiB recovery)
    .venv/bin/python benchmarks/bench_disk.py --recovery-gib 1     # the 1 GiB figure

Appends are measured beside the raw fsync floor of the same directory in the same run:
a plain loop of one 4 KiB append + fsync. The goals: batch 1 at >= 0.8x the raw fsync
rate (our per-save overhead is small next to one fsync), and batch 256 at >= 300,000
entries/s (group commit amortizes the fsync).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from raft.disk_storage import DiskStorage  # noqa: E402
from raft.types import Entry, HardState  # noqa: E402

PAYLOAD = b"x" * 64


def raw_fsync_rate(directory: str, seconds: float) -> float:
    """Plain loop: append 4 KiB, fsync. Returns fsyncs per second."""
    path = os.path.join(directory, "raw.bin")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_TRUNC, 0o644)
    block = b"r" * 4096
    try:
        count = 0
        start = time.perf_counter()
        deadline = start + seconds
        while True:
            os.write(fd, block)
            os.fsync(fd)
            count += 1
            if count % 16 == 0 and time.perf_counter() >= deadline:
                break
        return count / (time.perf_counter() - start)
    finally:
        os.close(fd)
        os.remove(path)


def append_rate(directory: str, batch: int, seconds: float, fsync: bool = True) -> tuple[float, float]:
    """Saves of `batch` 64-byte entries, each fsynced. Returns (entries/s, saves/s).

    With fsync=False the same loop runs under `unsafe_no_fsync`: the CPU ceiling of
    the code, which tells a slow disk apart from slow code.
    """
    path = os.path.join(directory, f"batch{batch}-{fsync}")
    storage = DiskStorage(path, unsafe_no_fsync=not fsync)
    # Entries come ready-made from the Raft core, so build them outside the timing.
    n_batches = max(8, int(seconds * 6000 / max(1, batch // 16)))
    batches = [
        [Entry(1, b * batch + i + 1, data=PAYLOAD) for i in range(batch)] for b in range(min(n_batches, 4000))
    ]
    hs = HardState(1, 1, 0)
    done = 0
    start = time.perf_counter()
    deadline = start + seconds
    next_index = 1
    while True:
        if done < len(batches):
            entries = batches[done]
        else:  # ran out of prepared batches: build more (rare, only on very fast disks)
            entries = [Entry(1, next_index + i, data=PAYLOAD) for i in range(batch)]
        storage.save(hs, entries)
        next_index += batch
        done += 1
        if time.perf_counter() >= deadline:
            break
    elapsed = time.perf_counter() - start
    storage.close()
    shutil.rmtree(path)
    return done * batch / elapsed, done / elapsed


def build_log(path: str, total_bytes: int, batch: int) -> int:
    """Write a log of about `total_bytes` quickly (no fsync). Returns its last index."""
    storage = DiskStorage(path, unsafe_no_fsync=True)
    index = 1
    hs = HardState(1, 1, 0)
    per_batch = batch * (len(PAYLOAD) + 5) + 80
    for _ in range(max(1, total_bytes // per_batch)):
        storage.save(hs, [Entry(1, index + i, data=PAYLOAD) for i in range(batch)], sync=False)
        index += batch
    storage.close()
    # Make the files durable once, as a real node's would be, so reading them is honest.
    for name in os.listdir(path):
        fd = os.open(os.path.join(path, name), os.O_RDONLY)
        os.fsync(fd)
        os.close(fd)
    return index - 1


def recovery_time(directory: str, gib: float, batch: int) -> tuple[float, int, int]:
    """Seconds to open a log of `gib` GiB; also its size in bytes and entry count."""
    path = os.path.join(directory, f"recovery-b{batch}")
    last = build_log(path, int(gib * (1 << 30)), batch)
    size = sum(os.path.getsize(os.path.join(path, n)) for n in os.listdir(path))
    start = time.perf_counter()
    storage = DiskStorage(path)
    elapsed = time.perf_counter() - start
    assert storage.last_index() == last, (storage.last_index(), last)
    storage.entries(last, last + 1)  # a read from disk works right after recovery
    storage.close()
    shutil.rmtree(path)
    return elapsed, size, last


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", default=None, help="directory to benchmark in (default: a temp dir)")
    parser.add_argument("--seconds", type=float, default=3.0, help="duration of each append run")
    parser.add_argument("--recovery-gib", type=float, default=0.25, help="size of the recovery log")
    parser.add_argument("--recovery-batch", type=int, default=256, help="entries per record in that log")
    args = parser.parse_args()

    base = tempfile.mkdtemp(prefix="bench_disk-", dir=args.dir)
    try:
        command = "python benchmarks/bench_disk.py " + " ".join(sys.argv[1:])
        print(f"# {command.strip()}")
        print(f"# load average before the run: {os.getloadavg()[0]:.2f}")
        print(f"# python {platform.python_version()} on {platform.system()} {platform.machine()}, "
              f"{os.cpu_count()} cpus, dir {base}")
        raw = raw_fsync_rate(base, args.seconds)
        print(f"raw floor: 4 KiB append + fsync            {raw:10.0f} fsync/s")
        results = {}
        for batch in (1, 16, 256):
            entries_per_s, saves_per_s = append_rate(base, batch, args.seconds)
            results[batch] = entries_per_s
            print(
                f"batch {batch:>3} x 64 B entries, fsync per save  {entries_per_s:10.0f} entries/s"
                f"  {saves_per_s:8.0f} saves/s  ({saves_per_s / raw:.2f}x raw fsync rate)"
            )
        ceiling, _ = append_rate(base, 256, min(args.seconds, 1.0), fsync=False)
        print(f"batch 256 without fsync (CPU ceiling)     {ceiling:10.0f} entries/s")
        ratio = results[1] / raw
        print(f"goal batch 1 >= 0.8x raw: {'met' if ratio >= 0.8 else 'MISSED'} ({ratio:.2f}x)")
        print(f"goal batch 256 >= 300,000 entries/s: {'met' if results[256] >= 300_000 else 'MISSED'}"
              f" ({results[256]:,.0f})")
        seconds, size, entries = recovery_time(base, args.recovery_gib, args.recovery_batch)
        print(
            f"recovery: {size / (1 << 30):.2f} GiB, {entries:,} entries in records of "
            f"{args.recovery_batch}: open took {seconds:.2f} s ({size / (1 << 20) / seconds:.0f} MiB/s, "
            f"page cache warm)"
        )
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
