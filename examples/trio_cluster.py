"""Three raft nodes over TCP on loopback, with the batteries: RaftRuntime + TcpTransport.

Run it with `python examples/trio_cluster.py [DATA_DIR]`. Each node has a durable
log in DATA_DIR (a temporary directory by default), a TCP listener on a free
loopback port, and a tiny key-value state machine. The script waits for a leader,
writes through it, reads linearizably on a follower, then stops the cluster.
Run it twice with the same DATA_DIR and the second run starts from the first's state.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import trio

from raft import Config, DiskStorage, Entry
from raft.runtime import RaftRuntime
from raft.transport import TcpTransport

IDS = (1, 2, 3)


class KeyValue:
    """The application state: a dict, changed by JSON commands {"set": [key, value]}."""

    def __init__(self) -> None:
        self.data: dict[str, str] = {}

    def apply(self, entry: Entry) -> str | None:
        key, value = json.loads(entry.data)["set"]
        previous = self.data.get(key)
        self.data[key] = value
        return previous

    def snapshot(self) -> bytes:
        return json.dumps(self.data, sort_keys=True).encode()

    def restore(self, data: bytes) -> None:
        self.data = json.loads(data) if data else {}


async def main(data_dir: Path) -> None:
    runtimes: dict[int, RaftRuntime] = {}
    machines = {i: KeyValue() for i in IDS}
    storages = {i: DiskStorage(str(data_dir / f"node-{i}")) for i in IDS}
    try:
        async with trio.open_nursery() as nursery:
            # Each runtime sends through its transport, which delivers to it.
            transports = {i: TcpTransport(i, ("127.0.0.1", 0), {}) for i in IDS}
            for i in IDS:
                runtimes[i] = RaftRuntime.over(transports[i], Config(id=i, voters=IDS),
                                               storages[i], machines[i], tick_interval=0.05,
                                               snapshot_every=100)
            # Listeners first (port 0: the system picks free ports), then tell every
            # transport where its peers are, then start the nodes.
            for i in IDS:
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
            print(f"node {leader.id} leads (term {leader.status().term}); "
                  f"ports {[transports[i].address[1] for i in IDS]}")
            with trio.fail_after(10):
                # A new leader may not have applied what earlier terms committed:
                # read through a barrier, not straight from its local state.
                await leader.read_barrier()
                for n in range(3):
                    key = f"run-{n}"
                    runs = int(machines[leader.id].data.get(key, "0")) + 1
                    previous = await leader.propose(json.dumps({"set": [key, str(runs)]}).encode())
                    print(f"set {key}={runs} (was {previous})")
                follower = runtimes[next(i for i in IDS if i != leader.id)]
                await follower.read_barrier()
            print(f"node {follower.id} reads {machines[follower.id].data}")
            nursery.cancel_scope.cancel()
    finally:
        for storage in storages.values():
            storage.close()


if __name__ == "__main__":
    if len(sys.argv) > 1:
        trio.run(main, Path(sys.argv[1]))
    else:
        with tempfile.TemporaryDirectory() as tmp:
            trio.run(main, Path(tmp))
