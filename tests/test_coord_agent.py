"""The trio worker agent against in-process coordinator nodes.

The nodes here run the real `NodeDriver` over one `CoordinatorState` that commits
every proposal at once (no Raft: leadership is assigned by the test), reached through
in-memory streams, so that trio's MockClock runs everything in virtual time.
"""

from __future__ import annotations

import random

import pytest
import trio
import trio.testing

from raft.types import Role

from coordinator import commands as c
from coordinator.agent import NotActing, Worker
from coordinator.config import CoordinatorConfig
from coordinator.lease import LeaseTiming
from coordinator.node import NodeDriver, Propose, Send, StartRead, apply_entry
from coordinator.protocol import FrameDecoder, ProtocolError, encode_frame
from coordinator.state import CoordinatorState
from coordinator.worker import (
    LeaseRenewed,
    PartitionAcquired,
    PartitionLost,
    PartitionReleased,
    PartitionRevoked,
)

TIMING = LeaseTiming(lease_duration=3.0, max_drift=0.05, safety_margin=0.3)


class FakeCluster:
    """Coordinator nodes ``n1``, ``n2``, ... sharing one instantly committed state."""

    def __init__(self, nursery: trio.Nursery, nodes: int = 3) -> None:
        self.nursery = nursery
        self.addresses = [f"n{i}" for i in range(1, nodes + 1)]
        self.state = CoordinatorState(CoordinatorConfig(revoke_timeout=TIMING.leader_lease))
        self.drivers = {
            address: NodeDriver(i, lambda: self.state, TIMING,
                                client_address=lambda n: f"n{n}" if n else "")
            for i, address in enumerate(self.addresses, 1)}
        self.up = set(self.addresses)
        self.streams: dict[str, list] = {address: [] for address in self.addresses}
        self.index = 0
        self.term = 0
        self.leader = ""
        nursery.start_soon(self._ticker)

    def elect(self, address: str) -> None:
        self.term += 1
        self.leader = address
        leader_id = self.addresses.index(address) + 1
        for other, driver in self.drivers.items():
            role = Role.LEADER if other == address else Role.FOLLOWER
            driver.on_role_change(trio.current_time(), role, self.term, leader_id, self.index)
            driver.on_caught_up(self.index)

    def command(self, command: c.Command) -> None:
        """An operator command through the leader."""
        self._carry_out(self.drivers[self.leader],
                        self.drivers[self.leader].on_client_command(
                            trio.current_time(), command, None, 1))

    async def kill(self, address: str) -> None:
        self.up.discard(address)
        for stream in self.streams[address]:
            await trio.aclose_forcefully(stream)
        self.streams[address] = []

    async def connect(self, address: str) -> trio.abc.Stream:
        if address not in self.up:
            raise OSError(f"{address} refuses connections")
        client, server = trio.testing.memory_stream_pair()
        self.streams[address].append(server)
        self.nursery.start_soon(self._serve, address, server)
        return client

    async def _serve(self, address: str, stream: trio.abc.Stream) -> None:
        decoder = FrameDecoder()
        driver = self.drivers[address]
        try:
            while address in self.up:
                data = await stream.receive_some()
                if not data:
                    return
                for frame in decoder.feed(data):
                    self._carry_out(driver, driver.on_worker_message(
                        trio.current_time(), frame.message, stream, frame.request_id))
        except (trio.BrokenResourceError, trio.ClosedResourceError, ProtocolError):
            pass

    def _carry_out(self, driver: NodeDriver, outputs: list) -> None:
        for output in outputs:
            if isinstance(output, Propose):
                self.index += 1
                request_id, command, result = apply_entry(self.state, output.data)
                for other in self.drivers.values():
                    other.on_applied(self.index, request_id, command, result)
                    other.on_caught_up(self.index)
                self._carry_out(driver, driver.on_proposal_result(output, result))
            elif isinstance(output, StartRead):
                self._carry_out(driver, driver.on_read_confirmed(output.token))
            elif isinstance(output, Send) and output.to is not None:
                self.nursery.start_soon(self._send, output.to,
                                        encode_frame(output.request_id, output.message))

    @staticmethod
    async def _send(stream: trio.abc.Stream, data: bytes) -> None:
        try:
            await stream.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass

    async def _ticker(self) -> None:
        while True:
            await trio.sleep(0.1)
            if self.leader in self.up:
                driver = self.drivers[self.leader]
                self._carry_out(driver, driver.on_tick(trio.current_time()))


def worker(cluster: FakeCluster, worker_id: str, addresses=None, **options) -> Worker:
    return Worker(worker_id, addresses or cluster.addresses, zone="z1", timing=TIMING,
                  heartbeat_interval=0.5, rng=random.Random(worker_id),
                  connect=cluster.connect, **options)


async def collect(events, count: int, kinds=(PartitionAcquired,), within=30.0) -> list:
    out = []
    with trio.fail_after(within):
        async for event in events:
            if isinstance(event, kinds):
                out.append((trio.current_time(), event))
                if len(out) == count:
                    return out
    raise AssertionError(f"the events ended after {out}")


async def test_a_worker_acquires_partitions_writes_fenced_checkpoints_and_leaves(autojump_clock):
    async with trio.open_nursery() as nursery:
        cluster = FakeCluster(nursery)
        cluster.elect("n1")
        cluster.command(c.CreatePartitionGroup(name="g", count=4, now=0.0))
        async with worker(cluster, "w1") as agent:
            acquired = [e for _, e in await collect(agent.events(), 4)]
            assert sorted(e.partition_id for e in acquired) == ["g/0", "g/1", "g/2", "g/3"]
            first = acquired[0]
            assert first.epoch == cluster.state.partitions[first.partition_id].epoch
            assert first.deadline > agent.now()
            issued = []
            result = await agent.checkpoint(first.partition_id, first.epoch, b"progress",
                                            on_issue=lambda: issued.append(True))
            assert result.accepted and issued == [True]
            assert cluster.state.kv_get(f"ckpt/{first.partition_id}").value == b"progress"
            with pytest.raises(NotActing):
                await agent.checkpoint(first.partition_id, first.epoch + 1, b"x")
        assert "w1" not in cluster.state.workers  # it left: deregistered
        assert all(owner is None for record in cluster.state.partitions.values()
                   for owner in record.owners)
        nursery.cancel_scope.cancel()


async def test_a_worker_follows_a_redirect_to_the_leaders_address(autojump_clock):
    async with trio.open_nursery() as nursery:
        cluster = FakeCluster(nursery)
        cluster.elect("n3")
        cluster.command(c.CreatePartitionGroup(name="g", count=2, now=0.0))
        async with worker(cluster, "w1", addresses=["n1"]) as agent:
            await collect(agent.events(), 2)
            assert agent.session.target == "n3"
        nursery.cancel_scope.cancel()


async def test_partitions_are_lost_at_the_deadline_when_no_node_answers(autojump_clock):
    async with trio.open_nursery() as nursery:
        cluster = FakeCluster(nursery)
        cluster.elect("n1")
        cluster.command(c.CreatePartitionGroup(name="g", count=3, now=0.0))
        async with worker(cluster, "w1", leave_on_exit=False) as agent:
            events = agent.events()
            await collect(events, 3)
            await trio.sleep(1.0)
            for address in cluster.addresses:
                await cluster.kill(address)
            killed_at = trio.current_time()
            deadlines: dict[str, float] = {}
            lost = []
            with trio.fail_after(TIMING.lease_duration):
                async for event in events:
                    if isinstance(event, (PartitionAcquired, LeaseRenewed)):
                        deadlines[event.partition_id] = event.deadline
                    if isinstance(event, PartitionLost):
                        lost.append((trio.current_time(), event))
                        if len(lost) == 3:
                            break
            for at, event in lost:
                assert not agent.may_act_for(event.partition_id, event.epoch)
                # Reported the moment its lease ran out, well within one lease of the
                # last acknowledged heartbeat, before any leader may reassign it.
                assert at <= killed_at + TIMING.worker_lease
                if event.partition_id in deadlines:
                    assert at == pytest.approx(deadlines[event.partition_id], abs=1e-6)
            assert agent.acting() == []
        nursery.cancel_scope.cancel()


async def test_a_worker_keeps_its_partitions_across_a_leader_change(autojump_clock):
    async with trio.open_nursery() as nursery:
        cluster = FakeCluster(nursery)
        cluster.elect("n1")
        cluster.command(c.CreatePartitionGroup(name="g", count=2, now=0.0))
        async with worker(cluster, "w1", leave_on_exit=False) as agent:
            events = agent.events()
            await collect(events, 2)
            await cluster.kill("n1")
            cluster.elect("n2")
            renewed = await collect(events, 2, kinds=(LeaseRenewed, PartitionLost))
            await trio.sleep(TIMING.lease_duration * 2)
            assert all(isinstance(e, LeaseRenewed) for _, e in renewed)
            assert len(agent.acting()) == 2
            assert agent.session.target == "n2"
        nursery.cancel_scope.cancel()


async def test_a_revoked_partition_moves_only_after_its_owner_let_go(autojump_clock):
    async with trio.open_nursery() as nursery:
        cluster = FakeCluster(nursery)
        cluster.elect("n1")
        cluster.command(c.CreatePartitionGroup(name="g", count=4, now=0.0))
        released_at: dict[str, float] = {}
        async with worker(cluster, "w1", leave_on_exit=False) as first:
            await collect(first.events(), 4)

            async def let_go() -> None:
                async for event in first.events():
                    if isinstance(event, PartitionRevoked):
                        assert first.may_act_for(event.partition_id, event.epoch)
                        await trio.sleep(0.2)  # finish the work in hand
                        await first.release(event.partition_id)
                    elif isinstance(event, PartitionReleased):
                        released_at[event.partition_id] = trio.current_time()
                    elif isinstance(event, PartitionLost):
                        raise AssertionError(f"lost {event}")

            nursery.start_soon(let_go)
            async with worker(cluster, "w2", leave_on_exit=False) as second:
                taken = await collect(second.events(), 2)
                for at, event in taken:
                    assert event.partition_id in released_at
                    assert released_at[event.partition_id] <= at
                    assert not first.may_act_for(event.partition_id, event.epoch - 1)
                assert len(first.acting()) == 2
        nursery.cancel_scope.cancel()
