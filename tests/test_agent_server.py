"""coordinator.Worker against a real node (CoordinatorServer over loopback TCP)."""

from __future__ import annotations

import random

import trio

from coordinator.agent import Worker
from coordinator.client import Client
from coordinator.lease import LeaseTiming
from coordinator.members import Member
from coordinator.server import CoordinatorServer, ServerConfig
from coordinator.worker import PartitionAcquired, PartitionReleased, PartitionRevoked

LEASE, DRIFT, MARGIN = 1.0, 0.05, 0.2
TIMING = LeaseTiming(lease_duration=LEASE, max_drift=DRIFT, safety_margin=MARGIN)


async def start_node(nursery: trio.Nursery, tmp_path) -> CoordinatorServer:
    config = ServerConfig(node_id=1, data_dir=str(tmp_path / "n1"), listen="127.0.0.1:0",
                          peer_listen="127.0.0.1:0", fsync=False, tick_interval=0.01,
                          lease_duration=LEASE, max_drift=DRIFT, safety_margin=MARGIN,
                          members=(Member(node_id=1, peer_address="127.0.0.1:1",
                                          client_address="127.0.0.1:1"),))
    server = CoordinatorServer(config)
    await nursery.start(server.run)
    return server


def agent(server: CoordinatorServer, worker_id: str) -> Worker:
    # The first address refuses connections: the worker must try the other one.
    return Worker(worker_id, ["127.0.0.1:1", server.client_address], zone=worker_id,
                  timing=TIMING, heartbeat_interval=0.1, rng=random.Random(3),
                  request_timeout=1.0)


async def test_workers_share_partitions_hand_them_over_and_leave(nursery, tmp_path):
    server = await start_node(nursery, tmp_path)
    with trio.fail_after(30):
        async with Client([server.client_address], timeout=10) as client:
            await client.create_group("g", 4)
        async with agent(server, "w1") as first:
            held: dict[str, int] = {}
            async for event in first.events():
                if isinstance(event, PartitionAcquired):
                    held[event.partition_id] = event.epoch
                    if len(held) == 4:
                        break
            pid, epoch = sorted(held.items())[0]
            assert (await first.checkpoint(pid, epoch, b"one")).accepted

            handed: list[str] = []

            async def let_go() -> None:
                async for event in first.events():
                    if isinstance(event, PartitionRevoked):
                        await first.release(event.partition_id)
                    elif isinstance(event, PartitionReleased):
                        handed.append(event.partition_id)

            nursery.start_soon(let_go)
            async with agent(server, "w2") as second:
                taken: dict[str, int] = {}
                async for event in second.events():
                    if isinstance(event, PartitionAcquired):
                        # Handed over only after the first owner let go of it.
                        assert event.partition_id in handed
                        assert not first.may_act_for(event.partition_id, held[event.partition_id])
                        taken[event.partition_id] = event.epoch
                        if len(taken) == 2:
                            break
                moved, new_epoch = sorted(taken.items())[0]
                assert new_epoch > held[moved]
                # The old owner's epoch is fenced off; the new owner's write goes in.
                assert (await second.checkpoint(moved, new_epoch, b"two")).accepted
                assert len(first.acting()) == 2
                # w1 leaves: w2 ends with every partition.
                assert await first.leave()
                assert first.acting() == []
                async with Client([server.client_address], timeout=10) as client:
                    while True:
                        workers = {w["id"]: w for w in await client.list_workers()}
                        if "w1" not in workers and workers["w2"]["partitions"] == 4:
                            break
                        await trio.sleep(0.1)
    await server.stop()
