"""`raftcoord serve`: run one coordinator node until SIGTERM or Ctrl-C.

Settings come from, in order of precedence: command-line options, ``RAFTCOORD_*``
environment variables, a TOML file given with ``--config`` (keys named like the
options with underscores: ``id``, ``data_dir``, ``listen``, ``peer_listen``, ``peers``,
``join``, ``advertise_client``, ``advertise_peer``, ``fsync``, ``lease``, ``tick``,
``log_level``), then the defaults.
"""

from __future__ import annotations

import json
import logging
import signal
import tomllib
from typing import Any, Optional

import click
import trio

from coordinator.api import parse_address
from coordinator.client import Client, ClientError
from coordinator.members import Member
from coordinator.server import CoordinatorServer, ServerConfig
from raft.errors import StorageError

log = logging.getLogger("raftcoord.serve")

_DEFAULTS: dict[str, Any] = {
    "listen": "127.0.0.1:7001", "peer_listen": "127.0.0.1:7101", "peers": "", "join": "",
    "fsync": True, "lease": 3.0, "tick": 0.1, "log_level": "info",
    "advertise_client": None, "advertise_peer": None,
}


def _load_config(path: Optional[str]) -> dict[str, Any]:
    if not path:
        return {}
    try:
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
    except OSError as exc:
        raise click.UsageError(f"cannot read the config file {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise click.UsageError(f"{path} is not valid TOML: {exc}") from None
    known = {"id", "data_dir", *_DEFAULTS}
    unknown = set(data) - known
    if unknown:
        raise click.UsageError(f"{path}: unknown settings {', '.join(sorted(unknown))}")
    if "id" in data:
        data["node_id"] = data.pop("id")
    if isinstance(data.get("peers"), list):
        data["peers"] = ",".join(data["peers"])
    if isinstance(data.get("join"), list):
        data["join"] = ",".join(data["join"])
    return data


def parse_members(text: str) -> tuple[Member, ...]:
    """``ID=PEER/CLIENT,ID=PEER/CLIENT,...`` → members (a UsageError when malformed)."""
    members = []
    for part in (p for p in text.split(",") if p.strip()):
        try:
            members.append(Member.parse(part))
        except ValueError as exc:
            raise click.UsageError(f"--peers: {exc}") from None
    ids = [m.node_id for m in members]
    if len(set(ids)) != len(ids):
        raise click.UsageError("--peers names a node id twice")
    return tuple(members)


def resolve_settings(config_file: Optional[str],
                     options: dict[str, Any]) -> tuple[ServerConfig, list[str], str]:
    """The node's configuration from the options (command line or environment: click
    resolved those), then the TOML file, then the defaults.

    Returns:
        (server configuration, addresses to join through, log level).

    Raises:
        click.UsageError: a missing or invalid setting.
    """
    settings = dict(_DEFAULTS)
    settings.update(_load_config(config_file))
    settings.update({k: v for k, v in options.items() if v is not None})
    if not settings.get("node_id"):
        raise click.UsageError("give the node's id with --id (or RAFTCOORD_ID, or 'id' in "
                               "--config)")
    if not settings.get("data_dir"):
        raise click.UsageError("give a data directory with --data-dir")
    node_id = int(settings["node_id"])
    members = parse_members(str(settings["peers"]))
    join = [a.strip() for a in str(settings["join"]).split(",") if a.strip()]
    if not members and not join:
        raise click.UsageError("give the initial members with --peers, or --join a cluster")
    if members and node_id not in {m.node_id for m in members}:
        raise click.UsageError(f"--peers does not name this node ({node_id})")
    try:
        config = ServerConfig(
            node_id=node_id, data_dir=str(settings["data_dir"]), listen=str(settings["listen"]),
            peer_listen=str(settings["peer_listen"]), members=members,
            fsync=bool(settings["fsync"]), lease_duration=float(settings["lease"]),
            tick_interval=float(settings["tick"]),
            advertise_client=settings["advertise_client"] or None,
            advertise_peer=settings["advertise_peer"] or None)
        parse_address(config.listen, listen=True)
        parse_address(config.peer_listen, listen=True)
        for advertised in (config.advertise_client, config.advertise_peer):
            if advertised is not None:
                parse_address(advertised)
    except (TypeError, ValueError) as exc:
        raise click.UsageError(str(exc)) from None
    return config, join, str(settings["log_level"])


@click.command("serve")
@click.option("--config", "config_file", envvar="RAFTCOORD_CONFIG",
              type=click.Path(dir_okay=False), help="TOML file with these settings.")
@click.option("--id", "node_id", envvar="RAFTCOORD_ID", type=click.IntRange(min=1),
              help="This node's id (a positive integer, unique in the cluster).")
@click.option("--data-dir", envvar="RAFTCOORD_DATA_DIR", type=click.Path(file_okay=False),
              help="Directory of this node's log and snapshots (a restart resumes from it).")
@click.option("--listen", envvar="RAFTCOORD_LISTEN", metavar="HOST:PORT",
              help="Client address (workers, clients, the CLI) [127.0.0.1:7001].")
@click.option("--peer-listen", envvar="RAFTCOORD_PEER_LISTEN", metavar="HOST:PORT",
              help="Raft peer address [127.0.0.1:7101].")
@click.option("--peers", envvar="RAFTCOORD_PEERS", metavar="ID=PEER/CLIENT,...",
              help="Initial members of a new cluster, this node included, e.g. "
                   "1=127.0.0.1:7101/127.0.0.1:7001,2=...")
@click.option("--join", envvar="RAFTCOORD_JOIN", metavar="HOST:PORT,...",
              help="Join a running cluster through these member client addresses (the "
                   "node is added as a learner; promote it with `members promote`).")
@click.option("--advertise-client", envvar="RAFTCOORD_ADVERTISE_CLIENT", metavar="HOST:PORT",
              help="The client address others use to reach this node (default: --listen; "
                   "set it when listening on 0.0.0.0).")
@click.option("--advertise-peer", envvar="RAFTCOORD_ADVERTISE_PEER", metavar="HOST:PORT",
              help="The peer address others use to reach this node (default: --peer-listen).")
@click.option("--fsync/--no-fsync", default=None, envvar="RAFTCOORD_FSYNC",
              help="fsync the log before acknowledging [on].")
@click.option("--lease", type=click.FloatRange(min=0.5), envvar="RAFTCOORD_LEASE",
              help="Worker lease in seconds; every node and worker must use the same [3.0].")
@click.option("--tick", type=click.FloatRange(min=0.001), envvar="RAFTCOORD_TICK",
              help="Seconds per raft tick; elections time out after 10-20 ticks, leaders heartbeat every tick [0.1].")
@click.option("--log-level", envvar="RAFTCOORD_LOG_LEVEL",
              type=click.Choice(["debug", "info", "warning", "error"]),
              help="Log verbosity [info].")
@click.option("--json", "as_json", is_flag=True,
              help="Print the bound addresses as one JSON line once serving.")
def serve(config_file: Optional[str], as_json: bool, **options: Any) -> None:
    """Run one coordinator node until SIGTERM or Ctrl-C (then hand leadership over,
    flush and exit 0)."""
    config, join, log_level = resolve_settings(config_file, options)
    logging.basicConfig(level=log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        trio.run(_serve, config, join, as_json)
    except (OSError, StorageError, BaseExceptionGroup) as exc:
        cause = _startup_error(exc)
        if cause is None:
            raise
        raise click.ClickException(f"node {config.node_id} cannot start: {cause}") from None


def _startup_error(exc: BaseException) -> Optional[BaseException]:
    """The port-in-use or locked-directory error inside ``exc`` (None: another kind)."""
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = _startup_error(inner)
            if found is not None:
                return found
        return None
    return exc if isinstance(exc, (OSError, StorageError)) else None


async def _serve(config: ServerConfig, join: list[str], as_json: bool) -> None:
    server = CoordinatorServer(config)
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with trio.open_nursery() as nursery:
            await nursery.start(server.run)
            if as_json:
                print(json.dumps({"node": config.node_id, "client": server.client_address,
                                  "peer": server.peer_address}), flush=True)
            if join:
                nursery.start_soon(_join, server, join)
            async for signum in signals:
                log.info("signal %d: stopping", signum)
                await server.stop()
                break
            nursery.cancel_scope.cancel()
    log.info("node %d stopped", config.node_id)


async def _join(server: CoordinatorServer, join: list[str]) -> None:
    """Ask the cluster to add this node as a learner, until it is a member."""
    async with Client(join, timeout=10.0) as client:
        while True:
            try:
                known = await client.members()
                for member in known["members"]:
                    if member["peer"] and member["id"] != server.config.node_id:
                        server.transport.set_peer(member["id"], parse_address(member["peer"]))
                await client.add_member(server.config.node_id, server.peer_address,
                                        server.client_address)
                log.info("node %d joined the cluster as a learner", server.config.node_id)
                return
            except ClientError as exc:
                log.warning("joining the cluster failed (%s); retrying", exc)
                await trio.sleep(1.0)
