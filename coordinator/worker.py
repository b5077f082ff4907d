"""The worker session: what a worker sends, and what it may act for right now.

`WorkerSession` holds every rule of a worker's side of the coordinator protocol. It
is sans-IO: every method takes the worker's own clock reading ``now`` (the same
clock for the whole session; it must never go back), it sends nothing itself, and
its only randomness (picking a node to try) comes from the injected
``random.Random``. The simulator drives it for its simulated worker processes, the
trio agent (`coordinator.agent.Worker`) for real ones.

Rules (the lease arithmetic is `coordinator.lease`):

1. Every heartbeat interval the worker sends a `Heartbeat` (`heartbeat`) to the node
   it believes leads, recording the *send* time in its `WorkerLease`. Two unanswered
   heartbeats in a row, and it tries a random node.
2. An `Ack` extends the lease of the (partition, epoch) pairs it covers from that
   send time, and replaces the worker's view of its slots. A `Nack` (unknown or dead
   to the leader) makes it forget every lease and its view: it may act for nothing
   until a new session is acknowledged. A `Redirect` points it at the leader named.
3. It acts for a partition — e.g. a fenced checkpoint write (`checkpoint`) — only
   while `may_act_for` holds on its own clock. That is the only source of truth:
   `acting` lists what it may act for at ``now``.
4. A slot its view shows as revoking is given up locally first, then `Release` is
   sent, and re-sent every round until the view drops the slot (`releases`). With
   ``auto_release`` (the simulator's workers) that happens at the first round after
   the revoke is seen; otherwise the application lets go (`release`) within the
   revoke's deadline, and a slot whose lease ran out is released anyway.
5. A DRAINING worker whose view is empty forgets its lease and sends `Leave`
   (`leave`); the process then stops.

For an application, `poll` turns the session into events in the order they happened:
`PartitionAcquired` (with its epoch and lease deadline), `LeaseRenewed`,
`PartitionRevoked` (let go before the deadline), `PartitionReleased` and
`PartitionLost` (the lease ran out or the leader forgot the worker: stop at once).
"""

from __future__ import annotations

import random
from typing import Any, Callable, Optional, Sequence

import attrs

from .lease import LeaseTiming, WorkerLease
from .protocol import Ack, Checkpoint, Heartbeat, Leave, Nack, Redirect, Release
from .records import OwnedSlot

# -- events for the application ----------------------------------------------------------


@attrs.frozen
class PartitionAcquired:
    """The worker may act for ``partition_id`` with fencing token ``epoch`` until
    ``deadline`` (worker clock) unless renewed."""

    partition_id: str
    slot: int
    epoch: int
    deadline: float


@attrs.frozen
class LeaseRenewed:
    """The lease of ``partition_id`` (at ``epoch``) now runs until ``deadline``."""

    partition_id: str
    slot: int
    epoch: int
    deadline: float


@attrs.frozen
class PartitionRevoked:
    """The partition is moving away: finish and `release` it before ``deadline``
    (when its lease runs out anyway)."""

    partition_id: str
    slot: int
    epoch: int
    deadline: float


@attrs.frozen
class PartitionReleased:
    """The worker let go of the partition (it no longer acts for it)."""

    partition_id: str
    slot: int
    epoch: int


@attrs.frozen
class PartitionLost:
    """The worker may no longer act for the partition and did not let go itself:
    its lease ran out, or the leader forgot the worker. Stop at once."""

    partition_id: str
    slot: int
    epoch: int


SessionEvent = Any  # one of the five classes above


@attrs.define
class _Told:
    """What the application was last told about one partition."""

    slot: int
    epoch: int
    deadline: float
    revoked: bool = False


def _leader_id(redirect: Redirect) -> Any:
    return redirect.leader


class WorkerSession:
    """One worker process's session with the coordinator (module docstring).

    Args:
        worker_id: the worker's stable identity.
        zone: its failure domain.
        timing: lease arithmetic (the coordinator's).
        nodes: how to reach each coordinator node (node ids in the simulator,
            addresses in production); the list may be changed in place.
        rng: picks a node to try.
        address: where the worker's own clients reach it ("" if nobody does).
        process: the id of this process, new at every start (sent with heartbeats;
            see `Heartbeat.process`).
        auto_release: give up revoked slots at the next round without asking the
            application (rule 4).
        redirect_target: the node to try after a `Redirect` (falsy: a random one).
    """

    def __init__(self, worker_id: str, zone: str, timing: LeaseTiming, nodes: Sequence[Any],
                 rng: random.Random, *, address: str = "", process: str = "",
                 auto_release: bool = True,
                 redirect_target: Callable[[Redirect], Any] = _leader_id) -> None:
        self.worker_id = worker_id
        self.zone = zone
        self.timing = timing
        self.nodes = nodes
        self.rng = rng
        self.address = address
        self.process = process
        self.auto_release = auto_release
        self._redirect_target = redirect_target
        self.lease = WorkerLease(timing)
        self.view: dict[str, OwnedSlot] = {}
        self.slot_of: dict[tuple[str, int], int] = {}
        self.draining = False
        self.left = False
        self.target: Any = None
        self.unanswered = 0
        self.last_acked = 0
        self._next_write = 0
        self._let_go: set[tuple[str, int]] = set()  # released locally, view still revoking
        self._told: dict[str, _Told] = {}
        self._events: list[SessionEvent] = []

    # -- what the worker may do ----------------------------------------------------------

    def acting(self, now: float) -> list[tuple[str, int, int]]:
        """(partition, slot, epoch) the worker may act for at ``now`` (rule 3)."""
        if self.left:
            return []
        slot_of = self.slot_of
        return [(pid, slot_of.get((pid, epoch), 0), epoch)
                for pid, epoch in self.lease.active_partitions(now)]

    def may_act_for(self, partition_id: str, epoch: int, now: float) -> bool:
        """Whether the worker may act for ``(partition_id, epoch)`` at ``now``."""
        return not self.left and self.lease.may_act_for(partition_id, epoch, now)

    # -- inputs ----------------------------------------------------------------------------

    def on_ack(self, message: Ack) -> None:
        """An acknowledgement of one of this session's heartbeats (rule 2)."""
        if message.ack.seq < self.last_acked or not self.lease.ack_received(message.ack):
            return
        self.last_acked = message.ack.seq
        self.unanswered = 0
        self.view = {s.partition_id: s for s in message.view}
        for s in message.view:
            self.slot_of[(s.partition_id, s.epoch)] = s.slot
        self._let_go = {key for key in self._let_go
                        if key[0] in self.view and self.view[key[0]].epoch == key[1]
                        and self.view[key[0]].revoking}
        self.draining = message.draining

    def on_nack(self, message: Nack) -> None:
        """The leader does not know this worker as live: forget everything (rule 2)."""
        if message.seq < self.last_acked:
            return  # older than an acknowledgement already acted on
        self.unanswered = 0
        self.lease.lost()
        self.view = {}
        self.slot_of = {}
        self._let_go = set()
        self.draining = False

    def on_redirect(self, message: Redirect) -> None:
        """The node asked is not the leader: try the one it names (rule 2)."""
        target = self._redirect_target(message)
        self.target = target if target else self.rng.choice(self.nodes)
        self.unanswered = 0

    # -- one round of work -------------------------------------------------------------------

    def heartbeat(self, now: float) -> tuple[Any, Heartbeat]:
        """The heartbeat to send now, and the node to send it to (rule 1)."""
        if not self.target or self.unanswered >= 2:
            self.target = self.rng.choice(self.nodes)
            self.unanswered = 0
        self.unanswered += 1
        seq = self.lease.heartbeat_sent(now)
        return self.target, Heartbeat(self.worker_id, seq, self.zone, self.address,
                                      self.process)

    def releases(self, now: float) -> list[Release]:
        """Give up revoked slots locally, then the `Release` messages to send (rule 4)."""
        out = []
        for slot in self.view.values():
            if not slot.revoking:
                continue
            key = (slot.partition_id, slot.epoch)
            if key not in self._let_go:
                if not (self.auto_release
                        or not self.lease.may_act_for(slot.partition_id, slot.epoch, now)):
                    continue
                self._let_go_of(slot)
            out.append(Release(self.worker_id, slot.partition_id, slot.slot, slot.epoch))
        return out

    def release(self, partition_id: str, now: float) -> Optional[Release]:
        """The application let go of a revoked partition: stop acting for it now.

        Returns:
            The `Release` to send (None if the partition is not being revoked; the
            worker stops acting for it all the same).
        """
        slot = self.view.get(partition_id)
        if slot is None:
            known = self._told.get(partition_id)
            if known is not None:
                self.lease.release(partition_id, known.epoch)
            return None
        self._let_go_of(slot)
        if not slot.revoking:
            return None
        return Release(self.worker_id, slot.partition_id, slot.slot, slot.epoch)

    def _let_go_of(self, slot: OwnedSlot) -> None:
        self.lease.release(slot.partition_id, slot.epoch)
        self._let_go.add((slot.partition_id, slot.epoch))
        told = self._told.pop(slot.partition_id, None)
        if told is not None:
            # The lease ends for every epoch of the partition (`WorkerLease.release`),
            # also for one the application holds that the latest view, answered by
            # a stale leader, lists with another epoch: tell it which one ended.
            self._events.append(PartitionReleased(slot.partition_id, told.slot, told.epoch))

    def next_partition(self, now: float) -> Optional[tuple[str, int, int]]:
        """The next (partition, slot, epoch) to work on, round robin over `acting`."""
        acting = self.acting(now)
        if not acting:
            return None
        choice = acting[self._next_write % len(acting)]
        self._next_write += 1
        return choice

    def checkpoint(self, partition_id: str, epoch: int, value: bytes,
                   now: float) -> Optional[Checkpoint]:
        """A fenced checkpoint write for ``(partition_id, epoch)``, or None when the
        worker may not act for it at ``now`` (rule 3)."""
        if not self.may_act_for(partition_id, epoch, now):
            return None
        return Checkpoint(self.worker_id, partition_id, epoch, value)

    def leave(self, now: float) -> Optional[Leave]:
        """A drained worker with nothing left stops and deregisters (rule 5)."""
        if self.draining and not self.view and not self.acting(now):
            self.lease.lost()
            self.left = True
            return Leave(self.worker_id)
        return None

    def stop(self, now: float) -> Leave:
        """Stop acting for every partition now and end the session; returns the
        `Leave` to send (rule 4: the worker lets go before it deregisters)."""
        for partition_id, _, epoch in self.acting(now):
            slot = self.view.get(partition_id)
            if slot is not None and slot.epoch == epoch:
                self._let_go_of(slot)
            else:
                self.lease.release(partition_id, epoch)
        self.lease.lost()
        self.left = True
        return Leave(self.worker_id)

    # -- for an application ------------------------------------------------------------------

    def poll(self, now: float) -> list[SessionEvent]:
        """What changed for the application since the last call, in order."""
        events, self._events = self._events, []
        current = {pid: epoch for pid, epoch in self.lease.active_partitions(now)}
        if self.left:
            current = {}
        for pid, told in list(self._told.items()):
            # Also lost when the lease the application knows of ran out before a
            # renewal was seen (e.g. the process was paused): it starts over.
            if current.get(pid) != told.epoch or told.deadline <= now:
                del self._told[pid]
                events.append(PartitionLost(pid, told.slot, told.epoch))
        for pid, epoch in current.items():
            deadline = self.lease.deadline_for(pid, epoch)
            assert deadline is not None
            slot = self.slot_of.get((pid, epoch), 0)
            told = self._told.get(pid)
            if told is None:
                told = self._told[pid] = _Told(slot, epoch, deadline)
                events.append(PartitionAcquired(pid, slot, epoch, deadline))
            elif deadline > told.deadline:
                told.deadline = deadline
                events.append(LeaseRenewed(pid, slot, epoch, deadline))
            seen = self.view.get(pid)
            if not told.revoked and seen is not None and seen.epoch == epoch and seen.revoking:
                told.revoked = True
                events.append(PartitionRevoked(pid, slot, epoch, told.deadline))
        return events

    def next_deadline(self) -> Optional[float]:
        """The earliest lease deadline of a partition the application holds (when
        `poll` must run again to report it lost), None if it holds none."""
        return min((told.deadline for told in self._told.values()), default=None)


__all__ = [
    "WorkerSession", "PartitionAcquired", "LeaseRenewed", "PartitionRevoked",
    "PartitionReleased", "PartitionLost",
]
