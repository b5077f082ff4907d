"""NodeDriver driven directly: what a node proposes, reads and answers."""

from __future__ import annotations

import attrs
from hypothesis import given, settings
from hypothesis import strategies as st

from raft.types import Role

from coordinator import commands as c
from coordinator.config import CoordinatorConfig
from coordinator.lease import LeaseTiming
from coordinator.node import (
    LEADER_PROPOSAL,
    WORKER_REQUEST,
    NodeDriver,
    Propose,
    Send,
    StartRead,
    apply_entry,
    checkpoint_key,
    envelope,
    open_envelope,
)
from coordinator.protocol import (
    Ack,
    Checkpoint,
    CheckpointResult,
    Heartbeat,
    Leave,
    Left,
    Nack,
    Redirect,
    Release,
    Unavailable,
)
from coordinator.state import CoordinatorState

TIMING = LeaseTiming(lease_duration=10.0, max_drift=0.05, safety_margin=0.5)
ADDRESSES = {1: "127.0.0.1:7001", 2: "127.0.0.1:7002"}


class Node:
    """A driver over a state machine that commits every proposal at once."""

    def __init__(self) -> None:
        self.state = CoordinatorState(CoordinatorConfig(revoke_timeout=TIMING.leader_lease))
        self.driver = NodeDriver(1, lambda: self.state, TIMING,
                                 client_address=lambda n: ADDRESSES.get(n, ""))
        self.index = 0
        self.sent: list[Send] = []
        self.reads: list[bytes] = []

    def lead(self, now: float = 0.0) -> None:
        self.driver.on_role_change(now, Role.LEADER, 2, 1, self.index)
        self.driver.on_caught_up(self.index)

    def commit(self, proposal: Propose) -> object:
        self.index += 1
        request_id, command, result = apply_entry(self.state, proposal.data)
        assert (request_id, command) == (proposal.request_id, proposal.command)
        self.carry_out(self.driver.on_applied(self.index, request_id, command, result))
        self.carry_out(self.driver.on_caught_up(self.index))
        self.carry_out(self.driver.on_proposal_result(proposal, result))
        return result

    def carry_out(self, outputs: list) -> None:
        for output in outputs:
            if isinstance(output, Propose):
                self.commit(output)
            elif isinstance(output, StartRead):
                self.reads.append(output.token)
            else:
                assert isinstance(output, Send)
                self.sent.append(output)

    def take_sent(self) -> list:
        sent, self.sent = self.sent, []
        return [(s.to, s.message, s.request_id) for s in sent]


def registered_node(workers=("w1",), partitions=4) -> Node:
    node = Node()
    node.lead()
    for worker in workers:
        node.carry_out(node.driver.on_worker_message(0.0, Heartbeat(worker, 1, "z1"), worker, 9,
                                                     peer=f"{worker}:1"))
    node.carry_out(node.driver.on_client_command(
        0.0, c.CreatePartitionGroup(name="g", count=partitions, now=0.0), "op", 77))
    node.carry_out(node.driver.on_tick(0.1))
    node.take_sent()
    return node


def test_envelope_round_trip():
    command = c.KvPut(key="k", value=b"v")
    assert open_envelope(envelope(-5, command)) == (-5, command)


def test_a_follower_redirects_to_the_leader_with_its_client_address():
    node = Node()
    node.driver.on_role_change(0.0, Role.FOLLOWER, 3, 2, 0)
    for message in (Heartbeat("w1", 1, "z1"), Checkpoint("w1", "g/0", 1, b"x")):
        assert node.driver.on_worker_message(0.0, message, "conn", 4) == [
            Send("conn", Redirect(2, ADDRESSES[2]), 4)]
    node.driver.on_role_change(0.0, Role.CANDIDATE, 4, 0, 0)
    assert node.driver.on_client_command(0.0, c.KvPut(key="k", value=b""), "c", 1) == [
        Send("c", Redirect(0, ""), 1)]


def test_a_leader_answers_nothing_until_it_applied_its_first_entry():
    node = Node()
    node.driver.on_role_change(0.0, Role.LEADER, 2, 1, 5)
    assert node.driver.on_worker_message(0.0, Heartbeat("w1", 1, "z1"), "w", 1) == []
    assert node.driver.on_tick(0.1) == []
    assert node.driver.on_worker_message(0.0, Leave("w1"), "w", 2) == [
        Send("w", Unavailable("the leader is catching up"), 2)]
    assert node.driver.on_client_command(0.0, c.DrainWorker(worker_id="w1", now=0.0), "c", 3) \
        == [Send("c", Unavailable("the leader is catching up"), 3)]
    node.driver.on_caught_up(4)
    assert not node.driver.ready
    node.driver.on_caught_up(5)
    assert node.driver.ready


def test_an_unknown_worker_is_registered_and_told_to_start_over():
    node = Node()
    node.lead()
    outputs = node.driver.on_worker_message(3.0, Heartbeat("w1", 1, "z1"), "w", 9, peer="h:1")
    assert [type(o) for o in outputs] == [Propose, Send]
    register = outputs[0].command
    assert isinstance(register, c.RegisterWorker) and register.address == "h:1"
    assert register.now == node.state.log_time  # cluster time, not the local 3.0
    assert outputs[0].request_id == WORKER_REQUEST
    assert outputs[1] == Send("w", Nack(1), 9)
    # At most one registration per second while it is in flight.
    again = node.driver.on_worker_message(3.5, Heartbeat("w1", 2, "z1"), "w", 10)
    assert again == [Send("w", Nack(2), 10)]
    node.commit(outputs[0])
    assert node.state.workers["w1"].is_live


def test_a_heartbeat_is_acknowledged_only_after_a_read_round_confirms_leadership():
    node = registered_node(partitions=2)
    outputs = node.driver.on_worker_message(5.0, Heartbeat("w1", 2, "z1"), "w", 11)
    assert len(outputs) == 1 and isinstance(outputs[0], StartRead)
    token = outputs[0].token
    [(to, ack, request_id)] = [(s.to, s.message, s.request_id)
                               for s in node.driver.on_read_confirmed(token)]
    assert (to, request_id) == ("w", 11) and isinstance(ack, Ack)
    assert ack.ack.seq == 2 and sorted(ack.ack.covered) == [("g/0", 1), ("g/1", 1)]
    assert [s.partition_id for s in ack.view] == ["g/0", "g/1"] and not ack.draining
    # The lease runs from the arrival (5.0), not from the confirmation.
    assert node.driver.leading.leases.deadline("w1") == 5.0 + TIMING.leader_lease
    assert node.driver.on_read_confirmed(token) == []  # answered once


def test_a_read_confirmed_after_leadership_was_lost_answers_nothing():
    node = registered_node()
    [first] = node.driver.on_worker_message(5.0, Heartbeat("w1", 2, "z1"), "w", 1)
    [second] = node.driver.on_worker_message(5.0, Heartbeat("w1", 3, "z1"), "w", 2)
    node.driver.on_role_change(5.1, Role.FOLLOWER, 3, 2, node.index)
    assert node.driver.on_read_confirmed(first.token) == []
    node.lead(6.0)  # leading again, in a new term: the old round does not count
    assert node.driver.on_read_confirmed(second.token) == []


def test_a_failed_read_is_forgotten():
    node = registered_node()
    [start] = node.driver.on_worker_message(5.0, Heartbeat("w1", 2, "z1"), "w", 1)
    node.driver.on_read_failed(start.token)
    assert node.driver.on_read_confirmed(start.token) == []


def test_ticks_propose_the_leaders_decisions_and_a_dropped_batch_comes_back():
    node = Node()
    node.lead()
    node.carry_out(node.driver.on_worker_message(0.0, Heartbeat("w1", 1, "z1"), "w", 1))
    node.carry_out(node.driver.on_client_command(
        0.0, c.CreatePartitionGroup(name="g", count=3, now=0.0), "op", 2))
    [batch] = node.driver.on_tick(0.5)
    assert batch.request_id == LEADER_PROPOSAL and isinstance(batch.command, c.Batch)
    assert [type(cmd) for cmd in batch.command.commands] == [c.Assign] * 3
    assert node.driver.on_tick(0.6) == []  # in flight: not proposed twice
    assert node.driver.on_dropped(batch, leader_hint=1) == []
    [again] = node.driver.on_tick(0.7)
    assert [attrs.evolve(cmd, now=0.5) for cmd in again.command.commands] == list(
        batch.command.commands)
    node.commit(again)
    assert node.driver.on_tick(0.8) == []


def test_checkpoints_are_fenced_and_answered():
    node = registered_node()
    epoch = node.state.partitions["g/0"].epoch
    [write] = node.driver.on_worker_message(1.0, Checkpoint("w1", "g/0", epoch, b"s1"), "w", 21)
    assert write.command == c.FencedPut(key=checkpoint_key("g/0"), value=b"s1",
                                        partition_id="g/0", epoch=epoch)
    node.commit(write)
    assert node.take_sent() == [("w", CheckpointResult("g/0", epoch, True, ""), 21)]
    [stale] = node.driver.on_worker_message(1.0, Checkpoint("w1", "g/0", epoch - 1, b"s0"),
                                            "w", 22)
    node.commit(stale)
    [(to, result, request_id)] = node.take_sent()
    assert (to, request_id) == ("w", 22)
    assert not result.accepted and result.detail
    assert node.state.kv_get(checkpoint_key("g/0")).value == b"s1"


def test_release_and_leave_become_stamped_proposals():
    node = registered_node()
    [release] = node.driver.on_worker_message(2.0, Release("w1", "g/0", 0, 1), "w", 31)
    assert isinstance(release.command, c.Released)
    assert release.command.now == node.driver.leading.cluster_time(2.0)
    node.commit(release)
    assert node.take_sent() == []  # the next heartbeat's view answers it
    [leave] = node.driver.on_worker_message(2.0, Leave("w1"), "w", 32)
    assert isinstance(leave.command, c.DeregisterWorker)
    node.commit(leave)
    assert node.take_sent() == [("w", Left("w1"), 32)]


def test_client_commands_carry_the_callers_request_id_and_cluster_time():
    node = registered_node()
    [put] = node.driver.on_client_command(9.0, c.KvPut(key="k", value=b"v"), "c", 41)
    assert open_envelope(put.data)[0] == 41
    node.commit(put)
    [(to, result, request_id)] = node.take_sent()
    assert (to, request_id) == ("c", 41) and isinstance(result, c.KvValue)
    [drain] = node.driver.on_client_command(9.0, c.DrainWorker(worker_id="w1", now=-1.0), "c", 42)
    assert drain.command.now == node.driver.leading.cluster_time(9.0)


def test_a_refused_request_is_answered():
    node = registered_node()
    [put] = node.driver.on_client_command(1.0, c.KvPut(key="k", value=b"v"), "c", 5)
    assert node.driver.on_dropped(put, leader_hint=2) == [Send("c", Redirect(2, ADDRESSES[2]), 5)]
    assert node.driver.on_dropped(put, leader_hint=1) == [
        Send("c", Unavailable("the proposal was refused; retry"), 5)]


def test_the_inner_command_of_a_deduplicated_client_write_is_stamped():
    node = registered_node()
    request = c.ClientRequest(client_id="c1", seq=1,
                              command=c.DrainWorker(worker_id="w1", now=-1.0))
    [propose] = node.driver.on_client_command(9.0, request, "c", 43)
    assert isinstance(propose.command, c.ClientRequest)
    assert propose.command.command.now == node.driver.leading.cluster_time(9.0)
    assert open_envelope(propose.data) == (43, propose.command)


OPS = st.lists(st.one_of(
    st.tuples(st.just("heartbeat"), st.sampled_from(["w1", "w2"])),
    st.tuples(st.just("confirm"), st.integers(0, 20)),
    st.tuples(st.just("fail"), st.integers(0, 20)),
    st.tuples(st.just("lose"), st.none()),
    st.tuples(st.just("lead"), st.none()),
    st.tuples(st.just("tick"), st.none()),
), max_size=40)


@settings(max_examples=200, deadline=None)
@given(OPS)
def test_acks_only_follow_a_read_begun_under_the_current_leadership(ops):
    node = registered_node(workers=("w1", "w2"))
    now, term = 1.0, 2
    started: list[tuple[bytes, int, float]] = []  # (token, term, arrival)
    for kind, arg in ops:
        now += 0.1
        if kind == "heartbeat":
            for output in node.driver.on_worker_message(now, Heartbeat(arg, 1, "z1"), arg, 1):
                if isinstance(output, StartRead):
                    started.append((output.token, term, now))
                else:
                    node.carry_out([output])
        elif kind in ("confirm", "fail") and started:
            token, began, arrival = started.pop(arg % len(started))
            if kind == "fail":
                assert node.driver.on_read_failed(token) == []
                continue
            answers = node.driver.on_read_confirmed(token)
            if began != term or node.driver.role is not Role.LEADER:
                assert answers == []
            else:
                [answer] = answers
                assert isinstance(answer.message, Ack)
                deadline = node.driver.leading.leases.deadline(answer.to)
                assert deadline >= arrival + TIMING.leader_lease
        elif kind == "lose":
            node.driver.on_role_change(now, Role.FOLLOWER, term + 1, 2, node.index)
            term += 1
        elif kind == "lead":
            term += 1
            node.driver.on_role_change(now, Role.LEADER, term, 1, node.index)
            node.driver.on_caught_up(node.index)
        else:
            node.carry_out(node.driver.on_tick(now))
