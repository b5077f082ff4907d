"""Test-only broken variants of the coordinator and its workers (planted bugs).

Each must be caught by a checker of `simulations.coord_checkers` within a modest
seed sweep (tests/test_sim_coord.py).
"""

from __future__ import annotations

import attrs

from coordinator import commands as c
from coordinator.lease import LeaseTable
from coordinator.node import NodeDriver
from coordinator.state import CoordinatorState
from coordinator.worker import WorkerSession


class LeaseIgnoringSession(WorkerSession):
    """Acts for whatever its last view listed, without looking at its lease."""

    def acting(self, now: float) -> list[tuple[str, int, int]]:
        if self.left:
            return []
        return sorted((s.partition_id, s.slot, s.epoch) for s in self.view.values()
                      if not s.revoking)

    def may_act_for(self, partition_id: str, epoch: int, now: float) -> bool:
        slot = self.view.get(partition_id)
        return slot is not None and slot.epoch == epoch and not slot.revoking


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


class UnconfirmedAckDriver(NodeDriver):
    """A node that believes it leads acknowledges a heartbeat at once, without the
    ReadIndex round that proves it still leads: a deposed leader that has not
    noticed yet renews leases the new leader is about to expire."""

    def _start_heartbeat_read(self, read):
        return self._answer_heartbeat(read)


class PartialGraceLeaseTable(LeaseTable):
    """A new leader grants the workers it inherits only `GRANT` of a lease from its
    term start (and may expire them after that), instead of a full lease: a worker
    whose last acknowledged heartbeat went to the previous leader still acts while
    its partitions are handed to others. Planted by replacing
    `coordinator.leader.LeaseTable` (see `partial_grace`)."""

    GRANT = 0.5

    def __init__(self, timing, term_start, known_workers=()):
        super().__init__(timing, term_start, known_workers)
        cut = (1.0 - self.GRANT) * timing.leader_lease
        self._term_start = term_start - cut  # moves grace_until back by the same
        for worker in self._deadline:
            self._deadline[worker] -= cut


class NoGraceLeaseTable(PartialGraceLeaseTable):
    """A new leader grants inherited workers no lease at all from its term start."""

    GRANT = 0.0


def partial_grace(monkeypatch, table=PartialGraceLeaseTable) -> None:
    """Plant `table` as the lease table every coordinator leader builds."""
    import coordinator.leader

    monkeypatch.setattr(coordinator.leader, "LeaseTable", table)
