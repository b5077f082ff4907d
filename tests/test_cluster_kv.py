"""A real 3-node cluster started from the CLI: KV through any node, leader kill -9,
restart from the data directory, membership and leadership through the CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest
import trio

from coordinator.client import Client, ClientError

from cluster_harness import LocalCluster, cli_command, free_port, read_line, run_cli, wait_for

pytestmark = pytest.mark.slow


def client_call(addresses: str, action, timeout: float = 20.0):
    async def main():
        async with Client(addresses.split(","), timeout=timeout) as client:
            return await action(client)
    return trio.run(main)


def node_status(address: str) -> dict | None:
    try:
        return client_call(address, lambda client: client.status(address, timeout=1.0), 2.0)
    except ClientError:
        return None


def leader_status(addresses: str) -> dict:
    return client_call(addresses, lambda client: client.leader_status(timeout=20.0))


def test_kv_through_every_node_survives_a_leader_kill_and_a_restart(tmp_path):
    with LocalCluster(tmp_path / "cluster") as cluster:
        acknowledged: dict[str, bytes] = {}

        async def workload(client: Client, prefix: str, count: int) -> None:
            for i in range(count):
                key, value = f"{prefix}/{i}", f"{prefix}-{i}".encode()
                item = await client.kv_put(key, value)
                acknowledged[key] = value
                assert item.value == value
                # Linearizable: a read after an acknowledged write sees it.
                assert (await client.kv_get(key)).value == value

        # Writes through each node (followers redirect to the leader).
        for node in cluster.info["nodes"]:
            client_call(node["client"], lambda client, n=node: workload(client, f"n{n['id']}", 5))
        leader = leader_status(cluster.addresses)
        old = leader["leader"]

        cluster.signal_node(old, signal.SIGKILL)
        killed_at = time.monotonic()
        survivors = ",".join(n["client"] for n in cluster.info["nodes"] if n["id"] != old)
        client_call(survivors, lambda client: workload(client, "after", 5))
        assert time.monotonic() - killed_at < 15
        new = leader_status(survivors)
        assert new["leader"] != old and new["term"] > leader["term"]

        async def read_all(client: Client) -> dict:
            return {key: (await client.kv_get(key)).value for key in acknowledged}
        assert client_call(survivors, read_all) == acknowledged  # nothing acknowledged lost

        # The killed node restarts from its data directory and catches up.
        cluster.restart_node(old)
        commit = leader_status(survivors)["commit"]
        address = cluster.node(old)["client"]
        wait_for(lambda: (s := node_status(address)) and s["applied"] >= commit, 20,
                 what=f"node {old} to catch up to {commit}")
        # It serves again: through it, every acknowledged write reads back.
        assert client_call(address, read_all) == acknowledged
    assert cluster.process.returncode == 0  # SIGTERM stopped everything cleanly
    assert cluster.leftovers == []


def test_membership_and_leadership_through_the_cli(tmp_path):
    with LocalCluster(tmp_path / "cluster") as cluster:
        addresses = cluster.addresses
        assert run_cli("kv", "put", "-a", addresses, "before", "4th").returncode == 0
        # A 4th node joins as a learner, catches up and is promoted.
        client, peer = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
        cluster.start_process("node-4", cli_command(
            "serve", "--id", "4", "--data-dir", str(tmp_path / "node-4"), "--listen", client,
            "--peer-listen", peer, "--join", addresses), str(tmp_path / "node-4.log"))

        def learner_listed():
            result = run_cli("members", "list", "-a", addresses, "--json")
            members = json.loads(result.stdout)["members"] if result.returncode == 0 else []
            return any(m["id"] == 4 and m["role"] == "learner" for m in members)
        wait_for(learner_listed, 30, interval=0.5, what="node 4 to be a learner")

        result = run_cli("members", "promote", "4", "-a", addresses, "--json")
        assert result.returncode == 0, result.stderr
        assert 4 in json.loads(result.stdout)["voters"]
        status = node_status(client)
        assert status is not None and 4 in status["voters"]
        everyone = addresses + "," + client
        assert client_call(client, lambda c: c.kv_get("before")).value == b"4th"

        # Leadership moves to the new node on request.
        result = run_cli("leader", "transfer", "--to", "4", "-a", everyone, "--json")
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["leader"] == 4
        assert leader_status(client)["leader"] == 4

        # Node 1 is removed; the others keep serving writes.
        result = run_cli("members", "remove", "1", "-a", everyone, "--json")
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["voters"] == [2, 3, 4]
        assert run_cli("kv", "put", "-a", client, "after", "removal").returncode == 0
        assert client_call(client, lambda c: c.kv_get("after")).value == b"removal"

        # SIGTERM on the leader: it hands leadership over, then exits 0.
        node4 = cluster.extra["node-4"]
        node4.send_signal(signal.SIGTERM)
        assert node4.wait(20) == 0
        others = ",".join(n["client"] for n in cluster.info["nodes"] if n["id"] != 1)
        assert leader_status(others)["leader"] in (2, 3)
        assert "hands leadership to" in (tmp_path / "node-4.log").read_text()


def test_user_mistakes_are_one_line_errors(tmp_path):
    result = run_cli("kv", "get", "x", "-a", "not-an-address")
    assert result.returncode != 0 and "Traceback" not in result.stderr
    result = run_cli("serve", "--id", "1")
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "--data-dir" in result.stderr
    result = run_cli("kv", "get", "x", "-a", f"127.0.0.1:{free_port()}", "--timeout", "0.5")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "no answer" in result.stderr


def test_a_second_node_on_the_same_data_directory_is_refused(tmp_path):
    client, peer = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    args = ("serve", "--id", "1", "--data-dir", str(tmp_path / "n1"), "--listen", client,
            "--peer-listen", peer, "--peers", f"1={peer}/{client}")
    first = subprocess.Popen(cli_command(*args), stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: node_status(client), 20, what="the first node to serve")
        other_client = f"127.0.0.1:{free_port()}"
        second = run_cli("serve", "--id", "1", "--data-dir", str(tmp_path / "n1"), "--listen",
                         other_client, "--peer-listen", f"127.0.0.1:{free_port()}", "--peers",
                         f"1={peer}/{other_client}")
        assert second.returncode == 1 and "Traceback" not in second.stderr
        assert "in use" in second.stderr
        assert node_status(client) is not None  # the first keeps serving
    finally:
        first.terminate()
        assert first.wait(20) == 0  # SIGTERM is a clean stop


def test_cluster_up_prints_status_and_stops_cleanly_at_ctrl_c(tmp_path):
    process = subprocess.Popen(
        cli_command("cluster", "up", "--data-dir", str(tmp_path / "c"), "--workers", "0",
                    "--partitions", "8"),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        lines = []
        while not any("without owner: 8" in line for line in lines):
            lines.append(read_line(process.stdout, 40))
        assert any("node 1: client 127.0.0.1:" in line for line in lines)
        assert any(line.startswith("leader: node") for line in lines)
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=60)
        assert process.returncode == 0
        assert b"stopped; data and logs are in" in output
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    for node in json.loads((tmp_path / "c" / "cluster.json").read_text())["nodes"]:
        assert node_status(node["client"]) is None  # every node stopped


def test_nodes_stop_when_cluster_up_is_killed(tmp_path):
    with LocalCluster(tmp_path / "cluster") as cluster:
        os.killpg(cluster.process.pid, signal.SIGKILL)
        cluster.process.wait()
        for node in cluster.info["nodes"]:
            wait_for(lambda: node_status(node["client"]) is None, 20,
                     what=f"node {node['id']} to stop with its parent")
