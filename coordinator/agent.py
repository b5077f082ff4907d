"""The worker agent: a trio `Worker` that keeps a worker's session with the cluster.

An application embeds it like this::

    async with Worker("w1", ["127.0.0.1:7001", "127.0.0.1:7002"], zone="z1") as worker:
        async for event in worker.events():
            if isinstance(event, PartitionAcquired):
                start(event.partition_id, event.epoch)          # act only with this epoch
            elif isinstance(event, PartitionRevoked):
                await finish(event.partition_id)                # before event.deadline
                await worker.release(event.partition_id)
            elif isinstance(event, PartitionLost):
                stop_now(event.partition_id)                    # the lease ran out

and writes progress with `Worker.checkpoint`, which the coordinator applies only
while the partition's epoch is current (a fenced write).

Every rule — whom to heartbeat, what a heartbeat's answer means, when a partition is
acquired, revoked or lost, when to release or leave — is
`coordinator.worker.WorkerSession`; this module only moves frames over TCP and waits
for time. A partition is reported lost at its lease deadline on the worker's own
clock even when no coordinator node answers: the application must then stop at once.
"""

from __future__ import annotations

import contextlib
import logging
import math
import random
import ssl
import uuid
from typing import Any, AsyncIterator, Awaitable, Callable, Optional, Sequence

import trio

from .lease import DEFAULT_TIMING, LeaseTiming
from .security import AuthenticationFailed, connector
from .protocol import (
    Ack,
    CheckpointResult,
    FrameDecoder,
    Left,
    Nack,
    ProtocolError,
    Redirect,
    encode_frame,
)
from .worker import SessionEvent, WorkerSession

log = logging.getLogger(__name__)



class WorkerError(Exception):
    """Base class of the errors `Worker` raises."""


class NotActing(WorkerError):
    """The worker may not act for that partition and epoch now (no valid lease)."""


class CheckpointFailed(WorkerError):
    """The checkpoint's outcome is unknown: no node answered in time, the node was
    not the leader, or the connection broke. It may or may not have been applied."""


Connect = Callable[[str], Awaitable[trio.abc.Stream]]


async def open_tcp(address: str) -> trio.abc.Stream:
    """Connect to ``host:port`` (the default `Worker` transport)."""
    host, _, port = address.rpartition(":")
    return await trio.open_tcp_stream(host.strip("[]"), int(port))


class _Reply:
    def __init__(self) -> None:
        self.done = trio.Event()
        self.message: Any = None

    def finish(self, message: Any) -> None:
        if not self.done.is_set():
            self.message = message
            self.done.set()


class _Link:
    """One connection to one node, with its reader task."""

    def __init__(self, address: str, stream: trio.abc.Stream) -> None:
        self.address = address
        self.stream = stream
        self.send_lock = trio.Lock()
        self.closed = False
        self.waiting: set[int] = set()


class Worker:
    """A worker's session with a coordinator cluster (module docstring).

    Args:
        worker_id: the worker's stable identity.
        addresses: client addresses ``host:port`` of some cluster members; the leader
            is found from there (redirects are followed).
        zone: the worker's failure domain.
        address: where the worker's own clients reach it ("" = nobody).
        timing: lease timing; must be the servers' (`raftcoord serve` defaults to
            `DEFAULT_TIMING`).
        heartbeat_interval: seconds between two heartbeats (well below the lease).
        auto_release: give up revoked partitions without waiting for `release`.
        leave_on_exit: on leaving the ``async with`` block, stop acting for every
            partition and deregister (otherwise the leader expires the worker).
        clock: the worker's clock (seconds, never going back); trio's by default.
            Lease deadlines in events are readings of it.
        rng: random choices (which node to try); seeded from the OS by default.
        connect: opens a stream to an address (TCP by default; see
            `coordinator.security.connector` for TLS and a token).
        ssl_context / token: shorthand for ``connect=connector(ssl_context, token)``:
            TLS and a bearer token with the worker role.
        request_timeout: how long a checkpoint or leave waits for its answer.
    """

    def __init__(self, worker_id: str, addresses: Sequence[str], *, zone: str = "default",
                 address: str = "", timing: LeaseTiming = DEFAULT_TIMING,
                 heartbeat_interval: Optional[float] = None, auto_release: bool = False,
                 leave_on_exit: bool = True, clock: Callable[[], float] = trio.current_time,
                 rng: Optional[random.Random] = None, connect: Connect = open_tcp,
                 request_timeout: float = 2.0, ssl_context: Optional[ssl.SSLContext] = None,
                 token: Optional[str] = None) -> None:
        if not addresses:
            raise ValueError("give at least one cluster member address")
        self.worker_id = worker_id
        self.heartbeat_interval = heartbeat_interval or timing.lease_duration / 6
        self.leave_on_exit = leave_on_exit
        self.request_timeout = request_timeout
        self._clock = clock
        self._connect = connector(ssl_context, token) \
            if ssl_context is not None or token is not None else connect
        self._nodes = list(addresses)
        self.session = WorkerSession(
            worker_id, zone, timing, self._nodes, rng or random.Random(), address=address,
            process=uuid.uuid4().hex, auto_release=auto_release, redirect_target=self._follow)
        self._link: Optional[_Link] = None
        self._connect_lock = trio.Lock()
        self._replies: dict[int, _Reply] = {}
        self._next_request = 0
        self._send_events, self._receive_events = trio.open_memory_channel(math.inf)
        self._wakeup = trio.Event()
        self._nursery: Optional[trio.Nursery] = None
        self._stopped = False

    # -- lifecycle ------------------------------------------------------------------

    async def __aenter__(self) -> "Worker":
        self._lifetime_manager = self._lifetime()
        return await self._lifetime_manager.__aenter__()

    async def __aexit__(self, *exc_info: Any) -> Optional[bool]:
        return await self._lifetime_manager.__aexit__(*exc_info)

    @contextlib.asynccontextmanager
    async def _lifetime(self) -> AsyncIterator["Worker"]:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            nursery.start_soon(self._deadlines)
            nursery.start_soon(self._heartbeats)
            try:
                yield self
                if self.leave_on_exit and not self._stopped:
                    with trio.move_on_after(self.request_timeout):
                        await self.leave()
            finally:
                self._stopped = True
                nursery.cancel_scope.cancel()
                if self._link is not None:
                    await self._close(self._link)
                self._send_events.close()

    # -- what the application uses ---------------------------------------------------

    def events(self) -> AsyncIterator[SessionEvent]:
        """The session's events, in order: `PartitionAcquired`, `LeaseRenewed`,
        `PartitionRevoked`, `PartitionReleased`, `PartitionLost` (see
        `coordinator.worker`). The iteration ends when the worker stops."""
        return self._receive_events

    def now(self) -> float:
        """The worker's clock (the one lease deadlines refer to)."""
        return self._clock()

    def may_act_for(self, partition_id: str, epoch: int) -> bool:
        """Whether the worker may act for ``(partition_id, epoch)`` right now."""
        return self.session.may_act_for(partition_id, epoch, self._clock())

    def acting(self) -> list[tuple[str, int, int]]:
        """(partition, slot, epoch) the worker may act for right now."""
        return self.session.acting(self._clock())

    async def checkpoint(self, partition_id: str, epoch: int, value: bytes, *,
                         on_issue: Optional[Callable[[], None]] = None) -> CheckpointResult:
        """Write the partition's checkpoint, fenced by ``epoch``.

        Args:
            on_issue: called just before the write is sent, once it is certain the
                worker may act for the partition at this instant; if it raises,
                nothing is sent and the exception propagates.

        Returns:
            The coordinator's answer: ``accepted`` False when the epoch is no longer
            current (the partition moved on).

        Raises:
            NotActing: the worker may not act for ``(partition_id, epoch)`` now.
            CheckpointFailed: no answer (the write may or may not have been applied).
        """
        message = self.session.checkpoint(partition_id, epoch, value, self._clock())
        if message is None:
            raise NotActing(f"no valid lease for {partition_id} at epoch {epoch}")
        if on_issue is not None:
            on_issue()
        answer = await self._request(message)
        if isinstance(answer, CheckpointResult):
            return answer
        raise CheckpointFailed(f"checkpoint of {partition_id} not answered: {answer!r}")

    async def release(self, partition_id: str) -> None:
        """Let go of a partition (after `PartitionRevoked`): the worker stops acting
        for it now and tells the leader, which may then give it to its new owner."""
        message = self.session.release(partition_id, self._clock())
        self._wakeup.set()
        if message is not None:
            await self._send_quietly(message)

    async def leave(self) -> bool:
        """Stop acting for every partition and deregister.

        Returns:
            True once the leader confirmed it (False: it expires the worker later).
        """
        message = self.session.stop(self._clock())
        self._flush_events()
        self._stopped = True
        self._wakeup.set()
        answer = await self._request(message)
        return isinstance(answer, Left)

    # -- the session loop ---------------------------------------------------------------

    async def _heartbeats(self) -> None:
        """Every heartbeat interval: heartbeat, releases, leave (rules 1, 4, 5)."""
        while not self._stopped:
            now = self._clock()
            await self._round(now)
            if self.session.left:
                self._stopped = True
                self._wakeup.set()
                return
            await trio.sleep(max(0.0, now + self.heartbeat_interval - self._clock()))

    async def _deadlines(self) -> None:
        """Report every change to the application, and each lease deadline the
        moment it passes, whatever the network does meanwhile."""
        while True:
            self._flush_events()
            if self._stopped and self.session.left:
                self._send_events.close()
                return
            deadline = self.session.next_deadline()
            wait = math.inf if deadline is None else max(0.0, deadline - self._clock())
            with trio.move_on_after(wait):
                await self._wakeup.wait()
            self._wakeup = trio.Event()

    async def _round(self, now: float) -> None:
        target, heartbeat = self.session.heartbeat(now)
        await self._send_quietly(heartbeat, target)
        for release in self.session.releases(now):
            await self._send_quietly(release)
        leave = self.session.leave(self._clock())
        if leave is not None:
            await self._send_quietly(leave)

    def _flush_events(self) -> None:
        for event in self.session.poll(self._clock()):
            try:
                self._send_events.send_nowait(event)
            except trio.ClosedResourceError:
                return

    def _input(self, message: Any) -> None:
        if isinstance(message, Ack):
            self.session.on_ack(message)
        elif isinstance(message, Nack):
            self.session.on_nack(message)
        elif isinstance(message, Redirect):
            self.session.on_redirect(message)
        self._wakeup.set()

    def _follow(self, redirect: Redirect) -> Optional[str]:
        address = redirect.address
        if address and address not in self._nodes:
            self._nodes.append(address)
        return address or None

    # -- frames -------------------------------------------------------------------------

    async def _request(self, message: Any) -> Any:
        self._next_request += 1
        request_id = self._next_request
        reply = self._replies[request_id] = _Reply()
        try:
            link = await self._send_quietly(message, request_id=request_id)
            if link is None:
                return None
            link.waiting.add(request_id)
            with trio.move_on_after(self.request_timeout):
                await reply.done.wait()
            return reply.message
        finally:
            self._replies.pop(request_id, None)

    async def _send_quietly(self, message: Any, target: Optional[str] = None,
                            request_id: int = 0) -> Optional[_Link]:
        """Send ``message`` to ``target`` (default: the session's); a node that
        cannot be reached is as good as one that does not answer."""
        target = target or self.session.target or self._nodes[0]
        link = await self._link_to(target)
        if link is None:
            return None
        try:
            async with link.send_lock:
                await link.stream.send_all(encode_frame(request_id, message))
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            log.info("worker %s: lost the connection to %s: %s", self.worker_id, target, exc)
            await self._close(link)
            return None
        return link

    async def _link_to(self, address: str) -> Optional[_Link]:
        async with self._connect_lock:  # one connection at a time, shared by all senders
            return await self._open_link(address)

    async def _open_link(self, address: str) -> Optional[_Link]:
        link = self._link
        if link is not None and link.address == address and not link.closed:
            return link
        if link is not None:
            await self._close(link)
        try:
            with trio.fail_after(self.request_timeout):
                stream = await self._connect(address)
        except AuthenticationFailed as exc:
            log.warning("worker %s: %s refused its credentials: %s", self.worker_id,
                        address, exc)
            return None
        except (OSError, trio.TooSlowError, ValueError) as exc:
            log.info("worker %s: cannot reach %s: %s", self.worker_id, address, exc)
            return None
        link = self._link = _Link(address, stream)
        assert self._nursery is not None
        self._nursery.start_soon(self._read, link)
        return link

    async def _read(self, link: _Link) -> None:
        decoder = FrameDecoder()
        try:
            while not link.closed:
                data = await link.stream.receive_some(1 << 16)
                if not data:
                    break
                for frame in decoder.feed(data):
                    reply = self._replies.get(frame.request_id)
                    if isinstance(frame.message, (Ack, Nack, Redirect)):
                        self._input(frame.message)
                    if reply is not None:
                        reply.finish(frame.message)
        except ProtocolError as exc:
            log.warning("worker %s: bad frame from %s: %s", self.worker_id, link.address, exc)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            pass
        await self._close(link)

    async def _close(self, link: _Link) -> None:
        if link.closed:
            return
        link.closed = True
        if self._link is link:
            self._link = None
        for request_id in link.waiting:
            reply = self._replies.get(request_id)
            if reply is not None:
                reply.finish(None)
        await trio.aclose_forcefully(link.stream)


__all__ = ["Worker", "WorkerError", "NotActing", "CheckpointFailed", "DEFAULT_TIMING",
           "open_tcp"]
