"""Demo workers on a real cluster from `raftcoord cluster up`: balance, failover of a
killed worker within the lease bound, a paused worker that stops acting at its
deadline, and a graceful drain. The event files are checked from outside."""

from __future__ import annotations

import time

import pytest
import trio

from cli.worker_events import check_event_files, intervals_and_writes, read_events
from coordinator.client import Client

from cluster_harness import LocalCluster, run_cli, wait_for

pytestmark = pytest.mark.slow

LEASE = 2.0
DRIFT = 0.05  # the servers' and workers' default clock drift bound


def workers_view(addresses: str) -> dict[str, dict]:
    async def main():
        async with Client(addresses.split(","), timeout=5) as client:
            return await client.list_workers()
    try:
        return {w["id"]: w for w in trio.run(main)}
    except Exception:
        return {}


def unowned(addresses: str) -> int:
    async def main():
        async with Client(addresses.split(","), timeout=5) as client:
            return (await client.leader_status())["unowned_slots"]
    return trio.run(main)


def held_at(events: list[dict], at: float) -> set[tuple[str, int]]:
    """(partition, epoch) pairs a worker's file shows it acting for at ``at``."""
    held: set[tuple[str, int]] = set()
    for event in events:
        if event["t"] > at:
            break
        key = (event.get("partition"), event.get("epoch"))
        if event["event"] in ("acquired", "renewed"):
            held.add(key)
        elif event["event"] in ("released", "lost"):
            held.discard(key)
    return held


def owned_by(view: dict, worker_id: str) -> int:
    return view.get(worker_id, {}).get("partitions", 0)


def test_workers_balance_fail_over_stop_at_their_deadline_and_drain(tmp_path):
    with LocalCluster(tmp_path / "cluster", workers=3, partitions=64, lease=LEASE) as cluster:
        addresses = cluster.addresses
        names = [w["id"] for w in cluster.info["workers"]]
        assert len(names) == 3

        def balanced():
            view = workers_view(addresses)
            counts = sorted(owned_by(view, name) for name in names)
            return counts == [21, 21, 22] and unowned(addresses) == 0
        wait_for(balanced, 40, interval=0.5, what="64 partitions balanced over 3 workers")

        # SIGSTOP one worker past its lease: it must stop acting at its deadline.
        paused = cluster.worker(names[1])
        wait_for(lambda: any(e["event"] == "checkpoint_issued"
                             for e in read_events(paused["events"])), 20,
                 what="the worker to act for its partitions")
        cluster.pause_worker(names[1])
        paused_at = time.monotonic()  # the event files' clock
        time.sleep(LEASE * 2.5)
        cluster.resume_worker(names[1])
        held = held_at(read_events(paused["events"]), paused_at)
        assert held  # it was acting for partitions when it stopped

        def lost_all():
            events = read_events(paused["events"])
            lost = {(e["partition"], e["epoch"]) for e in events
                    if e["event"] == "lost" and e["t"] > paused_at}
            return held <= lost and events
        events = wait_for(lost_all, 20, what="the paused worker to report its partitions lost")
        assert intervals_and_writes(events)[2] == []  # no write after its deadline
        wait_for(balanced, 40, interval=0.5, what="rebalanced after the pause")

        # kill -9 a worker: its partitions are owned elsewhere within the lease bound.
        victim = names[0]
        cluster.kill_worker(victim)
        killed_at = time.monotonic()
        bound = LEASE * (1 + DRIFT) + 3.0  # leader lease + heartbeat, planning, commit
        wait_for(lambda: unowned(addresses) == 0 and
                 owned_by(workers_view(addresses), victim) == 0, bound + 10, interval=0.2,
                 what="the killed worker's partitions to be owned elsewhere")
        assert time.monotonic() - killed_at <= bound

        # Drain: the partitions move off gracefully (released, never lost).
        drained = names[2]
        drain_started = time.monotonic()  # the event files' clock
        result = run_cli("workers", "drain", drained, "-a", addresses, "--json")
        assert result.returncode == 0, result.stderr
        wait_for(lambda: owned_by(workers_view(addresses), drained) == 0 and
                 unowned(addresses) == 0, 40, interval=0.5, what="the drain to finish")
        events = [e for e in read_events(cluster.worker(drained)["events"])
                  if e["t"] >= drain_started]
        assert any(e["event"] == "released" for e in events)
        assert not any(e["event"] == "lost" for e in events)
        # No two workers ever acted for one partition at the same instant.
        assert check_event_files([w["events"] for w in cluster.info["workers"]]) == []
    assert cluster.process.returncode == 0 and cluster.leftovers == []
