"""Commands validate themselves; the codec round-trips them and rejects garbage."""

from __future__ import annotations

import math

import cbor2
import pytest
from hypothesis import given
from hypothesis import strategies as st

from coordinator import commands as c
from coordinator.codec import (
    FORMAT_VERSION,
    CommandDecodeError,
    decode_command,
    decode_result,
    encode_command,
    encode_result,
    tag_of,
)
from coordinator.state import CoordinatorState

ids = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=12)
names = ids.filter(lambda s: "/" not in s)
times = st.floats(min_value=-1e9, max_value=1e12, allow_nan=False, allow_infinity=False)
slots = st.integers(0, c.MAX_REPLICATION_FACTOR - 1)
epochs = st.integers(0, 2**62)
values = st.binary(max_size=32)
labels = st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=3)

simple_commands = st.one_of(
    st.builds(c.RegisterWorker, worker_id=ids, address=st.text(max_size=20), zone=ids,
              capacity=st.integers(1, 100), labels=labels, process=st.text(max_size=20),
              now=times),
    st.builds(c.DeregisterWorker, worker_id=ids, now=times),
    st.builds(c.ExpireWorker, worker_id=ids, now=times, last_heard=st.none() | times),
    st.builds(c.DrainWorker, worker_id=ids, now=times),
    st.builds(c.UndrainWorker, worker_id=ids, now=times),
    st.builds(c.CreatePartitionGroup, name=names, count=st.integers(1, 1000),
              weight=st.integers(1, 10), replication_factor=st.integers(1, 5), now=times),
    st.builds(c.DeletePartitionGroup, name=names, now=times),
    st.builds(c.Assign, partition_id=ids, slot=slots, worker_id=ids,
              epoch=st.integers(1, 2**62), now=times),
    st.builds(c.Revoke, partition_id=ids, slot=slots, worker_id=ids, epoch=epochs,
              target=st.none() | ids, now=times),
    st.builds(c.Released, partition_id=ids, slot=slots, worker_id=ids, epoch=epochs, now=times),
    st.builds(c.ForceRevoke, partition_id=ids, slot=slots, worker_id=ids, epoch=epochs,
              now=times),
    st.builds(c.ReleaseQuarantine, partition_id=ids, now=times),
    st.builds(c.KvPut, key=ids, value=values),
    st.builds(c.KvCas, key=ids, expected_version=epochs, value=values),
    st.builds(c.KvDelete, key=ids, expected_version=st.none() | epochs),
    st.builds(c.KvGet, key=ids),
    st.builds(c.KvList, prefix=st.text(max_size=5), limit=st.integers(0, 10)),
    st.builds(c.FencedPut, key=ids, value=values, partition_id=ids, epoch=epochs),
)
commands = st.one_of(simple_commands,
                     st.builds(c.Batch, commands=st.lists(simple_commands, max_size=4)))


@given(commands)
def test_command_round_trip(command):
    data = encode_command(command)
    assert decode_command(data) == command
    assert encode_command(decode_command(data)) == data  # canonical


@given(commands)
def test_results_round_trip(command):
    # Whatever the state machine answers survives the codec.
    state = CoordinatorState()
    state.apply(c.RegisterWorker(worker_id="w", address="a", now=0.0))
    state.apply(c.CreatePartitionGroup(name="g", count=2, now=0.0))
    result = state.apply(command)
    assert decode_result(encode_result(result)) == result


def test_structured_results_round_trip():
    for result in [
        c.WorkerRemoved(worker_id="w", freed=[c.SlotRef(partition_id="g/0", slot=0, epoch=3)]),
        c.KvEntries(entries=[c.KvValue(key="a", value=b"x", version=1)]),
        c.WorkerStateChanged(worker_id="w", state=c.WorkerState.DRAINING),
        c.Error(code=c.ErrorCode.FENCED, message="m"),
        c.BatchResult(results=[c.Error(code=c.ErrorCode.HELD), c.KvValue(key="k", value=None,
                                                                        version=0)]),
    ]:
        assert decode_result(encode_result(result)) == result


def envelope(command_map, version=1):
    """A command envelope; format 1 (class names) unless told, as the cases below
    are written with names and format 1 entries must be filtered as strictly."""
    return cbor2.dumps({"v": version, "c": command_map})


GOOD = {"_t": "KvPut", "key": "k", "value": b"v"}
GOOD_TAGGED = {"_t": tag_of(c.KvPut), "key": "k", "value": b"v"}


def test_both_formats_decode():
    assert decode_command(envelope(GOOD)) == c.KvPut(key="k", value=b"v")
    assert decode_command(envelope(GOOD_TAGGED, FORMAT_VERSION)) == c.KvPut(key="k", value=b"v")
    assert cbor2.loads(encode_command(c.KvPut(key="k", value=b"v"))) == {
        "v": FORMAT_VERSION, "c": GOOD_TAGGED}


@pytest.mark.parametrize("data", [
    b"",
    b"\xff",
    b"\x9f",  # indefinite array, never closed
    cbor2.dumps([1, 2]),
    cbor2.dumps({"v": FORMAT_VERSION}),
    cbor2.dumps({"v": FORMAT_VERSION, "c": GOOD, "x": 1}),
    envelope(GOOD, version=FORMAT_VERSION + 1),
    envelope(GOOD, version=0),
    envelope(GOOD, version=True),
    envelope(GOOD, version=FORMAT_VERSION),  # a class name in a tagged format
    envelope(GOOD_TAGGED),  # a tag in the format of names
    envelope({**GOOD_TAGGED, "_t": 99}, FORMAT_VERSION),  # no such tag
    envelope({**GOOD_TAGGED, "_t": True}, FORMAT_VERSION),
    envelope({**GOOD_TAGGED, "_t": tag_of(c.WorkerState)}, FORMAT_VERSION),  # an enum's
    envelope({"_t": tag_of(c.Error), "code": {"_e": tag_of(c.KvPut), "v": "fenced"}},
             FORMAT_VERSION),
    envelope({"_t": tag_of(c.Error), "code": {"_e": tag_of(c.ErrorCode), "v": "nope"}},
             FORMAT_VERSION),
    envelope({**GOOD_TAGGED, "extra": 1}, FORMAT_VERSION),
    envelope({"_t": tag_of(c.Batch), "commands": [{"_t": tag_of(c.Batch), "commands": []}]},
             FORMAT_VERSION),
    envelope(GOOD) + b"\x00",  # trailing bytes
    envelope({**GOOD, "_t": "Nope"}),
    envelope({**GOOD, "_t": 7}),
    envelope({**GOOD, "extra": 1}),
    envelope({"_t": "KvPut", "key": "k"}),  # missing field
    envelope({**GOOD, "value": "not bytes"}),
    envelope({"_t": "Assign", "partition_id": "p", "slot": -1, "worker_id": "w",
              "epoch": 1, "now": 0.0}),
    envelope({"_t": "Assign", "partition_id": "p", "slot": 0, "worker_id": "w",
              "epoch": True, "now": 0.0}),
    envelope({"_t": "ExpireWorker", "worker_id": "w", "now": math.nan}),
    envelope({"_t": "ExpireWorker", "worker_id": "w", "now": "soon"}),
    envelope({"_t": "ExpireWorker", "worker_id": "w", "now": 1.0, "last_heard": math.nan}),
    envelope({"_t": "RegisterWorker", "worker_id": "w", "address": "", "process": 7, "now": 1.0}),
    envelope({"_t": "ExpireWorker", "worker_id": "", "now": 1.0}),
    envelope({"_t": "CreatePartitionGroup", "name": "a/b", "count": 1, "now": 1.0}),
    envelope({"_t": "Batch", "commands": [{"_t": "Batch", "commands": []}]}),
    envelope({"_t": "Batch", "commands": [GOOD, {"_t": "SlotRef", "partition_id": "p",
                                                 "slot": 0, "epoch": 0}]}),
    envelope({"_t": "Error", "code": {"_e": "ErrorCode", "v": "fenced"}}),  # a result
    envelope({"_t": "RegisterWorker", "worker_id": "w", "address": "a",
              "labels": [["k"]], "now": 0.0}),
    envelope({"_t": "Error", "code": {"_e": "Nope", "v": 1}}),
    envelope({"_t": "KvPut", "key": "k", "value": cbor2.CBORTag(1, 0)}),
    envelope([[[[[[[[[[[[GOOD]]]]]]]]]]]]),
    "not bytes",
])
def test_malformed_input_raises_one_typed_error(data):
    with pytest.raises(CommandDecodeError):
        decode_command(data)


@given(st.binary(max_size=64))
def test_random_bytes_never_raise_anything_else(data):
    try:
        decode_command(data)
    except CommandDecodeError:
        pass


@given(commands, st.data())
def test_corrupted_commands_decode_or_fail_cleanly(command, data):
    encoded = bytearray(encode_command(command))
    index = data.draw(st.integers(0, len(encoded) - 1))
    encoded[index] ^= data.draw(st.integers(1, 255))
    try:
        decoded = decode_command(bytes(encoded))
    except CommandDecodeError:
        return
    assert isinstance(decoded, c.COMMAND_TYPES)


@pytest.mark.parametrize("build", [
    lambda: c.RegisterWorker(worker_id="", address="a", now=0.0),
    lambda: c.RegisterWorker(worker_id="w", address="a", capacity=0, now=0.0),
    lambda: c.RegisterWorker(worker_id="w", address="a", labels=[("k", "v"), ("k", "w")],
                             now=0.0),
    lambda: c.CreatePartitionGroup(name="g", count=0, now=0.0),
    lambda: c.CreatePartitionGroup(name="g", count=1, replication_factor=17, now=0.0),
    lambda: c.Assign(partition_id="p", slot=0, worker_id="w", epoch=0, now=0.0),
    lambda: c.ExpireWorker(worker_id="w", now=math.inf),
    lambda: c.KvPut(key="", value=b""),
    lambda: c.KvPut(key="k", value=b"x" * (c.MAX_VALUE_BYTES + 1)),
])
def test_invalid_commands_cannot_be_built(build):
    with pytest.raises((TypeError, ValueError)):
        build()


def test_encode_rejects_non_commands():
    with pytest.raises(TypeError):
        encode_command(c.SlotRef(partition_id="p", slot=0, epoch=0))  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        encode_result(c.KvGet(key="k"))  # type: ignore[arg-type]
