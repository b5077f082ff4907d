"""The HTTP status port, metrics and request-tagged logs of real in-process nodes
on loopback."""

from __future__ import annotations

import io
import json
import logging

import h11
import trio
from prometheus_client.parser import text_string_to_metric_families

from coordinator import logs
from coordinator.api import parse_address
from coordinator.client import Client
from coordinator.members import Member
from coordinator.server import CoordinatorServer, ServerConfig

from cluster_harness import free_port


async def http_get(address: str, path: str) -> tuple[int, bytes]:
    """One GET over a fresh connection (h11 client); (status, body)."""
    host, port = parse_address(address)
    with trio.fail_after(10):
        stream = await trio.open_tcp_stream(host, port)
        async with stream:
            conn = h11.Connection(h11.CLIENT)
            await stream.send_all(conn.send(h11.Request(
                method="GET", target=path, headers=[("Host", host), ("Connection", "close")])))
            await stream.send_all(conn.send(h11.EndOfMessage()))
            status, body = 0, b""
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    conn.receive_data(await stream.receive_some(65536))
                elif isinstance(event, h11.Response):
                    status = event.status_code
                elif isinstance(event, h11.Data):
                    body += event.data
                elif isinstance(event, (h11.EndOfMessage, h11.ConnectionClosed)):
                    return status, body


def node_config(tmp_path, node_id: int, members: tuple[Member, ...], **options) -> ServerConfig:
    me = next(m for m in members if m.node_id == node_id)
    return ServerConfig(node_id=node_id, data_dir=str(tmp_path / f"n{node_id}"),
                        listen=me.client_address, peer_listen=me.peer_address,
                        http_listen="127.0.0.1:0", members=members, fsync=False,
                        tick_interval=0.02, **options)


def two_members() -> tuple[Member, ...]:
    return tuple(Member(node_id=i, peer_address=f"127.0.0.1:{free_port()}",
                        client_address=f"127.0.0.1:{free_port()}") for i in (1, 2))


async def wait_for(predicate, timeout: float = 20.0) -> None:
    with trio.fail_after(timeout):
        while not await predicate():
            await trio.sleep(0.05)


async def test_readyz_turns_ready_once_a_leader_is_known(nursery, tmp_path):
    members = two_members()
    first = CoordinatorServer(node_config(tmp_path, 1, members))
    await nursery.start(first.run)
    # Alone, node 1 has no quorum: alive but not ready.
    status, body = await http_get(first.http_address, "/healthz")
    assert status == 200
    for _ in range(5):
        status, body = await http_get(first.http_address, "/readyz")
        assert status == 503, body
        await trio.sleep(0.1)
    assert b"no known leader" in body
    second = CoordinatorServer(node_config(tmp_path, 2, members))
    await nursery.start(second.run)

    async def both_ready() -> bool:
        codes = [(await http_get(s.http_address, "/readyz"))[0] for s in (first, second)]
        return codes == [200, 200]
    await wait_for(both_ready)
    status, body = await http_get(first.http_address, "/status")
    assert status == 200
    view = json.loads(body)
    assert view["leader"] in (1, 2) and view["role"] in ("leader", "follower")
    assert view["voters"] == [1, 2]
    assert view["ready"] is True
    assert 1 <= view["commit"] and view["applied"] <= view["commit"]
    assert "workers" in view and "unowned_slots" in view
    assert (await http_get(first.http_address, "/nope"))[0] == 404
    await first.stop()
    await second.stop()


def metric_samples(text: str) -> dict[str, list]:
    out: dict[str, list] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append(sample)
    return out


async def test_metrics_parse_and_cover_the_node(nursery, tmp_path):
    members = (Member(node_id=1, peer_address=f"127.0.0.1:{free_port()}",
                      client_address=f"127.0.0.1:{free_port()}"),)
    server = CoordinatorServer(node_config(tmp_path, 1, members))
    await nursery.start(server.run)
    async with Client([server.client_address], timeout=20) as client:
        await client.kv_put("app/a", b"1")
        await client.kv_get("app/a")
        await client.create_group("g", 4)
    status, body = await http_get(server.http_address, "/metrics")
    assert status == 200
    samples = metric_samples(body.decode())
    value = lambda name, **labels: sum(  # noqa: E731
        s.value for s in samples[name] if all(s.labels.get(k) == v for k, v in labels.items()))
    assert value("raftcoord_raft_role", role="leader") == 1
    assert value("raftcoord_raft_term") >= 1
    assert value("raftcoord_raft_commit_index") >= 3
    assert value("raftcoord_raft_applied_index") == value("raftcoord_raft_commit_index")
    assert value("raftcoord_proposals_total", outcome="committed") >= 2
    assert value("raftcoord_client_requests_total", type="KvPutRequest", result="ok") >= 1
    assert value("raftcoord_client_requests_total", type="KvGetRequest", result="ok") >= 1
    assert value("raftcoord_client_requests_total", type="CreateGroupRequest") >= 1
    assert value("raftcoord_elections_started_total") >= 1
    assert value("raftcoord_elections_won_total") >= 1
    assert value("raftcoord_storage_append_seconds_count") + \
        value("raftcoord_storage_fsync_seconds_count") >= 1
    assert "raftcoord_event_loop_lag_seconds_count" in samples
    assert value("raftcoord_partitions") == 4
    assert value("raftcoord_unowned_slots") == 4  # no workers
    for name in ("raftcoord_lease_expirations_total", "raftcoord_slot_changes_total",
                 "raftcoord_peer_frames_rejected_total", "raftcoord_client_connections",
                 "raftcoord_raft_snapshots_total", "raftcoord_raft_inbound_dropped_total"):
        assert name in samples, name
    await server.stop()


async def test_peer_and_worker_metrics_on_a_two_node_cluster(nursery, tmp_path):
    members = two_members()
    servers = [CoordinatorServer(node_config(tmp_path, i, members)) for i in (1, 2)]
    for server in servers:
        await nursery.start(server.run)

    async def peers_talk() -> bool:
        samples = metric_samples((await http_get(servers[0].http_address,
                                                 "/metrics"))[1].decode())
        sent = [s for s in samples.get("raftcoord_peer_messages_sent_total", [])
                if s.labels["peer"] == "2" and s.value > 0]
        received = [s for s in samples.get("raftcoord_peer_messages_received_total", [])
                    if s.labels["peer"] == "2" and s.value > 0]
        return bool(sent and received)
    await wait_for(peers_talk)
    for server in servers:
        await server.stop()


async def test_json_logs_carry_the_request_id(nursery, tmp_path):
    out = io.StringIO()
    handler = logs.handler("json", out)
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        members = (Member(node_id=1, peer_address=f"127.0.0.1:{free_port()}",
                          client_address=f"127.0.0.1:{free_port()}"),)
        server = CoordinatorServer(node_config(tmp_path, 1, members))
        await nursery.start(server.run)
        async with Client([server.client_address], timeout=20) as client:
            await client.leader_status(timeout=20)
            await client.kv_put("app/x", b"1")
        await server.stop()
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)
    events = [json.loads(line) for line in out.getvalue().splitlines()]  # all parse
    puts = [e for e in events if e["message"].startswith("KvPutRequest from")]
    assert puts  # more than one if the client had to retry
    ids = {e["request_id"] for e in puts}
    assert len(ids) == len(puts)
    answered = {e.get("request_id") for e in events if e["message"].startswith("answered")}
    assert ids <= answered  # each attempt's lines share its id
    assert any(e["message"] == "answered ok" and e["request_id"] in ids for e in events)
    assert any(e.get("event") == "leader_changed" and e["level"] == "info" for e in events)
    assert all({"ts", "level", "logger", "message"} <= set(e) for e in events)


def test_text_log_lines_are_single_lines_with_the_request_id():
    out = io.StringIO()
    logger = logging.getLogger("test.observability.text")
    handler = logs.handler("text", out)
    logger.addHandler(handler)
    logger.propagate = False
    try:
        with logs.request_context("7.3"):
            logger.warning("two\nlines")
        logger.warning("outside")
    finally:
        logger.removeHandler(handler)
    first, second = out.getvalue().splitlines()
    assert "[req=7.3]" in first and "two\\nlines" in first
    assert "req=" not in second
