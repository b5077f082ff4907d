"""Simulated worker processes of the coordinator scenarios, and what they send.

A `SimWorker` is one process of a worker agent, driven by the world's events. Its
rules follow `coordinator.lease`:

1. Every `heartbeat_interval` it sends a `Heartbeat` to the node it believes leads,
   recording the *send* time on its own clock in its `WorkerLease`.
2. An `Ack` (a `HeartbeatAck` plus the worker's view of its slots, computed by the
   leader at the same instant) extends the lease from that send time. A `Nack`
   ("unknown or dead: register again") makes it forget everything; a `Redirect`
   points it at another node. Two unanswered heartbeats in a row and it picks a
   random node.
3. It acts for a partition — a fenced checkpoint write through the metadata KV —
   only while `WorkerLease.may_act_for` holds on its own clock (`acting`). A write is
   *prepared* at one instant and *sent* a little later, so a pause in between sends
   it late with an old epoch: fencing must refuse it.
4. A slot its view shows as revoking is released locally first, then `Release` is
   sent (and re-sent until the view drops the slot).
5. A DRAINING worker whose view is empty forgets its lease and sends `Leave`; the
   process then exits.

The worker's clock runs at `rate` (within the configured drift bound) from an
arbitrary `offset`; a crash loses the process (lease, view), not the clock.
"""

from __future__ import annotations

from typing import Optional

import attrs

from coordinator.lease import HeartbeatAck, LeaseTiming, WorkerLease
from coordinator.records import OwnedSlot


# -- worker -> coordinator node -----------------------------------------------------


@attrs.frozen
class Heartbeat:
    """Renew my lease (and register me if you do not know me). ``process`` is the id
    of this worker process (a new one after every restart)."""

    worker_id: str
    seq: int
    zone: str
    process: str = ""


@attrs.frozen
class Release:
    """I stopped acting for this revoked slot."""

    worker_id: str
    partition_id: str
    slot: int
    epoch: int


@attrs.frozen
class Checkpoint:
    """A fenced write of the partition's checkpoint key."""

    worker_id: str
    partition_id: str
    epoch: int
    value: bytes


@attrs.frozen
class Leave:
    """I drained and stopped: deregister me."""

    worker_id: str


# -- coordinator node -> worker -----------------------------------------------------


@attrs.frozen
class Ack:
    """A confirmed leader's acknowledgement, the worker's slots and whether it drains."""

    ack: HeartbeatAck
    view: tuple[OwnedSlot, ...]
    draining: bool


@attrs.frozen
class Nack:
    """The leader does not know the worker as live: forget everything."""

    seq: int


@attrs.frozen
class Redirect:
    """Not the leader; ``leader`` is a hint (0 = unknown)."""

    leader: int


class SimWorker:
    """One worker; `number` is its network address (distinct from node ids)."""

    def __init__(self, worker_id: str, number: int, zone: str, timing: LeaseTiming,
                 rate: float, offset: float, heartbeat_interval: float) -> None:
        self.id = worker_id
        self.number = number
        self.zone = zone
        self.timing = timing
        self.rate = rate
        self.offset = offset
        self.heartbeat_interval = heartbeat_interval
        self.up = False
        self.paused = False
        self.left = False
        self.started = False
        self.incarnation = 0
        self.target = 0
        self.pause_at_next_write: Optional[float] = None  # scenario: pause mid-write for this long
        self._reset()

    def _reset(self) -> None:
        self.lease = WorkerLease(self.timing)
        self.view: dict[str, OwnedSlot] = {}
        self.slot_of: dict[tuple[str, int], int] = {}
        self.draining = False
        self.unanswered = 0
        self.last_acked = 0
        self.writes = 0
        self.next_write = 0
        self.held: list = []  # messages that arrived or writes prepared while paused

    @property
    def process(self) -> str:
        """The id of the current process (`start` draws a new one)."""
        return f"{self.id}.{self.incarnation}"

    def clock(self, now: float) -> float:
        """The worker's local clock at true time ``now``."""
        return self.offset + self.rate * now

    @property
    def period(self) -> float:
        """True seconds between two rounds: its timer counts `heartbeat_interval` on
        its own (drifting) clock."""
        return self.heartbeat_interval / self.rate

    def start(self) -> None:
        """A new process (first start or restart): no lease, no view."""
        self.incarnation += 1
        self.up = True
        self.paused = False
        self.started = True
        self._reset()

    def crash(self) -> None:
        self.up = False
        self.paused = False
        self.incarnation += 1
        self.held = []

    # -- what the process believes ----------------------------------------------------

    def acting(self, now: float) -> list[tuple[str, int, int]]:
        """(partition, slot, epoch) the worker may act for at true time ``now``: the
        partitions its lease covers on its own clock (rule 3)."""
        if not self.up or self.left:
            return []
        slot_of = self.slot_of
        return [(pid, slot_of.get((pid, epoch), 0), epoch)
                for pid, epoch in self.lease.active_partitions(self.clock(now))]

    # -- inputs -------------------------------------------------------------------------

    def on_ack(self, message: Ack, now: float) -> None:
        if message.ack.seq < self.last_acked or not self.lease.ack_received(message.ack):
            return
        self.last_acked = message.ack.seq
        self.unanswered = 0
        self.view = {s.partition_id: s for s in message.view}
        for s in message.view:
            self.slot_of[(s.partition_id, s.epoch)] = s.slot
        self.draining = message.draining

    def on_nack(self, message: Nack) -> None:
        if message.seq < self.last_acked:
            return  # older than an acknowledgement we acted on
        self.unanswered = 0
        self.lease.lost()
        self.view = {}
        self.slot_of = {}
        self.draining = False

    def on_redirect(self, message: Redirect, voters: tuple[int, ...], rng) -> None:
        self.target = message.leader if message.leader else rng.choice(voters)
        self.unanswered = 0

    # -- one round of work --------------------------------------------------------------

    def heartbeat(self, now: float, voters: tuple[int, ...], rng) -> tuple[int, Heartbeat]:
        """The heartbeat to send now and the node to send it to."""
        if not self.target or self.unanswered >= 2:
            self.target = rng.choice(voters)
            self.unanswered = 0
        self.unanswered += 1
        seq = self.lease.heartbeat_sent(self.clock(now))
        return self.target, Heartbeat(self.id, seq, self.zone, self.process)

    def releases(self, now: float) -> list[Release]:
        """Give up revoked slots locally, then tell the leader (rule 4)."""
        out = []
        for slot in self.view.values():
            if slot.revoking:
                self.lease.release(slot.partition_id, slot.epoch)
                out.append(Release(self.id, slot.partition_id, slot.slot, slot.epoch))
        return out

    def prepare_write(self, now: float) -> Optional[Checkpoint]:
        """A checkpoint for the next partition this worker may act for (round robin)."""
        acting = self.acting(now)
        if not acting:
            return None
        pid, _, epoch = acting[self.next_write % len(acting)]
        self.next_write += 1
        self.writes += 1
        value = f"{self.id}|{epoch}|{self.incarnation}.{self.writes}".encode()
        return Checkpoint(self.id, pid, epoch, value)

    def leave(self, now: float) -> Optional[Leave]:
        """A drained worker with nothing left stops and deregisters."""
        if self.draining and not self.view and not self.acting(now):
            self.lease.lost()
            self.left = True
            return Leave(self.id)
        return None

