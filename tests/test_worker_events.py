"""The demo worker's event files and the checker that proves single ownership."""

from __future__ import annotations

import json

from cli.worker_events import EventLog, check_event_files, intervals_and_writes, read_events


def write(path, worker, lines):
    with open(path, "w") as handle:
        for t, event, fields in lines:
            handle.write(json.dumps({"t": t, "worker": worker, "event": event, **fields}) + "\n")
    return str(path)


def acquired(t, deadline, epoch=1, partition="g/0"):
    return (t, "acquired", {"partition": partition, "slot": 0, "epoch": epoch,
                            "deadline": deadline})


def issued(t, epoch=1, partition="g/0", write_id=1):
    return (t, "checkpoint_issued", {"partition": partition, "epoch": epoch, "write": write_id})


def test_a_clean_handover_passes(tmp_path):
    first = write(tmp_path / "a", "a", [
        acquired(1.0, 4.0), issued(2.0),
        (3.0, "renewed", {"partition": "g/0", "epoch": 1, "deadline": 6.0}), issued(5.0),
        (5.5, "released", {"partition": "g/0", "epoch": 1})])
    second = write(tmp_path / "b", "b", [acquired(5.6, 9.0, epoch=2), issued(6.0, epoch=2)])
    assert check_event_files([first, second]) == []


def test_overlapping_leases_are_found(tmp_path):
    # a's lease runs to 6.0; b acquired at 5.0 although a never let go.
    first = write(tmp_path / "a", "a", [acquired(1.0, 6.0), issued(5.5)])
    second = write(tmp_path / "b", "b", [acquired(5.0, 9.0, epoch=2)])
    [problem] = check_event_files([first, second])
    assert "overlap" in problem and "g/0" in problem


def test_a_lapsed_lease_ends_the_interval(tmp_path):
    # a's lease ran out at 4.0 (no renewal before it): b may take over at 4.5, and a
    # write a issued after its deadline is a violation by itself.
    first = write(tmp_path / "a", "a", [
        acquired(1.0, 4.0), issued(4.2),
        (4.8, "renewed", {"partition": "g/0", "epoch": 1, "deadline": 7.0})])
    second = write(tmp_path / "b", "b", [acquired(4.5, 9.0, epoch=2)])
    problems = check_event_files([first, second])
    assert any("outside its lease" in p for p in problems)
    assert any("overlap" in p for p in problems)  # the late renewal overlaps b


def test_writes_must_carry_the_leased_epoch(tmp_path):
    path = write(tmp_path / "a", "a", [acquired(1.0, 4.0, epoch=3), issued(2.0, epoch=2)])
    assert intervals_and_writes(read_events(path))[2]


def test_the_log_writes_flushed_lines_and_the_reader_skips_a_torn_tail(tmp_path):
    path = tmp_path / "events"
    log = EventLog(str(path), "w1", clock=lambda: 12.5)
    log.write("lost", partition="g/0", epoch=1)
    assert json.loads(path.read_text()) == {"t": 12.5, "worker": "w1", "event": "lost",
                                            "partition": "g/0", "epoch": 1}
    with open(path, "a") as handle:
        handle.write('{"t": 13, "wor')  # killed mid-line
    log.close()
    assert [e["event"] for e in read_events(str(path))] == ["lost"]
