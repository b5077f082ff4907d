"""`raftcoord leader transfer`: hand leadership to another voter."""

from __future__ import annotations

import click

from ._client import client_command, echo_json, run_with_client


@click.group("leader")
def leader() -> None:
    """Leadership of the cluster."""


@leader.command("transfer")
@click.option("--to", "to", type=click.IntRange(min=0), default=0,
              help="The voter to hand leadership to (default: the most caught-up one).")
@client_command
def transfer(to: int, addresses: str, timeout: float, as_json: bool) -> None:
    """Hand leadership to another voter."""
    result = run_with_client(addresses, timeout, lambda client: client.transfer_leader(to))
    echo_json(result) if as_json else click.echo(f"node {result['leader']} leads")
