"""Linearizability checking of a key-value history, one key at a time.

Theory of operation. Linearizability is compositional (Herlihy & Wing), so each key
is checked on its own as a register with compare-and-set. For one key the checker is
the Wing & Gong search with the memoization of Lowe (as in Porcupine):

* OK operations contribute a *call* and a *return* event to a doubly linked list in
  time order. The search repeatedly picks a call that precedes the first remaining
  return, applies it to the model, and removes ("lifts") it from the list; when the
  first remaining item is a return whose operation could not be placed, it backtracks.
  The history is linearizable when no OK operation is left.
* UNKNOWN writes (the client timed out) have no return event: they may be placed any
  time after their invocation or never. They live in a second list and are tried
  only after the definite calls, because "never" is the usual truth.
* FAIL operations and unknown reads have no effect and are left out.

Memoization: a search state is (OK operations placed, unknown operations placed,
register value). Having placed *fewer* unknown writes is never worse (they are
optional), so a state is pruned when the same (OK set, value) was already explored
with a subset of its unknown writes.

The set of OK operations placed is kept as (base, window): every operation numbered
below `base` is placed, and bit k of `window` says whether operation base + k is.
`base` is the first unplaced operation, so the window spans only the operations
concurrent with the search front; a plain bit mask over the whole history would make
every step cost time proportional to the history's length (quadratic runs).

Events at equal times are ordered calls before returns: two operations that touch
the same instant are treated as concurrent, which can only hide a violation, never
invent one.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Iterable

import attrs

from .history import OpKind, Operation, Outcome

ABSENT = None
"""The register value of a key that was never written."""

_OPAQUE = object()
"""Stands for any value that no operation of the key observes (see check_key)."""


@attrs.frozen
class KeyResult:
    """The verdict for one key.

    Attributes:
        key: the key.
        linearizable: True, False, or None when the search budget ran out.
        operations: how many operations of the key were checked.
        blocking: on failure, the operation the deepest search attempt could not
            place (its return came before any valid placement).
        placed: on failure, the OK operations of the deepest attempt in the order
            they were placed.
    """

    key: str
    linearizable: bool | None
    operations: int
    blocking: Operation | None = None
    placed: tuple[Operation, ...] = ()

    def explain(self, limit: int = 12) -> str:
        if self.linearizable:
            return f"key {self.key!r}: linearizable ({self.operations} ops)"
        if self.linearizable is None:
            return f"key {self.key!r}: inconclusive (search budget exhausted, {self.operations} ops)"
        lines = [f"key {self.key!r}: NOT linearizable ({self.operations} ops)"]
        tail = self.placed[-limit:]
        if tail:
            lines.append("  last operations of the longest valid linearization:")
            lines.extend(f"    {op.describe()}" for op in tail)
        if self.blocking is not None:
            lines.append(f"  cannot be placed: {self.blocking.describe()}")
        return "\n".join(lines)


@attrs.frozen
class CheckResult:
    """The verdict for a whole history."""

    linearizable: bool | None
    keys: tuple[KeyResult, ...]

    @property
    def failures(self) -> list[KeyResult]:
        return [k for k in self.keys if k.linearizable is False]

    def explain(self) -> str:
        bad = [k for k in self.keys if not k.linearizable]
        if not bad:
            return f"linearizable ({sum(k.operations for k in self.keys)} ops, {len(self.keys)} keys)"
        return "\n".join(k.explain() for k in bad)


def _apply(op: Operation, value: Any, definite: bool) -> tuple[bool, Any]:
    """Register-with-CAS model: can `op` happen when the register holds `value`?"""
    kind = op.kind
    if kind is OpKind.PUT:
        return True, op.value
    if kind is OpKind.GET:
        return op.result == value, value
    # CAS
    if not definite:
        # An unknown CAS that "happened" must have swapped; a failed compare is the
        # same as never having happened.
        return (value == op.expected), op.value
    if op.result:
        return (value == op.expected), op.value
    return (value != op.expected), value


def check_key(key: str, ops: list[Operation], initial: Any = ABSENT,
              budget: int = 5_000_000) -> KeyResult:
    """Check the operations of one key. See the module docstring."""
    definite = [op for op in ops if op.outcome is Outcome.OK]
    unknown = [op for op in ops
               if op.outcome is Outcome.UNKNOWN and op.kind is not OpKind.GET]
    n_def = len(definite)
    if n_def == 0:
        return KeyResult(key, True, len(definite) + len(unknown))
    # Values nobody ever reads or compares against are interchangeable: every later
    # operation behaves the same whichever of them the register holds. Folding them
    # into one token merges search states that differ only in such a value.
    observed = {op.result for op in definite if op.kind is OpKind.GET}
    observed.update(op.expected for op in ops if op.kind is OpKind.CAS)

    # Main list: node 0 is the head sentinel; nodes 1..2n are call/return events.
    events: list[tuple[float, int, int]] = []  # (time, 0 call / 1 return, op index)
    for i, op in enumerate(definite):
        events.append((op.invoke_time, 0, i))
        events.append((op.complete_time, 1, i))
    events.sort()
    size = len(events) + 1
    nxt = list(range(1, size + 1))
    nxt[-1] = -1
    prv = list(range(-1, size - 1))
    ev_op = [-1] * size
    ev_ret = [False] * size
    ev_time = [0.0] * size
    call_node = [0] * n_def
    ret_node = [0] * n_def
    for pos, (time, is_ret, i) in enumerate(events, start=1):
        ev_op[pos] = i
        ev_ret[pos] = bool(is_ret)
        ev_time[pos] = time
        if is_ret:
            ret_node[i] = pos
        else:
            call_node[i] = pos

    # Unknown list: node 0 head; nodes 1..m unknown calls in invocation order.
    unknown.sort(key=lambda op: (op.invoke_time, op.op_id))
    m = len(unknown)
    u_next = list(range(1, m + 2))
    u_next[m] = -1
    u_prev = list(range(-1, m + 1))
    u_time = [0.0] + [op.invoke_time for op in unknown]
    # Unknown writes with the same effect (a put of the same value, a CAS with the
    # same compare and swap; unobserved values folded) are interchangeable once
    # invoked, so only the earliest one not yet placed of each class is tried: an
    # equivalent history places it instead of any later one. Without this every
    # pending unknown write of an unobserved value is a new branch at every point
    # where the search is stuck, and long runs search quadratically.
    classes: dict[tuple, int] = {}
    u_class = [0] * (m + 1)
    u_rank = [0] * (m + 1)
    members: list[int] = []
    for pos, op in enumerate(unknown, start=1):
        written = op.value if op.value in observed else _OPAQUE
        effect = (written,) if op.kind is OpKind.PUT else (written, op.expected)
        c = classes.setdefault(effect, len(classes))
        if c == len(members):
            members.append(0)
        u_class[pos] = c
        u_rank[pos] = members[c]
        members[c] += 1
    used = [0] * len(classes)  # placed unknown writes per class (always the earliest)

    def lift(node: int, links_next: list[int], links_prev: list[int]) -> None:
        p, n = links_prev[node], links_next[node]
        links_next[p] = n
        if n != -1:
            links_prev[n] = p

    def unlift(node: int, links_next: list[int], links_prev: list[int]) -> None:
        p, n = links_prev[node], links_next[node]
        links_next[p] = node
        if n != -1:
            links_prev[n] = node

    seen: dict[tuple[int, int, Any], list[int]] = defaultdict(list)
    # Stack frames: (is_unknown, node, previous value, bound time, previous base,
    # previous window).
    stack: list[tuple[bool, int, Any, float, int, int]] = []
    base = 0  # OK operations placed: all below base, and base + k for bit k of window
    window = 0
    unknown_mask = 0
    value = initial if initial in observed else _OPAQUE
    remaining = n_def
    best_depth = -1
    best_block = None
    best_placed: tuple[Operation, ...] = ()
    steps = 0

    node = nxt[0]
    phase_unknown = False
    bound = 0.0
    while True:
        steps += 1
        if steps > budget:
            return KeyResult(key, None, n_def + m)
        if not phase_unknown:
            if ev_ret[node]:
                # The first remaining return: calls after it cannot be placed yet.
                # Try the unknown writes invoked no later than it.
                if n_def - remaining > best_depth:
                    best_depth = n_def - remaining
                    best_block = definite[ev_op[node]]
                    best_placed = _recent_placed(stack, definite, ev_op)
                phase_unknown = True
                bound = ev_time[node]
                node = u_next[0]
                continue
            i = ev_op[node]
            ok, new_value = _apply(definite[i], value, True)
            if new_value not in observed:
                new_value = _OPAQUE
            if ok:
                new_base = base
                new_window = window | (1 << (i - base))
                if new_window & 1:  # the first unplaced operation moves on
                    ones = (~new_window & (new_window + 1)).bit_length() - 1
                    new_window >>= ones
                    new_base += ones
                if _first_visit(seen, (new_base, new_window, new_value), unknown_mask):
                    stack.append((False, node, value, bound, base, window))
                    base, window = new_base, new_window
                    value = new_value
                    lift(node, nxt, prv)
                    lift(ret_node[i], nxt, prv)
                    remaining -= 1
                    if remaining == 0:
                        return KeyResult(key, True, n_def + m)
                    node = nxt[0]
                    continue
            node = nxt[node]
            continue
        # Unknown phase: walk the unknown writes invoked by `bound`.
        if node != -1 and u_time[node] <= bound:
            if u_rank[node] != used[u_class[node]]:
                node = u_next[node]  # an earlier write of its class is still unplaced
                continue
            op = unknown[node - 1]
            ok, new_value = _apply(op, value, False)
            if new_value not in observed:
                new_value = _OPAQUE
            if ok:
                new_unknown = unknown_mask | (1 << (node - 1))
                if _first_visit(seen, (base, window, new_value), new_unknown):
                    stack.append((True, node, value, bound, base, window))
                    unknown_mask = new_unknown
                    value = new_value
                    used[u_class[node]] += 1
                    lift(node, u_next, u_prev)
                    phase_unknown = False
                    node = nxt[0]
                    continue
            node = u_next[node]
            continue
        # Nothing can be placed before the first return: backtrack.
        if not stack:
            return KeyResult(key, False, n_def + m, best_block, best_placed)
        was_unknown, node, value, bound, base, window = stack.pop()
        if was_unknown:
            unknown_mask &= ~(1 << (node - 1))
            used[u_class[node]] -= 1
            unlift(node, u_next, u_prev)
            phase_unknown = True
            node = u_next[node]
        else:
            i = ev_op[node]
            unlift(ret_node[i], nxt, prv)
            unlift(node, nxt, prv)
            remaining += 1
            phase_unknown = False
            node = nxt[node]


def _recent_placed(stack: list, definite: list[Operation], ev_op: list[int],
                   limit: int = 12) -> tuple[Operation, ...]:
    """The last `limit` OK operations on the search stack (for explanations)."""
    recent: list[Operation] = []
    for was_unknown, node, *_ in reversed(stack):
        if not was_unknown:
            recent.append(definite[ev_op[node]])
            if len(recent) == limit:
                break
    return tuple(reversed(recent))


def _first_visit(seen: dict, placed: tuple[int, int, Any], unknown_mask: int) -> bool:
    """Record a search state (placed: base, window, value); False when it is
    dominated by one already explored."""
    visited = seen[placed]
    for other in visited:
        if other & ~unknown_mask == 0:  # explored with a subset of these unknowns
            return False
    visited.append(unknown_mask)
    return True


def check_history(ops: Iterable[Operation], initial: Any = ABSENT,
                  budget_per_key: int = 5_000_000) -> CheckResult:
    """Check a whole history key by key. Open operations count as unknown."""
    by_key: dict[str, list[Operation]] = defaultdict(list)
    for op in ops:
        if op.outcome is None:
            op = attrs.evolve(op, outcome=Outcome.UNKNOWN)
        by_key[op.key].append(op)
    results = tuple(check_key(key, by_key[key], initial, budget_per_key) for key in sorted(by_key))
    if any(r.linearizable is False for r in results):
        verdict: bool | None = False
    elif any(r.linearizable is None for r in results):
        verdict = None
    else:
        verdict = True
    return CheckResult(verdict, results)
