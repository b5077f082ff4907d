"""Hypothesis drives the simulated cluster by hand: faults (partitions, crashes,
pauses, transfers, membership changes, message loss) and client operations are
rules, Raft safety is an invariant after every rule, and teardown heals the cluster,
demands convergence within the bound, and checks the history is linearizable."""

from __future__ import annotations

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from simulations.faults import Fault
from simulations.history import OpKind
from simulations.linearizability import check_history
from simulations.world import SimConfig, WorkloadConfig, World

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("quiet_raft")]

NODES = 3
CLIENTS = 3
nodes = st.integers(1, NODES)
clients = st.integers(1, CLIENTS)
keys = st.sampled_from(["a", "b"])
targets = st.one_of(st.just(0), nodes)  # 0: whichever node the client believes leads


class ClusterMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.world = World(SimConfig(
            seed=0, nodes=NODES, duration=0.0, converge_within=30.0, plan=(),
            workload=WorkloadConfig(rate=30, clients=CLIENTS, timeout=2.0)))
        self.world.start(schedule_heal=False)
        self.world.workload_on = False  # clients act only through the rules below
        self.world.run_until(3.0)  # let the first leader be elected

    # -- faults -------------------------------------------------------------------

    @rule(kind=st.sampled_from(["partition", "one_way", "isolate", "bridge"]), node=nodes)
    def partition(self, kind, node):
        self.world.apply_fault(Fault(self.world.now, kind, duration=60.0, node=node))

    @rule()
    def heal(self):
        self.world.heal_network()

    @rule(node=nodes)
    def crash(self, node):
        self.world.crash(node)

    @rule(node=nodes)
    def restart(self, node):
        self.world.restart(node)

    @rule(node=nodes)
    def pause(self, node):
        self.world.pause(node)

    @rule(node=nodes)
    def resume(self, node):
        self.world.resume(node)

    @rule(node=nodes)
    def transfer_leadership(self, node):
        self.world.apply_fault(Fault(self.world.now, "transfer", node=node))

    @rule(node=nodes)
    def remove_member(self, node):
        # Out of the configuration until add_member (or the heal) wants it back.
        self.world.remove_member(node, duration=3600.0)

    @rule(node=nodes)
    def add_member(self, node):
        self.world.add_member(node)

    @rule(which=st.integers(0, 1000))
    def drop(self, which):
        self.world.drop_in_flight(which)

    @rule(count=st.integers(1, 20))
    def deliver(self, count):
        """Handle the next few events, whatever they are (usually deliveries)."""
        world = self.world
        for _ in range(count):
            if not world._queue or world.violation or world._queue[0][0] > world.now + 1.0:
                break
            world.run_until(world._queue[0][0])

    @rule(seconds=st.floats(0.01, 3.0))
    def tick(self, seconds):
        self.world.run_until(self.world.now + seconds)

    @rule(rate=st.sampled_from([0.0, 0.1, 0.3]))
    def lossy(self, rate):
        self.world.network.faults.loss = rate

    # -- client operations --------------------------------------------------------

    @rule(client=clients, key=keys, node=targets)
    def put(self, client, key, node):
        self.world.submit(client, OpKind.PUT, key, target=node)

    @rule(client=clients, key=keys, node=targets)
    def get(self, client, key, node):
        self.world.submit(client, OpKind.GET, key, target=node)

    @rule(client=clients, key=keys, node=targets, expect_absent=st.booleans())
    def cas(self, client, key, node, expect_absent):
        seen = self.world.clients[client - 1].last_seen.get(key)
        self.world.submit(client, OpKind.CAS, key, expected=None if expect_absent else seen, target=node)

    @rule(seconds=st.floats(0.5, 5.0))
    def busy_clients(self, seconds):
        """Let every client issue operations back to back for a while."""
        world = self.world
        world.workload_on = True
        for client in world.clients:
            if client.current is None:
                world._schedule_client(client)
        world.run_until(world.now + seconds)
        world.workload_on = False

    # -- checks ---------------------------------------------------------------------

    @invariant()
    def raft_safety_holds(self):
        v = self.world.violation
        assert v is None, f"{v.invariant}: {v.detail}\n" + "\n".join(self.world.describe_recent())

    def teardown(self):
        world = self.world
        if world.violation is not None:
            return  # already reported by the invariant
        world.network.faults.loss = 0.0
        converged = world.heal_and_converge()
        v = world.violation
        assert v is None, f"{v.invariant}: {v.detail}"
        assert converged
        verdict = check_history(world.history)
        assert verdict.linearizable is True, verdict.explain()


ClusterMachine.TestCase.settings = settings(max_examples=75, stateful_step_count=50, deadline=None)
test_cluster_under_hypothesis_faults = ClusterMachine.TestCase
