"""Shrinking failing runs and replaying plan files (`--shrink`, `--plan`)."""

from __future__ import annotations

import json

import attrs
import pytest
from click.testing import CliRunner

import simulations.scenarios as scenarios
from cli.main import main as cli
from coord_planted_bugs import LeaseIgnoringSession, UnconfirmedAckDriver
from planted_bugs import DoubleVoteNode, StaleReadWorld
from simulations.coord_scenarios import build_for
from simulations.faults import FaultConfig
from simulations.plan_file import PlanError, load_plan, plan_from_json, plan_to_json, save_plan
from simulations.runner import run_simulation
from simulations.shrink import plan_of_seed, run_plan, shrink
from simulations.world import SimConfig, WorkloadConfig

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("quiet_raft")]

HARSH = FaultConfig(crash_rate=0.3, partition_rate=0.3)
COORD = dict(nodes=3, duration=30.0, workload=WorkloadConfig(rate=5.0, clients=3))


def first_failing(configs, scenario="kv", build=None):
    for config in configs:
        result, _ = run_simulation(config, scenario, build=build)
        if not result.ok:
            return config, result
    raise AssertionError("the planted bug was not caught")


def test_a_seeds_own_schedule_written_out_replays_the_same_run(tmp_path):
    config = SimConfig(seed=3, duration=15.0, faults=FaultConfig(swarm=True))
    expected, _ = run_simulation(config)
    plan = plan_of_seed(config)
    assert plan.faults  # the generated faults, spelled out
    path = tmp_path / "plan.json"
    save_plan(str(path), plan)
    loaded = load_plan(str(path))
    assert plan_to_json(loaded) == plan_to_json(plan)
    replayed, _ = run_plan(loaded)
    assert replayed.trace_hash == expected.trace_hash


def test_shrinking_a_planted_core_bug_keeps_its_invariant_with_far_less():
    config, result = first_failing(SimConfig(seed=s, duration=30.0, faults=HARSH, node_factory=DoubleVoteNode,
                                             workload=WorkloadConfig(rate=10)) for s in range(30))
    found = shrink(config, time_budget=60)
    assert found.invariant == result.violations[0].invariant
    before, after = found.original_counts, found.shrunk_counts
    assert after["faults"] <= before["faults"] // 3
    assert after["client ops"] <= before["client ops"] // 3
    # The shrunk schedule is a real failing run of its own.
    replay, _ = run_plan(found.shrunk)  # the planted node rides in the configuration
    assert found.invariant in {v.invariant for v in replay.violations}


def test_shrinking_a_stale_read_keeps_the_linearizability_failure():
    config, _ = first_failing((SimConfig(seed=s, duration=20.0) for s in range(20)), build=StaleReadWorld)
    found = shrink(config, build=StaleReadWorld, time_budget=60)
    assert found.invariant == "linearizability"
    assert found.shrunk_counts["client ops"] * 10 <= found.original_counts["client ops"]
    replay, _ = run_plan(found.shrunk, build=StaleReadWorld)
    assert replay.linearizable is False
    assert replay.trace_hash == found.result.trace_hash


@pytest.mark.parametrize("scenario, changes", [
    ("worker-pause", dict(session_class=LeaseIgnoringSession)),
    ("stale-leader", dict(driver_class=UnconfirmedAckDriver)),
])
def test_shrinking_a_planted_coordinator_bug_leaves_out_workers_and_actions(scenario, changes):
    build = build_for(scenario, **changes)
    config, _ = first_failing((SimConfig(seed=s, **COORD) for s in range(4, 16)), scenario, build)
    found = shrink(config, scenario, build=build, time_budget=60)
    assert found.invariant == "at most one owner"
    before, after = found.original_counts, found.shrunk_counts
    assert after["workers"] <= before["workers"] and after["actions"] < before["actions"]
    assert sum(after.values()) * 2 <= sum(before.values())
    replay, _ = run_plan(found.shrunk, build=build)
    assert "at most one owner" in {v.invariant for v in replay.violations}
    described = found.describe()
    assert "workers:" in described and "kept action" in described


def test_shrinking_a_passing_seed_is_refused():
    with pytest.raises(ValueError, match="does not fail"):
        shrink(SimConfig(seed=1, duration=5.0))


def test_cli_shrinks_a_failing_seed_and_replays_the_plan(monkeypatch, tmp_path):
    planted = attrs.evolve(scenarios.get_scenario("kv"), build=StaleReadWorld)
    monkeypatch.setitem(scenarios._SCENARIOS, "kv", planted)
    config, _ = first_failing((SimConfig(seed=s, duration=20.0) for s in range(20)), build=StaleReadWorld)
    path = tmp_path / "small.json"
    runner = CliRunner()
    out = runner.invoke(cli, ["simulate", "--seed", str(config.seed), "--duration", "20", "--shrink",
                              "--shrink-time", "60", "--plan-out", str(path)])
    assert out.exit_code == 1, out.output
    assert "client ops:" in out.output and "removed" in out.output
    assert f"reproduce: raftcoord simulate --plan {path}" in out.output
    data = json.loads(path.read_text())
    assert data["format"] == "raftcoord-simulation-plan" and data["version"] == 1
    assert data["expect"] == "linearizability"
    replay = runner.invoke(cli, ["simulate", "--plan", str(path)])
    assert replay.exit_code == 1
    assert "NOT linearizable" in replay.output
    assert "plan expects linearizability: reproduced" in replay.output
    assert f"reproduce: raftcoord simulate --plan {path}" in replay.output


def _valid_plan() -> dict:
    return plan_to_json(plan_of_seed(SimConfig(seed=2, duration=10.0)))


@pytest.mark.parametrize("break_it, message", [
    (lambda d: d.update(version=99), "unsupported plan version 99"),
    (lambda d: d.update(format="other"), "not a plan file"),
    (lambda d: d.pop("faults"), "has no 'faults'"),
    (lambda d: d["faults"].append({"time": 1, "kind": "meteor", "duration": 1, "node": 0, "rate": 0}),
     "unknown fault kind 'meteor'"),
    (lambda d: d["config"].update(nodes="five"), "config.nodes must be an integer"),
    (lambda d: d["client_ops"].update(limit=-1), "client_ops.limit"),
    (lambda d: d.update(scenario="moon"), "unknown scenario 'moon'"),
])
def test_a_bad_plan_is_rejected_with_one_line(break_it, message):
    data = _valid_plan()
    break_it(data)
    with pytest.raises(PlanError, match=message) as caught:
        plan_from_json(data)
    assert "\n" not in str(caught.value)


def test_cli_reports_a_bad_plan_file_in_one_line(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text("{not json")
    out = CliRunner().invoke(cli, ["simulate", "--plan", str(path)])
    assert out.exit_code == 3  # corrupt or unreadable data, not a failed check (cli/exit_codes.py)
    [line] = out.output.strip().splitlines()
    assert line.startswith("Error: ") and "not JSON" in line


def test_shrinking_stops_at_its_time_budget_with_a_failing_schedule():
    config, result = first_failing((SimConfig(seed=s, duration=20.0) for s in range(20)), build=StaleReadWorld)
    found = shrink(config, build=StaleReadWorld, time_budget=0.0)
    assert not found.complete
    assert found.shrunk_counts == found.original_counts
    assert found.result.trace_hash == result.trace_hash
    assert "time budget spent" in found.describe()


def test_a_coordinator_seeds_schedule_replays_the_same_run_from_its_file(tmp_path):
    config = SimConfig(seed=2, nodes=3, duration=20.0, workload=WorkloadConfig(rate=5.0, clients=3))
    expected, _ = run_simulation(config, "mixed")
    plan = plan_of_seed(config, "mixed")
    assert plan.actions  # the scripted worker crashes, pauses, cuts, join, drain
    path = tmp_path / "mixed.json"
    save_plan(str(path), plan)
    out = CliRunner().invoke(cli, ["simulate", "--plan", str(path), "--json"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.output.strip().splitlines()[-1])["trace_hash"] == expected.trace_hash
