"""Replicated settings of the coordinator state machine.

These values change what `CoordinatorState.apply` does, so every replica must use the
same ones: they are fixed when the state is created and travel inside its snapshots.
Leader-only knobs (lease arithmetic, move caps) live in `coordinator.lease` and
`coordinator.placement`.
"""

from __future__ import annotations

import math

import attrs


def _non_negative(instance: object, attribute: attrs.Attribute, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
        math.isfinite(value) and value >= 0
    ):
        raise ValueError(f"{attribute.name} must be a finite number >= 0, got {value!r}")


def _positive_int(instance: object, attribute: attrs.Attribute, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{attribute.name} must be an int >= 1, got {value!r}")


@attrs.frozen(kw_only=True)
class CoordinatorConfig:
    """Settings that shape state transitions.

    Attributes:
        revoke_timeout: seconds after a `Revoke` from which it may be forced. Make it
            at least the leader-side lease (`LeaseTiming.leader_lease`), so that a
            worker that never saw the revoke has stopped by then.
        restart_delay: seconds during which the slots of an expired ACTIVE worker are
            held for it; if it re-registers in time it gets them back without moves.
            0 frees them at once.
        quarantine_threshold: crashes of workers (at least two distinct ones),
            each soon after it took the partition, that quarantine it (rule 6 of
            `coordinator.state`; crashes with the same timestamp, such as a whole
            zone expiring in one leader tick, count as one).
        quarantine_window: only crashes within this many seconds of each other add
            up, and a crash is counted only if the worker comes back within this
            many seconds of its death.
        quarantine_suspect_window: a worker's death makes a partition a suspect
            only if the worker took it at most this many seconds before the leader
            last heard from it: how long a partition may take to crash a worker.
    """

    revoke_timeout: float = attrs.field(default=10.5, validator=_non_negative)
    restart_delay: float = attrs.field(default=0.0, validator=_non_negative)
    quarantine_threshold: int = attrs.field(default=3, validator=_positive_int)
    quarantine_window: float = attrs.field(default=60.0, validator=_non_negative)
    quarantine_suspect_window: float = attrs.field(default=20.0, validator=_non_negative)
