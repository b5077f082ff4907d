"""The coordinator as users run it: three `raftcoord serve` processes on loopback
(fsync on), and a load generator in this process on the same machine.

Figures:

* committed KV puts/s with C concurrent clients (each its own `coordinator.Client`
  and connection, one put after another for D seconds; a put counts when the
  leader answered it, i.e. applied after a majority fsynced it);
* sequential put latency (one client): median and p99;
* leader kill -9 to the next successful put (a client writing in a loop through
  all addresses), median over R rounds; the killed node is restarted and caught up
  before the next round;
* worker kill -9 to all its partitions owned elsewhere (3 demo workers, 64
  partitions, 3 s lease; needs `raftcoord worker run`).

    python benchmarks/bench_cluster.py [--seconds 5] [--clients 64,256] [--rounds 10]
"""

from __future__ import annotations

import argparse
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

import trio

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from coordinator.client import Client, ClientError  # noqa: E402


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Cluster:
    def __init__(self, base: str, nodes: int = 3) -> None:
        self.base = base
        self.members = [(i, f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}")
                        for i in range(1, nodes + 1)]
        self.peers = ",".join(f"{i}={peer}/{client}" for i, peer, client in self.members)
        self.processes: dict[int, subprocess.Popen] = {}
        self.extra: list[subprocess.Popen] = []

    @property
    def addresses(self) -> list[str]:
        return [client for _, _, client in self.members]

    def start(self, node_id: int) -> None:
        _, peer, client = self.members[node_id - 1]
        log = open(os.path.join(self.base, f"node-{node_id}.log"), "ab")
        self.processes[node_id] = subprocess.Popen(
            [sys.executable, "-m", "cli", "serve", "--id", str(node_id), "--data-dir",
             os.path.join(self.base, f"node-{node_id}"), "--listen", client, "--peer-listen",
             peer, "--peers", self.peers, "--log-level", "warning"],
            stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)

    def kill(self, node_id: int) -> None:
        self.processes[node_id].send_signal(signal.SIGKILL)
        self.processes[node_id].wait()

    def stop(self) -> None:
        for process in list(self.processes.values()) + self.extra:
            if process.poll() is None:
                process.terminate()
        for process in list(self.processes.values()) + self.extra:
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


async def throughput(addresses: list[str], clients: int, seconds: float) -> float:
    done = 0
    stop_at = trio.current_time() + seconds

    async def one(index: int) -> None:
        nonlocal done
        async with Client(addresses, timeout=10) as client:
            await client.kv_put(f"warm/{index}", b"x")
            i = 0
            while trio.current_time() < stop_at:
                await client.kv_put(f"load/{index}/{i % 16}", b"v" * 64)
                i += 1
                done += 1

    started = trio.current_time()
    async with trio.open_nursery() as nursery:
        for index in range(clients):
            nursery.start_soon(one, index)
    return done / (trio.current_time() - started)


async def leader_stats(addresses: list[str]) -> dict:
    async with Client(addresses, timeout=10) as client:
        return (await client.leader_status())["runtime"]


async def sequential(addresses: list[str], count: int) -> list[float]:
    latencies = []
    async with Client(addresses, timeout=10) as client:
        await client.kv_put("seq/warm", b"x")
        for i in range(count):
            started = time.perf_counter()
            await client.kv_put(f"seq/{i % 16}", b"v" * 64)
            latencies.append(time.perf_counter() - started)
    return latencies


async def failover(cluster: Cluster, rounds: int) -> list[float]:
    gaps = []
    for _ in range(rounds):
        async with Client(cluster.addresses, timeout=30, backoff_initial=0.01,
                          backoff_max=0.1) as client:
            view = await client.leader_status()
            leader = view["leader"]
            await client.kv_put("failover", b"before")
            killed = time.perf_counter()
            cluster.kill(leader)
            await client.kv_put("failover", b"after")
            gaps.append(time.perf_counter() - killed)
            cluster.start(leader)
            commit = (await client.leader_status())["commit"]
            address = cluster.members[leader - 1][2]
            with trio.fail_after(30):
                while True:
                    try:
                        status = await client.status(address, timeout=1)
                        if status["applied"] >= commit:
                            break
                    except ClientError:
                        pass
                    await trio.sleep(0.1)
    return gaps


async def worker_failover(cluster: Cluster, lease: float) -> float | None:
    """Seconds from kill -9 of one of 3 demo workers to all its partitions owned
    elsewhere (None when `raftcoord worker run` is not available)."""
    from cli.main import main as cli_main
    if "worker" not in cli_main.commands:
        return None
    addresses = ",".join(cluster.addresses)
    workers = {}
    for index in range(3):
        name = f"bench-worker-{index + 1}"
        log = open(os.path.join(cluster.base, f"{name}.log"), "ab")
        workers[name] = subprocess.Popen(
            [sys.executable, "-m", "cli", "worker", "run", "--id", name, "--zone",
             f"zone-{index + 1}", "--addresses", addresses, "--lease", str(lease)],
            stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        cluster.extra.append(workers[name])
    async with Client(cluster.addresses, timeout=30) as client:
        await client.create_group("bench", 64)

        async def layout() -> tuple[dict, int]:
            view = await client.leader_status()
            return {w["id"]: w["partitions"] for w in view["workers"]}, view["unowned_slots"]
        with trio.fail_after(60):
            while True:
                counts, unowned = await layout()
                if unowned == 0 and sorted(counts.get(n, 0) for n in workers) == [21, 21, 22]:
                    break
                await trio.sleep(0.2)
        victim = "bench-worker-1"
        killed = time.perf_counter()
        workers[victim].send_signal(signal.SIGKILL)
        with trio.fail_after(60):
            while True:
                counts, unowned = await layout()
                if unowned == 0 and counts.get(victim, 0) == 0:
                    return time.perf_counter() - killed
                await trio.sleep(0.05)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--clients", default="64,256")
    parser.add_argument("--sequential", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    print("command: python benchmarks/bench_cluster.py " + " ".join(sys.argv[1:]))
    print(f"machine: {platform.machine()} {os.cpu_count()} CPUs, load average "
          f"{' '.join('%.2f' % x for x in os.getloadavg())}, Python {platform.python_version()}")
    with tempfile.TemporaryDirectory(prefix="bench-cluster-") as base:
        cluster = Cluster(base)
        try:
            for node_id in (1, 2, 3):
                cluster.start(node_id)

            async def run() -> None:
                async with Client(cluster.addresses, timeout=30) as client:
                    await client.leader_status()
                for clients in [int(c) for c in args.clients.split(",") if c]:
                    before = await leader_stats(cluster.addresses)
                    rate = await throughput(cluster.addresses, clients, args.seconds)
                    after = await leader_stats(cluster.addresses)
                    batches = after["proposal_batches"] - before["proposal_batches"]
                    syncs = after["synced_writes"] - before["synced_writes"]
                    per_batch = (after["proposals"] - before["proposals"]) / max(1, batches)
                    fsync_ms = (after["sync_seconds"] - before["sync_seconds"]) / max(1, syncs)
                    print(f"puts/s with {clients:>3} concurrent clients: {rate:8.0f}   "
                          f"(leader: {per_batch:.1f} proposals per batch, "
                          f"{fsync_ms * 1e3:.2f} ms per fsync)")
                latencies = await sequential(cluster.addresses, args.sequential)
                print(f"sequential put latency: median {statistics.median(latencies) * 1e3:.2f} "
                      f"ms, p99 {percentile(latencies, 0.99) * 1e3:.2f} ms "
                      f"({len(latencies)} puts)")
                moved = await worker_failover(cluster, 3.0)
                if moved is None:
                    print("worker kill -9 -> partitions owned elsewhere: not measured "
                          "(`raftcoord worker run` is not installed)")
                else:
                    print(f"worker kill -9 -> all its partitions owned elsewhere: {moved:.2f} s "
                          f"(lease 3.0 s, 64 partitions over 3 workers)")
                if args.rounds:
                    gaps = await failover(cluster, args.rounds)
                    print(f"leader kill -9 -> next successful put: median "
                          f"{statistics.median(gaps):.2f} s, max {max(gaps):.2f} s "
                          f"({len(gaps)} rounds)")
            trio.run(run)
        finally:
            cluster.stop()
    print(f"load average after: {' '.join('%.2f' % x for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
