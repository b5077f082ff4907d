"""Coordinator nodes restarted on their data directories serve requests stamped with
the leader's cluster time again: a new leader becomes ready once its state machine
applied the new term's first entry, an empty one that the state machine never sees."""

from __future__ import annotations

import socket

import pytest
import trio

from coordinator.client import Client, RefusedError
from coordinator.members import Member
from coordinator.server import CoordinatorServer, ServerConfig


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def configs(tmp_path) -> list[ServerConfig]:
    members = tuple(Member(node_id=i, peer_address=f"127.0.0.1:{free_port()}",
                           client_address=f"127.0.0.1:{free_port()}") for i in (1, 2, 3))
    return [ServerConfig(node_id=m.node_id, data_dir=str(tmp_path / f"n{m.node_id}"),
                         listen=m.client_address, peer_listen=m.peer_address, fsync=False,
                         tick_interval=0.01, members=members) for m in members]


async def run_cluster(cluster: list[ServerConfig], action) -> list[CoordinatorServer]:
    servers = [CoordinatorServer(config) for config in cluster]
    async with trio.open_nursery() as nursery:
        for server in servers:
            await nursery.start(server.run)
        async with Client([s.client_address for s in servers], timeout=15) as client:
            await action(client)
        for server in servers:
            await server.stop()
    return servers


async def test_restarted_nodes_serve_cluster_time_requests_again(tmp_path):
    cluster = configs(tmp_path)

    async def before(client: Client) -> None:
        await client.create_group("g", 4)
        await client.kv_put("k", b"v")

    async def after(client: Client) -> None:
        with pytest.raises(RefusedError) as refused:  # answered, not left waiting
            await client.create_group("g", 4)
        assert refused.value.code == "already_exists"
        assert (await client.create_group("h", 2))["name"] == "h"
        assert (await client.kv_get("k")).value == b"v"

    with trio.fail_after(60):
        await run_cluster(cluster, before)
        await run_cluster(cluster, after)
