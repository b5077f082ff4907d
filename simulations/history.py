"""The client history: every operation as an invocation plus an outcome.

An operation is invoked at some virtual time and then ends in one of three ways:

* OK: it took effect (for a write) or observed a value (for a read), and the client
  learned it at `complete_time`;
* FAIL: it certainly did *not* take effect (the proposal was refused, or its log slot
  was taken by another entry);
* UNKNOWN: the client gave up waiting (timeout, the node it talked to crashed). The
  linearizability checker lets an unknown write take effect at any time after its
  invocation, or never; an unknown read carries no information and is ignored.
"""

from __future__ import annotations

import enum
import random
from typing import Any, Iterator

import attrs


class OpKind(enum.Enum):
    PUT = "put"
    GET = "get"
    CAS = "cas"


class Outcome(enum.Enum):
    OK = "ok"
    FAIL = "fail"
    UNKNOWN = "unknown"


@attrs.define(slots=True)
class Operation:
    """One client operation on one key.

    Attributes:
        op_id: unique within the history, in invocation order.
        client: the client that issued it.
        kind: put, get or cas.
        key: the key it touches.
        value: the value written by a put, or the new value of a cas.
        expected: the value a cas compares against (None = key absent).
        invoke_time: virtual seconds when the client sent it.
        complete_time: virtual seconds when the outcome was learned (None while open).
        outcome: None while the operation is still open.
        result: for an OK get the value read; for an OK cas whether it swapped.
    """

    op_id: int
    client: int
    kind: OpKind
    key: str
    value: Any = None
    expected: Any = None
    invoke_time: float = 0.0
    complete_time: float | None = None
    outcome: Outcome | None = None
    result: Any = None

    def describe_call(self) -> str:
        """The invocation alone, e.g. "#7 c2 put(k1, 'c2-7')"."""
        if self.kind is OpKind.PUT:
            call = f"put({self.key}, {self.value!r})"
        elif self.kind is OpKind.GET:
            call = f"get({self.key})"
        else:
            call = f"cas({self.key}, {self.expected!r} -> {self.value!r})"
        return f"#{self.op_id} c{self.client} {call}"

    def describe(self) -> str:
        """The invocation, its interval and its outcome."""
        end = "…" if self.complete_time is None else f"{self.complete_time:.4f}"
        outcome = self.outcome.value if self.outcome else "open"
        shown = f" = {self.result!r}" if self.outcome is Outcome.OK and self.kind is not OpKind.PUT else ""
        return f"{self.describe_call()} [{self.invoke_time:.4f}, {end}] {outcome}{shown}"


class History:
    """An append-only record of client operations."""

    def __init__(self) -> None:
        self.ops: list[Operation] = []

    def __len__(self) -> int:
        return len(self.ops)

    def __iter__(self) -> Iterator[Operation]:
        return iter(self.ops)

    def invoke(self, client: int, kind: OpKind, key: str, time: float, value: Any = None,
               expected: Any = None) -> Operation:
        op = Operation(len(self.ops), client, kind, key, value, expected, time)
        self.ops.append(op)
        return op

    @staticmethod
    def complete(op: Operation, outcome: Outcome, time: float, result: Any = None) -> None:
        if op.outcome is not None:
            raise ValueError(f"operation {op.op_id} already completed")
        op.outcome = outcome
        op.complete_time = time
        op.result = result

    def open_ops(self) -> list[Operation]:
        return [op for op in self.ops if op.outcome is None]

    def counts(self) -> dict[str, int]:
        result = {"ok": 0, "fail": 0, "unknown": 0, "open": 0}
        for op in self.ops:
            result[op.outcome.value if op.outcome else "open"] += 1
        return result


def random_linearizable_history(seed: int, n_ops: int, keys: int = 4, clients: int = 8,
                                unknown_rate: float = 0.02) -> History:
    """A random linearizable history, for tests and benchmarks of the checker.

    Each operation takes effect at a random point inside its interval; a fraction
    `unknown_rate` of them is then recorded as UNKNOWN (they did happen).
    """
    rng = random.Random(seed)
    events = []  # (linearization time, start, end, client, kind, key, value, expected, unknown)
    client_free = [0.0] * clients
    for i in range(n_ops):
        c = rng.randrange(clients)
        start = client_free[c] + rng.expovariate(10.0)
        end = start + rng.expovariate(5.0) + 0.001
        client_free[c] = end
        point = rng.uniform(start, end)
        kind = rng.choice([OpKind.PUT, OpKind.GET, OpKind.GET, OpKind.CAS])
        events.append([point, start, end, c, kind, f"k{rng.randrange(keys)}", f"v{i}", None,
                       rng.random() < unknown_rate])
    state: dict[str, str | None] = {}
    for ev in sorted(events):
        _, _, _, _, kind, key, value, _, _ = ev
        if kind is OpKind.PUT:
            ev.append(None)
            state[key] = value
        elif kind is OpKind.GET:
            ev.append(state.get(key))
        else:
            expected = state.get(key) if rng.random() < 0.6 else f"v{rng.randrange(n_ops)}"
            ev[7] = expected
            swapped = state.get(key) == expected
            if swapped:
                state[key] = value
            ev.append(swapped)
    h = History()
    for ev in sorted(events, key=lambda e: e[1]):
        _, start, end, c, kind, key, value, expected, unknown, result = ev
        op = h.invoke(c, kind, key, start, value=value if kind is not OpKind.GET else None,
                      expected=expected)
        if unknown:
            # Unknown ops really happened here; a lost one would simply be absent.
            h.complete(op, Outcome.UNKNOWN, end + 5.0)
        else:
            h.complete(op, Outcome.OK, end, result)
    return h
