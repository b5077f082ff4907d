"""`raftcoord cluster up`: a whole local cluster, demo workers included, in one command.

It writes one TOML file per node from the embedded default configuration, starts
each node (`raftcoord serve --config ...`) and each demo worker (`raftcoord worker
run`) as a child process with its log in the data directory, creates the demo
partition group, prints the endpoints and shows a live status table until Ctrl-C
(or SIGTERM, or ``--duration``). Then it stops the workers and the nodes with
SIGTERM (each node hands leadership over before it exits) and waits for them.

Each node serves ``/metrics``, ``/healthz``, ``/readyz`` and ``/status`` over HTTP
(``--http-listen HOST[:PORT]``: node N gets PORT+N-1, or free ports without a port;
``--no-http`` turns it off); the URLs are printed with the endpoints.

Ports are chosen free at the first start and kept in ``cluster.json`` in the data
directory, so `cluster up --data-dir DIR` again resumes the same cluster.

With ``--tls`` it first creates a development CA, certificates and tokens in
``DIR/certs`` (`raftcoord certs init`, kept across restarts): nodes speak TLS and
require tokens, demo workers use the worker token, the live table the admin token.
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

from coordinator import logs
from coordinator.api import parse_address
from coordinator.client import Client, ClientError, RefusedError
from coordinator.security import client_context

from .certs_cmd import create_dev_pki

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
log_format = "{log_format}"
{security}"""

HTTP_CONFIG = 'http_listen = "{http}"\n'


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


def _http_addresses(layout: dict[str, Any], http_listen: Optional[str]) -> dict[int, str]:
    """Node id → HTTP address: ``HOST:PORT`` gives PORT, PORT+1, ...; ``HOST`` alone
    (or port 0) free ports."""
    if not http_listen:
        return {}
    text = http_listen.strip()
    has_port = "]:" in text if text.startswith("[") else ":" in text  # IPv6 in brackets
    try:
        host, port = parse_address(text if has_port else f"{text}:0", listen=True)
    except ValueError as exc:
        raise click.UsageError(f"--http-listen: {exc}") from None
    shown = f"[{host}]" if ":" in host else host
    return {m["id"]: f"{shown}:{port + index if port else _free_port()}"
            for index, m in enumerate(layout["nodes"])}


class _Child:
    """One child process with its log file."""

    def __init__(self, name: str, command: list[str], log_path: str,
                 env: Optional[dict[str, str]] = None) -> None:
        self.name = name
        self.command = command
        self.log_path = log_path
        self._log = open(log_path, "ab")
        # A session of its own: Ctrl-C in the terminal reaches `cluster up` only,
        # which then stops the children in order.
        self.process = subprocess.Popen(command, stdout=self._log, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, start_new_session=True,
                                        env={**os.environ, **(env or {})},
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
@click.option("--tls", is_flag=True,
              help="Secure the cluster: TLS on every port and tokens for clients, from a "
                   "development CA created in DATA_DIR/certs.")
@click.option("--http-listen", metavar="HOST[:PORT]", default="127.0.0.1", show_default=True,
              help="Where nodes serve /metrics, /healthz, /readyz, /status: node N on "
                   "PORT+N-1, or on free ports when no port is given.")
@click.option("--no-http", is_flag=True, help="No HTTP port on the nodes.")
@click.option("--log-format", type=click.Choice(logs.FORMATS), default="text",
              show_default=True, help="Format of the nodes' log files.")
@click.option("--json", "as_json", is_flag=True,
              help="Print the endpoints and child processes as one JSON object, then "
                   "no live table.")
def up(nodes: int, workers: int, partitions: int, data_dir: Optional[str], lease: float,
       duration: Optional[float], tls: bool, http_listen: str, no_http: bool,
       log_format: str, as_json: bool) -> None:
    """Start NODES coordinator nodes and WORKERS demo workers on this machine, show a
    live status table, and stop everything cleanly at Ctrl-C."""
    if data_dir is None:
        data_dir = tempfile.mkdtemp(prefix="raftcoord-cluster-")
    data_dir = os.path.abspath(data_dir)
    os.makedirs(data_dir, exist_ok=True)
    layout = _layout(data_dir, nodes)
    layout["security"] = _dev_security(data_dir) if tls else None
    http = {} if no_http else _http_addresses(layout, http_listen)
    for member in layout["nodes"]:
        member["http"] = http.get(member["id"], "")
    failure = trio.run(_up, data_dir, layout, workers, partitions, lease, duration, as_json,
                       log_format)
    if failure:
        raise click.ClickException(f"the cluster did not come up: {failure}; the node logs "
                                   f"are in {data_dir} (node-N.log)")


class _StartFailed(Exception):
    """The cluster could not be started (the message says why)."""


def _dev_security(data_dir: str) -> dict[str, str]:
    """Paths of the development CA, certificates and tokens (created once)."""
    directory = os.path.join(data_dir, "certs")
    if not os.path.exists(os.path.join(directory, "ca.pem")):
        create_dev_pki(directory)
    paths = {name: os.path.join(directory, file) for name, file in (
        ("ca", "ca.pem"), ("cert", "node.pem"), ("key", "node-key.pem"),
        ("tokens", "tokens"), ("admin_token", "admin.token"),
        ("worker_token", "worker.token"))}
    for role in ("admin", "worker"):
        with open(paths[f"{role}_token"]) as handle:
            paths[f"{role}_token_value"] = handle.read().strip()
    return paths


async def _up(data_dir: str, layout: dict[str, Any], workers: int, partitions: int,
              lease: float, duration: Optional[float], as_json: bool,
              log_format: str = "text") -> str:
    """Run the cluster until a signal or ``duration``; stop every child.

    Returns:
        "" after a clean stop, else why the cluster could not be started.
    """
    nodes: list[_Child] = []
    agents: list[_Child] = []
    failure = ""
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        try:
            async with trio.open_nursery() as nursery:
                async def stop_at_signal() -> None:
                    async for _ in signals:  # also during startup
                        nursery.cancel_scope.cancel()
                        return
                nursery.start_soon(stop_at_signal)
                with trio.move_on_after(duration if duration is not None else math.inf):
                    try:
                        await _run_cluster(data_dir, layout, workers, partitions, lease,
                                           as_json, nodes, agents, log_format)
                    except* (_StartFailed, ClientError, OSError) as group:
                        failure = _reason(group)
                nursery.cancel_scope.cancel()
        finally:
            with trio.CancelScope(shield=True):
                if not as_json:
                    click.echo("stopping workers and nodes...", err=True)
                for agent in agents:
                    await agent.stop(timeout=5.0)
                for node in nodes:
                    await node.stop(timeout=10.0)
    if not as_json and not failure:
        click.echo(f"stopped; data and logs are in {data_dir}", err=True)
    return failure


def _reason(group: BaseExceptionGroup) -> str:
    """The first failure in ``group``, as one line."""
    while isinstance(group, BaseExceptionGroup):
        group = group.exceptions[0]
    return str(group) or type(group).__name__


async def _run_cluster(data_dir: str, layout: dict[str, Any], workers: int, partitions: int,
                       lease: float, as_json: bool, nodes: list[_Child],
                       agents: list[_Child], log_format: str = "text") -> None:
    """Start the children (appended to ``nodes`` and ``agents`` for the caller to
    stop), then show the live table until cancelled."""
    members = layout["nodes"]
    peers = ", ".join(f'"{m["id"]}={m["peer"]}/{m["client"]}"' for m in members)
    addresses = [m["client"] for m in members]
    security = layout.get("security")
    node_security = "".join(f'{name} = "{security[name]}"\n'
                            for name in ("cert", "key", "ca", "tokens")) if security else ""
    for member in members:
        config_path = os.path.join(data_dir, f"node-{member['id']}.toml")
        with open(config_path, "w") as handle:
            handle.write(NODE_CONFIG.format(
                node_id=member["id"], client=member["client"], peer=member["peer"],
                data_dir=os.path.join(data_dir, f"node-{member['id']}"), peers=peers,
                lease=lease, log_format=log_format, security=node_security))
            if member.get("http"):
                handle.write(HTTP_CONFIG.format(http=member["http"]))
        nodes.append(_Child(f"node-{member['id']}",
                            _self_command() + ["serve", "--config", config_path],
                            os.path.join(data_dir, f"node-{member['id']}.log")))
    credentials = {"ssl_context": client_context(security["ca"]),
                   "token": security["admin_token_value"]} if security else {}
    async with Client(addresses, timeout=30.0, **credentials) as client:
        async with trio.open_nursery() as startup:
            startup.start_soon(_watch_nodes, nodes)
            await client.leader_status(timeout=30.0)
            if partitions:
                try:
                    await client.create_group(DEMO_GROUP, partitions)
                except RefusedError as exc:
                    if exc.code != "already_exists":
                        raise
            startup.cancel_scope.cancel()
        worker_note = ""
        if workers and _worker_command_available():
            for index in range(workers):
                name = f"worker-{index + 1}"
                agents.append(_Child(name, _self_command() + [
                    "worker", "run", "--id", name, "--zone", f"zone-{index % 3 + 1}",
                    "--addresses", ",".join(addresses), "--lease", str(lease),
                    "--events", os.path.join(data_dir, f"{name}.events.jsonl")] + (
                    ["--ca", security["ca"]] if security else []),
                    os.path.join(data_dir, f"{name}.log"),
                    # In the environment, not on the command line that `ps` shows.
                    env={"RAFTCOORD_TOKEN": security["worker_token_value"]} if security
                    else None))
        elif workers:
            worker_note = "demo workers need `raftcoord worker run`, not installed"
        _print_endpoints(data_dir, members, nodes, agents, as_json, worker_note, security)
        if as_json:
            await trio.sleep_forever()
        if sys.stdout.isatty():
            await _live_table(client, nodes, agents)
        else:  # a log, not a terminal: a plain status every few seconds
            await _status_lines(client)


async def _watch_nodes(nodes: list[_Child]) -> None:
    """Fail the startup as soon as a node process exits (a port taken, a bad data
    directory...) instead of waiting for the client's deadline."""
    while True:
        for node in nodes:
            if not node.alive():
                raise _StartFailed(f"{node.name} exited with code {node.process.returncode} "
                                   f"(see {node.log_path})")
        await trio.sleep(0.2)


def _print_endpoints(data_dir: str, members: list, nodes: list[_Child], agents: list[_Child],
                     as_json: bool, worker_note: str,
                     security: Optional[dict[str, str]] = None) -> None:
    if as_json:  # one line, so that scripts can read it before the cluster stops
        click.echo(json.dumps({
            "data_dir": data_dir,
            "addresses": ",".join(m["client"] for m in members),
            "nodes": [{"id": m["id"], "client": m["client"], "peer": m["peer"],
                       "http": f"http://{m['http']}" if m.get("http") else "", "pid": n.pid,
                       "command": n.command, "log": n.log_path}
                      for m, n in zip(members, nodes)],
            "workers": [{"id": a.name, "pid": a.pid, "command": a.command, "log": a.log_path,
                         "events": a.command[a.command.index("--events") + 1]}
                        for a in agents],
            "tls": {"ca": security["ca"], "admin_token_file": security["admin_token"],
                    "tokens": security["tokens"]} if security else None,
        }, sort_keys=True))
        sys.stdout.flush()
        return
    click.echo(f"raftcoord cluster up: {len(nodes)} nodes, {len(agents)} workers; "
               f"data and logs in {data_dir}")
    for member, node in zip(members, nodes):
        http = f"  http://{member['http']}/metrics" if member.get("http") else ""
        click.echo(f"  node {member['id']}: client {member['client']}  peer {member['peer']}  "
                   f"pid {node.pid}{http}")
    for agent in agents:
        click.echo(f"  {agent.name}: pid {agent.pid}")
    click.echo("  kill -9 a pid to watch the cluster fail over")
    secure = f" --ca {security['ca']} --token $(cat {security['admin_token']})" \
        if security else ""
    click.echo(f"  try: raftcoord status -a {','.join(m['client'] for m in members)}{secure}")
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
    for column in ("node", "role", "term", "applied", "client", "pid", "process"):
        members.add_column(column)
    by_id = {n.name: n for n in nodes}
    for node_id, addresses in sorted(leader["addresses"].items(), key=lambda i: int(i[0])):
        status = view["nodes"].get(node_id)
        pid, process = _process(by_id.get(f"node-{node_id}"))
        role = "learner" if int(node_id) in leader["learners"] else ""
        if status is None:
            members.add_row(node_id, "[red]down[/red]", "-", "-", addresses["client"], pid,
                            process)
        else:
            members.add_row(node_id, status["role"] + (f" ({role})" if role else ""),
                            str(status["term"]), str(status["applied"]), addresses["client"],
                            pid, process)
    summary = Text(f"workers: {leader['live_workers']} live   partitions: "
                   f"{leader['partitions']}   without owner: {leader['unowned_slots']}   "
                   f"moves in flight: {leader['pending_moves']}", style="bold")
    workers = Table()
    for column in ("worker", "zone", "state", "partitions", "pid", "process"):
        workers.add_column(column)
    agents_by_name = {a.name: a for a in agents}
    for worker in leader["workers"]:
        pid, process = _process(agents_by_name.get(worker["id"]))
        workers.add_row(worker["id"], worker["zone"], worker["state"], str(worker["partitions"]),
                        pid, process)
    moves = Table()
    for column in ("partition", "to worker", "epoch"):
        moves.add_column(column)
    for move in reversed(leader["recent_moves"][-8:]):  # newest first
        moves.add_row(move["partition"], move["worker"], str(move["epoch"]))
    return Group(header, members, summary, workers, Text("recent moves", style="bold"), moves)


def _process(child: Optional[_Child]) -> tuple[str, str]:
    """(pid, "running" or "exited") of a child of this `cluster up` ("-" if none)."""
    if child is None:
        return "-", "-"
    return str(child.pid), "running" if child.alive() else "[red]exited[/red]"
