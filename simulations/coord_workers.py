"""Simulated worker processes of the coordinator scenarios.

A `SimWorker` is one process of a worker, driven by the world's events. Every rule of
what it sends and what it may act for is `coordinator.worker.WorkerSession` (with
``auto_release``: revoked slots are given up at the next round); this module keeps
only the process: it is up, paused or crashed, has an incarnation, and a clock that
runs at `rate` (within the configured drift bound) from an arbitrary `offset`. A
crash loses the process (its session), not the clock. A checkpoint write is
*prepared* at one instant and *sent* a little later (by the world), so a pause in
between sends it late with an old epoch: fencing must refuse it.
"""

from __future__ import annotations

import random
from typing import Optional

from coordinator.lease import LeaseTiming
from coordinator.protocol import Ack, Checkpoint, Heartbeat, Leave, Nack, Redirect, Release
from coordinator.worker import WorkerSession

__all__ = ["SimWorker", "Ack", "Checkpoint", "Heartbeat", "Leave", "Nack", "Redirect", "Release"]


class SimWorker:
    """One worker process; `number` is its network address (distinct from node ids).

    Args:
        session_class: the `WorkerSession` (sub)class each incarnation runs (tests
            plant broken variants here).
        nodes / rng: the session's nodes to try and its random choices.
    """

    def __init__(self, worker_id: str, number: int, zone: str, timing: LeaseTiming,
                 rate: float, offset: float, heartbeat_interval: float,
                 nodes: tuple[int, ...], rng: random.Random,
                 session_class: type[WorkerSession] = WorkerSession) -> None:
        self.id = worker_id
        self.number = number
        self.zone = zone
        self.timing = timing
        self.rate = rate
        self.offset = offset
        self.heartbeat_interval = heartbeat_interval
        self.nodes = nodes
        self.rng = rng
        self.session_class = session_class
        self.up = False
        self.paused = False
        self.left = False
        self.started = False
        self.incarnation = 0
        self.pause_at_next_write: Optional[float] = None  # scenario: pause mid-write for this long
        self._reset()

    def _reset(self) -> None:
        previous = getattr(self, "session", None)
        self.session = self.session_class(self.id, self.zone, self.timing, self.nodes, self.rng,
                                          process=f"{self.id}.{self.incarnation}")
        if previous is not None:
            # A restarted process first tries the node it last used.
            self.session.target = previous.target
        self.writes = 0
        self.held: list = []  # messages that arrived or writes prepared while paused

    @property
    def target(self) -> int:
        """The node the session heartbeats to (0: none yet)."""
        return self.session.target or 0

    def clock(self, now: float) -> float:
        """The worker's local clock at true time ``now``."""
        return self.offset + self.rate * now

    @property
    def period(self) -> float:
        """True seconds between two rounds: its timer counts `heartbeat_interval` on
        its own (drifting) clock."""
        return self.heartbeat_interval / self.rate

    def start(self) -> None:
        """A new process (first start or restart): a new session."""
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

    def acting(self, now: float) -> list[tuple[str, int, int]]:
        """(partition, slot, epoch) the process may act for at true time ``now``."""
        if not self.up or self.left:
            return []
        # The clock inlined: the ownership checker asks every worker after every event.
        return self.session.acting(self.offset + self.rate * now)

    # -- inputs -------------------------------------------------------------------------

    def receive(self, message: object) -> None:
        """A message from a node (an answer to a heartbeat)."""
        session = self.session
        if isinstance(message, Ack):
            session.on_ack(message)
        elif isinstance(message, Nack):
            session.on_nack(message)
        elif isinstance(message, Redirect):
            session.on_redirect(message)

    # -- one round of work --------------------------------------------------------------

    def heartbeat(self, now: float) -> tuple[int, Heartbeat]:
        """The heartbeat to send now and the node to send it to."""
        return self.session.heartbeat(self.clock(now))

    def releases(self, now: float) -> list[Release]:
        return self.session.releases(self.clock(now))

    def prepare_write(self, now: float) -> Optional[Checkpoint]:
        """A checkpoint for the next partition this worker may act for (round robin)."""
        clock = self.clock(now)
        choice = self.session.next_partition(clock)
        if choice is None:
            return None
        pid, _, epoch = choice
        self.writes += 1
        value = f"{self.id}|{epoch}|{self.incarnation}.{self.writes}".encode()
        return self.session.checkpoint(pid, epoch, value, clock)

    def leave(self, now: float) -> Optional[Leave]:
        """A drained worker with nothing left stops and deregisters."""
        message = self.session.leave(self.clock(now))
        if message is not None:
            self.left = True
        return message
