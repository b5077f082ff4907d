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
    python benchmarks/bench_runtime.py --compare --rounds 5 --seconds 2 --clients 1,64

--compare measures, in alternating rounds under the same machine load, three
variants: the log growing with each write and the leader sending after its own
fsync (how releases before preallocation and parallel append behaved); a
preallocated log, sending after; and the defaults (preallocated, the leader
sending while it writes). It prints the median of the rounds for each.
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


VARIANTS = {
    "growing log, send after fsync": (0, False),
    "preallocated, send after fsync": (None, False),
    "preallocated, send while writing": (None, True),
}


async def measure(clients: int, seconds: float, data_dir: Path | None,
                  preallocate: int | None = None,
                  send_first: bool = True) -> tuple[float, list[float], RuntimeStats]:
    options = {} if preallocate is None else {"preallocate_bytes": preallocate}
    storages = {i: DiskStorage(str(data_dir / f"n{i}"), **options) if data_dir else MemoryStorage()
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
                                               io_in_thread=data_dir is not None,
                                               replicate_while_writing=send_first)
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


def compare(clients_list: list[int], seconds: float, rounds: int) -> None:
    results: dict[tuple[str, int], list[tuple[float, float, float, float]]] = {}
    for _ in range(rounds):
        for clients in clients_list:
            for name, (preallocate, send_first) in VARIANTS.items():
                with tempfile.TemporaryDirectory() as tmp:
                    rate, latencies, stats = trio.run(measure, clients, seconds, Path(tmp),
                                                      preallocate, send_first)
                cuts = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [0.0] * 99
                fsync_ms = stats.sync_seconds / max(stats.synced_writes, 1) * 1e3
                results.setdefault((name, clients), []).append((rate, cuts[49] * 1e3, cuts[98] * 1e3, fsync_ms))
    print(f"median of {rounds} alternating rounds of {seconds:g} s each")
    print(f"{'variant':<44} {'clients':>7}  {'proposals/s':>11}  {'p50 ms':>7}  {'p99 ms':>7}  {'leader fsync ms':>15}")
    for clients in clients_list:
        for name in VARIANTS:
            rows = results[(name, clients)]
            med = [statistics.median(column) for column in zip(*rows)]
            print(f"{name:<44} {clients:>7}  {med[0]:>11,.0f}  {med[1]:>7.2f}  {med[2]:>7.2f}  {med[3]:>15.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="measured time per row")
    parser.add_argument("--clients", default="1,16,64", help="concurrent proposers per row")
    parser.add_argument("--memory", action="store_true", help="MemoryStorage instead of disk")
    parser.add_argument("--compare", action="store_true", help="alternate the variants (see above)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of --compare")
    args = parser.parse_args()
    if args.compare:
        print(f"Python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs; "
              f"load average {os.getloadavg()[0]:.2f}; DiskStorage (fsync) in {tempfile.gettempdir()}")
        print(f"reproduce: .venv/bin/python benchmarks/bench_runtime.py --compare --rounds {args.rounds} "
              f"--seconds {args.seconds:g} --clients {args.clients}\n")
        compare([int(c) for c in args.clients.split(",")], args.seconds, args.rounds)
        print(f"load average after: {os.getloadavg()[0]:.2f}")
        return
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
