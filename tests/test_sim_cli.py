"""`raftcoord simulate`: options, JSON lines, exit status, HTML report."""

from __future__ import annotations

import json

import attrs
import pytest
from click.testing import CliRunner

import cli.simulate_cmd as simulate_cmd
from cli.main import main
from simulations.world import Violation

# `simulate` silences the "raft" logger for the rest of its process (without
# --verbose); in-process runs must not leave it silenced for later tests.
pytestmark = pytest.mark.usefixtures("quiet_raft")

QUICK = ["--duration", "4", "--rate", "10", "--converge-within", "20"]


def invoke(*args):
    return CliRunner().invoke(main, ["simulate", *args])


def test_single_run_json_has_the_documented_fields():
    result = invoke("--seed", "3", "--json", *QUICK)
    assert result.exit_code == 0, result.output
    record = json.loads(result.output.strip().splitlines()[-1])
    for field in ("seed", "ok", "violations", "trace_hash", "simulated_seconds", "wall_seconds",
                  "events", "elections", "max_unavailability_seconds", "client_ops", "linearizable"):
        assert field in record
    assert record["seed"] == 3 and record["ok"] is True and record["violations"] == []
    assert record["linearizable"] is True


def test_seed_range_prints_one_json_object_per_run():
    result = invoke("--seeds", "5..7", "--json", *QUICK)
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.output.splitlines() if line.startswith("{")]
    assert [r["seed"] for r in lines] == [5, 6, 7]


def test_count_summary_table_and_determinism_check():
    result = invoke("--seed", "2", "--count", "2", "--check-determinism", *QUICK)
    assert result.exit_code == 0, result.output
    assert "2/2 runs ok" in result.output


def test_report_is_self_contained_html(tmp_path):
    path = tmp_path / "run.html"
    result = invoke("--seed", "1", "--report", str(path), "--faults", "crash,partition", *QUICK)
    assert result.exit_code == 0, result.output
    text = path.read_text()
    assert text.startswith("<!DOCTYPE html>") and "<svg" in text
    assert "<script src" not in text and "<link" not in text
    assert "node 1" in text and "client 1" in text


def test_violation_gives_exit_status_1_and_a_reproducing_command(monkeypatch):
    real = simulate_cmd.run_simulation

    def broken(config, scenario="kv", **options):
        result, world = real(config, scenario, **options)
        bad = attrs.evolve(result, violations=(Violation("election safety", "two leaders", 1.0),))
        return bad, world

    monkeypatch.setattr(simulate_cmd, "run_simulation", broken)
    result = invoke("--seeds", "4..6", *QUICK)
    assert result.exit_code == 1
    assert "seed 4: FAILED" in result.output
    assert "invariant: election safety" in result.output
    assert "reproduce: raftcoord simulate --seed 4" in result.output
    assert "seed 5" not in result.output  # stopped at the first failure


def test_bad_fault_kind_is_a_usage_error():
    result = invoke("--faults", "meteor")
    assert result.exit_code == 2
    assert "meteor" in result.output


def test_reproduce_line_replays_the_same_run_with_the_production_options():
    from simulations.runner import reproduce_command, run_simulation
    from simulations.world import SimConfig, WorkloadConfig

    config = SimConfig(seed=9, duration=4.0, converge_within=20.0, eager_commit=True, batch_reads=False,
                       workload=WorkloadConfig(rate=10.0))
    expected, _ = run_simulation(config)
    line = reproduce_command(config)
    assert "--eager-commit" in line and "--unbatched-reads" in line
    args = line.split()[2:]  # drop "raftcoord simulate"
    result = invoke(*args, "--json")
    assert result.exit_code == 0, result.output
    record = json.loads(result.output.strip().splitlines()[-1])
    assert record["trace_hash"] == expected.trace_hash
    # The message-saving defaults are a different run.
    default, _ = run_simulation(attrs.evolve(config, eager_commit=False, batch_reads=True))
    assert default.trace_hash != expected.trace_hash


def test_parallel_jobs_give_the_same_runs_in_seed_order():
    serial = invoke("--seeds", "5..8", "--json", *QUICK)
    parallel = invoke("--seeds", "5..8", "--json", "--jobs", "2", *QUICK)
    assert serial.exit_code == 0 and parallel.exit_code == 0, parallel.output

    def runs(output):
        return [(r["seed"], r["trace_hash"], r["events"]) for r in
                (json.loads(line) for line in output.splitlines() if line.startswith("{"))]

    assert runs(parallel.output) == runs(serial.output)
    assert [seed for seed, _, _ in runs(parallel.output)] == [5, 6, 7, 8]


def test_parallel_sweep_writes_per_seed_reports(tmp_path):
    result = invoke("--seeds", "1..2", "--jobs", "2", "--report", str(tmp_path / "run{seed}.html"), *QUICK)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run1.html", "run2.html"]


def test_sweep_writes_the_report_of_its_first_failing_run(monkeypatch, tmp_path):
    real = simulate_cmd.run_simulation

    def fails_from_seed_5(config, scenario="kv", **options):
        result, world = real(config, scenario, **options)
        if config.seed >= 5:
            result = attrs.evolve(result, violations=(Violation("election safety", "planted", 1.0),))
        return result, world

    monkeypatch.setattr(simulate_cmd, "run_simulation", fails_from_seed_5)
    path = tmp_path / "failure.html"
    result = invoke("--seeds", "4..6", "--keep-going", "--report", str(path), *QUICK)
    assert result.exit_code == 1
    text = path.read_text()
    assert "election safety" in text and "--seed 5" in text


def test_python_dash_m_runs_the_command_line():
    import subprocess
    import sys

    for module in ("cli", "cli.main"):
        done = subprocess.run([sys.executable, "-m", module, "simulate", "--seed", "1", "--duration", "2",
                               "--json"], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout.splitlines()[0])["seed"] == 1
