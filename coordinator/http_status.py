"""The node's HTTP port: metrics, health and status for operators.

Routes (GET or HEAD only):

* ``/metrics``: Prometheus text format (`coordinator.metrics`);
* ``/healthz``: 200 while the process serves (liveness);
* ``/readyz``: 200 when the node is a member of a cluster, knows a leader and has
  applied everything it knows to be committed; 503 with the reason otherwise;
* ``/status``: JSON view of the node (role, term, commit, applied, members, leader,
  workers, partitions summary) — the same as the client port's status request.

HTTP/1.1 is parsed by h11. Every connection has a deadline (`_CONNECTION_SECONDS`)
and requests are small, so a slow or hostile scraper cannot pin memory; at most
`_MAX_CONNECTIONS` are served at once, more are closed at accept.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Awaitable, Callable

import h11
import trio

log = logging.getLogger(__name__)

_MAX_CONNECTIONS = 64
_CONNECTION_SECONDS = 10.0
_MAX_REQUEST_BYTES = 16 * 1024

Handler = Callable[[str], Awaitable[tuple[int, str, bytes]]]
"""(path) → (status, content type, body)."""


class HttpStatusServer:
    """Serves `handler` over HTTP/1.1 on one TCP port.

    Args:
        handler: answers a GET for a path.
    """

    def __init__(self, handler: Handler) -> None:
        self._handler = handler
        self._open = 0

    async def serve(self, host: str, port: int, *,
                    task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Listen until cancelled; `task_status.started` gets the listeners."""
        await trio.serve_tcp(self._connection, port, host=host, task_status=task_status)

    async def _connection(self, stream: trio.SocketStream) -> None:
        if self._open >= _MAX_CONNECTIONS:
            await trio.aclose_forcefully(stream)
            return
        self._open += 1
        try:
            with trio.move_on_after(_CONNECTION_SECONDS):
                await self._exchange(stream)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            pass
        finally:
            self._open -= 1
            await trio.aclose_forcefully(stream)

    async def _exchange(self, stream: trio.SocketStream) -> None:
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=_MAX_REQUEST_BYTES)
        while True:
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError as exc:
                await self._respond(stream, conn, exc.error_status_hint, "text/plain",
                                    f"bad request: {exc}\n".encode(), may_fail=True)
                return
            if event is h11.NEED_DATA:
                conn.receive_data(await stream.receive_some(4096))  # b"": EOF
                continue
            if isinstance(event, h11.Request):
                await self._answer(stream, conn, event)
            elif isinstance(event, (h11.ConnectionClosed,)) or event is h11.PAUSED:
                if conn.our_state is h11.DONE and conn.their_state is h11.DONE:
                    conn.start_next_cycle()
                    continue
                return

    async def _answer(self, stream: trio.SocketStream, conn: h11.Connection,
                      request: h11.Request) -> None:
        method = request.method.decode("ascii", "replace")
        path = request.target.decode("ascii", "replace").split("?", 1)[0]
        if method not in ("GET", "HEAD"):
            status, kind, body = 405, "text/plain", b"only GET and HEAD\n"
        else:
            try:
                status, kind, body = await self._handler(path)
            except Exception:  # a bug in a view must not take the port down
                log.exception("http %s failed", path)
                status, kind, body = 500, "text/plain", b"internal error\n"
        await self._respond(stream, conn, status, kind, b"" if method == "HEAD" else body,
                            length=len(body))

    @staticmethod
    async def _respond(stream: trio.SocketStream, conn: h11.Connection, status: int,
                       kind: str, body: bytes, *, length: int | None = None,
                       may_fail: bool = False) -> None:
        headers = [("Content-Type", kind), ("Content-Length", str(
            len(body) if length is None else length))]
        try:
            data = conn.send(h11.Response(status_code=status, headers=headers))
            if body:
                data += conn.send(h11.Data(data=body))
            data += conn.send(h11.EndOfMessage())
        except h11.LocalProtocolError:
            if may_fail:
                return
            raise
        await stream.send_all(data)


def json_body(value: Any) -> bytes:
    return (json.dumps(value, sort_keys=True, default=str) + "\n").encode()
