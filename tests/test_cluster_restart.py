"""`raftcoord cluster up` on a data directory it ran on before resumes that cluster
(the README's quick start), and a cluster that cannot start says why in one line."""

from __future__ import annotations

import json
import socket

import pytest
import trio

from coordinator.client import Client, ClientError

from cluster_harness import LocalCluster, free_port, run_cli, wait_for

pytestmark = pytest.mark.slow

PARTITIONS = 12


def call(addresses: str, action, timeout: float = 20.0):
    async def main():
        async with Client(addresses.split(","), timeout=timeout) as client:
            return await action(client)
    return trio.run(main)


def balanced(addresses: str, names: list[str]) -> bool:
    """Every partition owned, and every worker owns some."""
    async def view(client: Client):
        return (await client.leader_status())["unowned_slots"], await client.list_workers()
    try:
        unowned, workers = call(addresses, view, 5.0)
    except ClientError:
        return False
    owned = {w["id"]: w["partitions"] for w in workers if w["state"] == "active"}
    return unowned == 0 and all(owned.get(name, 0) > 0 for name in names)


def test_cluster_up_again_on_the_same_data_directory_resumes_the_cluster(tmp_path):
    data_dir = tmp_path / "cluster"
    written = {f"app/{i}": f"value-{i}".encode() for i in range(5)}

    async def write(client: Client) -> None:
        for key, value in written.items():
            await client.kv_put(key, value)

    async def read(client: Client) -> dict:
        return {key: (await client.kv_get(key)).value for key in written}

    with LocalCluster(data_dir, workers=3, partitions=PARTITIONS) as first:
        names = [w["id"] for w in first.info["workers"]]
        wait_for(lambda: balanced(first.addresses, names), 40, interval=0.5,
                 what="the demo partitions balanced over the workers")
        call(first.addresses, write)
        term = call(first.addresses, lambda client: client.leader_status())["term"]
    assert first.process.returncode == 0 and first.leftovers == []

    # The same command again: it must come up (LocalCluster.start fails if `cluster
    # up` exits before printing its endpoints), not wait for an answer forever.
    with LocalCluster(data_dir, workers=3, partitions=PARTITIONS) as again:
        assert again.addresses == first.addresses  # the ports kept in cluster.json
        leader = call(again.addresses, lambda client: client.leader_status())
        assert leader["term"] > term
        groups = call(again.addresses, lambda client: client.list_groups())
        assert [(g["name"], g["count"]) for g in groups] == [("demo", PARTITIONS)]
        assert call(again.addresses, read) == written  # acknowledged before the stop
        wait_for(lambda: balanced(again.addresses, names), 40, interval=0.5,
                 what="the workers to get partitions again after the restart")
        # Requests stamped with the leader's cluster time are served again.
        assert call(again.addresses, lambda client: client.create_group("more", 2))
    assert again.process.returncode == 0 and again.leftovers == []


def test_a_cluster_that_cannot_start_says_why_in_one_line(tmp_path):
    data_dir = tmp_path / "cluster"
    data_dir.mkdir()
    nodes = [{"id": i, "client": f"127.0.0.1:{free_port()}",
              "peer": f"127.0.0.1:{free_port()}"} for i in (1, 2, 3)]
    (data_dir / "cluster.json").write_text(json.dumps({"nodes": nodes}))
    taken = socket.socket()
    try:  # node 2's client port is taken by another program
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        taken.bind(("127.0.0.1", int(nodes[1]["client"].rsplit(":", 1)[1])))
        taken.listen()
        result = run_cli("cluster", "up", "--data-dir", str(data_dir), "--workers", "0",
                         "--partitions", "4", timeout=90)
    finally:
        taken.close()
    assert result.returncode == 1
    assert "Traceback" not in result.stderr + result.stdout
    error = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(error) == 1
    assert "did not come up" in error[0] and "node-2" in error[0]
    assert str(data_dir) in error[0]
    for node in nodes:  # every child was stopped
        with pytest.raises(ClientError):
            call(node["client"], lambda client, a=node["client"]: client.status(a, timeout=1.0),
                 2.0)
