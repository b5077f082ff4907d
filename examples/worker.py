"""A complete worker: it works on the partitions the cluster gives it, writing a
fenced checkpoint for each every second, and stops at once when it may not go on.

Run it against a cluster from `raftcoord cluster up`:
    python examples/worker.py my-worker 127.0.0.1:7001,127.0.0.1:7002
"""

import sys

import trio

from coordinator import Worker
from coordinator.agent import NotActing
from coordinator.worker import PartitionAcquired, PartitionLost, PartitionRevoked


async def work_on(worker, partition, epoch, task_status=trio.TASK_STATUS_IGNORED):
    """The application's work for one partition, fenced by its epoch."""
    with trio.CancelScope() as scope:
        task_status.started(scope)
        step = 0
        while worker.may_act_for(partition, epoch):
            step += 1
            try:
                result = await worker.checkpoint(partition, epoch, b"step %d" % step)
            except NotActing:
                return  # the lease ran out: stop at once
            if not result.accepted:
                return  # fenced off: the partition has moved on
            await trio.sleep(1)


async def main(worker_id, addresses):
    async with Worker(worker_id, addresses, zone="zone-1") as worker:
        async with trio.open_nursery() as nursery:
            running = {}
            async for event in worker.events():
                partition = event.partition_id
                if isinstance(event, PartitionAcquired):
                    running[partition] = await nursery.start(
                        work_on, worker, partition, event.epoch)
                elif isinstance(event, (PartitionRevoked, PartitionLost)):
                    scope = running.pop(partition, None)
                    if scope is not None:
                        scope.cancel()  # a revoke allows until event.deadline; a loss, nothing
                    if isinstance(event, PartitionRevoked):
                        await worker.release(partition)  # the new owner may start


if __name__ == "__main__":
    trio.run(main, sys.argv[1], sys.argv[2].split(","))
