"""Past a limit a client gets ``overloaded`` with a retry hint, at once: not a
timeout, and the node holds no more work than its limits allow."""

from __future__ import annotations

import pytest
import trio

from coordinator import api
from coordinator.api import parse_address
from coordinator.client import Client
from coordinator.limits import TokenBucket
from coordinator.members import Member
from coordinator.protocol import FrameDecoder, encode_frame
from coordinator.server import CoordinatorServer, ServerConfig

from cluster_harness import free_port


async def start_node(nursery, tmp_path, **limits) -> CoordinatorServer:
    member = Member(node_id=1, peer_address=f"127.0.0.1:{free_port()}",
                    client_address=f"127.0.0.1:{free_port()}")
    server = CoordinatorServer(ServerConfig(
        node_id=1, data_dir=str(tmp_path / "n1"), listen=member.client_address,
        peer_listen=member.peer_address, members=(member,), fsync=False,
        tick_interval=0.02, **limits))
    await nursery.start(server.run)
    async with Client([server.client_address], timeout=20) as client:
        await client.leader_status(timeout=20)
    return server


async def read_replies(stream, count: int) -> dict[int, object]:
    decoder, replies = FrameDecoder(), {}
    while len(replies) < count:
        data = await stream.receive_some(65536)
        assert data, f"connection closed after {len(replies)} replies"
        for frame in decoder.feed(data):
            replies[frame.request_id] = frame.message
    return replies


async def test_a_flood_on_one_connection_gets_overloaded_with_a_hint(nursery, tmp_path):
    server = await start_node(nursery, tmp_path, max_requests_per_second=20.0,
                              request_burst=10)
    host, port = parse_address(server.client_address)
    flood = 300
    with trio.fail_after(10):  # every request is answered; nothing waits for a timeout
        stream = await trio.open_tcp_stream(host, port)
        async with stream:
            await stream.send_all(b"".join(
                encode_frame(i, api.KvGetRequest(key=f"app/{i}")) for i in range(1, flood + 1)))
            replies = await read_replies(stream, flood)
    refused = [r for r in replies.values() if isinstance(r, api.ErrorReply)]
    served = [r for r in replies.values() if isinstance(r, api.OkReply)]
    assert all(r.kind == "overloaded" and 0 < r.retry_after <= 1.0 for r in refused)
    assert 10 <= len(served) < 60 and len(refused) == flood - len(served)
    assert server.in_flight == 0
    metrics = server.metrics.exposition().decode()
    assert 'raftcoord_overloaded_total{limit="connection_rate"}' in metrics
    # Another connection has its own budget.
    async with Client([server.client_address], timeout=5) as client:
        await client.kv_get("app/1")
    await server.stop()


async def test_the_client_backs_off_and_succeeds_under_a_rate_limit(nursery, tmp_path):
    server = await start_node(nursery, tmp_path, max_requests_per_second=50.0,
                              request_burst=2)
    with trio.fail_after(20):
        async with Client([server.client_address], timeout=10) as client:
            for i in range(20):
                assert (await client.kv_put(f"app/{i}", b"v")).value == b"v"
    assert server.stats.overloaded > 0  # it was refused, and retried after the hint
    await server.stop()


async def test_connections_past_the_limit_get_overloaded_then_close(nursery, tmp_path):
    server = await start_node(nursery, tmp_path, max_connections=2)
    host, port = parse_address(server.client_address)
    with trio.fail_after(10):
        held = [await trio.open_tcp_stream(host, port) for _ in range(2)]
        for stream in held:  # make sure both are being served
            await stream.send_all(encode_frame(1, api.StatusRequest()))
            await read_replies(stream, 1)
        extra = await trio.open_tcp_stream(host, port)
        replies = await read_replies(extra, 1)
        assert await extra.receive_some(100) == b""  # then closed
        refusal = replies[0]
        assert refusal.kind == "overloaded" and refusal.retry_after > 0
        assert server.open_connections == 2
        # The client library treats it as "retry later", not as a broken node.
        async with Client([server.client_address], timeout=1.5) as client:
            with pytest.raises(Exception, match="overloaded"):
                await client.kv_get("app/x")
        for stream in held:
            await stream.aclose()
        await extra.aclose()
    await server.stop()


def test_token_bucket_allows_bursts_then_the_rate():
    bucket = TokenBucket(rate=10.0, burst=3, now=0.0)
    assert [bucket.take(0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take(0.0) == pytest.approx(0.1)
    assert bucket.take(0.05) == pytest.approx(0.05)
    assert bucket.take(0.1) == 0.0
    assert TokenBucket(rate=0, burst=1, now=0).take(0) == 0.0  # unlimited


async def test_writes_past_the_pending_proposal_limit_are_overloaded(nursery, tmp_path):
    server = await start_node(nursery, tmp_path, max_pending_proposals=0)
    host, port = parse_address(server.client_address)
    with trio.fail_after(10):
        stream = await trio.open_tcp_stream(host, port)
        async with stream:
            await stream.send_all(
                encode_frame(1, api.KvPutRequest(client_id="c", seq=1, key="app/k",
                                                 value=b"v"))
                + encode_frame(2, api.KvGetRequest(key="app/k")))
            replies = await read_replies(stream, 2)
    assert replies[1].kind == "overloaded" and replies[1].retry_after == pytest.approx(0.1)
    assert isinstance(replies[2], api.OkReply)  # reads propose nothing
    await server.stop()
