"""Positional rows of attrs records, for `CoordinatorState` snapshots.

A snapshot stores each record as a CBOR array of its fields in declaration order,
up to a last stored field (fields after it are derived and rebuilt on restore). The
columns come from the attrs class itself, so a record and its row cannot drift
apart; to keep old snapshots readable, add new fields after the stored ones (or
bump the snapshot format). Values map as in `coordinator.codec`: an enum member is
stored by value, tuples and lists as arrays.
"""

from __future__ import annotations

import enum
import typing
from typing import Any, Callable, Generic, Optional, TypeVar

import attrs

R = TypeVar("R")


def _to_cbor(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (tuple, list)):
        return [_to_cbor(item) for item in value]
    return value


def _identity(value: Any) -> Any:
    return value


def _decoder(hint: Any) -> Callable[[Any], Any]:
    """How to turn a stored value back into a field of type ``hint``."""
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return hint
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is list:
        return list
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            item = _decoder(args[0])
            return lambda value: tuple(item(v) for v in value)
        items = [_decoder(arg) for arg in args]

        def fixed(value: Any) -> tuple:
            if len(value) != len(items):
                raise ValueError(f"expected {len(items)} items, got {len(value)}")
            return tuple(decode(v) for decode, v in zip(items, value))

        return fixed
    return _identity


class Rows(Generic[R]):
    """The row layout of one record class.

    Args:
        cls: an attrs class.
        last: the last stored field (default: all fields).
    """

    def __init__(self, cls: type[R], last: Optional[str] = None) -> None:
        attrs.resolve_types(cls)
        fields = attrs.fields(cls)
        names = [field.name for field in fields]
        self.cls = cls
        self.fields = fields[:names.index(last) + 1] if last else fields
        self._decoders = [_decoder(field.type) for field in self.fields]

    def encode(self, record: R) -> list:
        """The record's stored fields as a row."""
        return [_to_cbor(getattr(record, field.name)) for field in self.fields]

    def decode(self, row: Any, **derived: Any) -> R:
        """Rebuild a record from a row; ``derived`` gives the fields not stored.

        Raises:
            ValueError: the row does not have one value per stored field.
        """
        if not isinstance(row, list) or len(row) != len(self.fields):
            raise ValueError(f"{self.cls.__name__}: expected a row of {len(self.fields)} "
                             f"values, got {row!r:.80}")
        values = {field.name: decode(value)
                  for field, decode, value in zip(self.fields, self._decoders, row)}
        return self.cls(**values, **derived)
