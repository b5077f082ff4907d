"""The demo worker's event file, and the checker that reads such files.

`raftcoord worker run --events FILE` writes one JSON object per line, each with
``t`` (`time.monotonic()` when it was written: one clock for every process on the
machine), ``worker`` and ``event``:

* ``acquired`` — ``partition``, ``slot``, ``epoch``, ``deadline`` (absolute
  monotonic time until which the worker may act for it);
* ``renewed`` — ``partition``, ``epoch``, ``deadline`` (the new one);
* ``revoked`` — ``partition``, ``epoch``, ``deadline`` (let go before it);
* ``released`` — ``partition``, ``epoch``: the worker stopped acting for it;
* ``lost`` — ``partition``, ``epoch``: its lease ran out (or the leader forgot the
  worker); it stopped at once;
* ``checkpoint_issued`` — ``partition``, ``epoch``, ``write`` (an id unique in the
  file): a fenced write is being sent now — this is what *acting* means;
* ``checkpoint_accepted`` / ``checkpoint_refused`` / ``checkpoint_unknown`` — the
  outcome of that ``write`` (``detail`` says why a write was refused).

A line is written and flushed *before* the worker acts on what it records: before
it starts acting on an acquired or renewed lease, and before it sends a write. So a
worker acted for a partition only inside an interval the file shows: from an
``acquired`` line to the earliest of its deadline (as extended by ``renewed`` lines
written before it ran out), a ``released`` line or a ``lost`` line.

`check_event_files` proves from the files alone that no two workers acted for the
same partition at the same instant: every write lies inside its worker's interval
for that partition and epoch, and no two workers' intervals for one partition
overlap.
"""

from __future__ import annotations

import json
import time
from typing import Any, Callable, Iterable, Optional

import attrs


class EventLog:
    """Appends event lines to a file (or nowhere), each flushed to the OS at once.

    Args:
        path: the file (appended to); None writes nothing.
        worker_id: written into every line.
        echo: also called with every line's object (e.g. to print it).
        clock: the timestamp source (`time.monotonic`).
    """

    def __init__(self, path: Optional[str], worker_id: str,
                 echo: Optional[Callable[[dict], None]] = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.worker_id = worker_id
        self._echo = echo
        self._clock = clock
        self._file = open(path, "a", encoding="utf-8") if path else None

    def write(self, event: str, **fields: Any) -> float:
        """Write one line now; returns its timestamp."""
        now = self._clock()
        line = {"t": now, "worker": self.worker_id, "event": event, **fields}
        if self._file is not None:
            self._file.write(json.dumps(line, sort_keys=True) + "\n")
            self._file.flush()  # in the OS before acting: it survives a kill -9
        if self._echo is not None:
            self._echo(line)
        return now

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


@attrs.define
class Interval:
    """When one worker may have acted for one partition at one epoch."""

    worker: str
    partition: str
    epoch: int
    start: float
    end: float
    closed: bool = False  # ended by a released / lost line (else by its deadline)


def read_events(path: str) -> list[dict]:
    """The event lines of one file (a torn last line, left by a kill, is skipped)."""
    events = []
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            try:
                events.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return events


def intervals_and_writes(events: Iterable[dict]) -> tuple[list[Interval], list[dict], list[str]]:
    """The acting intervals of one worker's events, its issued writes, and problems
    (writes outside every interval of their partition and epoch)."""
    open_: dict[str, Interval] = {}
    done: list[Interval] = []
    writes: list[dict] = []
    problems: list[str] = []
    worker = ""

    def finish(partition: str, at: Optional[float]) -> None:
        interval = open_.pop(partition, None)
        if interval is not None:
            if at is not None and at < interval.end:
                interval.end, interval.closed = at, True
            done.append(interval)

    for event in events:
        kind, t = event.get("event"), event.get("t")
        worker = event.get("worker", worker)
        partition = event.get("partition")
        if kind == "acquired":
            finish(partition, t)
            open_[partition] = Interval(worker, partition, event["epoch"], t, event["deadline"])
        elif kind == "renewed":
            interval = open_.get(partition)
            if interval is not None and interval.epoch == event["epoch"] and t < interval.end:
                interval.end = max(interval.end, event["deadline"])
            else:  # after the lease ran out: a new interval from now
                finish(partition, t)
                open_[partition] = Interval(worker, partition, event["epoch"], t,
                                            event["deadline"])
        elif kind in ("released", "lost"):
            finish(partition, t)
        elif kind == "checkpoint_issued":
            writes.append(event)
            interval = open_.get(partition)
            if interval is None or interval.epoch != event["epoch"] \
                    or not interval.start <= t < interval.end:
                problems.append(f"{worker} wrote {partition} at epoch {event['epoch']} at "
                                f"{t:.6f} outside its lease ({interval})")
    for partition in list(open_):
        finish(partition, None)
    return done, writes, problems


def check_event_files(paths: Iterable[str]) -> list[str]:
    """Problems found in these workers' event files; empty when they prove that no
    two workers acted for the same partition at the same instant (module docstring)."""
    problems: list[str] = []
    by_partition: dict[str, list[Interval]] = {}
    for path in paths:
        intervals, _, found = intervals_and_writes(read_events(path))
        problems.extend(found)
        for interval in intervals:
            by_partition.setdefault(interval.partition, []).append(interval)
    for partition, intervals in sorted(by_partition.items()):
        intervals.sort(key=lambda i: i.start)
        for index, first in enumerate(intervals):
            for second in intervals[index + 1:]:
                if second.start >= first.end:
                    break  # sorted by start: no later one overlaps either
                if second.worker != first.worker:
                    problems.append(
                        f"{partition}: {first.worker} (epoch {first.epoch}, "
                        f"{first.start:.6f}..{first.end:.6f}) and {second.worker} (epoch "
                        f"{second.epoch}, {second.start:.6f}..{second.end:.6f}) overlap")
    return problems
