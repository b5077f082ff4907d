"""The simulated network: latency, loss, duplication, reordering and partitions.

The network decides *when* (and whether, and how many times) a message sent from one
node to another arrives; the world carries the bytes and schedules the delivery.
Partitions block directed links. A message is checked against the partition both when
it is sent and when it would arrive, so a cut also kills messages already in flight.
"""

from __future__ import annotations

import random
from math import log
from typing import Iterable, Sequence

import attrs


@attrs.define
class LinkFaults:
    """Per-message fault probabilities (all zero on a healthy network).

    Attributes:
        loss: probability that a message is dropped.
        duplicate: probability that a message is delivered twice.
        reorder: probability that a message is held back by an extra delay, so that
            later messages on the same link overtake it.
    """

    loss: float = 0.0
    duplicate: float = 0.0
    reorder: float = 0.0


@attrs.define
class Latency:
    """Delivery delay: `base` plus an exponential with mean `mean_extra` (seconds),
    and with probability `slow` a further exponential with mean `slow_extra`."""

    base: float = 0.0005
    mean_extra: float = 0.002
    slow: float = 0.01
    slow_extra: float = 0.05
    reorder_extra: float = 0.05


class Network:
    """Decides the fate of each message. Holds no messages itself.

    Attributes:
        faults: the current per-message fault probabilities.
        blocked: directed links (src, dst) that carry nothing.
        partition: a short description of the current partition ("" when healed).
        sides: the two groups of nodes the current partition separates (a bridge
            node is in neither; empty when healed).
    """

    def __init__(self, rng: random.Random, latency: Latency | None = None) -> None:
        self._rng = rng
        self._random = rng.random  # bound once: drawn several times per message
        self.latency = latency or Latency()
        self.faults = LinkFaults()
        self.blocked: set[tuple[int, int]] = set()
        self.partition = ""
        self.sides: tuple[tuple[int, ...], ...] = ()

    # -- per message -------------------------------------------------------------

    def delays(self, src: int, dst: int) -> tuple[float, ...]:
        """Delays after which copies of a message from src to dst arrive (() = lost)."""
        if (src, dst) in self.blocked:
            return ()
        random = self._random
        faults = self.faults
        loss = faults.loss
        if loss and random() < loss:
            return ()
        duplicate = faults.duplicate
        if duplicate and random() < duplicate:
            return (self._delay(), self._delay())
        # One copy, nearly every message: `_delay` inlined (the same draws).
        latency = self.latency
        delay = latency.base - log(1.0 - random()) * latency.mean_extra
        slow = latency.slow
        if slow and random() < slow:
            delay -= log(1.0 - random()) * latency.slow_extra
        reorder = faults.reorder
        if reorder and random() < reorder:
            delay += latency.reorder_extra * random()
        return (delay,)

    def _delay(self) -> float:
        # Exponentials drawn as -log(1 - U) * mean, as random.expovariate does.
        random = self._random
        latency = self.latency
        delay = latency.base - log(1.0 - random()) * latency.mean_extra
        if latency.slow and random() < latency.slow:
            delay -= log(1.0 - random()) * latency.slow_extra
        reorder = self.faults.reorder
        if reorder and random() < reorder:
            delay += latency.reorder_extra * random()
        return delay

    def connected(self, src: int, dst: int) -> bool:
        return (src, dst) not in self.blocked

    # -- partitions --------------------------------------------------------------

    def heal(self) -> None:
        self.blocked.clear()
        self.partition = ""
        self.sides = ()

    def split(self, side_a: Iterable[int], side_b: Iterable[int], one_way: bool = False) -> None:
        """Cut every link from side A to side B, and back unless `one_way`."""
        a, b = sorted(side_a), sorted(side_b)
        self.blocked.clear()
        for x in a:
            for y in b:
                self.blocked.add((x, y))
                if not one_way:
                    self.blocked.add((y, x))
        arrow = "-/->" if one_way else "<-/->"
        self.partition = f"{_group(a)} {arrow} {_group(b)}"
        self.sides = (tuple(a), tuple(b))

    def isolate(self, node: int, others: Iterable[int]) -> None:
        self.split([node], [n for n in others if n != node])
        self.partition = f"isolate {node}"

    def bridge(self, side_a: Sequence[int], side_b: Sequence[int], bridge_node: int) -> None:
        """Cut A from B while `bridge_node` (in neither) still talks to both sides."""
        self.split(side_a, side_b)
        self.partition = f"{_group(side_a)} <-/-> {_group(side_b)} bridged by {bridge_node}"


def _group(nodes: Iterable[int]) -> str:
    return "{" + ",".join(str(n) for n in nodes) + "}"
