"""`raftcoord inspect DATA_DIR`: describe a node's durable Raft storage, read-only."""

from __future__ import annotations

import json

import click

from raft.disk_storage import inspect_data_dir


@click.command("inspect")
@click.argument("data_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def inspect_cmd(data_dir: str, as_json: bool) -> None:
    """Describe the WAL segments, hard state and snapshots in DATA_DIR.

    Nothing is modified: a torn tail is reported, not cut off. Exits with status 2
    when the log is corrupt in a way that would stop the node from starting.
    """
    info = inspect_data_dir(data_dir)
    if as_json:
        click.echo(json.dumps(info, indent=2, sort_keys=True))
    else:
        _print_readable(info)
    if info.get("error"):
        raise SystemExit(2)


def _print_readable(info: dict) -> None:
    click.echo(f"data directory: {info['path']}")
    error = info.get("error")
    if error:
        click.secho(
            f"CORRUPT: {error['message']}\n  file: {error['file']}  offset: {error['offset']}",
            fg="red",
        )
    else:
        hs = info["hard_state"]
        click.echo(f"hard state:     term={hs['term']} vote={hs['vote']} commit={hs['commit']}")
        click.echo(
            f"log:            first_index={info['first_index']} last_index={info['last_index']} "
            f"(snapshot at {info['snapshot_index']}, term {info['snapshot_term']})"
        )
    click.echo("segments:")
    if not info.get("segments"):
        click.echo("  (none)")
    for seg in info.get("segments", []):
        line = f"  {seg['name']}  {seg['size']:>12,} bytes"
        if "records" in seg:
            span = "-" if seg["first_index"] is None else f"{seg['first_index']}..{seg['last_index']}"
            line += f"  {seg['records']:>8} records  indexes {span}"
        if seg.get("torn_tail"):
            line += f"  TORN TAIL ({seg['torn_tail']}; cut off at next open)"
        click.echo(line)
    click.echo("snapshots:")
    if not info.get("snapshots"):
        click.echo("  (none)")
    for snap in info.get("snapshots", []):
        if "valid" not in snap:
            click.echo(f"  {snap['name']}")
            continue
        status = "valid" if snap["valid"] else f"INVALID ({snap['error']})"
        click.echo(
            f"  {snap['name']}  index={snap['index']} term={snap['term']} {snap['size']:,} bytes  {status}"
        )
    for name in info.get("temp_files", []):
        click.echo(f"leftover temporary file (removed at next open): {name}")
