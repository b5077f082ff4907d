"""Hostile bytes on a real node's client and peer ports: each bad connection is
closed, and the cluster keeps serving a running workload."""

from __future__ import annotations

import os
import random
import struct

import cbor2
import pytest
import trio

from coordinator.api import parse_address
from coordinator.client import Client
from coordinator.protocol import PROTOCOL_VERSION
from raft import codec
from raft.transport import HANDSHAKE_MAGIC, HANDSHAKE_VERSION

from cluster_harness import LocalCluster

pytestmark = pytest.mark.slow

_LENGTH = struct.Struct(">I")


def client_port_attacks() -> dict[str, tuple[bytes, bool]]:
    """name -> (bytes, close our side after sending them)."""
    unknown_tag = cbor2.dumps({})
    header = struct.pack(">BQH", PROTOCOL_VERSION, 7, 9999)
    return {
        "random bytes": (random.Random(1).randbytes(4096), False),
        "truncated frame": (_LENGTH.pack(200) + b"\x01" + b"\x00" * 20, True),
        "oversized length": (_LENGTH.pack(0xFFFFFFF0) + b"\x01", False),
        "unknown type": (_LENGTH.pack(len(header) + len(unknown_tag)) + header + unknown_tag,
                         False),
    }


def peer_port_attacks() -> dict[str, tuple[bytes, bool]]:
    handshake = cbor2.dumps([HANDSHAKE_MAGIC, HANDSHAKE_VERSION, "raftcoord", 99])
    hello = _LENGTH.pack(len(handshake)) + handshake
    unknown = cbor2.dumps([codec.FORMAT_VERSION, 250, 1, 99, 1])
    return {
        "random bytes": (random.Random(2).randbytes(4096), False),
        "truncated frame": (_LENGTH.pack(200) + b"\x82\x01", True),
        "oversized length": (_LENGTH.pack(0xFFFFFFF0) + b"\x00", False),
        "unknown type": (hello + _LENGTH.pack(len(unknown)) + unknown, False),
    }


async def attack(address: str, payload: bytes, half_close: bool) -> None:
    """Send ``payload`` and wait (bounded) until the node closes the connection."""
    host, port = parse_address(address)
    stream = await trio.open_tcp_stream(host, port)
    try:
        await stream.send_all(payload)
        if half_close:
            await stream.send_eof()
        with trio.fail_after(10):
            while await stream.receive_some(65536):
                pass  # e.g. a bad_request reply before the close
    except trio.BrokenResourceError:
        pass  # reset by the node: closed as well
    finally:
        await stream.aclose()


def test_garbage_on_both_ports_closes_only_those_connections(tmp_path):
    with LocalCluster(tmp_path / "cluster") as cluster:
        nodes = cluster.info["nodes"]

        async def main() -> None:
            progress = {"ok": 0}

            async def workload() -> None:
                async with Client(cluster.addresses.split(","), timeout=20) as client:
                    i = 0
                    while True:
                        await client.kv_put(f"load/{i % 50}", b"%d" % i)
                        progress["ok"] += 1
                        i += 1

            async with trio.open_nursery() as nursery:
                nursery.start_soon(workload)
                with trio.fail_after(20):
                    while progress["ok"] < 20:
                        await trio.sleep(0.05)
                for node in nodes:
                    peer = next(n["peer"] for n in nodes if n["id"] == node["id"])
                    for name, (payload, half_close) in client_port_attacks().items():
                        with trio.fail_after(15):
                            await attack(node["client"], payload, half_close)
                    for name, (payload, half_close) in peer_port_attacks().items():
                        with trio.fail_after(15):
                            await attack(peer, payload, half_close)
                before = progress["ok"]
                with trio.fail_after(20):
                    while progress["ok"] < before + 50:
                        await trio.sleep(0.05)
                nursery.cancel_scope.cancel()
            # Every node is still up and in the cluster.
            async with Client(cluster.addresses.split(","), timeout=10) as client:
                for node in nodes:
                    status = await client.status(node["client"])
                    assert status["voters"] == [1, 2, 3]

        trio.run(main)
        for node in nodes:
            log = open(node["log"]).read()
            for reason in ("exceeds", "connection closed inside a frame", "unknown message tag",
                           "rejected connection", "undecodable message"):
                assert reason in log, (node["id"], reason)
        assert all(os.kill(n["pid"], 0) is None for n in nodes)
