"""What the HTML report draws for a coordinator run: workers and partition ownership over time.

`CoordWorld` calls `observe` whenever a worker's fate changes (crash, restart,
pause, resume, cut off, reconnect) and on its periodic coordinator check; each
call records only what changed since the last one, so the record stays small for
long runs. It reads the world and never changes it: no trace, no randomness.
"""

from __future__ import annotations

from typing import Any, Optional

from coordinator.commands import WorkerState


class CoordTimeline:
    """Spans of worker status and partition ownership, as the report draws them.

    Attributes:
        workers: worker id -> [[start, end or None, status]]; status is one of
            "alive", "paused", "cut off", "crashed", "draining", "left".
        expiries: (time, worker id): the coordinator declared the worker dead (its lease expired).
        partitions: partition id -> [[start, end or None, owners, epoch, quarantined]].
    """

    def __init__(self) -> None:
        self.workers: dict[str, list[list[Any]]] = {}
        self.expiries: list[tuple[float, str]] = []
        self.partitions: dict[str, list[list[Any]]] = {}
        self._dead: set[str] = set()

    def observe(self, now: float, workers: dict[str, Any], isolated: set[int], state: Optional[Any]) -> None:
        """Record what changed at ``now`` (``state``: the reference coordinator state, if any)."""
        for worker_id, worker in workers.items():
            record = state.workers.get(worker_id) if state is not None else None
            _change(self.workers.setdefault(worker_id, []), now, (_status(worker, isolated, record),))
            if record is not None and record.state is WorkerState.DEAD and worker_id not in self._dead:
                self.expiries.append((now, worker_id))
            if record is not None:
                (self._dead.add if record.state is WorkerState.DEAD else self._dead.discard)(worker_id)
        if state is None:
            return
        for pid, record in state.partitions.items():
            _change(self.partitions.setdefault(pid, []), now,
                    (tuple(record.owners), record.epoch, bool(record.quarantined)))


def _status(worker: Any, isolated: set[int], record: Optional[Any]) -> str:
    if worker.left:
        return "left"
    if not worker.up:
        return "crashed"
    if worker.paused:
        return "paused"
    if worker.number in isolated:
        return "cut off"
    if record is not None and record.state is WorkerState.DRAINING:
        return "draining"
    return "alive"


def _change(spans: list[list[Any]], now: float, value: tuple) -> None:
    """Start a new span if ``value`` differs from the open one."""
    if spans and tuple(spans[-1][2:]) == value:
        return
    if spans and spans[-1][1] is None:
        if spans[-1][0] == now:  # several changes at one instant: keep the last
            spans[-1][2:] = list(value)
            return
        spans[-1][1] = now
    spans.append([now, None, *value])
