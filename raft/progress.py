"""The leader's view of each follower: how much of the log it has, and flow control.

A follower's progress is in one of three states:

* PROBE: the leader does not know where the logs agree. It sends one AppendEntries
  and waits (paused) for the answer or the next heartbeat response.
* REPLICATE: the logs agree up to `match`; the leader streams entries optimistically,
  advancing `next` on send, with at most `max_inflight` messages unacknowledged.
* SNAPSHOT: the entries the follower needs were compacted; the leader streams the
  snapshot in chunks, one at a time, resuming from the follower's acknowledged offset.
"""

from __future__ import annotations

import enum
from collections import deque

from .types import Snapshot


class ProgressState(enum.Enum):
    PROBE = "probe"
    REPLICATE = "replicate"
    SNAPSHOT = "snapshot"


class Inflights:
    """Last indexes of the AppendEntries messages not yet acknowledged."""

    __slots__ = ("capacity", "_indexes")

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._indexes: deque[int] = deque()

    def add(self, last_index: int) -> None:
        self._indexes.append(last_index)

    def free_le(self, index: int) -> None:
        """Forget every message whose last index is <= `index` (it was acknowledged)."""
        q = self._indexes
        while q and q[0] <= index:
            q.popleft()

    def free_first(self) -> None:
        if self._indexes:
            self._indexes.popleft()

    def reset(self) -> None:
        self._indexes.clear()

    def full(self) -> bool:
        return len(self._indexes) >= self.capacity

    def __len__(self) -> int:
        return len(self._indexes)


class Progress:
    """Replication progress of one follower (or learner) as seen by the leader."""

    __slots__ = (
        "match",
        "next",
        "state",
        "paused",
        "inflights",
        "recent_active",
        "is_learner",
        "pending_snapshot",
        "snapshot_acked",
        "snapshot_resend_armed",
    )

    def __init__(self, next_index: int, max_inflight: int, is_learner: bool = False) -> None:
        self.match = 0
        self.next = next_index
        self.state = ProgressState.PROBE
        self.paused = False
        self.inflights = Inflights(max_inflight)
        self.recent_active = False
        self.is_learner = is_learner
        # The snapshot being streamed (SNAPSHOT state only) and the bytes of it the
        # follower has acknowledged.
        self.pending_snapshot: Snapshot | None = None
        self.snapshot_acked = 0
        self.snapshot_resend_armed = False

    def _reset_state(self, state: ProgressState) -> None:
        self.paused = False
        self.state = state
        self.inflights.reset()
        self.pending_snapshot = None
        self.snapshot_acked = 0
        self.snapshot_resend_armed = False

    def become_probe(self) -> None:
        if self.state is ProgressState.SNAPSHOT and self.pending_snapshot is not None:
            pending = self.pending_snapshot.index
            self._reset_state(ProgressState.PROBE)
            self.next = max(self.match + 1, pending + 1)
        else:
            self._reset_state(ProgressState.PROBE)
            self.next = self.match + 1

    def become_replicate(self) -> None:
        self._reset_state(ProgressState.REPLICATE)
        self.next = self.match + 1

    def become_snapshot(self, snapshot: Snapshot) -> None:
        self._reset_state(ProgressState.SNAPSHOT)
        self.pending_snapshot = snapshot

    def maybe_update(self, index: int) -> bool:
        """The follower acknowledged entries up to `index`. Returns whether match grew."""
        updated = False
        if self.match < index:
            self.match = index
            updated = True
            self.paused = False
        if self.next < index + 1:
            self.next = index + 1
        return updated

    def maybe_decrease_to(self, rejected: int, match_hint: int) -> bool:
        """The follower rejected an append at `rejected`; back `next` off.

        Returns False when the rejection is stale (answers an older message).
        """
        if self.state is ProgressState.REPLICATE:
            if rejected <= self.match:
                return False
            self.next = self.match + 1
            return True
        if self.next - 1 != rejected:
            return False
        self.next = max(min(rejected, match_hint + 1), self.match + 1)
        self.paused = False
        return True

    def sent_entries(self, last_index: int | None) -> None:
        """Record that an AppendEntries ending at `last_index` (None: empty) was sent."""
        if self.state is ProgressState.REPLICATE:
            if last_index is not None:
                self.next = last_index + 1
                self.inflights._indexes.append(last_index)  # add(), without a call
        elif self.state is ProgressState.PROBE:
            self.paused = True

    def is_paused(self) -> bool:
        state = self.state
        if state is ProgressState.PROBE:
            return self.paused
        if state is ProgressState.REPLICATE:
            inflights = self.inflights
            return len(inflights._indexes) >= inflights.capacity  # full(), without a call
        return True  # SNAPSHOT: chunks are driven by acknowledgements
