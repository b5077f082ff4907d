"""Corner patterns do what they promise: they reach the situations they are for."""

from __future__ import annotations

import random

import pytest

from raft.types import Role
from simulations.faults import Fault, FaultConfig, generate_plan
from simulations.world import SimConfig, World, WorkloadConfig

pytestmark = pytest.mark.usefixtures("quiet_raft")


def leaders(world):
    return sorted((n.raw.term, n.id) for n in world.nodes.values() if n.up and n.role is Role.LEADER)


def test_deposed_read_elects_a_new_leader_while_the_old_one_still_leads():
    for seed in range(3):
        world = World(SimConfig(seed=seed, duration=20.0, plan=(Fault(5.0, "deposed_read", 4.0),),
                                workload=WorkloadConfig(rate=20.0)))
        world.start()
        world.run_until(4.99)
        [(old_term, old_leader)] = leaders(world)
        world.run_until(5.2)  # well within an election timeout (1 s)
        both = leaders(world)
        assert len(both) == 2 and (old_term, old_leader) in both
        assert max(both)[0] > old_term
        world.heal_and_converge()
        assert world.violation is None


def test_churn_cuts_the_rival_and_brings_the_next_leader_down_while_it_catches_up():
    for seed in range(3):
        world = World(SimConfig(seed=seed, duration=20.0, plan=(Fault(5.0, "churn", 6.0),),
                                max_entries_per_message=1, max_inflight=1))
        world.start()
        world.run_until(4.99)
        [(_, first)] = leaders(world)
        world.run_until(11.0)
        elected = [(time, node) for time, node, _ in world.timeline.leaders if time >= 5.0]
        assert len(elected) >= 2
        (rival_at, rival), (won_at, second) = elected[:2]
        assert rival != first and second != rival
        # The rival was cut off alone the moment it won, before its first entry left it.
        assert [start for start, _, what in world.timeline.partitions
                if what.startswith(f"{{{rival}}} <-/->")] == [rival_at]
        crashes = [start for start, _, why in world.timeline.down[second] if why == "crash" and start >= won_at]
        assert crashes and crashes[0] - won_at <= 0.03  # a few round trips into its term
        world.heal_and_converge()
        assert world.violation is None


def test_corner_patterns_are_drawn_after_every_other_kind():
    config = FaultConfig(corner_rate=0.5)
    plan = generate_plan(config, 5, 60.0, random.Random(1))
    corners = [f for f in plan if f.kind in ("churn", "deposed_read")]
    assert corners and {f.kind for f in corners} == {"churn", "deposed_read"}
    without = generate_plan(FaultConfig(kinds=config.kinds - {"churn", "deposed_read"}), 5, 60.0,
                            random.Random(1))
    assert [f for f in plan if f not in corners] == without
