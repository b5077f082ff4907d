"""Throughput of the sans-IO Raft core alone, and learner catch-up.

Three nodes in one process, in-memory storage, no I/O: the leader gets 64-byte
proposals in batches, messages are handed straight to their targets, and an entry
counts once every node has applied it.

    python benchmarks/bench_core.py                      # replication throughput
    python benchmarks/bench_core.py --catch-up 1000000   # + learner catch-up figures

Goal (issue 2): at least 100,000 committed entries/s on one core.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections import deque

from raft import Config, ConfChange, ConfChangeType, EntryType, MemoryStorage, Role
from raft.node import RawNode


class BenchPeer:
    __slots__ = ("node", "storage", "applied", "state_bytes")

    def __init__(self, nid: int, voters: tuple[int, ...], **kwargs) -> None:
        self.storage = MemoryStorage()
        self.node = RawNode(Config(id=nid, voters=voters, seed=nid, **kwargs), self.storage)
        self.applied = 0
        self.state_bytes = 0

    def handle(self, out: deque) -> None:
        node = self.node
        while node.has_ready():
            rd = node.ready()
            if rd.snapshot is not None:
                self.storage.apply_snapshot(rd.snapshot)
                self.state_bytes = len(rd.snapshot.data)
                self.applied = rd.snapshot.index
            self.storage.save(rd.hard_state, rd.entries)
            out.extend(rd.messages)
            committed = rd.committed_entries
            if committed:
                self.applied = committed[-1].index
                for e in committed:
                    if e.type is EntryType.CONF_CHANGE:
                        node.apply_conf_change(e)
            node.advance(rd)


def pump(peers: dict[int, BenchPeer]) -> int:
    queue: deque = deque()
    for p in peers.values():
        p.handle(queue)
    delivered = 0
    while queue:
        m = queue.popleft()
        target = peers.get(m.to)
        if target is None:
            continue
        target.node.step(m)
        target.handle(queue)
        delivered += 1
    return delivered


def cluster(voters: tuple[int, ...], **kwargs) -> dict[int, BenchPeer]:
    peers = {i: BenchPeer(i, voters, **kwargs) for i in voters}
    peers[voters[0]].node.campaign()
    pump(peers)
    assert peers[voters[0]].node.role is Role.LEADER
    return peers


def replication(total: int, batch: int) -> tuple[float, float, int]:
    peers = cluster((1, 2, 3), max_entries_per_message=batch, max_inflight=64)
    leader = peers[1].node
    payload = b"x" * 64
    start_index = leader.log.last_index()
    messages = 0
    t0 = time.perf_counter()
    c0 = time.process_time()
    proposed = 0
    while proposed < total:
        n = min(batch, total - proposed)
        for _ in range(n):
            leader.propose(payload)
        proposed += n
        messages += pump(peers)
    # Commit notices reach followers with the next heartbeat.
    leader.tick()
    messages += pump(peers)
    elapsed = time.perf_counter() - t0
    cpu = time.process_time() - c0
    target = start_index + total
    assert all(p.applied >= target for p in peers.values()), [p.applied for p in peers.values()]
    return elapsed, cpu, messages


def catch_up_by_log(entries: int) -> float:
    peers = cluster((1,), max_entries_per_message=4096, max_inflight=64, max_uncommitted_bytes=0)
    leader = peers[1].node
    payload = b"y" * 64
    for _ in range(entries // 10_000):
        for _ in range(10_000):
            leader.propose(payload)
        pump(peers)
    last = leader.log.last_index()
    peers[2] = BenchPeer(2, ())
    t0 = time.perf_counter()
    leader.propose_conf_change(ConfChange(ConfChangeType.ADD_LEARNER, 2))
    while peers[2].applied < last:
        leader.tick()
        pump(peers)
    return time.perf_counter() - t0


def catch_up_by_snapshot(entries: int, state_bytes: int, chunk: int) -> float:
    peers = cluster((1,), max_entries_per_message=4096, max_snapshot_chunk_bytes=chunk, max_uncommitted_bytes=0)
    leader_peer = peers[1]
    leader = leader_peer.node
    payload = b"y" * 64
    for _ in range(entries // 10_000):
        for _ in range(10_000):
            leader.propose(payload)
        pump(peers)
    snap = leader.create_snapshot(leader.applied_index, os.urandom(state_bytes))
    leader_peer.storage.compact(snap)
    peers[2] = BenchPeer(2, ())
    t0 = time.perf_counter()
    leader.propose_conf_change(ConfChange(ConfChangeType.ADD_LEARNER, 2))
    last = leader.log.last_index()
    while peers[2].applied < last:
        leader.tick()
        pump(peers)
    assert peers[2].state_bytes == state_bytes
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entries", type=int, default=300_000)
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--catch-up", type=int, default=0, metavar="N", help="also time a learner catching up N entries")
    parser.add_argument("--state-mib", type=int, default=10)
    args = parser.parse_args()

    print(f"# python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} cores")
    print(f"# reproduce: python benchmarks/bench_core.py {' '.join(sys.argv[1:])}".rstrip())
    elapsed, cpu, messages = replication(args.entries, args.batch)
    rate = args.entries / elapsed
    cpu_rate = args.entries / cpu
    # The process is single-threaded: CPU time is what one core needs; wall time
    # also counts waiting for a core when the machine is shared.
    print(f"replication: {args.entries:,} x 64 B entries, batch {args.batch}, 3 nodes, {messages:,} messages")
    print(f"  wall {elapsed:.2f} s = {rate:,.0f} committed entries/s")
    print(f"  cpu  {cpu:.2f} s = {cpu_rate:,.0f} committed entries/s per core "
          f"(goal >= 100,000/s on one core: {'met' if cpu_rate >= 100_000 else 'MISSED'})")
    if args.catch_up:
        t = catch_up_by_log(args.catch_up)
        print(f"learner catch-up by log: {args.catch_up:,} entries in {t:.2f} s ({args.catch_up / t:,.0f} entries/s)")
        t = catch_up_by_snapshot(args.catch_up, args.state_mib << 20, 1 << 20)
        print(f"learner catch-up by snapshot: {args.state_mib} MiB state (1 MiB chunks) after "
              f"{args.catch_up:,} compacted entries in {t:.3f} s")


if __name__ == "__main__":
    main()
