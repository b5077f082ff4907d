"""Overload limits of the client port: what is refused, and the retry hint.

Every limit and its default lives in `coordinator.server.ServerConfig` (the README's
"Limits" table repeats them). Past a limit the client gets an ``overloaded``
`coordinator.api.ErrorReply` whose ``retry_after`` says how many seconds to wait;
`coordinator.Client` waits at least that long before it retries.
"""

from __future__ import annotations

from . import api
from .api import ErrorKind

RETRY_AFTER_BUSY = 0.1
"""The hint when the node is busy (requests in flight, pending proposals, raft's
uncommitted tail): a short wait, since such work drains within milliseconds."""

RETRY_AFTER_CONNECTIONS = 1.0
"""The hint to a connection refused at accept: connections live long."""


class TokenBucket:
    """A request-rate limit: `rate` requests per second on average, bursts of up to
    `burst`. The caller passes the time (the limiter reads no clock).

    Args:
        rate: sustained requests per second (0 = unlimited).
        burst: the most requests accepted back to back.
        now: the current time (seconds, any monotonic origin).
    """

    def __init__(self, rate: float, burst: int, now: float) -> None:
        if rate < 0 or burst < 1:
            raise ValueError(f"need rate >= 0 and burst >= 1, got {rate}, {burst}")
        self.rate = rate
        self.burst = float(burst)
        self._tokens = float(burst)
        self._at = now

    def take(self, now: float) -> float:
        """Take one token: 0.0 when the request may go, else the seconds until one
        will be available (nothing is taken then)."""
        if self.rate == 0:
            return 0.0
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return 0.0
        return (1.0 - self._tokens) / self.rate


def overloaded(message: str, retry_after: float) -> api.ErrorReply:
    """The typed refusal a client gets past a limit."""
    return api.ErrorReply(kind=ErrorKind.OVERLOADED.value, message=message[:4000],
                          retry_after=round(min(max(retry_after, 0.001), 60.0), 3))
