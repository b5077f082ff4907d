"""`Client`: the trio client of a coordinator cluster.

Give it the client addresses of any members; it finds the leader and keeps talking
to it::

    async with Client(["127.0.0.1:7001", "127.0.0.1:7002"]) as client:
        await client.kv_put("config/mode", b"fast")
        item = await client.kv_get("config/mode")      # linearizable

Rules:

1. **Leader discovery.** A request goes to the node believed to lead (at first, the
   first address). A ``not_leader`` answer names the leader's client address: the
   request is re-sent there at once. With no hint, or when a node cannot be
   reached, the next known address is tried after a backoff.
2. **Retries within a deadline.** Every call has a deadline (``timeout``);
   ``overloaded``, ``unavailable``, ``timeout`` answers and lost connections are
   retried with exponential backoff (``backoff_initial`` doubling up to
   ``backoff_max``, each delay drawn uniformly from [delay/2, delay]: full jitter
   would let a burst of clients retry in lockstep less often, but never wait
   nothing). When the deadline passes, `RequestTimeout` is raised.
3. **Idempotent writes.** Every write gets a sequence number from this client
   (``client_id`` is random per `Client`) that stays the same across its retries;
   the state machine applies it once (`coordinator.commands.ClientRequest`), so a
   retried put or create whose first attempt did apply is not applied twice.
4. **Typed errors.** `BadRequestError` and `RefusedError` (the state machine said
   no: ``code`` is e.g. ``version_mismatch``, ``unknown_worker``, ``stale_epoch``) are
   raised at once, never retried.
"""

from __future__ import annotations

import itertools
import random
import uuid
from typing import Any, Optional, Sequence

import attrs
import trio

from . import api
from .api import ErrorKind
from .protocol import FrameDecoder, ProtocolError, encode_frame

__all__ = ["BadRequestError", "Client", "ClientError", "KvItem", "RefusedError",
           "RequestTimeout"]


class ClientError(Exception):
    """Base class of the errors `Client` raises."""


class BadRequestError(ClientError):
    """The node says the request makes no sense; retrying would not help."""


class RefusedError(ClientError):
    """The state machine refused the command; nothing changed.

    Attributes:
        code: the `coordinator.commands.ErrorCode` value (``version_mismatch``,
            ``unknown_worker``, ``unknown_group``, ``stale_epoch``, ``fenced``, ...).
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}" if message else code)
        self.code = code


class RequestTimeout(ClientError):
    """No answer within the deadline. A write may or may not have been applied
    (retrying it through the same `Client` is safe only with its own retries)."""


@attrs.frozen
class KvItem:
    """A metadata key's value and version (``value`` None and version 0: absent)."""

    key: str
    value: Optional[bytes]
    version: int


class _ConnectionLost(Exception):
    pass


class _Connection:
    """One TCP connection to a node; replies are matched to requests by id."""

    def __init__(self, address: str, stream: trio.SocketStream) -> None:
        self.address = address
        self.stream = stream
        self.closed = False
        self._waiters: dict[int, list] = {}
        self._ids = itertools.count(1)
        self._send_lock = trio.Lock()

    async def read_replies(self) -> None:
        decoder = FrameDecoder()
        try:
            while True:
                data = await self.stream.receive_some(1 << 16)
                if not data:
                    break
                for frame in decoder.feed(data):
                    slot = self._waiters.pop(frame.request_id, None)
                    if slot is not None:
                        slot[1] = frame.message
                        slot[0].set()
        except (ProtocolError, trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            pass
        finally:
            self.close()

    def close(self) -> None:
        self.closed = True
        for event, _ in self._waiters.values():
            event.set()
        self._waiters.clear()
        self.stream.socket.close()

    async def request(self, message: Any) -> Any:
        if self.closed:
            raise _ConnectionLost(self.address)
        request_id = next(self._ids)
        slot: list = [trio.Event(), None]
        self._waiters[request_id] = slot
        try:
            async with self._send_lock:
                await self.stream.send_all(encode_frame(request_id, message))
            await slot[0].wait()
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            self.close()
            raise _ConnectionLost(self.address) from exc
        finally:
            self._waiters.pop(request_id, None)
        if slot[1] is None:
            raise _ConnectionLost(self.address)
        return slot[1]


class Client:
    """An async client of a coordinator cluster (see the module docstring).

    Args:
        addresses: client addresses (``host:port``) of one or more members.
        timeout: default deadline of every call, in seconds.
        connect_timeout: deadline of one connection attempt.
        attempt_timeout: how long one try waits for its answer before the request
            is sent again (to the next address when the node stays silent, e.g. a
            paused process). Writes are deduplicated, so a late first try is harmless.
        backoff_initial / backoff_max: retry delays (rule 2).
        client_id: identity for write deduplication (default: random).
        rng: source of jitter (seed it for reproducible delays).

    Use as ``async with Client([...]) as client:``.
    """

    def __init__(self, addresses: Sequence[str], *, timeout: float = 10.0,
                 connect_timeout: float = 2.0, attempt_timeout: float = 3.0,
                 backoff_initial: float = 0.05,
                 backoff_max: float = 1.0, client_id: Optional[str] = None,
                 rng: Optional[random.Random] = None) -> None:
        if isinstance(addresses, str):
            addresses = [addresses]
        if not addresses:
            raise ValueError("give at least one member address")
        for address in addresses:
            api.parse_address(address)
        self.addresses: list[str] = list(dict.fromkeys(addresses))
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.attempt_timeout = attempt_timeout
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.client_id = client_id or uuid.uuid4().hex
        self._rng = rng or random.Random()
        self._leader: Optional[str] = None
        self._next = 0
        self._connections: dict[str, _Connection] = {}
        self._seq = itertools.count(1)
        self._unanswered: set[int] = set()
        self._nursery: Optional[trio.Nursery] = None
        self._nursery_manager: Any = None

    async def __aenter__(self) -> "Client":
        self._nursery_manager = trio.open_nursery()
        self._nursery = await self._nursery_manager.__aenter__()
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.aclose()
        # The nursery only runs reply readers, which never raise: the body's own
        # exception propagates as is, not wrapped in an exception group.
        self._nursery.cancel_scope.cancel()
        await self._nursery_manager.__aexit__(None, None, None)
        self._nursery = None

    async def aclose(self) -> None:
        """Close every connection."""
        for connection in self._connections.values():
            connection.close()
        self._connections.clear()

    @property
    def leader(self) -> Optional[str]:
        """The client address of the node this client believes leads (None: unknown)."""
        return self._leader

    # -- the request loop -------------------------------------------------------------

    async def _connection(self, address: str) -> _Connection:
        connection = self._connections.get(address)
        if connection is not None and not connection.closed:
            return connection
        if self._nursery is None:
            raise RuntimeError("use the Client as 'async with Client(...) as client'")
        host, port = api.parse_address(address)
        try:
            with trio.fail_after(self.connect_timeout):
                stream = await trio.open_tcp_stream(host, port)
        except (OSError, trio.TooSlowError) as exc:
            raise _ConnectionLost(address) from exc
        connection = _Connection(address, stream)
        self._connections[address] = connection
        self._nursery.start_soon(connection.read_replies)
        return connection

    def _rotate(self) -> str:
        address = self.addresses[self._next % len(self.addresses)]
        self._next += 1
        return address

    async def call(self, request: Any, *, timeout: Optional[float] = None,
                   address: Optional[str] = None) -> Any:
        """Send one request (retrying per the rules); its decoded result.

        Args:
            request: a `coordinator.api` request.
            timeout: deadline in seconds (default: the client's).
            address: ask this node only, without following redirects (status).

        Raises:
            BadRequestError, RefusedError: at once.
            RequestTimeout: no success within the deadline.
        """
        deadline = trio.current_time() + (self.timeout if timeout is None else timeout)
        delay = self.backoff_initial
        target = address or self._leader or self._rotate()
        last = "no attempt finished"
        while True:
            remaining = deadline - trio.current_time()
            if remaining <= 0:
                raise RequestTimeout(f"{type(request).__name__}: no answer within the "
                                     f"deadline (last: {last})")
            reply = await self._attempt(target, request, min(remaining, self.attempt_timeout))
            if isinstance(reply, api.OkReply):
                if address is None:
                    self._leader = target
                return reply.value
            if isinstance(reply, str):  # unreachable or silent
                last = reply
                if self._leader == target:
                    self._leader = None
            else:
                last = f"{target}: {reply.kind} {reply.message}"
                if reply.kind == ErrorKind.BAD_REQUEST.value:
                    raise BadRequestError(reply.message)
                if reply.kind == ErrorKind.REFUSED.value:
                    raise RefusedError(reply.code, reply.message)
                if reply.kind == ErrorKind.NOT_LEADER.value:
                    if self._leader == target:
                        self._leader = None
                    if address is not None:
                        raise BadRequestError(f"{address} is not the leader")
                    hint = reply.leader_address
                    if hint and hint != target:
                        if hint not in self.addresses:
                            self.addresses.append(hint)
                        target = hint
                        continue  # at once: the hint names the leader
            await trio.sleep(min(self._rng.uniform(delay / 2, delay),
                                 max(0.0, deadline - trio.current_time())))
            delay = min(delay * 2, self.backoff_max)
            # A busy or slow node is asked again; an unreachable or silent one, a
            # follower without a hint, or one that cannot serve now is replaced by the
            # next address.
            if address is None and (isinstance(reply, str) or reply.kind not in (
                    ErrorKind.TIMEOUT.value, ErrorKind.OVERLOADED.value)):
                target = self._leader or self._rotate()

    async def _attempt(self, target: str, request: Any, timeout: float) -> Any:
        """One try: the node's reply, or a string saying why there is none."""
        connection: Optional[_Connection] = None
        with trio.move_on_after(timeout):
            try:
                connection = await self._connection(target)
                return await connection.request(request)
            except _ConnectionLost:
                return f"{target} unreachable"
        if connection is not None:
            connection.close()  # a late reply would be dropped anyway; start afresh
        return f"{target} did not answer within {timeout:.1f} s"

    async def _write(self, request_type: type, timeout: Optional[float], **fields: Any) -> Any:
        seq = next(self._seq)
        self._unanswered.add(seq)
        try:
            request = request_type(client_id=self.client_id, seq=seq,
                                   acked_below=min(self._unanswered), **fields)
            return await self.call(request, timeout=timeout)
        finally:
            self._unanswered.discard(seq)

    # -- metadata KV ------------------------------------------------------------------

    async def kv_get(self, key: str, *, timeout: Optional[float] = None) -> KvItem:
        """Linearizable read of ``key`` (value None and version 0 when absent)."""
        return _item(await self.call(api.KvGetRequest(key=key), timeout=timeout))

    async def kv_list(self, prefix: str = "", limit: int = 0, *,
                      timeout: Optional[float] = None) -> list[KvItem]:
        """Linearizable listing of the keys starting with ``prefix``, in key order."""
        result = await self.call(api.KvListRequest(prefix=prefix, limit=limit), timeout=timeout)
        return [_item(entry) for entry in result["entries"]]

    async def kv_put(self, key: str, value: bytes, *,
                     timeout: Optional[float] = None) -> KvItem:
        """Set ``key``; returns its new version."""
        return _item(await self._write(api.KvPutRequest, timeout, key=key, value=value))

    async def kv_cas(self, key: str, expected_version: int, value: bytes, *,
                     timeout: Optional[float] = None) -> KvItem:
        """Set ``key`` only at ``expected_version`` (0: must not exist).

        Raises:
            RefusedError: code ``version_mismatch`` when the version differs.
        """
        return _item(await self._write(api.KvCasRequest, timeout, key=key,
                                       expected_version=expected_version, value=value))

    async def kv_delete(self, key: str, expected_version: Optional[int] = None, *,
                        timeout: Optional[float] = None) -> KvItem:
        """Delete ``key`` (only at ``expected_version`` when given)."""
        return _item(await self._write(api.KvDeleteRequest, timeout, key=key,
                                       expected_version=expected_version))

    # -- partitions and workers -------------------------------------------------------

    async def create_group(self, name: str, count: int, *, weight: int = 1,
                           replication_factor: int = 1,
                           timeout: Optional[float] = None) -> dict[str, Any]:
        """Create partitions ``name/0`` .. ``name/{count-1}``."""
        return await self._write(api.CreateGroupRequest, timeout, name=name, count=count,
                                 weight=weight, replication_factor=replication_factor)

    async def delete_group(self, name: str, *, timeout: Optional[float] = None) -> dict:
        """Delete a partition group and its partitions."""
        return await self._write(api.DeleteGroupRequest, timeout, name=name)

    async def list_groups(self, *, timeout: Optional[float] = None) -> list[dict[str, Any]]:
        """Every group: name, count, weight, replication_factor, owned/unowned slots."""
        return (await self.call(api.ListGroupsRequest(), timeout=timeout))["groups"]

    async def show_group(self, name: str, *, timeout: Optional[float] = None) -> dict:
        """A group's partitions: id, epoch, owners (per slot), quarantined."""
        return await self.call(api.ShowGroupRequest(name=name), timeout=timeout)

    async def list_workers(self, *, timeout: Optional[float] = None) -> list[dict[str, Any]]:
        """Every known worker: id, address, zone, state, capacity, partitions."""
        return (await self.call(api.ListWorkersRequest(), timeout=timeout))["workers"]

    async def drain(self, worker_id: str, *, timeout: Optional[float] = None) -> dict:
        """Move a worker's partitions off gracefully; it receives nothing new."""
        return await self._write(api.DrainRequest, timeout, worker_id=worker_id)

    async def undrain(self, worker_id: str, *, timeout: Optional[float] = None) -> dict:
        """Make a draining worker active again."""
        return await self._write(api.UndrainRequest, timeout, worker_id=worker_id)

    # -- cluster ------------------------------------------------------------------------

    async def status(self, address: Optional[str] = None, *,
                     timeout: Optional[float] = None) -> dict[str, Any]:
        """One node's view (``address``, default: whichever node answers first):
        node, role, term, leader, leader_address, commit, applied, voters,
        learners, addresses, workers, partitions, unowned_slots, pending_moves,
        quarantined, counters, recent_moves."""
        if address is not None:
            return await self.call(api.StatusRequest(), timeout=timeout, address=address)
        return await self.call(api.StatusRequest(), timeout=timeout)

    async def leader_status(self, *, timeout: Optional[float] = None) -> dict[str, Any]:
        """The leader's view (follows the leader hint of the first node that answers)."""
        deadline = trio.current_time() + (self.timeout if timeout is None else timeout)
        while True:
            view = await self.status(timeout=max(0.01, deadline - trio.current_time()))
            if view["role"] == "leader":
                return view
            hint = view.get("leader_address")
            if hint:
                try:
                    view = await self.status(hint, timeout=max(
                        0.01, min(2.0, deadline - trio.current_time())))
                    if view["role"] == "leader":
                        self._leader = hint
                        return view
                except ClientError:
                    pass
            if trio.current_time() >= deadline:
                raise RequestTimeout("no leader found within the deadline")
            self._rotate()
            await trio.sleep(min(0.1, max(0.0, deadline - trio.current_time())))

    async def members(self, address: Optional[str] = None, *,
                      timeout: Optional[float] = None) -> dict[str, Any]:
        """Members (id, role, leader, peer, client, match) as one node (``address``,
        default: whichever answers first) sees them; ``match`` is known on the leader."""
        return await self.call(api.ListMembersRequest(), timeout=timeout, address=address)

    async def add_member(self, node_id: int, peer_address: str, client_address: str, *,
                         timeout: Optional[float] = None) -> dict[str, Any]:
        """Add a node as a learner (its addresses are replicated first)."""
        return await self.call(api.AddMemberRequest(
            node_id=node_id, peer_address=peer_address, client_address=client_address),
            timeout=timeout)

    async def promote_member(self, node_id: int, *,
                             timeout: Optional[float] = None) -> dict[str, Any]:
        """Make a learner a voter; retried until it has caught up or the deadline."""
        return await self.call(api.PromoteMemberRequest(node_id=node_id), timeout=timeout)

    async def remove_member(self, node_id: int, *,
                            timeout: Optional[float] = None) -> dict[str, Any]:
        """Remove a voter or learner."""
        return await self.call(api.RemoveMemberRequest(node_id=node_id), timeout=timeout)

    async def transfer_leader(self, to: int = 0, *,
                              timeout: Optional[float] = None) -> dict[str, Any]:
        """Hand leadership to voter ``to`` (0: the most caught-up other voter)."""
        return await self.call(api.TransferLeaderRequest(to=to), timeout=timeout)


def _item(result: dict[str, Any]) -> KvItem:
    return KvItem(result["key"], result["value"], result["version"])
