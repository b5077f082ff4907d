"""The safety checker's leader-completeness rule, on hand-made histories."""

from __future__ import annotations

import pytest

from raft.storage import MemoryStorage
from raft.types import Entry, HardState
from simulations.safety import SafetyChecker, SafetyViolation


class _Disk:
    def __init__(self, entries: list[Entry]) -> None:
        self.durable = MemoryStorage()
        self.durable.save(None, entries)


def _log(*terms: int) -> list[Entry]:
    return [Entry(term=t, index=i, data=b"e%d" % i) for i, t in enumerate(terms, start=1)]


def _storage(entries: list[Entry]) -> MemoryStorage:
    storage = MemoryStorage()
    storage.save(None, entries)
    return storage


def _commit(checker: SafetyChecker, node: int, node_term: int, entries: list[Entry]) -> None:
    """`node`, in term `node_term`, applies `entries`, held by every node's disk."""
    checker.on_hard_state(node, HardState(term=node_term, vote=node, commit=len(entries)), len(entries))
    disks = {n: _Disk(entries) for n in (1, 2, 3)}
    for entry in entries:
        checker.on_apply(node, entry, disks)


def test_a_later_leader_missing_an_earlier_commit_is_caught():
    checker = SafetyChecker([1, 2, 3])
    _commit(checker, 1, 1, _log(1, 1))
    with pytest.raises(SafetyViolation) as caught:
        checker.on_leader(2, 2, _storage(_log(1)))
    assert caught.value.invariant == "leader completeness"


def test_a_leader_with_a_different_term_at_a_committed_index_is_caught():
    checker = SafetyChecker([1, 2, 3])
    _commit(checker, 1, 1, _log(1, 1))
    with pytest.raises(SafetyViolation) as caught:
        checker.on_leader(2, 3, _storage(_log(1, 2)))
    assert caught.value.invariant == "leader completeness"


def test_an_old_term_leader_need_not_hold_what_later_terms_committed():
    """A candidate of term 2 that collects its votes late (it was paused with the
    answers queued) may lead term 2 after term 3 committed more: Raft only
    requires entries committed in earlier terms."""
    checker = SafetyChecker([1, 2, 3])
    _commit(checker, 1, 1, _log(1))          # index 1, committed in term 1
    _commit(checker, 3, 3, _log(1, 3, 3))    # indexes 2-3, learned in term 3
    checker.on_leader(2, 2, _storage(_log(1)))
    # ...but it must still hold what term 1 committed.
    with pytest.raises(SafetyViolation) as caught:
        checker.on_leader(2, 2, _storage([]))
    assert caught.value.invariant == "leader completeness"
