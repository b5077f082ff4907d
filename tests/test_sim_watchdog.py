"""The watchdog: a run that stops making progress fails, it does not hang a sweep."""

from __future__ import annotations

from click.testing import CliRunner

from cli.main import main as cli
from planted_bugs import EndlessReadyNode, SelfReschedulingWorld
from simulations.runner import run_simulation
from simulations.world import SimConfig, WorkloadConfig


def test_a_driver_loop_that_never_runs_out_of_work_fails_as_livelock():
    for seed in range(3):
        result, _ = run_simulation(SimConfig(seed=seed, duration=10.0, node_factory=EndlessReadyNode))
        [violation] = result.violations
        assert violation.invariant == "livelock"
        assert "virtual time stopped" in violation.detail
        explained = result.explain()
        assert f"reproduce: raftcoord simulate --seed {seed} " in explained
        assert "last events before the violation:" in explained
        assert result.recent_events


def test_the_watchdog_also_stops_coordinator_scenarios():
    result, _ = run_simulation(SimConfig(seed=1, duration=10.0, node_factory=EndlessReadyNode),
                               scenario="stale-leader")
    assert [v.invariant for v in result.violations] == ["livelock"]
    assert "--scenario stale-leader" in result.reproduce


def test_an_event_rescheduling_itself_at_the_same_instant_fails_as_livelock():
    result, world = run_simulation(SimConfig(seed=2, duration=5.0, workload=WorkloadConfig(rate=5)),
                                   build=SelfReschedulingWorld)
    [violation] = result.violations
    assert violation.invariant == "livelock"
    assert world.heal_time is not None and violation.time == world.heal_time + 0.25  # the first check
    assert any("check" in line for line in result.recent_events)


def test_the_event_budget_bounds_a_run():
    config = SimConfig(seed=1, duration=20.0, max_events=5000)
    result, _ = run_simulation(config)
    [violation] = result.violations
    assert violation.invariant == "livelock"
    assert "event budget spent" in violation.detail
    assert "--max-events 5000" in result.reproduce
    replay, _ = run_simulation(config)  # the budget is part of the deterministic run
    assert replay.trace_hash == result.trace_hash and replay.violations == result.violations


def test_the_wall_clock_budget_fails_a_run_as_stuck():
    result, _ = run_simulation(SimConfig(seed=1, duration=20.0), wall_budget=0.0)
    [violation] = result.violations
    assert violation.invariant == "stuck"
    assert "wall-clock budget" in violation.detail
    assert "--max-wall 0" in result.reproduce


def test_the_watchdog_leaves_a_sound_run_unchanged():
    config = SimConfig(seed=3, duration=15.0)
    watched, _ = run_simulation(config)
    unwatched, _ = run_simulation(config, wall_budget=None)
    assert watched.ok and unwatched.ok
    assert watched.trace_hash == unwatched.trace_hash


def test_cli_reports_an_exhausted_event_budget():
    outcome = CliRunner().invoke(cli, ["simulate", "--seeds", "1..3", "--duration", "20",
                                       "--max-events", "5000", "--keep-going"])
    assert outcome.exit_code == 1
    assert outcome.output.count("invariant: livelock") == 3
    assert "--max-events 5000" in outcome.output
