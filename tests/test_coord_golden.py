"""Committed logs and snapshots stay readable: golden bytes written by earlier
releases decode to the values they were written from (see tests/golden)."""

from __future__ import annotations

import enum
import pathlib
import sys

import attrs
import cbor2
import pytest

from coordinator import codec
from coordinator import commands as c
from coordinator.commands import WorkerState
from coordinator.records import MovePhase
from coordinator.state import CoordinatorState, SnapshotError

GOLDEN = pathlib.Path(__file__).resolve().parent / "golden"
sys.path.insert(0, str(GOLDEN))
from scenario import COMMANDS, CONFIG, RESULTS  # noqa: E402


def kinds(value, found: set) -> set:
    """Every attrs class and enum inside ``value``."""
    if isinstance(value, enum.Enum) or attrs.has(type(value)):
        found.add(type(value))
    if attrs.has(type(value)):
        for field in attrs.fields(type(value)):
            kinds(getattr(value, field.name), found)
    elif isinstance(value, tuple):
        for item in value:
            kinds(item, found)
    return found


# -------------------------------------------------------------------- wire tags


def test_every_command_result_and_enum_has_its_own_tag():
    tagged = list(codec.WIRE_TAGS.values())
    assert len(set(tagged)) == len(tagged)  # a class under two tags
    wanted = set(c.COMMAND_TYPES + c.RESULT_TYPES) | {WorkerState, c.ErrorCode}
    assert set(tagged) == wanted
    for cls in wanted:
        assert codec.WIRE_TAGS[codec.tag_of(cls)] is cls


def test_format_1_names_map_to_the_same_classes_as_their_tags():
    # The frozen table of format 1 names covers every tag once.
    assert sorted(codec._FORMAT1_NAMES.values()) == sorted(codec.WIRE_TAGS)


# ------------------------------------------------------------------- golden log


def golden_log(version: int = 1) -> list:
    return cbor2.loads((GOLDEN / f"log_format{version}.cbor").read_bytes())


def test_the_golden_scenario_uses_every_command_and_result_kind():
    found = kinds(tuple(COMMANDS), set()) | kinds(tuple(RESULTS), set())
    assert found == set(codec.WIRE_TAGS.values())


@pytest.mark.parametrize("version", [1, 2, 3])
def test_golden_log_entries_decode_to_the_commands_they_were_written_from(version):
    entries = golden_log(version)
    assert len(entries) == len(COMMANDS)
    for (command_bytes, _), command in zip(entries, COMMANDS):
        assert cbor2.loads(command_bytes)["v"] == version
        assert codec.decode_command(command_bytes) == command


@pytest.mark.parametrize("version", [1, 2])
def test_golden_results_decode_to_the_results_they_were_written_from(version):
    decoded = [codec.decode_result(result_bytes) for _, result_bytes in golden_log(version)]
    assert decoded == RESULTS


def test_format_3_results_are_what_todays_rules_return():
    # Format 3 was written after quarantine rule 6: the fragile partitions' owners
    # expired without a crash being proven (no process ids), so nothing is charged.
    state = CoordinatorState(CONFIG)
    decoded = [codec.decode_result(result_bytes) for _, result_bytes in golden_log(3)]
    assert decoded == [state.apply(command) for command in COMMANDS]
    changed = [i for i, (old, new) in enumerate(zip(RESULTS, decoded)) if old != new]
    # Only the quarantine of the fragile partitions and what follows from it.
    assert [type(COMMANDS[i]).__name__ for i in changed] == \
        ["ExpireWorker", "ReleaseQuarantine", "ExpireWorker"]


def test_the_current_encoder_writes_the_golden_format_3_bytes():
    # Changing a tag, a field name or the envelope changes these bytes: that is a
    # new format (bump FORMAT_VERSION, keep decoding the old one, add golden files).
    assert codec.FORMAT_VERSION == 3
    for command_bytes, result_bytes in golden_log(3):
        command = codec.decode_command(command_bytes)
        assert codec.encode_command(command) == command_bytes
        assert codec.encode_result(codec.decode_result(result_bytes)) == result_bytes


def test_reencoding_a_golden_log_writes_tags_and_keeps_the_values():
    for command_bytes, result_bytes in golden_log():
        command = codec.decode_command(command_bytes)
        again = codec.encode_command(command)
        assert cbor2.loads(again)["v"] == codec.FORMAT_VERSION
        assert isinstance(cbor2.loads(again)["c"]["_t"], int)
        assert codec.decode_command(again) == command
        result = codec.decode_result(result_bytes)
        assert codec.decode_result(codec.encode_result(result)) == result


# -------------------------------------------------------------- golden snapshots


def check_golden_state(state: CoordinatorState) -> None:
    workers = {w: r.state for w, r in state.workers.items()}
    assert workers == {
        "w1": WorkerState.ACTIVE, "w2": WorkerState.ACTIVE, "w3": WorkerState.DRAINING,
        "w4": WorkerState.DEAD, "w5": WorkerState.ACTIVE, "w6": WorkerState.DEAD,
        "w7": WorkerState.DEAD, "w8": WorkerState.DEAD,
    }
    assert state.workers["w1"].labels == (("disk", "ssd"), ("rack", "r1"))
    assert state.workers["w2"].capacity == 2
    assert state.partitions["orders/0"].owners == ["w1", "w2"]
    assert state.partitions["orders/1"].owners == ["w3", None]
    assert state.partitions["orders/2"].epoch == 3
    assert sorted(state.partitions) == ["fragile/0", "fragile/1", "orders/0", "orders/1",
                                        "orders/2", "tmp/0"]
    assert set(state.quarantined_partitions) == {"fragile/0", "tmp/0"}
    # The records compare by identity; compare their fields.
    assert {k: attrs.astuple(m) for k, m in state.pending_moves.items()} == {
        ("orders/1", 0): ("orders/1", 0, "w3", "w1", 2, MovePhase.REVOKING, 24.0)}
    assert {k: (h.worker_id, h.until) for k, h in state.holds.items()} == {
        ("orders/1", 1): ("w4", 56.5), ("orders/2", 1): ("w4", 56.5)}
    assert state.kv_get("config/a") is None
    assert (state.kv_get("config/b").value, state.kv_get("config/b").version) == (b"bee", 2)
    assert state.kv_get("session/x").value == b"x2"
    assert state.log_time == 26.5
    assert state.config == CONFIG


def test_format_3_snapshot_restores_the_state_it_was_taken_of():
    data = (GOLDEN / "snapshot_format3.cbor").read_bytes()
    state = CoordinatorState.restore(data)
    check_golden_state(state)
    # A client's retry is still answered from the session the snapshot kept.
    retry = c.ClientRequest(client_id="client-1", seq=2, acked_below=1,
                            command=c.KvCas(key="session/x", expected_version=6,
                                            value=b"x2"))
    assert state.apply(retry) == c.KvValue(key="session/x", value=b"x2", version=7)
    assert state.kv_get("session/x").version == 7


def test_format_2_snapshot_restores_without_sessions():
    state = CoordinatorState.restore((GOLDEN / "snapshot_format2.cbor").read_bytes())
    check_golden_state(state)
    # Format 2 had no client sessions: a retry is applied as a new write.
    retry = c.ClientRequest(client_id="client-1", seq=2,
                            command=c.KvCas(key="session/x", expected_version=6,
                                            value=b"x2"))
    assert isinstance(state.apply(retry), c.Error)


@pytest.mark.parametrize("name", ["snapshot_format2.cbor", "snapshot_format3.cbor",
                                  "snapshot_format4.cbor"])
def test_a_restored_golden_snapshot_snapshots_to_the_current_format(name):
    state = CoordinatorState.restore((GOLDEN / name).read_bytes())
    assert CoordinatorState.restore(state.snapshot()) == state


def test_the_snapshot_layout_is_unchanged():
    # Re-snapshotting a restored format 4 snapshot writes the same rows; only the
    # client sessions' stored results are re-encoded (with today's log format).
    golden = cbor2.loads((GOLDEN / "snapshot_format4.cbor").read_bytes())
    again = cbor2.loads(CoordinatorState.restore(
        (GOLDEN / "snapshot_format4.cbor").read_bytes()).snapshot())
    assert {k: v for k, v in again.items() if k != "sessions"} == \
        {k: v for k, v in golden.items() if k != "sessions"}
    for (client, floor, active, results), old in zip(again["sessions"], golden["sessions"]):
        assert [client, floor, active] == old[:3]
        assert [(seq, codec.decode_result(r)) for seq, r in results] == \
            [(seq, codec.decode_result(r)) for seq, r in old[3]]


@pytest.mark.parametrize("key, row", [
    ("workers", ["w1", "a", "z", 1, [["k"]], "active", 0.0, None]),  # a label without value
    ("workers", ["w1", "a", "z", 1, [], "sleeping", 0.0, None]),  # no such state
    ("workers", ["w1", "a", "z", 1, [], "active", 0.0]),  # a column short
    ("pending", ["orders/1", 0, "w3", "w1", 2, "revoking", 24.0, "extra"]),
])
def test_a_malformed_snapshot_row_is_refused_with_a_snapshot_error(key, row):
    wire = cbor2.loads((GOLDEN / "snapshot_format3.cbor").read_bytes())
    wire[key] = [row]
    with pytest.raises(SnapshotError):
        CoordinatorState.restore(cbor2.dumps(wire))


def test_the_golden_snapshot_is_the_state_the_golden_log_built():
    # (The state machine today; if its rules change on purpose, this one test may
    # change with them; the decoding tests above may not.)
    state = CoordinatorState(CONFIG)
    for command in COMMANDS:
        state.apply(command)
    assert state == CoordinatorState.restore((GOLDEN / "snapshot_format4.cbor").read_bytes())
