"""`raftcoord partitions create|delete|list|show`: partition groups."""

from __future__ import annotations

import click

from ._client import client_command, echo_json, run_with_client


@click.group("partitions")
def partitions() -> None:
    """Create, delete and inspect partition groups."""


@partitions.command("create")
@click.argument("name")
@click.argument("count", type=click.IntRange(min=1, max=1_000_000))
@click.option("--weight", type=click.IntRange(min=1), default=1, show_default=True,
              help="Load of each partition, in units of worker capacity.")
@click.option("--replication", "replication_factor", type=click.IntRange(min=1, max=16),
              default=1, show_default=True, help="Owners per partition.")
@client_command
def create(name: str, count: int, weight: int, replication_factor: int, addresses: str,
           timeout: float, as_json: bool) -> None:
    """Create COUNT partitions NAME/0 .. NAME/COUNT-1."""
    result = run_with_client(addresses, timeout, lambda client: client.create_group(
        name, count, weight=weight, replication_factor=replication_factor))
    echo_json(result) if as_json else click.echo(f"created {name}: {result['count']} partitions")


@partitions.command("delete")
@click.argument("name")
@client_command
def delete(name: str, addresses: str, timeout: float, as_json: bool) -> None:
    """Delete group NAME and its partitions."""
    result = run_with_client(addresses, timeout, lambda client: client.delete_group(name))
    echo_json(result) if as_json else click.echo(f"deleted {name}")


@partitions.command("list")
@client_command
def list_groups(addresses: str, timeout: float, as_json: bool) -> None:
    """Every group with its owned and unowned slots."""
    groups = run_with_client(addresses, timeout, lambda client: client.list_groups())
    if as_json:
        echo_json(groups)
        return
    click.echo(f"{'GROUP':20} {'COUNT':>6} {'RF':>3} {'OWNED':>6} {'UNOWNED':>8}")
    for group in groups:
        click.echo(f"{group['name']:20} {group['count']:>6} {group['replication_factor']:>3} "
                   f"{group['owned_slots']:>6} {group['unowned_slots']:>8}")


@partitions.command("show")
@click.argument("name")
@client_command
def show(name: str, addresses: str, timeout: float, as_json: bool) -> None:
    """Every partition of group NAME: owners and epoch."""
    group = run_with_client(addresses, timeout, lambda client: client.show_group(name))
    if as_json:
        echo_json(group)
        return
    click.echo(f"{'PARTITION':24} {'EPOCH':>6}  OWNERS")
    for partition in group["partitions"]:
        owners = ", ".join(owner or "-" for owner in partition["owners"])
        flag = "  (quarantined)" if partition["quarantined"] else ""
        click.echo(f"{partition['id']:24} {partition['epoch']:>6}  {owners}{flag}")
