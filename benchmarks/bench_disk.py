"""Benchmark of DiskStorage: fsynced appends at several batch sizes, and recovery.

Run from the repository root:

    .venv/bin/python benchmarks/bench_disk.py                      # quick (256 MiB recovery)
    .venv/bin/python benchmarks/bench_disk.py --recovery-gib 1     # the 1 GiB figure

Appends are measured beside the raw fsync floor of the same directory in the same run:
a plain loop of one 4 KiB append + fsync, alternated with the DiskStorage runs in short
rounds so that both see the same background load on a shared machine. The goals: batch 1 at >= 0.8x the raw fsync
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
import statistics
import time
from typing import Any

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from raft.disk_storage import DEFAULT_PREALLOCATE_BYTES, DiskStorage  # noqa: E402
from raft.types import Entry, HardState  # noqa: E402

PAYLOAD = b"x" * 64


class RawFloor:
    """Plain loop: append 4 KiB, fsync. The best any log can do per fsync here."""

    def __init__(self, directory: str) -> None:
        self.path = os.path.join(directory, "raw.bin")
        self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_TRUNC, 0o644)
        self.block = b"r" * 4096
        self.count = 0
        self.elapsed = 0.0

    def run(self, seconds: float) -> None:
        start = time.perf_counter()
        deadline = start + seconds
        while True:
            os.write(self.fd, self.block)
            os.fsync(self.fd)
            self.count += 1
            if time.perf_counter() >= deadline:
                break
        self.elapsed += time.perf_counter() - start

    def rate(self) -> float:
        return self.count / self.elapsed

    def close(self) -> None:
        os.close(self.fd)
        os.remove(self.path)


class Appender:
    """Saves of `batch` 64-byte entries, each fsynced (unless fsync=False: then the
    CPU ceiling of the code, which tells a slow disk apart from slow code)."""

    def __init__(self, directory: str, batch: int, fsync: bool = True) -> None:
        self.path = os.path.join(directory, f"batch{batch}-{fsync}")
        self.storage = DiskStorage(self.path, unsafe_no_fsync=not fsync)
        self.batch = batch
        self.next_index = 1
        self.saves = 0
        self.elapsed = 0.0
        self.hs = HardState(1, 1, 0)

    def run(self, seconds: float) -> None:
        batch = self.batch
        # Entries come ready-made from the Raft core: build them outside the timing.
        prepared = []
        for _ in range(max(4, min(2000, int(seconds * 100_000 / batch)))):
            prepared.append([Entry(1, self.next_index + i, data=PAYLOAD) for i in range(batch)])
            self.next_index += batch
        start = time.perf_counter()
        deadline = start + seconds
        done = 0
        for entries in prepared:
            self.storage.save(self.hs, entries)
            done += 1
            if time.perf_counter() >= deadline:
                break
        self.elapsed += time.perf_counter() - start
        self.saves += done
        self.next_index = prepared[done - 1][-1].index + 1

    def close(self) -> None:
        self.storage.close()
        shutil.rmtree(self.path)


def interleaved(directory: str, batch: int, seconds: float, round_seconds: float = 0.05) -> tuple[float, float, float]:
    """Alternate short raw and DiskStorage runs, so both see the same background load
    (the machine is shared). Returns (raw fsync/s, entries/s, saves/s)."""
    raw = RawFloor(directory)
    app = Appender(directory, batch)
    try:
        for _ in range(max(1, round(seconds / round_seconds))):
            raw.run(round_seconds)
            app.run(round_seconds)
        return raw.rate(), app.saves * batch / app.elapsed, app.saves / app.elapsed
    finally:
        raw.close()
        app.close()


class _LatencyRun:
    """One kind of synced single-entry write, timed write by write."""

    def __init__(self, name: str, write: Any, close: Any) -> None:
        self.name, self.write, self.close = name, write, close
        self.latencies: list[float] = []

    def run(self, seconds: float) -> None:
        deadline = time.perf_counter() + seconds
        while True:
            started = time.perf_counter()
            self.write()
            now = time.perf_counter()
            self.latencies.append(now - started)
            if now >= deadline:
                break


def synced_write_costs(directory: str, seconds: float, round_seconds: float = 0.05) -> list[_LatencyRun]:
    """Where the time of one synced save goes: the raw floors (append + fsync of a
    growing file; overwrite + fdatasync of a zero-filled one), DiskStorage with and
    without preallocation, and DiskStorage behind trio's worker-thread hand-off (what
    `RaftRuntime` does). All alternate in short rounds, under the same load."""
    runs = []
    block = b"r" * 128

    fd = os.open(os.path.join(directory, "grow.bin"), os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_TRUNC, 0o644)
    runs.append(_LatencyRun("raw append + fsync (growing file)",
                            lambda: (os.write(fd, block), os.fsync(fd)), lambda: os.close(fd)))
    pre = os.open(os.path.join(directory, "pre.bin"), os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    os.write(pre, bytes(32 << 20))
    os.fsync(pre)
    position = [0]

    def overwrite() -> None:
        os.pwrite(pre, block, position[0])
        os.fdatasync(pre)
        position[0] += len(block)

    runs.append(_LatencyRun("raw overwrite + fdatasync (zero-filled file)", overwrite, lambda: os.close(pre)))

    def storage_run(name: str, preallocate: int, in_thread: bool) -> _LatencyRun:
        path = os.path.join(directory, name.replace(" ", "_"))
        storage = DiskStorage(path, preallocate_bytes=preallocate)
        hs = HardState(1, 1, 0)
        index = [1]

        def save() -> None:
            storage.save(hs, [Entry(1, index[0], data=PAYLOAD)])
            index[0] += 1

        run = _LatencyRun(name, save, storage.close)
        if in_thread:
            import trio

            async def handed_off(seconds: float) -> None:
                deadline = time.perf_counter() + seconds
                while True:
                    started = time.perf_counter()
                    await trio.to_thread.run_sync(save)
                    now = time.perf_counter()
                    run.latencies.append(now - started)
                    if now >= deadline:
                        break

            run.run = lambda seconds: trio.run(handed_off, seconds)  # type: ignore[method-assign]
        return run

    runs.append(storage_run("DiskStorage.save, growing file (preallocate_bytes=0)", 0, False))
    runs.append(storage_run("DiskStorage.save, preallocated (default)", DEFAULT_PREALLOCATE_BYTES, False))
    runs.append(storage_run("DiskStorage.save in trio.to_thread, preallocated", DEFAULT_PREALLOCATE_BYTES, True))
    try:
        for _ in range(max(1, round(seconds / round_seconds))):
            for run in runs:
                run.run(round_seconds)
    finally:
        for run in runs:
            run.close()
    return runs


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
        print("\none synced 64-byte save, alternating 50 ms rounds (median / p99 ms):")
        for run in synced_write_costs(base, args.seconds):
            cuts = statistics.quantiles(run.latencies, n=100)
            print(f"  {run.name:<55} {cuts[49] * 1e3:6.3f} / {cuts[98] * 1e3:6.3f}  ({len(run.latencies)} writes)")
        print()
        results = {}
        ratios = {}
        for batch in (1, 16, 256):
            raw, entries_per_s, saves_per_s = interleaved(base, batch, args.seconds)
            results[batch] = entries_per_s
            ratios[batch] = saves_per_s / raw
            print(
                f"batch {batch:>3} x 64 B, fsync per save: {entries_per_s:10.0f} entries/s {saves_per_s:7.0f} saves/s"
                f" | raw 4 KiB append+fsync in the same rounds: {raw:6.0f}/s | ratio {saves_per_s / raw:.2f}x"
            )
        ceiling_app = Appender(base, 256, fsync=False)
        ceiling_app.run(min(args.seconds, 1.0))
        ceiling = ceiling_app.saves * 256 / ceiling_app.elapsed
        ceiling_app.close()
        print(f"batch 256 without fsync (CPU ceiling): {ceiling:10.0f} entries/s")
        print(f"goal batch 1 >= 0.8x raw: {'met' if ratios[1] >= 0.8 else 'MISSED'} ({ratios[1]:.2f}x)")
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
