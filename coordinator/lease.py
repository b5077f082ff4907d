"""Worker leases: the leader's `LeaseTable` and the worker's `WorkerLease`.

Both are pure: every method takes the local clock reading as an argument. Heartbeats
are leader-local (never logged); what the leader decides from them — that a worker
expired, that a revoke may be forced — is committed as a command.

Two clocks meet at the leader. Committed commands carry *cluster time* (rule 5 of
`coordinator.state`): it continues from the newest timestamp in the log and only
serves liveness windows (holds, revoke deadlines, quarantine). Everything below —
the `LeaseTable`, the grace of rule 1, the last covering heartbeat and the revoke
proposal of rule 3 — is on the leader's *local* clock, and `CoordinatorLeader`
converts the one log time rule 3 needs (when a revoke was proposed) back to it.
Safety never compares a cluster timestamp with a local one.

Safety argument: a worker always stops before the leader may reassign
==================================================================

Notation. ``L`` is the nominal lease (`LeaseTiming.lease_duration`). ``ρ`` is the
clock drift bound (`LeaseTiming.max_drift`): over any real interval of length ``d``,
every node's clock advances by at least ``d(1-ρ)`` and at most ``d(1+ρ)``. Clocks of
different nodes may have any *offset*; the argument only compares intervals measured
on one clock, never timestamps of two clocks. ``m`` is the worker's safety margin.

* The worker counts its lease from the **send** time ``s`` (worker clock) of a
  heartbeat that was acknowledged, and acts only while its clock reads less than
  ``s + L(1-ρ) - m`` (`LeaseTiming.worker_lease`). Its clock advances at least
  ``1-ρ`` per real second, so it stops acting at real time at most
  ``S + L - m/(1-ρ) < S + L``, where ``S`` is the real send time.
* The leader counts the lease from the **receive** time ``r`` (leader clock) of the
  heartbeat and treats the worker as expired only once its clock reads
  ``r + L(1+ρ)`` (`LeaseTiming.leader_lease`). Its clock advances at most ``1+ρ``
  per real second, so that happens at real time at least ``R + L >= S + L``: the
  heartbeat was received after it was sent (``R >= S``).

So the worker stops strictly before the leader may expire it (by ``m/(1-ρ)``, the time
an action that is already running has to finish). Reassigning needs a committed
`ExpireWorker` and then a committed `Assign`, which only adds delay.

Four rules make every path to a new owner go through this inequality:

1. **A new leader grants a full lease from the start of its term.** It cannot know the
   heartbeats its predecessor received, so `LeaseTable` starts every known worker
   with a deadline of ``term_start + L(1+ρ)``, and nothing is expired or forced
   before `LeaseTable.grace_until`. Any heartbeat acknowledged by an older leader was
   *sent* before this term started (rule 2), so the worker stops before the grace ends.
2. **Acknowledge only as a confirmed leader, and never a worker being expired.** The
   server/simulator asks for (`CoordinatorLeader.on_heartbeat`) and sends a heartbeat
   acknowledgement only after a quorum confirmed its leadership with a round that
   started after the heartbeat was received (a ReadIndex round). A deposed leader
   therefore cannot extend a lease past the start of the next term. The leader
   decides an expiry from the heartbeats confirmed so far; one still waiting for its
   round was received earlier but is not counted. So from the proposal of an
   `ExpireWorker` until it is applied (the worker is then dead) or refused, the
   leader acknowledges no heartbeat of that worker: every acknowledged heartbeat of
   an expired worker was received at least ``L(1+ρ)`` (leader clock) before the
   expiry was proposed, which is the inequality above.
3. **Leases are per partition.** An acknowledgement lists the (partition, epoch) pairs
   it covers (`HeartbeatAck.covered`); a worker acts for a partition only while the
   latest acknowledgement that covered it is valid (`WorkerLease.may_act_for`). The
   leader leaves a slot out of every acknowledgement from the moment it *proposes*
   a `Revoke` for it, remembers when it last received a heartbeat whose
   acknowledgement covered the slot, and forces the revoke only ``L(1+ρ)`` after
   that (and not before the grace of rule 1, which covers acknowledgements of
   earlier leaders). The same inequality applies to that last covering heartbeat.
   A partition of a deleted group whose name is re-used waits the same way before
   it is given out again.
4. **Released or deregistered slots are given up by the worker itself**, which stops
   before sending `Released` / `DeregisterWorker`; no lease reasoning is needed.

Fencing tokens (the partition epoch) are the second line of defence: even a worker
that broke these rules (a paused process, a broken clock) has its writes refused once
a new owner holds a higher epoch.
"""

from __future__ import annotations

import math
from typing import Iterable, Optional

import attrs


@attrs.frozen(kw_only=True)
class LeaseTiming:
    """Lease arithmetic shared by leader and workers.

    Attributes:
        lease_duration: nominal lease ``L`` in seconds.
        max_drift: bound ``ρ`` on the rate error of any clock (0.05 = 5 %).
        safety_margin: ``m``: how much earlier than strictly necessary a worker stops,
            to let an action that is already running finish.
    """

    lease_duration: float = 10.0
    max_drift: float = 0.05
    safety_margin: float = 0.5

    def __attrs_post_init__(self) -> None:
        for name in ("lease_duration", "max_drift", "safety_margin"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        if self.max_drift >= 1:
            raise ValueError("max_drift must be < 1")
        if self.worker_lease <= 0:
            raise ValueError("lease_duration * (1 - max_drift) must exceed safety_margin")

    @property
    def worker_lease(self) -> float:
        """How long a worker acts after sending an acknowledged heartbeat (own clock)."""
        return self.lease_duration * (1 - self.max_drift) - self.safety_margin

    @property
    def leader_lease(self) -> float:
        """How long the leader waits after receiving a heartbeat (own clock)."""
        return self.lease_duration * (1 + self.max_drift)


@attrs.frozen(kw_only=True)
class HeartbeatAck:
    """The leader's answer to a heartbeat.

    Attributes:
        seq: the sequence number of the heartbeat being acknowledged.
        covered: (partition id, epoch) pairs this acknowledgement extends the lease
            of; slots under revoke are left out (rule 3).
    """

    seq: int = attrs.field()
    covered: tuple[tuple[str, int], ...] = attrs.field(default=(), converter=tuple)

    @seq.validator
    def _check_seq(self, attribute: attrs.Attribute, value: object) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"seq must be an int >= 0, got {value!r}")

    @covered.validator
    def _check_covered(self, attribute: attrs.Attribute, value: tuple) -> None:
        for item in value:
            if not (isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str)
                    and isinstance(item[1], int) and not isinstance(item[1], bool)):
                raise ValueError(f"covered holds (partition, epoch) pairs, got {item!r}")


class LeaseTable:
    """The leader's view of worker leases, for one term.

    Args:
        timing: lease arithmetic.
        term_start: the leader's clock when it became leader.
        known_workers: workers in the state at that moment; each gets a full lease
            from ``term_start`` (rule 1).
    """

    def __init__(self, timing: LeaseTiming, term_start: float,
                 known_workers: Iterable[str] = ()) -> None:
        self._timing = timing
        self._term_start = term_start
        self._deadline: dict[str, float] = {
            worker: term_start + timing.leader_lease for worker in known_workers
        }

    @property
    def timing(self) -> LeaseTiming:
        return self._timing

    @property
    def term_start(self) -> float:
        return self._term_start

    @property
    def grace_until(self) -> float:
        """Before this time nothing may be expired or forced in this term."""
        return self._term_start + self._timing.leader_lease

    def heartbeat(self, worker_id: str, received_at: float) -> float:
        """Record a heartbeat received at ``received_at``; returns the new deadline."""
        deadline = max(self._deadline.get(worker_id, -math.inf),
                       received_at + self._timing.leader_lease,
                       self.grace_until)
        self._deadline[worker_id] = deadline
        return deadline

    def track(self, worker_id: str, now: float) -> None:
        """Start a full lease for a worker this leader has not tracked yet (e.g. one
        that just registered); no effect on a tracked worker."""
        if worker_id not in self._deadline:
            self._deadline[worker_id] = max(now, self._term_start) + self._timing.leader_lease

    def forget(self, worker_id: str) -> None:
        """Stop tracking a worker (it expired or deregistered)."""
        self._deadline.pop(worker_id, None)

    def deadline(self, worker_id: str) -> Optional[float]:
        """When the worker's lease runs out on the leader's clock (None if untracked)."""
        return self._deadline.get(worker_id)

    def tracked(self) -> list[str]:
        return sorted(self._deadline)

    def expired(self, now: float) -> list[str]:
        """Workers whose lease ran out: ``now >= deadline``, sorted by id."""
        return sorted(w for w, deadline in self._deadline.items() if now >= deadline)


class WorkerLease:
    """The worker's side: may I still act, and for which partitions?

    Usage: call `heartbeat_sent` with the clock reading just before sending each
    heartbeat, `ack_received` for each acknowledgement, and check `may_act_for`
    before every action on behalf of a partition.
    """

    def __init__(self, timing: LeaseTiming) -> None:
        self._timing = timing
        self._next_seq = 1
        self._sent: dict[int, float] = {}
        self._valid_until = -math.inf
        self._coverage: dict[str, tuple[int, float]] = {}
        self._released: dict[str, int] = {}

    @property
    def timing(self) -> LeaseTiming:
        return self._timing

    @property
    def valid_until(self) -> float:
        """The worker-clock time at which the session lease runs out (-inf: never had one)."""
        return self._valid_until

    def heartbeat_sent(self, now: float) -> int:
        """Record that a heartbeat is being sent now; returns its sequence number."""
        seq = self._next_seq
        self._next_seq += 1
        self._sent[seq] = now
        return seq

    def ack_received(self, ack: HeartbeatAck) -> bool:
        """Extend the lease from the *send* time of the acknowledged heartbeat.

        Returns:
            False when the acknowledgement matches no outstanding heartbeat (a
            duplicate, or older than one already acknowledged); it is ignored.
        """
        sent = self._sent.get(ack.seq)
        if sent is None:
            return False
        # Older heartbeats can only give shorter leases: forget them.
        for seq in [s for s in self._sent if s <= ack.seq]:
            del self._sent[seq]
        until = sent + self._timing.worker_lease
        self._valid_until = max(self._valid_until, until)
        for partition, epoch in ack.covered:
            if epoch <= self._released.get(partition, -1):
                continue
            known = self._coverage.get(partition)
            if known is None or epoch > known[0] or (epoch == known[0] and until > known[1]):
                self._coverage[partition] = (epoch, until)
        return True

    def may_act(self, now: float) -> bool:
        """True while the session lease holds: ``now < valid_until``."""
        return now < self._valid_until

    def may_act_for(self, partition: str, epoch: int, now: float) -> bool:
        """True while an acknowledgement covering ``(partition, epoch)`` is valid."""
        known = self._coverage.get(partition)
        return known is not None and known[0] == epoch and now < known[1]

    def deadline_for(self, partition: str, epoch: int) -> Optional[float]:
        """When the worker must stop acting for ``(partition, epoch)`` (worker clock;
        None: no acknowledgement covers it)."""
        known = self._coverage.get(partition)
        return known[1] if known is not None and known[0] == epoch else None

    def active_partitions(self, now: float) -> list[tuple[str, int]]:
        """(partition, epoch) pairs the worker may act for at ``now``, sorted."""
        return sorted((p, e) for p, (e, until) in self._coverage.items() if now < until)

    def release(self, partition: str, epoch: int) -> None:
        """Stop acting for a partition now (before sending `Released`).

        Acknowledgements still in flight may list ``(partition, epoch)``; they are
        ignored from now on for this epoch and older ones.
        """
        self._coverage.pop(partition, None)
        self._released[partition] = max(epoch, self._released.get(partition, -1))

    def lost(self) -> None:
        """Forget everything (e.g. after re-registering as a new incarnation)."""
        self._sent.clear()
        self._coverage.clear()
        self._released.clear()
        self._valid_until = -math.inf
