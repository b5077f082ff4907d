"""One seed, many independent random streams.

Every random choice of a simulation comes from a `random.Random` obtained here, one
per *purpose* ("network", "faults", "node-3-election", ...). Streams are derived from
sha256(f"{seed}:{purpose}") so that adding a new consumer of randomness does not shift
the draws of the others: a seed keeps reproducing the same network behaviour even when,
say, the workload changes. Nothing in the simulator touches the global `random`.
"""

from __future__ import annotations

import hashlib
import random


def derive_seed(seed: int, purpose: str) -> int:
    """A 64-bit integer derived deterministically from `seed` and `purpose`."""
    digest = hashlib.sha256(f"{seed}:{purpose}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


class RngFactory:
    """Hands out one independent `random.Random` per purpose, all derived from a seed.

    Asking twice for the same purpose returns the same stream object, so a consumer
    that is rebuilt (a node after a restart) keeps drawing from where it left off
    unless it asks for a fresh purpose name (e.g. including an incarnation number).
    """

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self._streams: dict[str, random.Random] = {}

    def stream(self, purpose: str) -> random.Random:
        rng = self._streams.get(purpose)
        if rng is None:
            rng = random.Random(derive_seed(self.seed, purpose))
            self._streams[purpose] = rng
        return rng

    def integer(self, purpose: str) -> int:
        """A fresh 63-bit integer for seeding something else (e.g. `Config.seed`)."""
        return derive_seed(self.seed, purpose) >> 1
