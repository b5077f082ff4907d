"""`raftcoord cluster up`: a whole local cluster, demo workers included, in one command.

It writes one TOML file per node from the embedded default configuration, starts
each node (`raftcoord serve --config ...`) and each demo worker (`raftcoord worker
run`) as a child process with its log in the data directory, creates the demo
partition group, prints the endpoints and shows a live status table until Ctrl-C
(or SIGTERM, or ``--duration``). Then it stops the workers and the nodes with
SIGTERM (each node hands leadership over before it exits) and waits for them.

Ports are chosen free at the first start and kept in ``cluster.json`` in the data
directory, so `cluster up --data-dir DIR` again resumes the same cluster.
"""

from __future__ import annotations

import json
import math
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from typing import Any, Optional

import click
import trio

from coordinator.client import Client, ClientError, RefusedError

from .status_cmd import cluster_view, render_text

DEMO_GROUP = "demo"

NODE_CONFIG = """\
# A raftcoord node, written by `raftcoord cluster up` (embedded defaults).
id = {node_id}
data_dir = "{data_dir}"
listen = "{client}"
peer_listen = "{peer}"
peers = [{peers}]
fsync = true
lease = {lease}
tick = 0.1
log_level = "info"
"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _layout(data_dir: str, nodes: int) -> dict[str, Any]:
    """The cluster's ports and ids: read from cluster.json, or chosen and saved."""
    path = os.path.join(data_dir, "cluster.json")
    if os.path.exists(path):
        with open(path) as handle:
            layout = json.load(handle)
        if len(layout["nodes"]) != nodes:
            raise click.UsageError(f"{data_dir} holds a cluster of {len(layout['nodes'])} "
                                   f"nodes; use --nodes {len(layout['nodes'])} or a new "
                                   "--data-dir")
        return layout
    layout = {"nodes": [{"id": i, "client": f"127.0.0.1:{_free_port()}",
                         "peer": f"127.0.0.1:{_free_port()}"} for i in range(1, nodes + 1)]}
    with open(path, "w") as handle:
        json.dump(layout, handle, indent=2)
    return layout


class _Child:
    """One child process with its log file."""

    def __init__(self, name: str, command: list[str], log_path: str) -> None:
        self.name = name
        self.command = command
        self.log_path = log_path
        self._log = open(log_path, "ab")
        # A session of its own: Ctrl-C in the terminal reaches `cluster up` only,
        # which then stops the children in order.
        self.process = subprocess.Popen(command, stdout=self._log, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, start_new_session=True,
                                        preexec_fn=_stop_with_parent)

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    async def stop(self, timeout: float) -> None:
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while self.alive() and time.monotonic() < deadline:
                await trio.sleep(0.05)
            if self.alive():
                self.process.kill()
        self.process.wait()
        self._log.close()


def _stop_with_parent() -> None:
    """In the child: get SIGTERM if `cluster up` itself dies without stopping it
    (killed with SIGKILL, say), so that no node keeps its ports. Linux only."""
    try:
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def _self_command() -> list[str]:
    return [sys.executable, "-m", "cli"]


def _worker_command_available() -> bool:
    from .main import main
    return "worker" in main.commands


@click.group("cluster")
def cluster() -> None:
    """Run a whole local cluster."""


@cluster.command("up")
@click.option("--nodes", type=click.IntRange(min=1, max=9), default=3, show_default=True,
              help="Coordinator nodes.")
@click.option("--workers", type=click.IntRange(min=0, max=100), default=3, show_default=True,
              help="Demo workers.")
@click.option("--partitions", type=click.IntRange(min=0, max=100_000), default=64,
              show_default=True, help="Partitions of the demo group (0: none).")
@click.option("--data-dir", type=click.Path(file_okay=False), default=None,
              help="Where nodes keep their data and logs (default: a new temporary "
                   "directory). Give an existing one to resume that cluster.")
@click.option("--lease", type=click.FloatRange(min=0.5), default=3.0, show_default=True,
              help="Worker lease in seconds.")
@click.option("--duration", type=click.FloatRange(min=0), default=None,
              help="Stop after this many seconds (default: at Ctrl-C).")
@click.option("--json", "as_json", is_flag=True,
              help="Print the endpoints and child processes as one JSON object, then "
                   "no live table.")
def up(nodes: int, workers: int, partitions: int, data_dir: Optional[str], lease: float,
       duration: Optional[float], as_json: bool) -> None:
    """Start NODES coordinator nodes and WORKERS demo workers on this machine, show a
    live status table, and stop everything cleanly at Ctrl-C."""
    if data_dir is None:
        data_dir = tempfile.mkdtemp(prefix="raftcoord-cluster-")
    data_dir = os.path.abspath(data_dir)
    os.makedirs(data_dir, exist_ok=True)
    layout = _layout(data_dir, nodes)
    try:
        trio.run(_up, data_dir, layout, workers, partitions, lease, duration, as_json)
    except ClientError as exc:
        raise click.ClickException(f"the cluster did not come up: {exc}; see the logs in "
                                   f"{data_dir}") from None


async def _up(data_dir: str, layout: dict[str, Any], workers: int, partitions: int,
              lease: float, duration: Optional[float], as_json: bool) -> None:
    nodes: list[_Child] = []
    agents: list[_Child] = []
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        try:
            async with trio.open_nursery() as nursery:
                async def stop_at_signal() -> None:
                    async for _ in signals:  # also during startup
                        nursery.cancel_scope.cancel()
                        return
                nursery.start_soon(stop_at_signal)
                with trio.move_on_after(duration if duration is not None else math.inf):
                    await _run_cluster(data_dir, layout, workers, partitions, lease, as_json,
                                       nodes, agents)
                nursery.cancel_scope.cancel()
        finally:
            with trio.CancelScope(shield=True):
                if not as_json:
                    click.echo("stopping workers and nodes...", err=True)
                for agent in agents:
                    await agent.stop(timeout=5.0)
                for node in nodes:
                    await node.stop(timeout=10.0)
    if not as_json:
        click.echo(f"stopped; data and logs are in {data_dir}", err=True)


async def _run_cluster(data_dir: str, layout: dict[str, Any], workers: int, partitions: int,
                       lease: float, as_json: bool, nodes: list[_Child],
                       agents: list[_Child]) -> None:
    """Start the children (appended to ``nodes`` and ``agents`` for the caller to
    stop), then show the live table until cancelled."""
    members = layout["nodes"]
    peers = ", ".join(f'"{m["id"]}={m["peer"]}/{m["client"]}"' for m in members)
    addresses = [m["client"] for m in members]
    for member in members:
        config_path = os.path.join(data_dir, f"node-{member['id']}.toml")
        with open(config_path, "w") as handle:
            handle.write(NODE_CONFIG.format(
                node_id=member["id"], client=member["client"], peer=member["peer"],
                data_dir=os.path.join(data_dir, f"node-{member['id']}"), peers=peers,
                lease=lease))
        nodes.append(_Child(f"node-{member['id']}",
                            _self_command() + ["serve", "--config", config_path],
                            os.path.join(data_dir, f"node-{member['id']}.log")))
    async with Client(addresses, timeout=30.0) as client:
        await client.leader_status(timeout=30.0)
        if partitions:
            try:
                await client.create_group(DEMO_GROUP, partitions)
            except RefusedError as exc:
                if exc.code != "already_exists":
                    raise
        worker_note = ""
        if workers and _worker_command_available():
            for index in range(workers):
                name = f"worker-{index + 1}"
                agents.append(_Child(name, _self_command() + [
                    "worker", "run", "--id", name, "--zone", f"zone-{index % 3 + 1}",
                    "--addresses", ",".join(addresses), "--lease", str(lease),
                    "--events", os.path.join(data_dir, f"{name}.events.jsonl")],
                    os.path.join(data_dir, f"{name}.log")))
        elif workers:
            worker_note = "demo workers need `raftcoord worker run`, not installed"
        _print_endpoints(data_dir, members, nodes, agents, as_json, worker_note)
        if as_json:
            await trio.sleep_forever()
        if sys.stdout.isatty():
            await _live_table(client, nodes, agents)
        else:  # a log, not a terminal: a plain status every few seconds
            await _status_lines(client)


def _print_endpoints(data_dir: str, members: list, nodes: list[_Child], agents: list[_Child],
                     as_json: bool, worker_note: str) -> None:
    if as_json:  # one line, so that scripts can read it before the cluster stops
        click.echo(json.dumps({
            "data_dir": data_dir,
            "addresses": ",".join(m["client"] for m in members),
            "nodes": [{"id": m["id"], "client": m["client"], "peer": m["peer"], "pid": n.pid,
                       "command": n.command, "log": n.log_path}
                      for m, n in zip(members, nodes)],
            "workers": [{"id": a.name, "pid": a.pid, "command": a.command, "log": a.log_path,
                         "events": a.command[a.command.index("--events") + 1]}
                        for a in agents],
        }, sort_keys=True))
        sys.stdout.flush()
        return
    click.echo(f"raftcoord cluster up: {len(nodes)} nodes, {len(agents)} workers; "
               f"data and logs in {data_dir}")
    for member in members:
        click.echo(f"  node {member['id']}: client {member['client']}  peer {member['peer']}")
    click.echo(f"  try: raftcoord status -a {','.join(m['client'] for m in members)}")
    if worker_note:
        click.echo(f"  note: {worker_note}")
    click.echo("Ctrl-C stops everything.")


async def _status_lines(client: Client, every: float = 5.0) -> None:
    while True:
        try:
            click.echo(render_text(await cluster_view(client, timeout=2.0)) + "\n")
        except ClientError as exc:
            click.echo(f"no leader reachable: {exc}\n")
        await trio.sleep(every)


async def _live_table(client: Client, nodes: list[_Child], agents: list[_Child]) -> None:
    from rich.console import Console
    from rich.live import Live

    console = Console()
    try:
        with Live(console=console, refresh_per_second=2, transient=False) as live:
            while True:
                try:
                    view = await cluster_view(client, timeout=2.0)
                    live.update(_render(view, nodes, agents))
                except ClientError as exc:
                    live.update(f"[yellow]no leader reachable: {exc}[/yellow]")
                await trio.sleep(0.5)
    finally:
        console.print()


def _render(view: dict[str, Any], nodes: list[_Child], agents: list[_Child]) -> Any:
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    leader = view["leader"]
    header = Text(f"leader: node {leader['leader']}   term {leader['term']}   commit "
                  f"{leader['commit']}   voters {leader['voters']}   learners "
                  f"{leader['learners']}", style="bold")
    members = Table()
    for column in ("node", "role", "term", "applied", "client", "process"):
        members.add_column(column)
    by_id = {n.name: n for n in nodes}
    for node_id, addresses in sorted(leader["addresses"].items(), key=lambda i: int(i[0])):
        status = view["nodes"].get(node_id)
        child = by_id.get(f"node-{node_id}")
        process = "-" if child is None else ("running" if child.alive() else "exited")
        role = "learner" if int(node_id) in leader["learners"] else ""
        if status is None:
            members.add_row(node_id, "[red]down[/red]", "-", "-", addresses["client"], process)
        else:
            members.add_row(node_id, status["role"] + (f" ({role})" if role else ""),
                            str(status["term"]), str(status["applied"]), addresses["client"],
                            process)
    summary = Text(f"workers: {leader['live_workers']} live   partitions: "
                   f"{leader['partitions']}   without owner: {leader['unowned_slots']}   "
                   f"moves in flight: {leader['pending_moves']}", style="bold")
    workers = Table()
    for column in ("worker", "zone", "state", "partitions", "process"):
        workers.add_column(column)
    agents_by_name = {a.name: a for a in agents}
    for worker in leader["workers"]:
        child = agents_by_name.get(worker["id"])
        process = "-" if child is None else ("running" if child.alive() else "exited")
        workers.add_row(worker["id"], worker["zone"], worker["state"], str(worker["partitions"]),
                        process)
    moves = Table()
    for column in ("partition", "to worker", "epoch"):
        moves.add_column(column)
    for move in reversed(leader["recent_moves"][-8:]):  # newest first
        moves.add_row(move["partition"], move["worker"], str(move["epoch"]))
    return Group(header, members, summary, workers, Text("recent moves", style="bold"), moves)
