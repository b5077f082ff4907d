"""Test-only broken variants of the coordinator and its workers (planted bugs).

Each must be caught by a checker of `simulations.coord_checkers` within a modest
seed sweep (tests/test_sim_coord.py).
"""

from __future__ import annotations

import attrs

from coordinator import commands as c
from coordinator.commands import WorkerState
from coordinator.state import CoordinatorState
from raft.types import Role
from simulations.coord_workers import Heartbeat, SimWorker
from simulations.coord_world import CoordWorld, _HeartbeatRead


class LeaseIgnoringWorker(SimWorker):
    """Acts for whatever its last view listed, without looking at its lease."""

    def acting(self, now: float) -> list[tuple[str, int, int]]:
        if not self.up or self.left:
            return []
        return sorted((s.partition_id, s.slot, s.epoch) for s in self.view.values()
                      if not s.revoking)


class NoEpochBumpState(CoordinatorState):
    """A new owner keeps the partition's epoch (the fencing token never changes)."""

    def _set_owner(self, record, slot, worker, now) -> None:
        super()._set_owner(record, slot, worker, now)
        record.epoch -= 1


class StickyHoldState(CoordinatorState):
    """A dead worker's slots are held for it for 3 s although the restart delay is
    0, so every failover takes 3 s longer than it may."""

    def _expire(self, cmd: c.ExpireWorker) -> c.Result:
        config = self._config
        self._config = attrs.evolve(config, restart_delay=3.0)
        try:
            return super()._expire(cmd)
        finally:
            self._config = config


class UnfencedState(CoordinatorState):
    """Checkpoint writes are accepted whatever epoch they carry."""

    def _fenced_put(self, cmd: c.FencedPut) -> c.Result:
        if cmd.partition_id not in self.partitions:
            return c.Error(code=c.ErrorCode.UNKNOWN_PARTITION, message=cmd.partition_id)
        return self._write(cmd.key, cmd.value)


class UnconfirmedAckWorld(CoordWorld):
    """A node that believes it leads acknowledges a heartbeat at once, without the
    ReadIndex round that proves it still leads: a deposed leader that has not
    noticed yet renews leases the new leader is about to expire."""

    def _on_to_node(self, node_id: int, packet: tuple) -> None:
        number, message = packet
        node = self.nodes[node_id]
        driver = self.drivers.get(node_id)
        if (isinstance(message, Heartbeat) and node.up and not node.paused
                and self.network.connected(number, node_id) and driver is not None
                and driver.ready and node.role is Role.LEADER):
            record = node.kv.state.workers.get(message.worker_id)
            if record is not None and record.state is not WorkerState.DEAD:
                self._heartbeat_confirmed(node, _HeartbeatRead(
                    driver, number, message.worker_id, message.seq, self.node_clock(node_id)))
                return
        super()._on_to_node(node_id, packet)
