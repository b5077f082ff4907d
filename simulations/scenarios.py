"""Named scenarios: what runs on the simulated cluster.

A scenario builds the `World` for a `SimConfig`. The default, "kv", runs the
replicated key-value store with its client workload. The coordinator scenarios
(worker leases, partition ownership) register here too, with `register`, so that
`raftcoord simulate --scenario NAME` and the seed sweeps pick them up unchanged:
subclass `World` (its `state_machine`, client hooks and checks), and register a
`Scenario` whose `build` returns it. The CLI lists registered names in `--help`.
"""

from __future__ import annotations

from typing import Any, Callable

import attrs

from .world import SimConfig, World


@attrs.frozen
class Scenario:
    """A named way to build a world.

    Attributes:
        name: what `--scenario` takes.
        description: one line for `--help` and listings.
        build: makes the (not yet started) world for a configuration.
    """

    name: str
    description: str
    build: Callable[[SimConfig], World]


_SCENARIOS: dict[str, Scenario] = {}


def register(scenario: Scenario) -> Scenario:
    if scenario.name in _SCENARIOS:
        raise ValueError(f"scenario {scenario.name!r} is already registered")
    _SCENARIOS[scenario.name] = scenario
    return scenario


def get_scenario(name: str) -> Scenario:
    try:
        return _SCENARIOS[name]
    except KeyError:
        raise KeyError(f"unknown scenario {name!r}; known: {', '.join(sorted(_SCENARIOS))}") from None


def scenario_names() -> list[str]:
    return sorted(_SCENARIOS)


register(Scenario("kv", "replicated key-value store: put, get (read index), cas", World))


def _kv_variant(kinds: tuple[str, ...], rates: dict[str, float],
                **options: Any) -> Callable[[SimConfig], World]:
    """A key-value run whose faults are only `kinds`, at `rates` (FaultConfig
    fields), with the node options `options`. The run's other fault settings do
    not apply."""
    def build(config: SimConfig) -> World:
        faults = attrs.evolve(config.faults, kinds=frozenset(kinds), swarm=False, **rates)
        return World(attrs.evolve(config, faults=faults, **options))
    return build


register(Scenario(
    "leader-churn", "kv under leader churn right after partial replication (figure 8); "
    "one entry per message, one message in flight; sets its own faults",
    _kv_variant(("churn",), dict(corner_rate=0.15), max_entries_per_message=1, max_inflight=1)))
register(Scenario(
    "deposed-leader", "kv with leaders deposed at once that keep serving reads until "
    "check-quorum; clocks at the edges of their drift bound; sets its own faults",
    _kv_variant(("deposed_read",), dict(corner_rate=0.3), clock_edges=True)))
register(Scenario(
    "snapshots", "kv compacting every 20 entries under crashes, pauses and cut-off nodes, so "
    "lagging nodes catch up from snapshots; sets its own faults",
    _kv_variant(("crash", "pause", "isolate", "partition", "membership"),
                dict(crash_rate=0.15, pause_rate=0.1, partition_rate=0.15, membership_rate=0.05),
                compact_every=20)))
register(Scenario(
    "reconfigure", "kv under frequent membership changes with crashes and partitions; "
    "sets its own faults",
    _kv_variant(("membership", "crash", "partition", "isolate"),
                dict(membership_rate=0.3, crash_rate=0.3, partition_rate=0.1))))

# The coordinator scenarios register themselves (imported last: they import `register`).
from . import coord_scenarios  # noqa: E402,F401
