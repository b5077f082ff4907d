"""Run one simulation end to end and summarise it: safety, liveness,
linearizability, figures, and the command line that reproduces it."""

from __future__ import annotations

import time
from typing import Any, Callable

import attrs

from .faults import ALL_KINDS
from .history import Outcome
from .linearizability import check_history
from .scenarios import get_scenario
from .world import SimConfig, Violation, World

DEFAULT_WALL_BUDGET = 300.0
"""Wall-clock seconds one run may take before it fails as "stuck" (`--max-wall`).
A default run takes one to a few seconds; the budget leaves room for long fault
phases and a loaded machine, and still ends a hung seed within minutes."""


def wall_clock_watchdog(budget: float) -> Callable[[], str | None]:
    """The world's `watchdog` hook for a wall-clock budget of `budget` seconds.

    Reading the clock belongs here, not in the deterministic world: the world only
    asks every few thousand events whether to stop.
    """
    deadline = time.perf_counter() + budget

    def expired() -> str | None:
        if time.perf_counter() > deadline:
            return f"wall-clock budget of {budget:g}s spent (--max-wall raises it)"
        return None

    return expired


@attrs.frozen
class RunResult:
    """The outcome of one run (what `--json` prints)."""

    seed: int
    violations: tuple[Violation, ...]
    trace_hash: str
    simulated_seconds: float
    wall_seconds: float
    events: int
    elections: int
    max_unavailability_seconds: float
    client_ops: dict[str, int]
    linearizable: bool | None
    reproduce: str
    recent_events: tuple[str, ...] = ()
    linearizability_detail: str = ""
    scenario: str = "kv"
    determinism: bool | None = None
    extra: dict[str, Any] = attrs.field(factory=dict)
    """Scenario-specific figures (a world's `summary()`), merged into `to_json`."""

    @property
    def ok(self) -> bool:
        return not self.violations

    def to_json(self) -> dict[str, Any]:
        data = {
            "seed": self.seed,
            "ok": self.ok,
            "scenario": self.scenario,
            "violations": [v.to_json() for v in self.violations],
            "trace_hash": self.trace_hash,
            "simulated_seconds": round(self.simulated_seconds, 6),
            "wall_seconds": round(self.wall_seconds, 4),
            "events": self.events,
            "elections": self.elections,
            "max_unavailability_seconds": round(self.max_unavailability_seconds, 6),
            "client_ops": self.client_ops,
            "linearizable": self.linearizable,
            "reproduce": self.reproduce,
        }
        data.update(self.extra)
        if self.determinism is not None:
            data["deterministic"] = self.determinism
        return data

    def explain(self) -> str:
        """A human-readable failure report: seed, invariant, last events, command."""
        if self.ok:
            return f"seed {self.seed}: ok"
        lines = [f"seed {self.seed}: FAILED"]
        for v in self.violations:
            lines.append(f"  invariant: {v.invariant} (at t={v.time:.4f}s)")
            lines.extend("    " + line for line in v.detail.splitlines())
        if self.recent_events:
            lines.append("  last events before the violation:")
            lines.extend("    " + e for e in self.recent_events)
        lines.append(f"  reproduce: {self.reproduce}")
        return "\n".join(lines)


def reproduce_command(config: SimConfig, scenario: str = "kv", extra: str = "") -> str:
    """The `raftcoord simulate` command line that replays `config`."""
    f, w = config.faults, config.workload
    parts = [f"raftcoord simulate --seed {config.seed}"]
    if scenario != "kv":
        parts.append(f"--scenario {scenario}")
    parts.append(f"--nodes {config.nodes} --duration {config.duration:g}")
    kinds = "all" if set(f.kinds) == set(ALL_KINDS) else (",".join(sorted(f.kinds)) or "none")
    parts.append(f"--faults {kinds}")
    defaults = type(f)()
    for name, option in (("partition_rate", "--partition-rate"), ("crash_rate", "--crash-rate"),
                         ("pause_rate", "--pause-rate"), ("transfer_rate", "--transfer-rate"),
                         ("membership_rate", "--membership-rate"), ("corner_rate", "--corner-rate"),
                         ("loss", "--loss"),
                         ("duplicate", "--duplicate"), ("reorder", "--reorder")):
        if getattr(f, name) != getattr(defaults, name):
            parts.append(f"{option} {getattr(f, name):g}")
    if f.swarm:
        parts.append("--swarm")
    parts.append(f"--rate {w.rate:g}")
    wd = type(w)()
    for name, option in (("clients", "--clients"), ("keys", "--keys"), ("timeout", "--timeout")):
        if getattr(w, name) != getattr(wd, name):
            parts.append(f"{option} {getattr(w, name):g}")
    if config.converge_within != 30.0:
        parts.append(f"--converge-within {config.converge_within:g}")
    if config.compact_every != 500:
        parts.append(f"--compact-every {config.compact_every}")
    if config.disk != "file":
        parts.append(f"--disk {config.disk}")
    if config.eager_commit:
        parts.append("--eager-commit")
    if not config.batch_reads:
        parts.append("--unbatched-reads")
    if not config.codec:
        parts.append("--no-codec")
    if config.max_events:
        parts.append(f"--max-events {config.max_events}")
    if extra:
        parts.append(extra)
    return " ".join(parts)


def max_unavailability(world: World) -> float:
    """The longest stretch of the fault phase in which no client operation succeeded."""
    if not world.history.ops:
        return 0.0
    end = world.heal_time if world.heal_time is not None else world.now
    times = sorted(op.complete_time for op in world.history
                   if op.outcome is Outcome.OK and op.complete_time <= end)
    longest, last = 0.0, 0.0
    for t in times:
        longest = max(longest, t - last)
        last = t
    return max(longest, end - last)


def run_simulation(config: SimConfig, scenario: str = "kv", check_linearizability: bool = True,
                   reproduce_extra: str = "",
                   build: Callable[[SimConfig], World] | None = None,
                   wall_budget: float | None = DEFAULT_WALL_BUDGET) -> tuple[RunResult, World]:
    """Run one simulation and check it. Returns the result and the finished world.

    Args:
        build: makes the world instead of the scenario's builder (tests plant
            broken drivers this way).
        wall_budget: wall-clock seconds the run may take before it fails as
            "stuck" (None = no limit). The run's trace does not depend on it.
    """
    started = time.perf_counter()  # wall time is reported and bounds the run, nothing else
    world = (build or get_scenario(scenario).build)(config)
    if wall_budget is not None:
        world.watchdog = wall_clock_watchdog(wall_budget)
        if wall_budget != DEFAULT_WALL_BUDGET:
            reproduce_extra = " ".join(filter(None, (reproduce_extra, f"--max-wall {wall_budget:g}")))
    world.run()
    violations = [world.violation] if world.violation else []
    linearizable: bool | None = None
    lin_detail = ""
    # A safety violation stops the run mid-flight; the history is then moot.
    if check_linearizability and (world.violation is None or world.violation.invariant == "liveness"):
        verdict = check_history(world.history)
        linearizable = verdict.linearizable
        if verdict.linearizable is False:
            lin_detail = verdict.explain()
            violations.append(Violation("linearizability", lin_detail, world.now))
    wall = time.perf_counter() - started
    recent = tuple(world.describe_recent()) if world.violation else ()
    result = RunResult(
        seed=config.seed,
        violations=tuple(violations),
        trace_hash=world.trace_hash,
        simulated_seconds=world.now,
        wall_seconds=wall,
        events=world.events,
        elections=world.checker.leader_changes,
        max_unavailability_seconds=max_unavailability(world),
        client_ops=world.history.counts(),
        linearizable=linearizable,
        reproduce=reproduce_command(config, scenario, reproduce_extra),
        recent_events=recent,
        linearizability_detail=lin_detail,
        scenario=scenario,
        extra=world.summary() if hasattr(world, "summary") else {},
    )
    return result, world


def check_determinism(config: SimConfig, scenario: str = "kv",
                      first: RunResult | None = None) -> tuple[bool, RunResult, RunResult]:
    """Run `config` twice (or once more after `first`) and compare trace hashes."""
    if first is None:
        first, _ = run_simulation(config, scenario, check_linearizability=False)
    second, _ = run_simulation(config, scenario, check_linearizability=False)
    same = (first.trace_hash == second.trace_hash and first.events == second.events)
    return same, first, second
