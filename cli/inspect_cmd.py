"""`raftcoord inspect DATA_DIR`: describe a node's durable Raft storage, read-only."""

from __future__ import annotations

import json
import os

import click

from raft import _wal
from raft.disk_storage import inspect_data_dir

from . import exit_codes

_SEARCH_DEPTH = 3  # how far below DATA_DIR to look for node directories when it holds no log


@click.command("inspect")
@click.argument("data_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def inspect_cmd(data_dir: str, as_json: bool) -> None:
    """Describe the WAL segments, hard state and snapshots in DATA_DIR.

    Nothing is modified: a torn tail is reported, not cut off. Exits with status 3
    when the log is corrupt in a way that would stop the node from starting, and
    with status 2 when DATA_DIR holds no log at all (naming the subdirectories
    that do, such as the node directories of a cluster).
    """
    if not _holds_log(data_dir):
        raise click.BadParameter(_no_log_message(data_dir), param_hint="DATA_DIR")
    info = inspect_data_dir(data_dir)
    if as_json:
        click.echo(json.dumps(info, indent=2, sort_keys=True))
    else:
        _print_readable(info)
    if info.get("error"):
        raise SystemExit(exit_codes.CORRUPT_DATA)


def _holds_log(path: str) -> bool:
    """True if `path` has a WAL segment or a snapshot of a node's Raft storage."""
    try:
        names = os.listdir(path)
    except OSError:
        return False
    return any(_wal.parse_segment_name(n) is not None or _wal.parse_snapshot_name(n) is not None
               for n in names)


def _no_log_message(path: str) -> str:
    found = []
    for root, dirs, _ in os.walk(path):
        dirs.sort()
        if os.path.relpath(root, path).count(os.sep) + 1 >= _SEARCH_DEPTH:
            dirs[:] = []  # deep enough: a node directory sits near the top
        found += [os.path.join(root, d) for d in dirs if _holds_log(os.path.join(root, d))]
    if not found:
        return f"no Raft log found in {path} (no wal-*.seg segment or snap-*.snap snapshot)"
    return f"no Raft log found in {path}; these subdirectories hold one: {', '.join(found)}"


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
