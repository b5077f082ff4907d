"""The value classes built with `raft.types._fast_init` behave as attrs built them."""

from __future__ import annotations

import inspect

import attrs
import pytest

from raft import types
from raft.types import MESSAGE_TYPES, Entry, EntryType, HardState, ReadState, SoftState

FAST = [*MESSAGE_TYPES, Entry, HardState, SoftState, ReadState]


def _reference(cls: type) -> type:
    """The same fields as a plain frozen attrs class, with attrs' own __init__."""
    return attrs.make_class(
        cls.__name__,
        {f.name: attrs.field(default=f.default) for f in attrs.fields(cls)},
        frozen=True,
        slots=True,
    )


@pytest.mark.parametrize("cls", FAST, ids=lambda c: c.__name__)
def test_signature_is_attrs_own(cls: type) -> None:
    ours = inspect.signature(cls.__init__)
    theirs = inspect.signature(_reference(cls).__init__)
    assert [(p.name, p.default, p.kind) for p in ours.parameters.values()] == [
        (p.name, p.default, p.kind) for p in theirs.parameters.values()
    ]
    assert cls.__init__.__annotations__.keys() - {"return"} == {f.name for f in attrs.fields(cls)}


@pytest.mark.parametrize("cls", FAST, ids=lambda c: c.__name__)
def test_instances_are_frozen_values(cls: type) -> None:
    names = [f.name for f in attrs.fields(cls)]
    values = list(range(1, len(names) + 1))
    a, b = cls(*values), cls(**dict(zip(names, values)))
    assert a == b and hash(a) == hash(b)
    assert attrs.astuple(a, recurse=False) == tuple(values)
    assert a != cls(*values[:-1], 99)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        setattr(a, names[0], 5)
    assert attrs.evolve(a, **{names[0]: 7}) == cls(7, *values[1:])


def test_defaults_and_missing_arguments() -> None:
    assert Entry(1, 2) == Entry(1, 2, EntryType.NORMAL, b"")
    assert HardState() == HardState(0, 0, 0)
    with pytest.raises(TypeError, match="index"):
        Entry(1)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        Entry(1, 2, bogus=3)  # type: ignore[call-arg]


def test_classes_with_hooks_are_refused() -> None:
    with pytest.raises(TypeError):
        types._fast_init(types.ConfState)
    with pytest.raises(TypeError):
        types._fast_init(types.ConfChange)
