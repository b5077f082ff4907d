"""Throughput and latency of the batteries: RaftRuntime + TcpTransport on loopback.

Three nodes in one process (one trio event loop, so one core for all three),
connected by real TCP sockets on 127.0.0.1. C concurrent clients each propose
64-byte commands to the leader one after another for D seconds; a proposal counts
when `propose` returns (applied on the leader, so committed on a majority, each
node having fsynced its log before acknowledging). "per batch" is proposals the
leader appended together (group commit); "leader fsync ms" the mean time of its
synced writes (0 with --memory, where nothing is written). Storage is DiskStorage in a
temporary directory (real fsyncs) or, with --memory, MemoryStorage (no disk: the
runtime and network cost alone).

    python benchmarks/bench_runtime.py [--seconds 5] [--clients 1,16,64] [--memory]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import trio

from raft import Config, DiskStorage, Entry, MemoryStorage
from raft.runtime import RaftRuntime, RuntimeStats
from raft.transport import TcpTransport

IDS = (1, 2, 3)


class Sink:
    """A state machine that only counts (the bench measures replication)."""

    def __init__(self) -> None:
        self.count = 0

    def apply(self, entry: Entry) -> int:
        self.count += 1
        return self.count

    def snapshot(self) -> bytes:
        return str(self.count).encode()

    def restore(self, data: bytes) -> None:
        self.count = int(data) if data else 0


async def measure(clients: int, seconds: float,
                  data_dir: Path | None) -> tuple[float, list[float], RuntimeStats]:
    storages = {i: DiskStorage(str(data_dir / f"n{i}")) if data_dir else MemoryStorage()
                for i in IDS}
    runtimes: dict[int, RaftRuntime] = {}
    latencies: list[float] = []
    try:
        async with trio.open_nursery() as nursery:
            transports = {i: TcpTransport(i, ("127.0.0.1", 0), {}) for i in IDS}
            for i in IDS:
                runtimes[i] = RaftRuntime.over(transports[i], Config(id=i, voters=IDS),
                                               storages[i], Sink(), tick_interval=0.05,
                                               snapshot_every=50_000,
                                               io_in_thread=data_dir is not None)
                await nursery.start(transports[i].serve)
            for i in IDS:
                for j in IDS:
                    if j != i:
                        transports[i].set_peer(j, transports[j].address)
            for i in IDS:
                await nursery.start(runtimes[i].run)
            with trio.fail_after(10):
                await runtimes[1].wait_until(lambda: runtimes[1].leader != 0)
                leader = runtimes[runtimes[1].leader]
                await leader.read_barrier()
            payload = b"x" * 64
            deadline = time.perf_counter() + seconds

            async def client() -> None:
                while time.perf_counter() < deadline:
                    started = time.perf_counter()
                    await leader.propose(payload)
                    latencies.append(time.perf_counter() - started)

            started = time.perf_counter()
            async with trio.open_nursery() as clients_nursery:
                for _ in range(clients):
                    clients_nursery.start_soon(client)
            elapsed = time.perf_counter() - started
            stats = leader.stats
            nursery.cancel_scope.cancel()
    finally:
        for storage in storages.values():
            if isinstance(storage, DiskStorage):
                storage.close()
    return len(latencies) / elapsed, latencies, stats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="measured time per row")
    parser.add_argument("--clients", default="1,16,64", help="concurrent proposers per row")
    parser.add_argument("--memory", action="store_true", help="MemoryStorage instead of disk")
    args = parser.parse_args()
    print(f"Python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs; "
          f"{'MemoryStorage' if args.memory else 'DiskStorage (fsync) in ' + tempfile.gettempdir()}")
    print(f"reproduce: .venv/bin/python benchmarks/bench_runtime.py --seconds {args.seconds:g} "
          f"--clients {args.clients}{' --memory' if args.memory else ''}\n")
    print(f"{'clients':>7}  {'proposals/s':>12}  {'p50 ms':>8}  {'p99 ms':>8}  "
          f"{'per batch':>9}  {'leader fsync ms':>15}")
    for clients in [int(c) for c in args.clients.split(",")]:
        with tempfile.TemporaryDirectory() as tmp:
            rate, latencies, stats = trio.run(measure, clients, args.seconds,
                                              None if args.memory else Path(tmp))
        cuts = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [0.0] * 99
        per_batch = stats.proposals / max(stats.proposal_batches, 1)
        fsync_ms = stats.sync_seconds / max(stats.synced_writes, 1) * 1e3
        print(f"{clients:>7}  {rate:>12,.0f}  {cuts[49] * 1e3:>8.2f}  {cuts[98] * 1e3:>8.2f}  "
              f"{per_batch:>9.1f}  {fsync_ms:>15.2f}")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
