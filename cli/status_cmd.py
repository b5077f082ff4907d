"""`raftcoord status`: the cluster as its leader sees it, and every node's raft state."""

from __future__ import annotations

from typing import Any

import click
import trio

from coordinator.client import Client, ClientError

from ._client import client_command, echo_json, run_with_client


async def cluster_view(client: Client, timeout: float) -> dict[str, Any]:
    """The leader's status plus each member's own (None for a node that does not
    answer). Shared with `raftcoord cluster up`'s live table."""
    leader = await client.leader_status(timeout=timeout)
    nodes: dict[str, Any] = {}

    async def ask(node_id: str, address: str) -> None:
        try:
            nodes[node_id] = await client.status(address, timeout=min(timeout, 1.0))
        except ClientError:
            nodes[node_id] = None

    async with trio.open_nursery() as nursery:
        for node_id, addresses in leader["addresses"].items():
            nursery.start_soon(ask, node_id, addresses["client"])
    return {"leader": leader, "nodes": nodes}


def render_text(view: dict[str, Any]) -> str:
    leader = view["leader"]
    lines = [f"leader: node {leader['leader']} ({leader['leader_address']})  term "
             f"{leader['term']}  commit {leader['commit']}",
             f"voters: {leader['voters']}  learners: {leader['learners']}", "",
             f"{'NODE':>4}  {'ROLE':9} {'TERM':>5} {'APPLIED':>8}  CLIENT"]
    for node_id, addresses in sorted(leader["addresses"].items(), key=lambda i: int(i[0])):
        node = view["nodes"].get(node_id)
        if node is None:
            lines.append(f"{node_id:>4}  {'down':9} {'-':>5} {'-':>8}  {addresses['client']}")
        else:
            lines.append(f"{node_id:>4}  {node['role']:9} {node['term']:>5} "
                         f"{node['applied']:>8}  {addresses['client']}")
    lines += ["", f"workers: {leader['live_workers']} live"]
    for worker in leader["workers"]:
        lines.append(f"  {worker['id']:20} {worker['zone']:8} {worker['state']:9} "
                     f"{worker['partitions']:>5} partitions")
    lines.append(f"partitions: {leader['partitions']}  without owner: {leader['unowned_slots']}"
                 f"  moves in flight: {leader['pending_moves']}")
    return "\n".join(lines)


@click.command("status")
@client_command
def status(addresses: str, timeout: float, as_json: bool) -> None:
    """Leader, term, members, workers and partitions of the cluster."""
    view = run_with_client(addresses, timeout, lambda client: cluster_view(client, timeout))
    echo_json(view) if as_json else click.echo(render_text(view))
