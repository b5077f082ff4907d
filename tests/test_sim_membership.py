"""Membership changes as a simulator fault, and the config-aware durability check."""

from __future__ import annotations

import random

import pytest

from raft.codec import encode_conf_change_entry
from raft.storage import MemoryStorage
from raft.types import ConfChange, ConfChangeType, ConfState, Entry, EntryType
from simulations.faults import ALL_KINDS, CORNER_KINDS, Fault, FaultConfig, generate_plan
from simulations.runner import reproduce_command, run_simulation
from simulations.safety import SafetyChecker, SafetyViolation
from simulations.world import SimConfig, WorkloadConfig

MEMBERSHIP_ONLY = FaultConfig(kinds=frozenset({"membership"}), membership_rate=0.3)


def committed_voter_sets_of(checker: SafetyChecker) -> list[list[int]]:
    return [sorted(voters) for _, voters in checker.configs]


def committed_voter_sets(world) -> list[list[int]]:
    return committed_voter_sets_of(world.checker)


def test_membership_faults_change_the_configuration_and_heal_back():
    result, world = run_simulation(SimConfig(seed=4, nodes=5, duration=30.0, faults=MEMBERSHIP_ONLY,
                                             workload=WorkloadConfig(rate=20.0)))
    assert result.ok, result.explain()
    assert result.linearizable
    sets = committed_voter_sets(world)
    assert any(len(voters) == 4 for voters in sets), sets  # someone really left
    # Healed: every node is back in the configuration every node holds.
    assert sets[-1] == [1, 2, 3, 4, 5]
    for node in world.nodes.values():
        assert sorted(node.raw.conf_state.voters) == [1, 2, 3, 4, 5]


def test_removing_the_leader_hands_over_and_it_rejoins():
    plan = (Fault(3.0, "membership", 6.0, node=0),)  # node 0: whoever leads at 3 s
    result, world = run_simulation(SimConfig(seed=2, nodes=3, duration=12.0, plan=plan,
                                             workload=WorkloadConfig(rate=20.0)))
    assert result.ok, result.explain()
    removed = [node for node, spans in world.timeline.removed.items() if spans]
    assert len(removed) == 1
    leader_before = [node for time, node, _ in world.timeline.leaders if time < 3.0][-1]
    assert removed == [leader_before]
    # Someone else led while the old leader was out; the cluster healed to 3 voters.
    assert any(node != leader_before and 3.0 < time < 9.0 for time, node, _ in world.timeline.leaders)
    assert committed_voter_sets(world)[-1] == [1, 2, 3]
    # Operations kept succeeding while it was out.
    assert any(op.outcome is not None and op.outcome.value == "ok" and 4.0 < op.invoke_time < 9.0
               for op in world.history)


@pytest.mark.parametrize("nodes", [3, 5])
def test_every_fault_kind_with_frequent_membership_changes(nodes):
    faults = FaultConfig(kinds=frozenset(ALL_KINDS), membership_rate=0.2)
    for seed in range(1, 7):
        result, world = run_simulation(SimConfig(seed=seed, nodes=nodes, duration=30.0, faults=faults,
                                                 workload=WorkloadConfig(rate=20.0), disk="model"))
        assert result.ok, result.explain()
        assert result.linearizable is not False


def test_plans_without_membership_are_unchanged_by_it():
    """Membership faults (then corner patterns) are drawn after every other kind, so a
    plan without them is the same plan it always was (old seeds replay the same runs)."""
    later = ("membership",) + CORNER_KINDS
    kinds = frozenset(k for k in ALL_KINDS if k not in later)
    membership_faults = 0
    for seed in range(5):
        without = generate_plan(FaultConfig(kinds=kinds), 5, 60.0, random.Random(seed))
        with_it = generate_plan(FaultConfig(kinds=frozenset(ALL_KINDS)), 5, 60.0, random.Random(seed))
        assert [f for f in with_it if f.kind not in later] == without
        membership_faults += sum(f.kind == "membership" for f in with_it)
    assert membership_faults > 0


def test_reproduce_line_carries_the_membership_rate():
    config = SimConfig(seed=3, faults=FaultConfig(membership_rate=0.25))
    assert "--membership-rate 0.25" in reproduce_command(config)
    assert "--membership-rate" not in reproduce_command(SimConfig(seed=3))


# -- the durability check once the configuration changed ---------------------------

class _Disk:
    """What the checker reads of a node's disk: its fsynced shadow."""

    def __init__(self, entries: list[Entry]) -> None:
        self.durable = MemoryStorage()
        self.durable.save(None, entries)


def _conf_entry(index: int, change: ConfChange, voters: set[int]) -> Entry:
    data = encode_conf_change_entry(change, ConfState(voters=frozenset(voters)))
    return Entry(term=1, index=index, type=EntryType.CONF_CHANGE, data=data)


def _checker_after_removing_5() -> tuple[SafetyChecker, list[Entry]]:
    checker = SafetyChecker([1, 2, 3, 4, 5])
    removal = _conf_entry(1, ConfChange(ConfChangeType.REMOVE_NODE, 5), {1, 2, 3, 4})
    log = [removal, Entry(term=1, index=2, data=b"x")]
    checker.on_append(1, log, 0)
    everywhere = {n: _Disk(log) for n in range(1, 6)}
    for entry in log[:1]:
        checker.on_apply(1, entry, everywhere)
    return checker, log


def test_durability_counts_the_configuration_in_force():
    checker, log = _checker_after_removing_5()
    assert committed_voter_sets_of(checker) == [[1, 2, 3, 4, 5], [1, 2, 3, 4]]
    # Index 2 on 3 of the 4 voters: a quorum of {1,2,3,4} although only 3 of 5 nodes.
    disks = {1: _Disk(log), 2: _Disk(log), 3: _Disk(log), 4: _Disk(log[:1]), 5: _Disk(log[:1])}
    checker.on_apply(1, log[1], disks)


def test_durability_violation_is_caught_in_the_new_configuration():
    checker, log = _checker_after_removing_5()
    # On 1, 2 and the removed node 5 only: a majority of 5 nodes, not of {1,2,3,4}.
    disks = {1: _Disk(log), 2: _Disk(log), 3: _Disk(log[:1]), 4: _Disk(log[:1]), 5: _Disk(log)}
    with pytest.raises(SafetyViolation) as caught:
        checker.on_apply(1, log[1], disks)
    assert caught.value.invariant == "committed entries are durable"


def test_a_configuration_proposed_after_the_entry_may_have_been_counted():
    """A leader counts with the newest configuration in its log, even uncommitted:
    entry 2 durable on {1, 2} is a quorum of {1, 2, 3} proposed at index 3."""
    checker, log = _checker_after_removing_5()
    shrink = _conf_entry(3, ConfChange(ConfChangeType.REMOVE_NODE, 4), {1, 2, 3})
    checker.on_append(1, [log[1], shrink], 1)
    disks = {1: _Disk(log), 2: _Disk(log), 3: _Disk(log[:1]), 4: _Disk(log[:1]), 5: _Disk(log[:1])}
    checker.on_apply(1, log[1], disks)
    # Without that proposal the same disks are a violation.
    plain, _ = _checker_after_removing_5()
    with pytest.raises(SafetyViolation):
        plain.on_apply(1, log[1], disks)
