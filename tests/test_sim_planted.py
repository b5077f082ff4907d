"""Planted bugs: every checker must fire on a broken variant within a modest sweep.

The variants live in tests/planted_bugs.py (test-only). Each test sweeps seeds until
the variant is caught, and fails if none of them catches it.
"""

from __future__ import annotations

import pytest

from coord_planted_bugs import NoGraceLeaseTable, PartialGraceLeaseTable, UnconfirmedAckDriver, partial_grace
from planted_bugs import (
    ConfigAmnesiaNode,
    DoubleVoteNode,
    EarlyAckWorld,
    ForgetfulDisk,
    OldTermCommitNode,
    RoundlessReadNode,
    SmallQuorumNode,
    StaleReadWorld,
)
from simulations.coord_scenarios import build_for
from simulations.faults import FaultConfig
from simulations.runner import run_simulation
from simulations.world import SimConfig, WorkloadConfig

pytestmark = pytest.mark.slow

# Frequent crashes and partitions (half of them aimed at the leader) make elections
# and failovers common, which is where these bugs show.
HARSH = FaultConfig(crash_rate=0.3, partition_rate=0.3)


def first_caught(seeds, scenario="kv", **config):
    build = config.pop("build", None)
    for seed in seeds:
        result, _ = run_simulation(SimConfig(seed=seed, **config), scenario, build=build)
        if not result.ok:
            return result
    return None


def test_double_vote_is_caught():
    result = first_caught(range(30), duration=30.0, faults=HARSH, node_factory=DoubleVoteNode,
                          workload=WorkloadConfig(rate=10))
    assert result is not None
    assert result.violations[0].invariant in ("one vote per term", "election safety")
    assert f"--seed {result.seed}" in result.explain()


def test_commit_without_quorum_is_caught():
    result = first_caught(range(10), duration=20.0, node_factory=SmallQuorumNode)
    assert result is not None
    assert result.violations[0].invariant in ("committed entries are durable", "state machine safety",
                                              "leader completeness")


def test_disk_that_forgets_fsynced_data_is_caught():
    result = first_caught(range(20), duration=20.0, faults=FaultConfig(crash_rate=0.2),
                          disk_factory=ForgetfulDisk)
    assert result is not None
    assert "survive" in result.violations[0].invariant


def test_stale_local_reads_are_caught_by_linearizability():
    result = first_caught(range(20), duration=20.0, build=StaleReadWorld)
    assert result is not None
    assert [v.invariant for v in result.violations] == ["linearizability"]
    assert result.linearizable is False
    assert "NOT linearizable" in result.explain()


def test_acknowledging_before_commit_is_caught_by_linearizability():
    result = first_caught(range(20), duration=20.0, build=EarlyAckWorld)
    assert result is not None
    assert result.linearizable is False


def test_node_that_forgets_membership_changes_on_restart_is_caught():
    """A restarted node that counts with its boot-time member list (not the one in
    its storage) lets a removed node's acknowledgement complete a quorum."""
    faults = FaultConfig(crash_rate=0.3, partition_rate=0.1, membership_rate=0.3)
    result = first_caught(range(20), duration=30.0, faults=faults, node_factory=ConfigAmnesiaNode,
                          workload=WorkloadConfig(rate=10))
    assert result is not None
    assert result.violations[0].invariant in ("committed entries are durable", "state machine safety",
                                              "leader completeness", "election safety")
    for seed in range(5):  # the correct core under the same faults
        ok, _ = run_simulation(SimConfig(seed=seed, duration=30.0, faults=faults,
                                         workload=WorkloadConfig(rate=10)))
        assert ok.ok, ok.explain()


def test_correct_implementation_passes_the_same_harsh_sweep():
    for seed in range(5):
        result, _ = run_simulation(SimConfig(seed=seed, duration=30.0, faults=HARSH,
                                             workload=WorkloadConfig(rate=10)))
        assert result.ok, result.explain()


# The corner scenarios (simulations.faults, "corner patterns") make the situations
# these bugs need on purpose; the default mixes almost never reach them.

SAFETY = ("leader completeness", "committed entries are durable", "state machine safety")


def test_commit_of_an_earlier_terms_entry_is_caught_by_leader_churn():
    result = first_caught(range(1, 11), "leader-churn", duration=30.0, node_factory=OldTermCommitNode)
    assert result is not None
    assert result.violations[0].invariant in SAFETY
    assert "--scenario leader-churn" in result.reproduce
    for seed in range(1, 4):  # the correct core under the same churn
        ok, _ = run_simulation(SimConfig(seed=seed, duration=30.0), "leader-churn")
        assert ok.ok, ok.explain()


def test_read_index_without_the_leadership_round_is_caught_by_deposed_leader():
    result = first_caught(range(1, 11), "deposed-leader", duration=30.0, node_factory=RoundlessReadNode)
    assert result is not None
    assert [v.invariant for v in result.violations] == ["linearizability"]
    for seed in range(1, 4):
        ok, _ = run_simulation(SimConfig(seed=seed, duration=30.0), "deposed-leader")
        assert ok.ok, ok.explain()


@pytest.mark.parametrize("table", [PartialGraceLeaseTable, NoGraceLeaseTable])
def test_new_leader_granting_part_of_a_lease_is_caught_by_lease_handover(monkeypatch, table):
    partial_grace(monkeypatch, table)
    result = first_caught(range(1, 6), "lease-handover", duration=30.0)
    assert result is not None
    assert result.violations[0].invariant == "at most one owner"


def test_heartbeats_acknowledged_by_a_deposed_leader_are_caught_by_deposed_coordinator():
    result = first_caught(range(1, 6), "deposed-coordinator", duration=30.0,
                          build=build_for("deposed-coordinator", driver_class=UnconfirmedAckDriver))
    assert result is not None
    assert result.violations[0].invariant == "at most one owner"
