"""`raftcoord kv get|put|cas|delete|list`: the cluster's metadata key-value store."""

from __future__ import annotations

from typing import Optional

import click

from ._client import client_command, echo_json, run_with_client, to_jsonable


@click.group("kv")
def kv() -> None:
    """Read and write the linearizable metadata key-value store."""


def _show(item, as_json: bool) -> None:
    if as_json:
        echo_json({"key": item.key, "value": item.value, "version": item.version})
    elif item.version == 0:
        click.echo(f"{item.key}: (absent)")
    else:
        click.echo(f"{item.key} = {to_jsonable(item.value)!s}  (version {item.version})")


@kv.command("get")
@click.argument("key")
@client_command
def get(key: str, addresses: str, timeout: float, as_json: bool) -> None:
    """Read KEY (linearizable). Exits 1 when it is absent (text mode)."""
    item = run_with_client(addresses, timeout, lambda client: client.kv_get(key))
    _show(item, as_json)
    if item.version == 0 and not as_json:
        raise SystemExit(1)


@kv.command("put")
@click.argument("key")
@click.argument("value")
@client_command
def put(key: str, value: str, addresses: str, timeout: float, as_json: bool) -> None:
    """Set KEY to VALUE."""
    _show(run_with_client(addresses, timeout,
                          lambda client: client.kv_put(key, value.encode())), as_json)


@kv.command("cas")
@click.argument("key")
@click.argument("expected_version", type=click.IntRange(min=0))
@click.argument("value")
@client_command
def cas(key: str, expected_version: int, value: str, addresses: str, timeout: float,
        as_json: bool) -> None:
    """Set KEY to VALUE only if its version is EXPECTED_VERSION (0: absent)."""
    _show(run_with_client(addresses, timeout, lambda client: client.kv_cas(
        key, expected_version, value.encode())), as_json)


@kv.command("delete")
@click.argument("key")
@click.option("--version", "expected_version", type=click.IntRange(min=0), default=None,
              help="Delete only at this version.")
@client_command
def delete(key: str, expected_version: Optional[int], addresses: str, timeout: float,
           as_json: bool) -> None:
    """Delete KEY."""
    _show(run_with_client(addresses, timeout,
                          lambda client: client.kv_delete(key, expected_version)), as_json)


@kv.command("list")
@click.argument("prefix", default="")
@click.option("--limit", type=click.IntRange(min=0), default=0, help="At most this many (0: all).")
@client_command
def list_keys(prefix: str, limit: int, addresses: str, timeout: float, as_json: bool) -> None:
    """List keys starting with PREFIX, in key order (linearizable)."""
    items = run_with_client(addresses, timeout, lambda client: client.kv_list(prefix, limit))
    if as_json:
        echo_json([{"key": i.key, "value": i.value, "version": i.version} for i in items])
        return
    for item in items:
        click.echo(f"{item.key} = {to_jsonable(item.value)!s}  (version {item.version})")
