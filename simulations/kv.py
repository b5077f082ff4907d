"""The replicated key-value state machine the simulated clients talk to.

Commands travel through the Raft log as bytes: `request_id`, the operation and its
arguments, separated by the ASCII unit separator. Values are non-empty strings; the
empty string on the wire means "absent" (None), which is what a CAS expects when it
wants to create a key.
"""

from __future__ import annotations

import cbor2

_SEP = "\x1f"


def encode_command(request_id: int, op: str, key: str, value: str | None = None,
                   expected: str | None = None) -> bytes:
    """Encode a put ("put") or compare-and-set ("cas") command."""
    return _SEP.join((str(request_id), op, key, value or "", expected or "")).encode()


def decode_command(data: bytes) -> tuple[int, str, str, str | None, str | None]:
    """(request_id, op, key, value, expected); the inverse of `encode_command`."""
    request_id, op, key, value, expected = data.decode().split(_SEP)
    return int(request_id), op, key, value or None, expected or None


class KeyValueStore:
    """A dict with put and compare-and-set, fed committed commands in log order.

    Attributes:
        applied: the log index of the last command applied (or of the snapshot).
    """

    def __init__(self) -> None:
        self.data: dict[str, str] = {}
        self.applied = 0

    def apply(self, index: int, command: bytes) -> tuple[int, bool | None]:
        """Apply one committed command; returns (request_id, result).

        The result of a CAS is whether it swapped; a put returns None.
        """
        # decode_command, inlined (one call per applied entry on every node)
        text_id, op, key, value, expected = command.decode().split(_SEP)
        request_id = int(text_id)
        self.applied = index
        if op == "put":
            self.data[key] = value or None  # type: ignore[assignment]
            return request_id, None
        swapped = self.data.get(key) == (expected or None)
        if swapped:
            self.data[key] = value or None  # type: ignore[assignment]
        return request_id, swapped

    def get(self, key: str) -> str | None:
        return self.data.get(key)

    def snapshot(self) -> bytes:
        return cbor2.dumps(self.data)

    @classmethod
    def restore(cls, data: bytes, index: int) -> "KeyValueStore":
        store = cls()
        if data:
            store.data = dict(cbor2.loads(data))
        store.applied = index
        return store
