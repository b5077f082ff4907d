"""`raftcoord members list|add|remove|promote`: the coordinator nodes of a cluster."""

from __future__ import annotations

import click

from ._client import client_command, echo_json, run_with_client


@click.group("members")
def members() -> None:
    """List and change the coordinator nodes of the cluster."""


def _show_members(view: dict) -> None:
    click.echo(f"{'ID':>4}  {'ROLE':8} {'LEADER':6} {'PEER':22} {'CLIENT':22} MATCH")
    for member in view["members"]:
        match = "" if member["match"] is None else str(member["match"])
        click.echo(f"{member['id']:>4}  {member['role']:8} {'*' if member['leader'] else '':6} "
                   f"{member['peer']:22} {member['client']:22} {match}")


@members.command("list")
@client_command
def list_members(addresses: str, timeout: float, as_json: bool) -> None:
    """Members with their roles and addresses (the leader's view when reachable)."""
    async def action(client):
        view = await client.leader_status(timeout=timeout)
        return await client.members(address=view["leader_address"], timeout=timeout)
    view = run_with_client(addresses, timeout, action)
    echo_json(view) if as_json else _show_members(view)


@members.command("add")
@click.option("--id", "node_id", type=click.IntRange(min=1), required=True, help="New node's id.")
@click.option("--peer", "peer_address", required=True, metavar="HOST:PORT",
              help="The new node's peer (raft) address.")
@click.option("--client", "client_address", required=True, metavar="HOST:PORT",
              help="The new node's client address.")
@client_command
def add(node_id: int, peer_address: str, client_address: str, addresses: str, timeout: float,
        as_json: bool) -> None:
    """Add a node as a learner (promote it once it caught up)."""
    result = run_with_client(addresses, timeout, lambda client: client.add_member(
        node_id, peer_address, client_address))
    echo_json(result) if as_json else click.echo(
        f"node {node_id} added as a learner; voters {result['voters']}, "
        f"learners {result['learners']}")


@members.command("promote")
@click.argument("node_id", type=click.IntRange(min=1))
@client_command
def promote(node_id: int, addresses: str, timeout: float, as_json: bool) -> None:
    """Make learner NODE_ID a voter (waits until it has caught up, within --timeout)."""
    result = run_with_client(addresses, timeout, lambda client: client.promote_member(node_id))
    echo_json(result) if as_json else click.echo(
        f"node {node_id} is a voter; voters {result['voters']}")


@members.command("remove")
@click.argument("node_id", type=click.IntRange(min=1))
@client_command
def remove(node_id: int, addresses: str, timeout: float, as_json: bool) -> None:
    """Remove NODE_ID from the cluster."""
    result = run_with_client(addresses, timeout, lambda client: client.remove_member(node_id))
    echo_json(result) if as_json else click.echo(
        f"node {node_id} removed; voters {result['voters']}, learners {result['learners']}")
