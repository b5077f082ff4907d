"""`raftcoord worker run`: a demo worker that acts for its partitions by writing
fenced checkpoints, and records what it does (`cli.worker_events`)."""

from __future__ import annotations

import json
import random
import signal
import time
from typing import Optional

import click
import trio

from coordinator.agent import DEFAULT_TIMING, CheckpointFailed, NotActing, Worker
from coordinator.lease import LeaseTiming
from coordinator.worker import (
    LeaseRenewed,
    PartitionAcquired,
    PartitionLost,
    PartitionReleased,
    PartitionRevoked,
)

from .worker_events import EventLog


class _Stale(Exception):
    """The recorded lease ran out between the check and the send."""


@click.group("worker")
def worker() -> None:
    """Run a worker process."""


@worker.command("run")
@click.option("--id", "worker_id", required=True, help="The worker's stable identity.")
@click.option("--zone", default="default", show_default=True, help="Its failure domain.")
@click.option("--connect", "--addresses", "connect", required=True,
              help="Client addresses of cluster members: host:port[,host:port...].")
@click.option("--lease", type=click.FloatRange(min=0.5), default=DEFAULT_TIMING.lease_duration,
              show_default=True,
              help="Worker lease in seconds; must be the servers' (serve --lease).")
@click.option("--max-drift", type=click.FloatRange(0, 0.5), default=DEFAULT_TIMING.max_drift,
              show_default=True,
              help="Clock drift bound; must be the servers'.")
@click.option("--safety-margin", type=click.FloatRange(min=0),
              default=DEFAULT_TIMING.safety_margin, show_default=True,
              help="How much earlier than its lease the worker stops; must be the servers'.")
@click.option("--heartbeat-interval", type=click.FloatRange(min=0.01), default=None,
              help="Seconds between heartbeats [lease / 6].")
@click.option("--checkpoint-interval", type=click.FloatRange(min=0.001), default=0.2,
              show_default=True, help="Seconds between two checkpoint writes.")
@click.option("--events", "events_path", type=click.Path(dir_okay=False), default=None,
              help="Append one JSON line per event to this file (see cli/worker_events.py).")
@click.option("--duration", type=click.FloatRange(min=0), default=None,
              help="Leave after this many seconds (default: at Ctrl-C or SIGTERM).")
@click.option("--json", "as_json", is_flag=True, help="Print events as JSON lines.")
def run(worker_id: str, zone: str, connect: str, lease: float, max_drift: float,
        safety_margin: float, heartbeat_interval: Optional[float],
        checkpoint_interval: float, events_path: Optional[str], duration: Optional[float],
        as_json: bool) -> None:
    """Run a demo worker: it registers, acts for the partitions it is given by writing
    fenced checkpoints, releases revoked ones, stops at once when a lease runs out,
    and leaves at Ctrl-C or SIGTERM (or when drained)."""
    addresses = [a.strip() for a in connect.split(",") if a.strip()]
    for address in addresses:
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit():
            raise click.BadParameter(f"{address!r} is not host:port", param_hint="--connect")
    try:
        timing = LeaseTiming(lease_duration=lease, max_drift=max_drift,
                             safety_margin=safety_margin)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--lease") from None
    echo = (lambda line: click.echo(json.dumps(line, sort_keys=True))) if as_json \
        else _echo_readable
    try:
        log = EventLog(events_path, worker_id, echo=echo)
    except OSError as exc:
        raise click.ClickException(f"cannot write {events_path}: {exc}") from None
    try:
        trio.run(_run, worker_id, zone, addresses, timing, heartbeat_interval,
                 checkpoint_interval, log, duration)
    finally:
        log.close()


def _echo_readable(line: dict) -> None:
    if line["event"].startswith("checkpoint") or line["event"] == "renewed":
        return
    extra = f" until {line['deadline'] - line['t']:.2f}s from now" if "deadline" in line else ""
    click.echo(f"{line['worker']}: {line['event']} {line.get('partition', '')} "
               f"epoch {line.get('epoch', '')}{extra}")


class _Demo:
    """What the demo does with its partitions; every line is written first."""

    def __init__(self, agent: Worker, log: EventLog) -> None:
        self.agent = agent
        self.log = log
        # partition -> (slot, epoch, deadline as recorded in the file)
        self.holding: dict[str, tuple[int, int, float]] = {}
        self.writes = 0

    async def follow(self) -> None:
        async for event in self.agent.events():
            pid = event.partition_id
            if isinstance(event, PartitionAcquired):
                self.log.write("acquired", partition=pid, slot=event.slot, epoch=event.epoch,
                               deadline=event.deadline)
                self.holding[pid] = (event.slot, event.epoch, event.deadline)
            elif isinstance(event, LeaseRenewed):
                self.log.write("renewed", partition=pid, epoch=event.epoch,
                               deadline=event.deadline)
                if pid in self.holding:
                    self.holding[pid] = (event.slot, event.epoch, event.deadline)
            elif isinstance(event, PartitionRevoked):
                self.log.write("revoked", partition=pid, epoch=event.epoch,
                               deadline=event.deadline)
                await self.let_go(pid)
            elif isinstance(event, PartitionLost):
                self.holding.pop(pid, None)
                self.log.write("lost", partition=pid, epoch=event.epoch)
            elif isinstance(event, PartitionReleased) and pid in self.holding:
                self.holding.pop(pid)
                self.log.write("released", partition=pid, epoch=event.epoch)

    async def let_go(self, pid: str) -> None:
        """Stop acting (and record it) first, then tell the coordinator."""
        held = self.holding.pop(pid, None)
        if held is not None:
            self.log.write("released", partition=pid, epoch=held[1])
        await self.agent.release(pid)

    def let_go_of_everything(self) -> None:
        for pid, (_, epoch, _) in sorted(self.holding.items()):
            self.log.write("released", partition=pid, epoch=epoch)
        self.holding.clear()

    async def work(self, interval: float) -> None:
        turn = 0
        while True:
            await trio.sleep(interval)
            if not self.holding:
                continue
            pids = sorted(self.holding)
            pid = pids[turn % len(pids)]
            turn += 1
            await self.checkpoint(pid)

    async def checkpoint(self, pid: str) -> None:
        slot, epoch, deadline = self.holding[pid]
        self.writes += 1
        write = self.writes

        def issue() -> None:
            # Act only inside the lease the file shows (a renewal may be in the
            # session already but not yet in the file).
            if time.monotonic() >= deadline or self.holding.get(pid, (0, -1))[1] != epoch:
                raise _Stale()
            self.log.write("checkpoint_issued", partition=pid, epoch=epoch, write=write)

        value = json.dumps({"worker": self.agent.worker_id, "epoch": epoch,
                            "write": write}).encode()
        try:
            result = await self.agent.checkpoint(pid, epoch, value, on_issue=issue)
        except (NotActing, _Stale):
            return
        except CheckpointFailed as exc:
            self.log.write("checkpoint_unknown", partition=pid, epoch=epoch, write=write,
                           detail=str(exc))
            return
        kind = "checkpoint_accepted" if result.accepted else "checkpoint_refused"
        self.log.write(kind, partition=pid, epoch=epoch, write=write, detail=result.detail)


async def _run(worker_id: str, zone: str, addresses: list[str], timing: LeaseTiming,
               heartbeat_interval: Optional[float], checkpoint_interval: float, log: EventLog,
               duration: Optional[float]) -> None:
    agent = Worker(worker_id, addresses, zone=zone, timing=timing,
                   heartbeat_interval=heartbeat_interval, clock=time.monotonic,
                   rng=random.Random(), leave_on_exit=False)
    demo = _Demo(agent, log)
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with agent:
            async with trio.open_nursery() as nursery:
                async def stop_on_signal() -> None:
                    async for _ in signals:
                        nursery.cancel_scope.cancel()
                        return

                async def follow_then_stop() -> None:
                    await demo.follow()  # ends when the worker left (drained)
                    nursery.cancel_scope.cancel()

                nursery.start_soon(stop_on_signal)
                nursery.start_soon(follow_then_stop)
                nursery.start_soon(demo.work, checkpoint_interval)
                if duration is not None:
                    nursery.cancel_scope.deadline = trio.current_time() + duration
            if not agent.session.left:
                demo.let_go_of_everything()
                with trio.move_on_after(2.0):
                    await agent.leave()

