"""`raftcoord workers list|drain|undrain`: the workers the coordinator knows."""

from __future__ import annotations

import click

from ._client import client_command, echo_json, run_with_client


@click.group("workers")
def workers() -> None:
    """List, drain and undrain workers."""


@workers.command("list")
@client_command
def list_workers(addresses: str, timeout: float, as_json: bool) -> None:
    """Every known worker: zone, state and partitions owned."""
    rows = run_with_client(addresses, timeout, lambda client: client.list_workers())
    if as_json:
        echo_json(rows)
        return
    click.echo(f"{'WORKER':20} {'ZONE':10} {'STATE':9} {'PARTITIONS':>10}  ADDRESS")
    for row in rows:
        click.echo(f"{row['id']:20} {row['zone']:10} {row['state']:9} {row['partitions']:>10}"
                   f"  {row['address']}")


@workers.command("drain")
@click.argument("worker_id")
@client_command
def drain(worker_id: str, addresses: str, timeout: float, as_json: bool) -> None:
    """Move WORKER_ID's partitions off gracefully; it receives nothing new."""
    result = run_with_client(addresses, timeout, lambda client: client.drain(worker_id))
    echo_json(result) if as_json else click.echo(f"{worker_id} is {result['state']}")


@workers.command("undrain")
@click.argument("worker_id")
@client_command
def undrain(worker_id: str, addresses: str, timeout: float, as_json: bool) -> None:
    """Make draining worker WORKER_ID active again."""
    result = run_with_client(addresses, timeout, lambda client: client.undrain(worker_id))
    echo_json(result) if as_json else click.echo(f"{worker_id} is {result['state']}")
