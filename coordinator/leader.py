"""What the leader proposes next: the seam between pure decisions and the drivers.

`CoordinatorLeader` is created when a node becomes leader and dropped when it stops
being one. Its driver, `coordinator.node.NodeDriver` (run by the simulator and by
the trio server), calls:

* `on_heartbeat(worker_id, seq, received_at)` for every worker heartbeat once its
  leadership is confirmed by a quorum round that started after the heartbeat arrived,
  and sends the returned `HeartbeatAck` at once (rule 2 of `coordinator.lease`); it
  answers None for a worker whose expiry is in flight, even when the heartbeat
  arrived before the expiry was decided;
* `next_commands(now)` on every tick once the state machine has applied the
  leader's first entry of its term (before that its view of the state is stale;
  stale proposals would only be refused, but there is no point), and proposes the
  commands it returns;
* `stamp(command, now)` for every command with a ``now`` that the driver proposes
  itself (worker registrations, releases and leaves, operator commands), also only
  once that first entry is applied, and proposes the stamped copy;
* `on_applied(command, result)` for every command the state machine applied (any
  proposer), and `on_dropped(command)` for every proposal Raft refused, so that
  proposals in flight are neither lost nor repeated.

A driver loop, in outline (``node`` is the Raft node, ``clock`` the local clock)::

    leader = CoordinatorLeader(state, timing, policy, term_start=clock())
    ...
    ack = leader.on_heartbeat(worker_id, seq, received_at=clock())
    # confirm leadership (ReadIndex), then send ack (or "re-register" when None)
    ...
    for command in leader.next_commands(clock()):    # or batched(...)
        try:
            node.propose(encode_command(command))
        except ProposalDropped:
            leader.on_dropped(command)
    ...
    node.propose(encode_command(leader.stamp(register_command, clock())))
    ...
    for entry in ready.committed_entries:             # on every node
        command = decode_command(entry.data)
        result = state.apply(command)
        if leader is not None:
            leader.on_applied(command, result)

Every ``now`` the driver passes is a reading of the leader's *local* clock. Every
command the leader returns or stamps carries *cluster time* instead (rule 5 of
`coordinator.state`): ``local + offset``, with the offset fixed by the first
`next_commands`, `stamp` or `cluster_time` call as ``state.log_time - local``. That
call comes after the leader's first entry of its term is applied, so every entry
that will ever precede this leader's entries is applied and none carries a later
time: cluster time continues from the newest timestamp in the log and never goes
back, even though the clocks of two leaders may be hundreds of seconds apart. It
runs at the rate of the local clock (at most ``1+ρ`` per real second) and does not
count the election gap, so a hold, revoke deadline or quarantine window of ``d``
cluster seconds lasts at least ``d/(1+ρ)`` real seconds, whichever leaders measure
it: never shorter than on one drifting clock. Everything that carries lease safety
(the `LeaseTable`, the grace period, when a slot was last covered or a revoke
proposed) and the retry timers stay on the local clock (rule 3 of
`coordinator.lease` compares intervals of one clock only).

It reads the state; it never mutates it. Decisions per call, in priority order:

1. expire workers whose lease ran out (then nothing else this round: the rest is
   planned on the state after the expiry);
2. force revokes that were not released in time;
3. complete handoffs whose slot was released (assign to the planned target);
4. run the planner and turn its moves into `Assign` / `Revoke` commands.
"""

from __future__ import annotations

import math
from typing import Optional

import attrs

from . import commands as c
from .commands import WorkerState
from .lease import HeartbeatAck, LeaseTable, LeaseTiming
from .placement import Move, PlacementPolicy, plan
from .records import MovePhase, SlotKey
from .state import CoordinatorState

_Key = tuple


class CoordinatorLeader:
    """Leader-side decisions for one term.

    Args:
        state: the replicated state machine of this node (read only here).
        timing: lease arithmetic.
        policy: planner caps and tolerance.
        term_start: the leader's clock when it became leader.
        retry_after: seconds after which a proposal that was never reported applied
            may be proposed again (it was probably dropped).
    """

    def __init__(self, state: CoordinatorState, timing: LeaseTiming,
                 policy: PlacementPolicy = PlacementPolicy(), *, term_start: float,
                 retry_after: float = 2.0) -> None:
        self.state = state
        self.timing = timing
        self.policy = policy
        self.retry_after = retry_after
        live = [w for w, r in state.workers.items() if r.state is not WorkerState.DEAD]
        self.leases = LeaseTable(timing, term_start, live)
        # registered_at of each tracked worker: a new value means it came back.
        self._incarnation = {w: state.workers[w].registered_at for w in live}
        # Proposals not yet seen applied: key -> (kind, last proposed at).
        self._proposed: dict[_Key, tuple[type, float]] = {}
        # Revoke proposals not yet reported applied or dropped, per slot.
        self._revokes_proposed: dict[SlotKey, int] = {}
        # ExpireWorker proposals not yet reported applied or dropped, per worker.
        self._expiries_proposed: dict[str, int] = {}
        # When this leader last received a heartbeat it acknowledged, per worker
        # (leader clock); sent with an expiry as evidence for quarantine.
        self._last_heard: dict[str, float] = {}
        # When this leader last received a heartbeat whose acknowledgement covered a
        # slot (leader clock).
        self._covered_at: dict[SlotKey, float] = {}
        # (local clock, cluster time) at the first cluster_time call. Kept as a pair
        # rather than one offset so that cluster time starts at log_time exactly
        # (float rounding must not take it below the newest timestamp).
        self._origin: Optional[tuple[float, float]] = None

    # ---------------------------------------------------------------- cluster time

    @property
    def cluster_time_fixed(self) -> bool:
        """Whether the mapping from the local clock to cluster time is fixed (by the
        first `next_commands`, `stamp` or `cluster_time` call)."""
        return self._origin is not None

    def cluster_time(self, now: float) -> float:
        """Cluster time at local clock reading ``now`` (module docstring).

        The first call (or the first `next_commands` / `stamp`) fixes the mapping so
        that cluster time continues from ``state.log_time``; the driver makes it only
        once the state applied the leader's first entry of its term.
        """
        if self._origin is None:
            self._origin = (now, self.state.log_time)
        local_start, cluster_start = self._origin
        return cluster_start + (now - local_start)

    def stamp(self, command: c.Command, now: float) -> c.Command:
        """``command`` with its ``now`` (and its inner commands', for a `Batch`) set to
        the cluster time at local clock reading ``now``; commands without a ``now``
        are returned as they are."""
        if isinstance(command, c.Batch):
            return c.Batch(commands=[self.stamp(inner, now) for inner in command.commands])
        if not any(field.name == "now" for field in attrs.fields(type(command))):
            return command
        return attrs.evolve(command, now=self.cluster_time(now))

    def _local_time(self, cluster: float) -> float:
        """The local clock reading at which cluster time was ``cluster`` (earlier than
        this term for a timestamp of an earlier leader)."""
        assert self._origin is not None
        local_start, cluster_start = self._origin
        return local_start + (cluster - cluster_start)

    # ------------------------------------------------------------------ heartbeats

    def on_heartbeat(self, worker_id: str, seq: int,
                     received_at: float) -> Optional[HeartbeatAck]:
        """Renew a worker's lease.

        Returns:
            The acknowledgement to send (after confirming leadership), listing the
            (partition, epoch) pairs it covers; None when the worker is unknown or
            dead, or this leader proposed to expire it (rule 2 of
            `coordinator.lease`), which tells it to stop everything and register
            again.
        """
        record = self.state.workers.get(worker_id)
        if record is None or record.state is WorkerState.DEAD \
                or worker_id in self._expiries_proposed:
            # An expiry in flight was decided without this heartbeat, which arrived
            # before the decision but was confirmed after it: acknowledging it would
            # grant a lease that outlives the expiry.
            return None
        self.leases.heartbeat(worker_id, received_at)
        self._last_heard[worker_id] = max(received_at,
                                          self._last_heard.get(worker_id, -math.inf))
        covered = []
        for key in self._covered_slots(worker_id):
            # Rule 3 of coordinator.lease: no revoke of this slot is forced before a
            # full leader lease after this heartbeat.
            self._covered_at[key] = received_at
            covered.append((key[0], self.state.partitions[key[0]].epoch))
        return HeartbeatAck(seq=seq, covered=covered)

    def coverage(self, worker_id: str) -> tuple[tuple[str, int], ...]:
        """(partition, epoch) of the worker's slots that are not being revoked."""
        partitions = self.state.partitions
        return tuple((pid, partitions[pid].epoch) for pid, _ in self._covered_slots(worker_id))

    def _covered_slots(self, worker_id: str) -> list[SlotKey]:
        pending = self.state.pending_moves
        return [key for key in self.state.owned_slots(worker_id)
                if key not in pending and not self._is_revoking(key)]

    def _is_revoking(self, key: SlotKey) -> bool:
        # A proposed revoke stays excluded until every copy of it is reported applied
        # or dropped: it may still commit, and its force deadline counts from its
        # proposal.
        return key in self._revokes_proposed

    # ------------------------------------------------------------------- proposals

    def on_applied(self, command: c.Command, result: Optional[c.Result] = None) -> None:
        """Forget the proposal in flight for what ``command`` touched."""
        if isinstance(command, c.Batch):
            for inner in command.commands:
                self.on_applied(inner)
            return
        key = _proposal_key(command)
        if key is not None:
            self._proposed.pop(key, None)
        if isinstance(command, c.Revoke):
            _settle(self._revokes_proposed, (command.partition_id, command.slot))
        elif isinstance(command, c.ExpireWorker):
            _settle(self._expiries_proposed, command.worker_id)

    def on_dropped(self, command: c.Command) -> None:
        """Raft refused the proposal (nothing was appended): it may be proposed again,
        a refused `Revoke` no longer excludes its slot from acknowledgements, and a
        refused `ExpireWorker` no longer stops its worker's."""
        self.on_applied(command)

    def _may_propose(self, key: _Key, now: float) -> bool:
        proposal = self._proposed.get(key)
        return proposal is None or now >= proposal[1] + self.retry_after

    def _propose(self, out: list, command: c.Command, now: float) -> None:
        key = _proposal_key(command)
        assert key is not None
        self._proposed[key] = (type(command), now)
        if isinstance(command, c.Revoke):
            slot = (command.partition_id, command.slot)
            self._revokes_proposed[slot] = self._revokes_proposed.get(slot, 0) + 1
        elif isinstance(command, c.ExpireWorker):
            worker_id = command.worker_id
            self._expiries_proposed[worker_id] = self._expiries_proposed.get(worker_id, 0) + 1
        out.append(command)

    def next_commands(self, now: float) -> list[c.Command]:
        """The commands to propose now (possibly none), in order.

        Args:
            now: the local clock; the commands carry the cluster time.
        """
        state, leases = self.state, self.leases
        cluster = self.cluster_time(now)
        out: list[c.Command] = []
        for worker_id in leases.tracked():
            record = state.workers.get(worker_id)
            if record is None or record.state is WorkerState.DEAD \
                    or record.registered_at != self._incarnation.get(worker_id):
                # Gone, dead, or dead and registered again since the last look: a
                # returning worker starts a fresh lease below.
                leases.forget(worker_id)
                self._last_heard.pop(worker_id, None)
        for worker_id in sorted(state.workers):
            record = state.workers[worker_id]
            if record.state is not WorkerState.DEAD and leases.deadline(worker_id) is None:
                leases.track(worker_id, now)
                self._incarnation[worker_id] = record.registered_at
        if now < leases.grace_until:
            expired: list[str] = []
        else:
            expired = leases.expired(now)
        for worker_id in expired:
            key = ("worker", worker_id)
            if self._may_propose(key, now):
                heard = self._last_heard.get(worker_id)
                last_heard = None if heard is None else min(cluster, self.cluster_time(heard))
                self._propose(out, c.ExpireWorker(worker_id=worker_id, now=cluster,
                                                  last_heard=last_heard), now)
        if expired:
            return out
        self._force_revokes(out, now, cluster)
        epochs: dict[str, int] = {}
        self._complete_handoffs(out, now, cluster, epochs)
        self._planned_moves(out, now, cluster, epochs)
        return out

    # The helpers below take both clocks: ``now`` (local) for leases and retries,
    # ``cluster`` for the commands and for comparisons with times in the state.

    def _force_revokes(self, out: list, now: float, cluster: float) -> None:
        if now < self.leases.grace_until:
            return
        state = self.state
        revoke_timeout = state.config.revoke_timeout
        leader_lease = self.timing.leader_lease
        for key, move in sorted(state.pending_moves.items()):
            if move.phase is not MovePhase.REVOKING:
                continue
            if cluster < move.deadline:
                continue
            # Rule 3 of coordinator.lease, on the local clock: a full leader lease
            # after the last heartbeat whose acknowledgement covered the slot (and
            # after the proposal, in case revoke_timeout was configured shorter).
            proposed_at = self._local_time(move.deadline - revoke_timeout)
            covered_at = self._covered_at.get(key, -math.inf)
            if now < max(proposed_at, covered_at) + leader_lease:
                continue
            if self._may_propose(("slot",) + key, now):
                self._covered_at.pop(key, None)
                self._propose(out, c.ForceRevoke(
                    partition_id=key[0], slot=key[1], worker_id=move.source,
                    epoch=move.epoch, now=cluster), now)

    def _next_epoch(self, epochs: dict[str, int], pid: str) -> int:
        epoch = epochs.get(pid, self.state.partitions[pid].epoch) + 1
        epochs[pid] = epoch
        return epoch

    def _complete_handoffs(self, out: list, now: float, cluster: float,
                           epochs: dict[str, int]) -> None:
        state = self.state
        for key, move in sorted(state.pending_moves.items()):
            if move.phase is not MovePhase.RELEASED or move.target is None:
                continue
            target = state.workers.get(move.target)
            record = state.partitions[key[0]]
            if target is None or target.state is not WorkerState.ACTIVE \
                    or record.quarantined or move.target in record.owners:
                continue  # the planner re-places the slot
            if self._may_propose(("slot",) + key, now):
                self._propose(out, c.Assign(
                    partition_id=key[0], slot=key[1], worker_id=move.target,
                    epoch=self._next_epoch(epochs, key[0]), now=cluster), now)

    def _planned_moves(self, out: list, now: float, cluster: float,
                       epochs: dict[str, int]) -> None:
        state = self.state
        for move in plan(state, self.policy, cluster):
            key = ("slot", move.partition_id, move.slot)
            if not self._may_propose(key, now) or not self._reusable(move, now):
                continue
            if move.source is None:
                command: c.Command = c.Assign(
                    partition_id=move.partition_id, slot=move.slot, worker_id=move.target,
                    epoch=self._next_epoch(epochs, move.partition_id), now=cluster)
            else:
                command = c.Revoke(
                    partition_id=move.partition_id, slot=move.slot, worker_id=move.source,
                    epoch=state.partitions[move.partition_id].epoch, target=move.target,
                    now=cluster)
            self._propose(out, command, now)

    def _reusable(self, move: Move, now: float) -> bool:
        """A re-created partition (same id as a deleted one) is given out only once
        every acknowledgement that covered the old one has run out (rule 3 of
        `coordinator.lease`, with the deletion in the role of the revoke; local
        clock). The planner already checked ``not_before`` in cluster time."""
        if self.state.partitions[move.partition_id].not_before is None:
            return True
        covered_at = self._covered_at.get((move.partition_id, move.slot), -math.inf)
        return now >= max(self.leases.grace_until, covered_at + self.timing.leader_lease)


def _settle(in_flight: dict, key: object) -> None:
    """One proposal counted in ``in_flight`` under ``key`` was applied or dropped."""
    left = in_flight.get(key, 0) - 1
    if left > 0:
        in_flight[key] = left
    else:
        in_flight.pop(key, None)


def _proposal_key(command: c.Command) -> Optional[_Key]:
    if isinstance(command, (c.Assign, c.Revoke, c.ForceRevoke, c.Released)):
        return ("slot", command.partition_id, command.slot)
    if isinstance(command, (c.ExpireWorker, c.DeregisterWorker)):
        return ("worker", command.worker_id)
    return None
