"""Fault plans: which faults hit the cluster when, during the fault phase.

A plan is a time-ordered list of `Fault` values. Each fault carries its own duration
and the world undoes it when that runs out (restart after a crash, resume after a
pause, heal after a partition). Plans are generated from a seed by `generate_plan`,
or written by hand (scenarios, tests).

Corner patterns are short scripts the world runs against whoever leads when they
fire, aimed at the situations random faults almost never produce (see
`World.apply_fault`):

- "churn" (leader churn right after partial replication, the Raft paper's
  figure 8): the leader is cut off alone while clients keep writing to it; the
  leader the others elect is cut off the moment it wins, before its first entry
  leaves it; the next leader (usually the first one again, whose log is longest)
  goes down a few round trips into catching the others up, its unsent messages
  lost with it; then the cut leader may come back and win.
- "deposed_read" (a deposed leader that keeps serving): the leader is cut off
  alone and the others' clocks jump by an election timeout, so they elect a new
  leader at once while the old one still believes it leads (until check-quorum
  deposes it, an election timeout later); clients keep reading from it.

Swarm mode (Groce et al., "Swarm Testing") gives each seed its own mix: every fault
kind is switched on or off and gets its own rate, so some runs hammer one kind of
failure while others combine several, which finds bugs a uniform mix dilutes.
"""

from __future__ import annotations

import random
from typing import Iterable

import attrs

PARTITION_KINDS = ("partition", "one_way", "isolate", "bridge")
NODE_KINDS = ("crash", "pause", "transfer")
LINK_KINDS = ("loss", "duplicate", "reorder")
# A voter is removed from the configuration (one-server change through the leader)
# and added back when the fault ends.
MEMBERSHIP_KINDS = ("membership",)
CORNER_KINDS = ("churn", "deposed_read")
ALL_KINDS = PARTITION_KINDS + NODE_KINDS + LINK_KINDS + MEMBERSHIP_KINDS + CORNER_KINDS


@attrs.frozen
class Fault:
    """One fault.

    Attributes:
        time: virtual seconds at which it starts.
        kind: one of ALL_KINDS (link kinds are set for the whole fault phase).
        duration: how long it lasts (seconds).
        node: the node crashed, paused or isolated, or the bridge node (0 = the
            leader when it fires, if there is one, else a random node).
        rate: for link faults, the per-message probability.
    """

    time: float
    kind: str
    duration: float = 0.0
    node: int = 0
    rate: float = 0.0

    def describe(self) -> str:
        if self.kind in LINK_KINDS:
            return f"{self.kind} {self.rate:.3f}"
        if self.kind == "transfer":
            return f"transfer leadership to node {self.node}" if self.node else "transfer leadership"
        if self.kind == "membership":
            target = f"node {self.node}" if self.node else "the leader"
            return f"remove {target} from the configuration for {self.duration:.2f}s"
        if self.kind == "churn":
            return f"leader churn after partial replication for {self.duration:.2f}s"
        if self.kind == "deposed_read":
            return f"depose the leader at once, leaving it serving, for {self.duration:.2f}s"
        target = f" node {self.node}" if self.node else " leader"
        return f"{self.kind}{target} for {self.duration:.2f}s"


@attrs.frozen
class FaultConfig:
    """What faults a run may suffer and how often.

    Attributes:
        kinds: enabled fault kinds.
        partition_rate / crash_rate / pause_rate / transfer_rate / membership_rate:
            mean events per simulated second (a transfer asks the leader to hand
            leadership over; a membership fault removes a voter for a while).
        corner_rate: corner patterns ("churn", "deposed_read") per simulated second.
        loss / duplicate / reorder: per-message probabilities in the fault phase.
        swarm: draw a per-seed subset of `kinds` and per-seed rates (each at most
            the configured one).
    """

    kinds: frozenset[str] = attrs.field(default=frozenset(ALL_KINDS), converter=frozenset)
    partition_rate: float = 0.1
    crash_rate: float = 0.05
    pause_rate: float = 0.05
    transfer_rate: float = 0.03
    membership_rate: float = 0.03
    loss: float = 0.05
    duplicate: float = 0.02
    reorder: float = 0.1
    corner_rate: float = 0.02
    swarm: bool = False

    def __attrs_post_init__(self) -> None:
        unknown = set(self.kinds) - set(ALL_KINDS)
        if unknown:
            raise ValueError(f"unknown fault kinds: {sorted(unknown)}")

    def for_seed(self, rng: random.Random) -> "FaultConfig":
        """The swarm variant of this configuration for one seed."""
        if not self.swarm:
            return self
        kinds = [k for k in sorted(self.kinds) if rng.random() < 0.6]
        return FaultConfig(
            kinds=frozenset(kinds),
            partition_rate=self.partition_rate * rng.uniform(0.2, 2.0),
            crash_rate=self.crash_rate * rng.uniform(0.2, 2.0),
            pause_rate=self.pause_rate * rng.uniform(0.2, 2.0),
            transfer_rate=self.transfer_rate * rng.uniform(0.2, 2.0),
            loss=self.loss * rng.uniform(0.0, 2.0),
            duplicate=self.duplicate * rng.uniform(0.0, 2.0),
            reorder=self.reorder * rng.uniform(0.0, 2.0),
            membership_rate=self.membership_rate * rng.uniform(0.2, 2.0),  # see generate_plan
            corner_rate=self.corner_rate * rng.uniform(0.5, 4.0),
            swarm=False,
        )


def _poisson_times(rng: random.Random, rate: float, duration: float) -> Iterable[float]:
    if rate <= 0:
        return
    t = rng.expovariate(rate)
    while t < duration:
        yield t
        t += rng.expovariate(rate)


def generate_plan(config: FaultConfig, nodes: int, duration: float, rng: random.Random) -> list[Fault]:
    """A random plan for a fault phase of `duration` seconds on nodes 1..`nodes`."""
    plan: list[Fault] = []
    kinds = config.kinds
    for kind, rate in (("loss", config.loss), ("duplicate", config.duplicate),
                       ("reorder", config.reorder)):
        if kind in kinds and rate > 0:
            plan.append(Fault(0.0, kind, duration, rate=rate))
    partition_kinds = [k for k in PARTITION_KINDS if k in kinds]
    if partition_kinds:
        # Partitions do not overlap: each one replaces the network's cut.
        busy_until = 0.0
        for t in _poisson_times(rng, config.partition_rate, duration):
            if t < busy_until:
                continue
            length = rng.uniform(0.5, 10.0)
            kind = rng.choice(partition_kinds)
            node = rng.randint(1, nodes) if kind in ("isolate", "bridge") else 0
            plan.append(Fault(t, kind, length, node=node))
            busy_until = t + length
    for kind, rate, low, high in (("crash", config.crash_rate, 0.2, 8.0),
                                  ("pause", config.pause_rate, 0.2, 6.0),
                                  ("transfer", config.transfer_rate, 0.0, 0.0)):
        if kind in kinds:
            for t in _poisson_times(rng, rate, duration):
                # node 0: hit whoever leads when the fault fires (leaders matter most).
                node = 0 if rng.random() < 0.5 else rng.randint(1, nodes)
                plan.append(Fault(t, kind, rng.uniform(low, high), node=node))
    if "membership" in kinds:  # drawn last: plans without it are unchanged
        for t in _poisson_times(rng, config.membership_rate, duration):
            node = 0 if rng.random() < 0.3 else rng.randint(1, nodes)
            plan.append(Fault(t, "membership", rng.uniform(1.0, 15.0), node=node))
    corner_kinds = [k for k in CORNER_KINDS if k in kinds]
    if corner_kinds:  # drawn after the others: plans without them are unchanged
        for t in _poisson_times(rng, config.corner_rate, duration):
            plan.append(Fault(t, rng.choice(corner_kinds), rng.uniform(3.0, 8.0)))
    plan.sort(key=lambda f: (f.time, f.kind, f.node))
    return plan


def parse_kinds(text: str) -> frozenset[str]:
    """Parse a comma-separated list of fault kinds; "all" and "none" are shortcuts."""
    text = text.strip()
    if text in ("", "none"):
        return frozenset()
    if text == "all":
        return frozenset(ALL_KINDS)
    kinds = frozenset(part.strip() for part in text.split(",") if part.strip())
    unknown = kinds - set(ALL_KINDS)
    if unknown:
        raise ValueError(f"unknown fault kinds {sorted(unknown)}; choose from {', '.join(ALL_KINDS)}")
    return kinds
