"""`raftcoord worker run`: user mistakes are one-line errors, and an unreachable
cluster is waited for, not a crash."""

from __future__ import annotations

import json

from click.testing import CliRunner

from cli.main import main


def invoke(*args):
    return CliRunner().invoke(main, ["worker", "run", *args])


def test_a_bad_address_is_a_usage_error():
    result = invoke("--id", "w1", "--connect", "localhost")
    assert result.exit_code == 2 and "not host:port" in result.output
    assert "Traceback" not in result.output


def test_an_unwritable_event_file_is_a_one_line_error(tmp_path):
    result = invoke("--id", "w1", "--connect", "127.0.0.1:1",
                    "--events", str(tmp_path / "missing" / "events.jsonl"))
    assert result.exit_code == 1 and "cannot write" in result.output
    assert "Traceback" not in result.output


def test_lease_timing_that_leaves_no_lease_is_refused():
    result = invoke("--id", "w1", "--connect", "127.0.0.1:1", "--lease", "0.5",
                    "--safety-margin", "0.5")
    assert result.exit_code == 2 and "safety_margin" in result.output


def test_without_a_reachable_node_it_acts_for_nothing_and_exits_at_its_duration(tmp_path):
    events = tmp_path / "events.jsonl"
    result = invoke("--id", "w1", "--connect", "127.0.0.1:1", "--duration", "0.5",
                    "--events", str(events), "--json")
    assert result.exit_code == 0, result.output
    assert events.read_text() == "" and result.output == ""
