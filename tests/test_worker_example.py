"""The README's worker is examples/worker.py, and it works against a real node."""

from __future__ import annotations

import importlib.util
import pathlib
import re

import trio

from coordinator.client import Client
from coordinator.members import Member
from coordinator.server import CoordinatorServer, ServerConfig

ROOT = pathlib.Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "worker.py"


def test_the_readme_shows_the_example_worker():
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)
    assert EXAMPLE.read_text() in blocks


async def test_the_example_worker_checkpoints_its_partitions(nursery, tmp_path):
    spec = importlib.util.spec_from_file_location("example_worker", EXAMPLE)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    config = ServerConfig(node_id=1, data_dir=str(tmp_path / "n1"), listen="127.0.0.1:0",
                          peer_listen="127.0.0.1:0", fsync=False, tick_interval=0.01,
                          members=(Member(node_id=1, peer_address="127.0.0.1:1",
                                          client_address="127.0.0.1:1"),))
    server = CoordinatorServer(config)
    await nursery.start(server.run)
    with trio.fail_after(30):
        async with Client([server.client_address], timeout=10) as client:
            await client.create_group("g", 2)
            async with trio.open_nursery() as inner:
                inner.start_soon(example.main, "w1", [server.client_address])
                while True:
                    items = [await client.kv_get(f"ckpt/g/{i}") for i in range(2)]
                    if all(item.value is not None and item.value.startswith(b"step")
                           for item in items):
                        break
                    await trio.sleep(0.1)
                inner.cancel_scope.cancel()
    await server.stop()
