"""`coordinator.Client` against scripted nodes on loopback, and a one-node server:
redirects, retries within a deadline, typed errors, writes applied once."""

from __future__ import annotations

import random
import socket
from typing import Any, Callable

import pytest
import trio

from coordinator import api
from coordinator.client import Client, RefusedError, RequestTimeout
from coordinator.members import Member
from coordinator.protocol import FrameDecoder, encode_frame
from coordinator.server import CoordinatorServer, ServerConfig


class ScriptedNode:
    """A listener that answers each request with ``answer(request)``."""

    def __init__(self, answer: Callable[[Any], Any]) -> None:
        self.answer = answer
        self.requests: list[Any] = []
        self.address = ""

    async def serve(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        async def handle(stream: trio.SocketStream) -> None:
            decoder = FrameDecoder()
            async for data in stream:
                for frame in decoder.feed(data):
                    self.requests.append(frame.message)
                    reply = self.answer(frame.message)
                    if reply is not None:
                        await stream.send_all(encode_frame(frame.request_id, reply))
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        self.address = "127.0.0.1:%d" % listeners[0].socket.getsockname()[1]
        await trio.serve_listeners(handle, listeners, task_status=task_status)


async def start(nursery: trio.Nursery, answer: Callable[[Any], Any]) -> ScriptedNode:
    node = ScriptedNode(answer)
    await nursery.start(node.serve)
    return node


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def item(key: str, value: bytes, version: int) -> api.OkReply:
    return api.ok({"key": key, "value": value, "version": version})


async def test_a_follower_redirect_is_followed_to_the_leader(nursery):
    leader = await start(nursery, lambda request: item(request.key, request.value, 1))
    follower = await start(nursery, lambda request: api.ErrorReply(
        kind="not_leader", leader_id=2, leader_address=leader.address))
    async with Client([follower.address], timeout=5) as client:
        assert (await client.kv_put("k", b"v")).version == 1
        assert client.leader == leader.address
        await client.kv_put("k", b"w")
    assert len(follower.requests) == 1  # the second write went straight to the leader
    assert len(leader.requests) == 2


async def test_overload_is_retried_with_the_same_sequence_number(nursery):
    answers = iter([api.ErrorReply(kind="overloaded"), api.ErrorReply(kind="timeout")])
    node = await start(nursery, lambda request: next(answers, None) or item("k", b"v", 7))
    async with Client([node.address], timeout=5, backoff_initial=0.01,
                      rng=random.Random(1)) as client:
        assert (await client.kv_put("k", b"v")).version == 7
        await client.kv_put("k", b"v")
    seqs = [request.seq for request in node.requests]
    assert seqs == [1, 1, 1, 2]
    assert {request.client_id for request in node.requests} == {client.client_id}
    # The second write tells the node the first was answered.
    assert node.requests[-1].acked_below == 2


async def test_a_refusal_is_raised_at_once_and_not_retried(nursery):
    node = await start(nursery, lambda request: api.ErrorReply(
        kind="refused", code="version_mismatch", message="version is 3"))
    async with Client([node.address], timeout=5) as client:
        with pytest.raises(RefusedError) as error:
            await client.kv_cas("k", 1, b"v")
    assert error.value.code == "version_mismatch"
    assert len(node.requests) == 1


async def test_no_answer_within_the_deadline_raises_request_timeout(nursery):
    silent = await start(nursery, lambda request: None)
    async with Client([silent.address, "127.0.0.1:1"], timeout=0.5,
                      connect_timeout=0.2) as client:
        with pytest.raises(RequestTimeout):
            await client.kv_get("k")


async def test_a_silent_node_is_given_up_for_the_next_address(nursery):
    silent = await start(nursery, lambda request: None)  # e.g. a paused process
    good = await start(nursery, lambda request: item(request.key, b"v", 3))
    async with Client([silent.address, good.address], timeout=5, attempt_timeout=0.3,
                      backoff_initial=0.01) as client:
        assert (await client.kv_get("k")).version == 3
        assert client.leader == good.address


async def test_a_retried_write_is_applied_once_by_a_real_node(nursery, tmp_path):
    config = ServerConfig(node_id=1, data_dir=str(tmp_path / "n1"), listen="127.0.0.1:0",
                          peer_listen="127.0.0.1:0", fsync=False, tick_interval=0.01,
                          members=(Member(node_id=1, peer_address="127.0.0.1:1",
                                          client_address="127.0.0.1:1"),))
    server = CoordinatorServer(config)
    await nursery.start(server.run)
    async with Client([server.client_address], timeout=10) as client:
        await client.kv_put("warm", b"up")  # waits for the election
        request = api.KvPutRequest(client_id="c1", seq=1, key="k", value=b"once")
        first = await client.call(request)
        again = await client.call(request)  # a retry of the same write
        assert first == again
        assert (await client.kv_get("k")).version == first["version"]
        await client.kv_put("k", b"twice")
        assert (await client.kv_get("k")).version == first["version"] + 1
    await server.stop()


async def test_a_write_at_a_leader_that_is_cut_off_completes_at_the_next_one(nursery,
                                                                           tmp_path):
    ports = {i: (f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}") for i in (1, 2, 3)}
    members = tuple(Member(node_id=i, peer_address=peer, client_address=client)
                    for i, (peer, client) in ports.items())
    servers = {}
    for i, (peer, client) in ports.items():
        servers[i] = CoordinatorServer(ServerConfig(
            node_id=i, data_dir=str(tmp_path / f"n{i}"), listen=client, peer_listen=peer,
            members=members, fsync=False, tick_interval=0.02, request_timeout=60))
        await nursery.start(servers[i].run)
    addresses = [client for _, client in ports.values()]
    async with Client(addresses, timeout=30, attempt_timeout=60) as client:
        await client.kv_put("warm", b"up")
        leader = next(i for i, s in servers.items() if s.runtime.is_leader)
        for other in servers:  # cut the leader's raft traffic both ways
            if other != leader:
                servers[leader].transport.set_peer(other, None)
                servers[other].transport.set_peer(leader, None)
        started = trio.current_time()
        item = await client.kv_put("k", b"after the cut")
        # Answered once the old leader stepped down (check-quorum), not after its
        # 60 s request timeout, and applied once at the new leader.
        assert trio.current_time() - started < 10
        assert (await client.kv_get("k")).version == item.version
        assert not servers[leader].runtime.is_leader
    for server in servers.values():
        await server.stop()
